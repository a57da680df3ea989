"""The units API: units, shifts, the live layer and unit alarms, each user seeing the units
their role allows (command center all, a department its own, an inspector their own)."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from devices.registry import add_unit

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
SQUARE = {"type": "Polygon", "coordinates": [[[113.340, 27.0], [113.342, 27.0], [113.342, 27.001],
                                              [113.340, 27.001], [113.340, 27.0]]]}


@pytest.fixture
def units(db, tiny_city, login):
    """A water-company unit, a city-management unit, and an inspector's own unit."""
    inspector = login("inspector", username="insp", areas=["430223001001"])
    water = add_unit(db, name="自来水巡查一组", kind="team", dept=tiny_city["water_dept"],
                     devices=["osmand:w1"], actor="test")
    city = add_unit(db, name="执法车 湘B·12345", kind="vehicle", dept=tiny_city["city_dept"],
                    devices=["osmand:c1"], actor="test")
    own = add_unit(db, name="监督员小王", kind="inspector", username="insp", devices=["owntracks:insp/phone"],
                   actor="test")
    return {"water": water, "city": city, "own": own, "inspector": inspector}


def alarm(db, unit_id: int, kind: str) -> int:
    return db.execute("INSERT INTO unit_alarm (unit_id, kind, since, raised_at, lon, lat, message)"
                      " VALUES (%s, %s, now() - interval '5 minutes', now(), 113.3405, 27.0005, %s) RETURNING id",
                      (unit_id, kind, f"{kind} alarm")).fetchone()["id"]


def test_admin_adds_a_unit_and_reads_it_back(client, db, login, tiny_city):
    admin = login("admin")
    r = client.post("/api/units", headers=admin, json={
        "name": "监督员张三", "kind": "inspector", "dept": tiny_city["city_dept"], "phone": "13800000001",
        "devices": ["osmand:860000001", "owntracks:zs/phone"]})
    assert r.status_code == 201, r.text
    unit = r.json()
    assert unit["name"] == "监督员张三" and unit["dept"] == tiny_city["city_dept"] and unit["active"] is True
    assert unit["devices"] == ["osmand:860000001", "owntracks:zs/phone"]
    assert unit["shift"] is None and unit["position"] is None and unit["open_alarms"] == 0
    trail = db.execute("SELECT actor, detail FROM audit_log WHERE action = 'unit.add' AND entity_id = %s",
                       (str(unit["id"]),)).fetchone()
    assert trail["actor"] == "admin0" and trail["detail"]["devices"] == ["osmand:860000001", "owntracks:zs/phone"]
    assert client.get(f"/api/units/{unit['id']}", headers=admin).json() == unit
    assert [u["id"] for u in client.get("/api/units", headers=admin).json()] == [unit["id"]]

    taken = client.post("/api/units", headers=admin,
                        json={"name": "B", "kind": "team", "devices": ["osmand:860000001"]})
    assert taken.status_code == 409 and "already bound to unit" in taken.json()["message"]
    no_dept = client.post("/api/units", headers=admin, json={"name": "C", "kind": "team", "dept": "水务局"})
    assert no_dept.status_code == 422 and "department '水务局' does not exist" in no_dept.json()["message"]
    bad_kind = client.post("/api/units", headers=admin, json={"name": "D", "kind": "drone"})
    assert bad_kind.status_code == 422
    bad_device = client.post("/api/units", headers=admin, json={"name": "E", "kind": "team", "devices": ["gps:1"]})
    assert bad_device.status_code == 422 and "must look like" in bad_device.json()["message"]
    assert db.execute("SELECT count(*) AS n FROM unit").fetchone()["n"] == 1


@pytest.mark.parametrize("role", ["leader", "commander", "operator", "dispatcher", "department", "inspector"])
def test_roles_without_unit_manage_cannot_add_units_or_shifts(client, db, login, units, role):
    extra = {"dept": "攸县自来水公司"} if role == "department" else \
        {"areas": ["430223001001"]} if role == "inspector" else {}
    headers = login(role, **extra)
    r = client.post("/api/units", headers=headers, json={"name": "X", "kind": "team"})
    assert r.status_code == 403 and "unit.manage" in r.json()["message"]
    shift = client.post(f"/api/units/{units['water']}/shifts", headers=headers, json={
        "starts_at": NOW.isoformat(), "ends_at": (NOW + dt.timedelta(hours=1)).isoformat(), "areas": ["430223001"]})
    assert shift.status_code == 403
    assert db.execute("SELECT count(*) AS n FROM shift").fetchone()["n"] == 0
    assert db.execute("SELECT count(*) AS n FROM unit").fetchone()["n"] == 3


def test_each_role_sees_its_own_units(client, db, login, units):
    water_user = login("department", dept="攸县自来水公司")
    everyone = login("dispatcher")
    ids = lambda h: [u["id"] for u in client.get("/api/units", headers=h).json()]  # noqa: E731
    assert ids(everyone) == [units["water"], units["city"], units["own"]]
    assert ids(water_user) == [units["water"]]
    assert ids(units["inspector"]) == [units["own"]]
    assert client.get(f"/api/units/{units['city']}", headers=water_user).status_code == 404
    assert client.get(f"/api/units/{units['water']}", headers=units["inspector"]).status_code == 404
    assert client.get(f"/api/units/{units['own']}", headers=units["inspector"]).json()["user"] == "insp"
    live = lambda h: [f["id"] for f in client.get("/api/units/live", headers=h).json()["features"]]  # noqa: E731
    assert live(everyone) == [units["water"], units["city"], units["own"]]
    assert live(water_user) == [units["water"]] and live(units["inspector"]) == [units["own"]]
    # The shifts of a unit out of sight are out of sight too.
    assert client.get(f"/api/units/{units['city']}/shifts", headers=water_user).status_code == 404
    assert client.get("/api/units").status_code == 401


def test_shifts_by_codes_and_by_polygon(client, db, login, units):
    lead = login("shift_lead", username="lead")
    start = NOW - dt.timedelta(hours=1)
    r = client.post(f"/api/units/{units['water']}/shifts", headers=lead, json={
        "starts_at": start.isoformat(), "ends_at": (start + dt.timedelta(hours=8)).isoformat(),
        "areas": ["430223001001"]})
    assert r.status_code == 201, r.text
    now_shift = r.json()
    assert now_shift["area_grids"] == ["430223001001001", "430223001001002"] and now_shift["current"] is True
    assert now_shift["area"]["type"] == "MultiPolygon" and now_shift["created_by"] == "lead"
    later = client.post(f"/api/units/{units['water']}/shifts", headers=lead, json={
        "starts_at": (start + dt.timedelta(days=1)).isoformat(),
        "ends_at": (start + dt.timedelta(days=1, hours=4)).isoformat(), "polygon": SQUARE})
    assert later.status_code == 201, later.text
    assert later.json()["area_grids"] is None and later.json()["current"] is False
    trail = db.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'shift.add' AND actor = 'lead'")
    assert trail.fetchone()["n"] == 2

    overlap = client.post(f"/api/units/{units['water']}/shifts", headers=lead, json={
        "starts_at": (start + dt.timedelta(hours=7)).isoformat(),
        "ends_at": (start + dt.timedelta(hours=9)).isoformat(), "areas": ["430223001"]})
    assert overlap.status_code == 409 and "already has a shift overlapping" in overlap.json()["message"]
    naive = client.post(f"/api/units/{units['water']}/shifts", headers=lead, json={
        "starts_at": "2026-03-02T08:00:00", "ends_at": "2026-03-02T12:00:00", "areas": ["430223001"]})
    assert naive.status_code == 422 and "time zone" in naive.json()["message"]
    both = client.post(f"/api/units/{units['water']}/shifts", headers=lead, json={
        "starts_at": (start + dt.timedelta(days=3)).isoformat(),
        "ends_at": (start + dt.timedelta(days=3, hours=1)).isoformat(), "areas": ["430223001"], "polygon": SQUARE})
    assert both.status_code == 422
    missing = client.post("/api/units/999999/shifts", headers=lead, json={
        "starts_at": start.isoformat(), "ends_at": (start + dt.timedelta(hours=1)).isoformat(), "areas": ["430223001"]})
    assert missing.status_code == 404

    listed = client.get(f"/api/units/{units['water']}/shifts", headers=lead)
    assert [s["id"] for s in listed.json()] == [now_shift["id"], later.json()["id"]]
    only_today = client.get(f"/api/units/{units['water']}/shifts", headers=lead, params={
        "from": (NOW - dt.timedelta(hours=2)).isoformat(), "to": (NOW + dt.timedelta(hours=2)).isoformat()})
    assert [s["id"] for s in only_today.json()] == [now_shift["id"]]
    backwards = client.get(f"/api/units/{units['water']}/shifts", headers=lead, params={
        "from": NOW.isoformat(), "to": (NOW - dt.timedelta(hours=2)).isoformat()})
    assert backwards.status_code == 422

    listed_unit = client.get(f"/api/units/{units['water']}", headers=lead).json()
    assert listed_unit["shift"]["id"] == now_shift["id"]


def test_live_layer_shows_last_good_position_and_duty(client, db, login, units):
    lead = login("shift_lead", username="lead")
    client.post(f"/api/units/{units['water']}/shifts", headers=lead, json={
        "starts_at": (NOW - dt.timedelta(hours=1)).isoformat(), "ends_at": (NOW + dt.timedelta(hours=1)).isoformat(),
        "areas": ["430223001001"]}).raise_for_status()
    fix_time = int((NOW - dt.timedelta(minutes=1)).timestamp())
    r = client.get("/osmand", params={"id": "w1", "lat": 27.0005, "lon": 113.3405, "timestamp": fix_time,
                                      "batt": 64})
    assert r.status_code == 200, r.text
    alarm(db, units["city"], "offline")
    live = client.get("/api/units/live", headers=lead).json()
    assert live["type"] == "FeatureCollection"
    by_id = {f["id"]: f for f in live["features"]}
    water, city = by_id[units["water"]], by_id[units["city"]]
    assert water["geometry"] == {"type": "Point", "coordinates": [113.3405, 27.0005]}
    assert water["properties"]["on_duty"] is True and water["properties"]["battery_pct"] == 64
    assert dt.datetime.fromisoformat(water["properties"]["fix_time"]).timestamp() == fix_time
    assert city["geometry"] is None and city["properties"]["on_duty"] is False
    assert city["properties"]["open_alarms"] == ["offline"] and water["properties"]["open_alarms"] == []
    listed = {u["id"]: u for u in client.get("/api/units", headers=lead).json()}
    assert listed[units["water"]]["position"]["lon"] == 113.3405
    assert listed[units["city"]]["open_alarms"] == 1


def test_alarms_are_listed_per_visibility_and_cleared_once(client, db, login, units):
    sos = alarm(db, units["water"], "sos")
    offline = alarm(db, units["city"], "offline")
    operator = login("operator", username="op")
    water_user = login("department", dept="攸县自来水公司")
    listed = lambda h, **q: [a["id"] for a in client.get("/api/unit-alarms", headers=h, params=q).json()]  # noqa: E731
    assert sorted(listed(operator, open="true")) == sorted([sos, offline])
    assert listed(water_user, open="true") == [sos]
    assert listed(units["inspector"]) == []

    # Departments and inspectors may look, not clear (unit.alarm).
    assert client.post(f"/api/unit-alarms/{sos}/clear", headers=water_user).status_code == 403
    assert client.post(f"/api/unit-alarms/{sos}/clear", headers=units["inspector"]).status_code == 403

    db.execute("LISTEN citygrid_live")
    r = client.post(f"/api/unit-alarms/{sos}/clear", headers=operator, json={"note": "已电话联系, 误触"})
    assert r.status_code == 200, r.text
    assert r.json()["cleared_by"] == "op" and r.json()["cleared_at"] is not None
    notes = [json.loads(n.payload) for n in db.notifies(timeout=10, stop_after=1)]
    assert {"kind": "unit_alarm", "id": sos, "unit_id": units["water"], "alarm": "sos", "state": "cleared"} in notes
    trail = db.execute("SELECT actor, detail FROM audit_log WHERE action = 'unit_alarm.clear' AND entity_id = %s",
                       (str(sos),)).fetchone()
    assert trail["actor"] == "op" and trail["detail"] == {"unit_id": units["water"], "kind": "sos",
                                                                 "note": "已电话联系, 误触"}
    again = client.post(f"/api/unit-alarms/{sos}/clear", headers=operator)
    assert again.status_code == 409 and "already cleared by op" in again.json()["message"]
    assert client.post("/api/unit-alarms/999999/clear", headers=operator).status_code == 404
    assert listed(operator, open="true") == [offline]
    assert listed(operator, open="false") == [sos]
    assert listed(operator, unit_id=units["water"]) == [sos]
    assert db.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'unit_alarm.clear'").fetchone()["n"] == 1
