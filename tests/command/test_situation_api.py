"""The situation around one incident (态势) on the tiny city: cameras that see it, resources,
units on duty, parts by class, devices with their alarms, open cases (a voided one left out),
the affected grids with the share of each and the people affected; the radius refused beyond
5 km; 404 for a user outside the area, 401 without a login."""
from __future__ import annotations

import datetime as dt
import math

import pytest
from psycopg.types.json import Jsonb

from command import situation
from devices.fix import Fix
from devices.pipeline import new_writer
from devices.registry import add_unit
from devices.shifts import add_shift
from tests.devices.conftest import app_conn  # noqa: F401 (fixture)
from tests.devices.test_alarms import push
from tests.workflows.conftest import desk, new_case, people  # noqa: F401 (fixtures)
from workflows import cases
from workflows.case_rules import ActionRequest
from workflows.incidents import NewIncident, create
from workflows.resources import NewResource, add_resource

POINT = (113.3405, 27.0005)                    # the middle of grid 430223001001001
# The affected area: all of grid …001001 and the western half of …001002.
AREA = "POLYGON((113.340 27.000, 113.3415 27.000, 113.3415 27.001, 113.340 27.001, 113.340 27.000))"
POPULATION = {"430223001001001": 1000, "430223001001002": 800, "430223001002001": None, "430223001002002": 500}
M_PER_DEG_LON = 111_320 * math.cos(math.radians(27.0005))      # ~99.2 m per 0.001°


def east_of_point(lon: float) -> float:
    """Metres from POINT to a place on the same latitude (to ±0.5 %)."""
    return (lon - POINT[0]) * M_PER_DEG_LON


def _camera(client, admin, name: str, lon: float, bearing: float, range_m: float) -> int:
    r = client.post("/api/cameras", headers=admin, json={
        "name": name, "url": "http://127.0.0.1:9/", "lon": lon, "lat": POINT[1], "bearing_deg": bearing,
        "fov_deg": 60, "range_m": range_m})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _device(db, device_id: str, lon: float, online: bool, alarm: bool = False) -> None:
    db.execute("INSERT INTO device (id, type_code, location, grid_code, username) SELECT %s, 'waterlogging_gauge',"
               " p, (SELECT code FROM grid WHERE ST_Intersects(geom, p) LIMIT 1), %s"
               " FROM ST_SetSRID(ST_MakePoint(%s, %s), 4326) p", (device_id, device_id, lon, POINT[1]))
    db.execute("INSERT INTO device_state (device_id, ts, values, online, status_at, seen_at)"
               " VALUES (%s, now(), %s, %s, now(), now())", (device_id, Jsonb({"depth_cm": 31}), online))
    if alarm:
        db.execute("INSERT INTO device_alarm (device_id, rule_id, rule_name, severity, status, raised_at, last_at,"
                   " value, lon, lat) VALUES (%s, 'flood', '道路积水', 'critical', 'active_unack', now(), now(), %s, %s, %s)",
                   (device_id, Jsonb({"depth_cm": 31}), lon, POINT[1]))


def build_scene(client, login, db, app_conn, settings, new_case, people) -> dict:  # noqa: F811
    """Everything around POINT: returns the ids the tests look for."""
    for code, population in POPULATION.items():
        db.execute("UPDATE grid SET population = %s WHERE code = %s", (population, code))
    admin = login("admin")
    seen = {
        # looks east from the grid's west edge: sees the point 50 m away
        "cam_sees": _camera(client, admin, "联星路西口", 113.3400, 90, 80),
        # looks west from grid …002001: sees the east end of the area, not the point
        "cam_area": _camera(client, admin, "建设路口", 113.3425, 270, 120),
        # looks east, away from everything
        "cam_away": _camera(client, admin, "人民路东", 113.3435, 90, 60),
    }
    seen["pump"] = add_resource(db, NewResource("泵车1号", "pump_truck", 113.3412, POINT[1], contact="13800000001"),
                                actor="test")["id"]
    seen["bags"] = add_resource(db, NewResource("沙袋库", "sandbags", 113.3435, POINT[1], status="assigned",
                                                quantity=500), actor="test")["id"]
    seen["far_res"] = add_resource(db, NewResource("远处泵车", "pump_truck", 113.3500, POINT[1]), actor="test")["id"]

    now = dt.datetime.now(dt.timezone.utc)
    near = add_unit(db, name="监督员张三", kind="inspector", actor="test")
    off = add_unit(db, name="湘B·12345", kind="vehicle", actor="test")          # no shift: off duty
    far = add_unit(db, name="执法二队", kind="team", actor="test")
    for unit in (near, far):
        add_shift(db, unit_id=unit, starts_at=now - dt.timedelta(hours=2), ends_at=now + dt.timedelta(hours=2),
                  areas=["430223001"], actor="test")
    fixes = [Fix(device=f"unit:{u}", fix_time=now - dt.timedelta(minutes=5), lon=lon, lat=POINT[1], accuracy_m=5.0,
                 battery_pct=80.0) for u, lon in ((near, 113.3410), (off, 113.3406), (far, 113.3480))]
    push(app_conn, new_writer(settings), fixes)
    seen.update(unit_near=near, unit_off=off, unit_far=far)

    _device(db, "wl-near", 113.3406, online=True, alarm=True)
    _device(db, "wl-east", 113.3435, online=False)
    db.execute("UPDATE part SET status = '破损' WHERE id = '4302230114000002'")

    seen["case_open"] = new_case(lon=113.3408, lat=POINT[1]).case["id"]
    voided = new_case(lon=113.3409, lat=POINT[1]).case["id"]
    cases.act(db, cases.CaseDesk.default(), voided, "void", people["shift_lead"], ActionRequest(note="重复上报"))
    seen["case_void"] = voided
    seen["case_east"] = new_case(lon=113.3430, lat=POINT[1]).case["id"]

    seen["incident"] = create(db, NewIncident(title="联星路积水", category="自然灾害", subtype="水旱灾害", level="Ⅳ",
                                              lon=POINT[0], lat=POINT[1], area_wkt=AREA), actor="test")["id"]
    db.commit()
    return seen


@pytest.fixture
def scene(client, login, db, app_conn, settings, new_case, people):  # noqa: F811
    return build_scene(client, login, db, app_conn, settings, new_case, people)


def _ids(section: dict) -> list:
    return [item["id"] for item in section["items"]]


def test_every_section_holds_what_is_near_nearest_first(client, login, db, scene):
    commander = login("commander")
    audit_before = db.execute("SELECT count(*) AS n FROM audit_log").fetchone()["n"]
    r = client.get(f"/api/incidents/{scene['incident']}/situation", headers=commander)
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["radius_m"] == 500 and s["incident"]["title"] == "联星路积水"          # no radius: 500 m
    assert s["circle"]["type"] == "Polygon" and s["affected"]["type"] == "MultiPolygon"

    cams = s["cameras"]
    assert _ids(cams) == [scene["cam_sees"], scene["cam_area"]] and cams["count"] == 2
    first, second = cams["items"]
    assert first["sees_point"] is True and second["sees_point"] is False
    assert first["distance_m"] == pytest.approx(east_of_point(113.3400) * -1, rel=5e-3)
    assert first["snapshot_url"] == f"/api/cameras/{scene['cam_sees']}/snapshot.jpg"
    assert first["online"] is None and (first["lon"], first["lat"]) == (113.34, POINT[1])

    res = s["resources"]
    assert _ids(res) == [scene["pump"], scene["bags"]]              # the one 940 m away is out
    pump, bags = res["items"]
    assert pump["distance_m"] == pytest.approx(east_of_point(113.3412), rel=5e-3)
    assert (pump["type_name"], pump["type_name_en"], pump["status"], pump["contact"]) == (
        "排水抢险车", "Drainage pump truck", "available", "13800000001")
    assert (bags["status"], bags["quantity"], bags["type_unit"]) == ("assigned", 500, "袋")

    units = s["units"]
    assert _ids(units) == [scene["unit_near"]]                      # the off-duty one and the far one are out
    unit = units["items"][0]
    assert unit["distance_m"] == pytest.approx(east_of_point(113.3410), rel=5e-3)
    assert 5 * 60 - 5 <= unit["age_s"] <= 5 * 60 + 120 and unit["shift_id"] is not None
    assert (unit["lon"], unit["lat"]) == (113.341, POINT[1])

    parts = s["parts"]
    assert _ids(parts) == ["4302230101000001", "4302230114000001", "4302230114000002"]
    assert parts["items"][0]["distance_m"] == 0
    classes = {c["class_code"]: c for c in parts["classes"]}
    assert classes["0114"]["count"] == 2 and classes["0114"]["by_status"] == {"完好": 1, "破损": 1}
    assert classes["0101"]["count"] == 1 and classes["0114"]["nearest_m"] == pytest.approx(east_of_point(113.3415),
                                                                                            rel=5e-3)

    devices = s["devices"]
    assert _ids(devices) == ["wl-near", "wl-east"]
    near, east = devices["items"]
    assert near["state"] == "alarm" and [a["rule_name"] for a in near["active_alarms"]] == ["道路积水"]
    assert east["state"] == "offline" and east["active_alarms"] == []

    open_cases = s["cases"]
    assert _ids(open_cases) == [scene["case_open"], scene["case_east"]]      # the voided case is left out
    assert open_cases["items"][0]["state_name"] and open_cases["items"][0]["class_code"] == "0102"
    assert open_cases["items"][1]["distance_m"] == pytest.approx(east_of_point(113.3430), rel=5e-3)
    for section in ("cameras", "resources", "units", "parts", "devices", "cases"):
        distances = [i["distance_m"] for i in s[section]["items"]]
        assert distances == sorted(distances) and s[section]["truncated"] is False, section
    # Reading writes nothing.
    assert db.execute("SELECT count(*) AS n FROM audit_log").fetchone()["n"] == audit_before


def test_the_affected_grids_share_and_population(client, login, db, scene):
    s = client.get(f"/api/incidents/{scene['incident']}/situation", headers=login("leader")).json()
    grids = s["grids"]
    assert grids["basis"] == "incident_area"
    by_code = {g["code"]: g for g in grids["items"]}
    assert list(by_code) == ["430223001001001", "430223001001002"]        # the other two are untouched
    whole, half = by_code["430223001001001"], by_code["430223001001002"]
    assert whole["share"] == pytest.approx(1, abs=1e-3) and whole["people_affected"] == 1000
    assert half["share"] == pytest.approx(0.5, abs=1e-3) and half["people_affected"] == 400
    assert half["geometry"]["type"] == "MultiPolygon"
    totals = grids["totals"]
    assert (totals["grids"], totals["population"], totals["people_affected"]) == (2, 1800, 1400)
    assert totals["grids_without_population"] == 0
    assert totals["affected_area_m2"] == pytest.approx(1.5 * whole["area_m2"], rel=1e-3)


def test_without_an_area_the_circle_is_affected_and_unknown_population_stays_unknown(client, login, db, scene):
    # On the border of …001002 (800 people) and …002001 (no population figure).
    inc = create(db, NewIncident(title="燃气泄漏", category="事故灾难", subtype="公共设施和设备事故", level="Ⅳ",
                                 lon=113.342, lat=POINT[1]), actor="test")["id"]
    s = client.get(f"/api/incidents/{inc}/situation", params={"radius_m": 40}, headers=login("commander")).json()
    assert s["radius_m"] == 40 and s["grids"]["basis"] == "radius"
    by_code = {g["code"]: g for g in s["grids"]["items"]}
    assert set(by_code) == {"430223001001002", "430223001002001"}
    half_circle = math.pi * 40 ** 2 / 2
    known, unknown = by_code["430223001001002"], by_code["430223001002001"]
    assert known["affected_m2"] == pytest.approx(half_circle, rel=1e-2)
    assert known["share"] == pytest.approx(half_circle / known["area_m2"], rel=1e-2)
    assert known["people_affected"] == round(800 * known["share"])
    assert unknown["population"] is None and unknown["people_affected"] is None
    totals = s["grids"]["totals"]
    assert totals["population"] == 800 and totals["people_affected"] == known["people_affected"]
    assert totals["grids_without_population"] == 1
    # A 40 m circle holds only the cameras that see the point, and nothing 100 m away.
    assert s["parts"]["items"] == [] and s["resources"]["count"] == 0


def test_a_smaller_radius_leaves_the_farther_things_out(client, login, scene):
    s = client.get(f"/api/incidents/{scene['incident']}/situation", params={"radius_m": 150},
                   headers=login("dispatcher")).json()
    assert s["radius_m"] == 150
    assert _ids(s["cameras"]) == [scene["cam_sees"]]            # the one 200 m off sees only the area's edge
    assert _ids(s["resources"]) == [scene["pump"]]
    assert _ids(s["parts"]) == ["4302230101000001", "4302230114000001"]
    assert _ids(s["devices"]) == ["wl-near"] and _ids(s["cases"]) == [scene["case_open"]]
    assert {c["class_code"]: c["count"] for c in s["parts"]["classes"]} == {"0101": 1, "0114": 1}


@pytest.mark.parametrize("radius, words", [("5001", "5000 or less"), ("0", "above 0"), ("-3", "above 0"),
                                           ("nan", "a number above 0"), ("wide", "radius_m")])
def test_a_bad_radius_is_refused_with_a_message(client, login, scene, radius, words):
    r = client.get(f"/api/incidents/{scene['incident']}/situation", params={"radius_m": radius},
                   headers=login("commander"))
    assert r.status_code == 422 and words in r.json()["message"], r.text


def test_the_default_radius_is_the_incidents_own_at_most_5_km():
    assert situation.check_radius(None, 200.0) == 200
    assert situation.check_radius(None, 8000.0) == 5000
    assert situation.check_radius(None, None) == 500
    assert situation.check_radius(5000, 100.0) == 5000


def test_who_may_see_it(client, login, scene):
    url = f"/api/incidents/{scene['incident']}/situation"
    assert client.get(url).status_code == 401
    far = client.get(url, headers=login("inspector", areas=["430223001002"]))        # the other community
    assert far.status_code == 404 and "not yours to see" in far.json()["message"]
    assert client.get("/api/incidents/999999/situation", headers=login("commander")).status_code == 404
    # An inspector of the incident's community sees it, with only the units and cases theirs to see.
    here = client.get(url, headers=login("inspector", areas=["430223001001"])).json()
    assert here["units"]["items"] == []                                            # not their own unit
    assert _ids(here["cases"]) == [scene["case_open"]]                             # …002 cases are not theirs
    assert here["resources"]["count"] == 2 and here["cameras"]["count"] == 2


def test_the_page_is_served_and_names_its_incident(client):
    r = client.get("/incidents/7/situation")
    assert r.status_code == 200 and 'data-incident="7"' in r.text and "/static/app/situation.js" in r.text
    assert "http://" not in r.text and "https://" not in r.text
