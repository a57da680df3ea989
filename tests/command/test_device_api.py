"""The devices API: provisioning by role, who sees which device, the type catalog, and the
alarm list's contract (GET /api/alarms?state=active)."""
from __future__ import annotations

import datetime as dt

import pytest

from devices.device_registry import NewDevice, add_device
from tests.devices.test_telemetry_history import _readings

COVER = "4302230101000001"


def test_admin_registers_a_device_and_reads_it_back(client, login, tiny_city):
    admin = login("admin")
    r = client.post("/api/devices", headers=admin, json={
        "device_id": "MC-0001", "type": "manhole_cover", "part_id": COVER, "dept": tiny_city["water_dept"],
        "password": "cover-pass-1", "meta": {"firmware": "1.2.0"}})
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["type"], body["grid_code"], body["has_password"], body["active_alarms"]) == (
        "manhole_cover", "430223001001001", True, 0)
    assert "password" not in body and "password_hash" not in body
    assert client.get("/api/devices/MC-0001", headers=admin).json()["dept"] == tiny_city["water_dept"]
    assert [d["id"] for d in client.get("/api/devices?type=manhole_cover", headers=admin).json()] == ["MC-0001"]


def test_bad_requests_get_a_reason_and_roles_are_checked(client, login):
    admin = login("admin")
    r = client.post("/api/devices", headers=admin, json={"device_id": "X-1", "type": "toaster", "lon": 113.3405,
                                                         "lat": 27.0005})
    assert r.status_code == 422 and "not in the catalog" in r.json()["message"]
    add = {"device_id": "WL-1", "type": "waterlogging_gauge", "lon": 113.3405, "lat": 27.0005}
    assert client.post("/api/devices", headers=admin, json=add).status_code == 201
    assert client.post("/api/devices", headers=admin, json=add).status_code == 409
    assert client.post("/api/devices", headers=login("operator"), json={**add, "device_id": "WL-2"}).status_code == 403
    assert client.get("/api/devices").status_code == 401


def test_each_user_sees_their_own_devices(client, db, login, tiny_city):
    add_device(db, NewDevice("MC-1", "manhole_cover", part_id=COVER, dept=tiny_city["water_dept"]), actor="test")
    add_device(db, NewDevice("WL-1", "waterlogging_gauge", 113.3425, 27.0005, dept=tiny_city["city_dept"]),
               actor="test")
    assert [d["id"] for d in client.get("/api/devices", headers=login("operator")).json()] == ["MC-1", "WL-1"]
    assert [d["id"] for d in client.get("/api/devices", headers=login("department", dept=tiny_city["water_dept"])).json()] == ["MC-1"]
    inspector = login("inspector", areas=["430223001002"])                 # the other community
    assert [d["id"] for d in client.get("/api/devices", headers=inspector).json()] == ["WL-1"]
    assert client.get("/api/devices/MC-1", headers=inspector).status_code == 404


def test_the_alarm_list_filters_by_state(client, db, login, tiny_city):
    add_device(db, NewDevice("MC-1", "manhole_cover", part_id=COVER), actor="test")
    for status in ("active_unack", "cleared"):
        db.execute("INSERT INTO device_alarm (device_id, rule_id, rule_name, severity, status, raised_at, last_at,"
                   " lon, lat) VALUES ('MC-1', %s, '井盖开启', 'critical', %s, now(), now(), 113.3405, 27.0005)",
                   (f"rule_{status}", status))
    operator = login("operator")
    active = client.get("/api/alarms?state=active", headers=operator).json()
    assert [(a["device_id"], a["rule_id"], a["severity"], a["status"]) for a in active] == [
        ("MC-1", "rule_active_unack", "critical", "active_unack")]
    assert len(client.get("/api/alarms", headers=operator).json()) == 2
    assert client.get("/api/alarms?state=sleeping", headers=operator).status_code == 422
    assert [t["code"] for t in client.get("/api/device-types", headers=operator).json()][:2] == [
        "air_quality", "garbage_bin"]


def test_operators_acknowledge_and_comment_an_alarm(client, db, login, tiny_city):
    add_device(db, NewDevice("MC-1", "manhole_cover", part_id=COVER, dept=tiny_city["water_dept"]), actor="test")
    alarm_id = db.execute(
        "INSERT INTO device_alarm (device_id, rule_id, rule_name, severity, status, raised_at, last_at, lon, lat)"
        " VALUES ('MC-1', 'cover_open', '井盖开启', 'critical', 'active_unack', now(), now(), 113.3405, 27.0005)"
        " RETURNING id").fetchone()["id"]
    operator = login("operator", username="op1")
    r = client.post(f"/api/alarms/{alarm_id}/ack", headers=operator, json={"note": "已通知自来水公司"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["acked_by"]) == ("active_ack", "op1")
    assert [c["body"] for c in body["comments"]] == ["已通知自来水公司"]
    again = client.post(f"/api/alarms/{alarm_id}/ack", headers=operator)
    assert again.status_code == 409 and "already acknowledged by op1" in again.json()["message"]
    r = client.post(f"/api/alarms/{alarm_id}/comments", headers=operator, json={"body": "抢修人员已到场"})
    assert r.status_code == 201 and len(r.json()["comments"]) == 2
    assert client.post(f"/api/alarms/{alarm_id}/comments", headers=operator, json={"body": ""}).status_code == 422
    assert client.post(f"/api/alarms/{alarm_id}/ack", headers=login("leader")).status_code == 403
    other_dept = login("department", dept=tiny_city["city_dept"])
    assert client.get(f"/api/alarms/{alarm_id}", headers=other_dept).status_code == 404
    actions = [r["action"] for r in db.execute("SELECT action FROM audit_log WHERE entity = 'device_alarm'"
                                               " ORDER BY id")]
    assert actions == ["device_alarm.ack", "device_alarm.comment"]


def test_commands_are_checked_against_the_catalog_and_time_out(client, db, login, tiny_city):
    from devices.device_commands import time_out
    add_device(db, NewDevice("SL-1", "street_light", part_id="4302230114000001", dept=tiny_city["city_dept"]),
               actor="test")
    operator = login("operator", username="op1")
    r = client.post("/api/devices/SL-1/commands", headers=operator, json={"name": "switch", "params": {"on": True}})
    assert r.status_code == 202, r.text
    assert (r.json()["status"], r.json()["created_by"]) == ("queued", "op1")
    bad = client.post("/api/devices/SL-1/commands", headers=operator, json={"name": "explode"})
    assert bad.status_code == 422 and "takes the commands dim, switch" in bad.json()["message"]
    bad = client.post("/api/devices/SL-1/commands", headers=operator, json={"name": "dim", "params": {"level_pct": 150}})
    assert bad.status_code == 422 and "level_pct is a number from 0 to 100" in bad.json()["message"]
    bad = client.post("/api/devices/SL-1/commands", headers=operator, json={"name": "switch", "params": {}})
    assert bad.status_code == 422 and "missing: on" in bad.json()["message"]
    assert client.post("/api/devices/SL-1/commands", headers=login("leader"),
                       json={"name": "switch", "params": {"on": True}}).status_code == 403
    db.execute("UPDATE device_command SET deadline = now() - interval '1 second'")
    assert time_out(db) == 1
    log = client.get("/api/devices/SL-1/commands", headers=operator).json()
    assert [(c["name"], c["status"]) for c in log] == [("switch", "timed_out")]


def test_rules_are_overridden_per_device_through_the_api(client, db, login, tiny_city):
    from devices.telemetry_store import DeviceRegistry
    add_device(db, NewDevice("WL-1", "waterlogging_gauge", 113.3425, 27.0005), actor="test")
    admin = login("admin")
    r = client.put("/api/devices/WL-1/rules", headers=admin, json={
        "waterlogged": {"when": {"field": "depth_cm", "above": 25, "clear_below": 20}},
        "rising_fast": {"enabled": False}})
    assert r.status_code == 200, r.text
    assert {x["id"]: x["when"] for x in r.json()}["waterlogged"] == {"field": "depth_cm", "above": 25, "clear_below": 20}
    assert "rising_fast" not in {x["id"] for x in r.json()}
    registry = DeviceRegistry()
    registry.load(db)                                             # what a worker's next reload sees
    assert {x.id for x in registry.devices["WL-1"].rules} == {"waterlogged", "deep_water", "silent"}
    bad = client.put("/api/devices/WL-1/rules", headers=admin, json={"waterlogged": {"when": {"field": "depth_m",
                                                                                              "above": 1}}})
    assert bad.status_code == 422 and "field 'depth_m' is not one this type reports" in bad.json()["message"]
    assert client.put("/api/devices/WL-1/rules", headers=login("operator"), json={}).status_code == 403
    assert [r["action"] for r in db.execute("SELECT action FROM audit_log WHERE entity = 'device' AND"
                                            " action = 'device.rules'")] == ["device.rules"]


def _cover(db) -> str:
    add_device(db, NewDevice("MC-1", "manhole_cover", part_id=COVER), actor="test")
    return "MC-1"


def test_the_chart_api_answers_readings_buckets_or_hours(client, login, db):
    admin = login("admin")
    cover = _cover(db)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    start = now - dt.timedelta(hours=3)
    _readings(db, cover, start, [{"tilt_deg": i % 10, "open": i % 2 == 0} for i in range(3 * 900)],
              dt.timedelta(seconds=4))                                  # every 4 s for 3 h: 2,700 readings

    recent = client.get(f"/api/devices/{cover}/telemetry", headers=admin,
                        params={"since": (now - dt.timedelta(minutes=10)).isoformat(), "field": "tilt_deg"}).json()
    assert recent["resolution"] == "raw" and len(recent["points"]) == 150
    assert set(recent["points"][-1]["values"]) == {"tilt_deg"}

    day = client.get(f"/api/devices/{cover}/telemetry", headers=admin).json()       # last 24 h: too many
    assert day["resolution"] == "60s" and sum(p["n"] for p in day["points"]) == 2700
    assert all(p["min"]["tilt_deg"] <= p["values"]["tilt_deg"] <= p["max"]["tilt_deg"] for p in day["points"])

    hours = client.get(f"/api/devices/{cover}/telemetry", headers=admin, params={"resolution": "hour"}).json()
    assert sum(p["n"] for p in hours["points"]) == 2700 and len(hours["points"]) in (3, 4)
    assert all(p["values"]["open"] == pytest.approx(0.5, abs=0.01) for p in hours["points"] if p["n"] > 100)


def test_the_chart_api_checks_the_field_and_the_window(client, login, db):
    admin = login("admin")
    cover = _cover(db)
    r = client.get(f"/api/devices/{cover}/telemetry", headers=admin, params={"field": "depth_cm"})
    assert r.status_code == 422 and "has no field 'depth_cm'" in r.json()["message"]
    r = client.get(f"/api/devices/{cover}/telemetry", headers=admin, params={"since": "2026-11-22T08:00:00"})
    assert r.status_code == 422 and "time zone" in r.json()["message"]
    r = client.get(f"/api/devices/{cover}/telemetry", headers=admin,
                   params={"since": "2026-11-22T08:00:00+08:00", "until": "2026-11-21T08:00:00+08:00"})
    assert r.status_code == 422 and "forwards" in r.json()["message"]
    assert client.get("/api/devices/NOPE/telemetry", headers=admin).status_code == 404
    assert client.get(f"/api/devices/{cover}/telemetry", headers=login("inspector", areas=["430223001002"])).status_code == 404


def _many_devices(db, prefix: str, count: int, grid: str) -> list[str]:
    """`count` never-heard-from noise meters in `grid`, ids {prefix}-0001…, inserted in one statement."""
    return [r["id"] for r in db.execute(
        "INSERT INTO device (id, type_code, location, grid_code, username)"
        " SELECT id, 'noise', g.location, %(grid)s, id FROM generate_series(1, %(count)s) i,"
        " format('%%s-%%s', %(prefix)s::text, lpad(i::text, 4, '0')) id,"
        " (SELECT ST_PointOnSurface(geom) AS location FROM grid WHERE code = %(grid)s) g RETURNING id",
        {"prefix": prefix, "count": count, "grid": grid})]


def _seen(db, device_id: str, online: bool) -> None:
    db.execute("INSERT INTO device_state (device_id, online, status_at, seen_at) VALUES (%s, %s, now(), now())",
               (device_id, online))


def _alarm(db, device_id: str, status: str) -> None:
    db.execute("INSERT INTO device_alarm (device_id, rule_id, rule_name, severity, status, raised_at, last_at, lon,"
               " lat) VALUES (%s, 'too_loud', '噪声超标', 'major', %s, now(), now(), 113.3405, 27.0005)",
               (device_id, status))


def _ids(client, headers, **params) -> list[str]:
    r = client.get("/api/devices", headers=headers, params=params)
    assert r.status_code == 200, r.text
    return [d["id"] for d in r.json()]


def _all_pages(client, headers, size: int, **params) -> list[list[str]]:
    """Every page of the list, following `after` as the page does, until a short page."""
    pages = [_ids(client, headers, limit=size, **params)]
    while len(pages[-1]) == size:
        pages.append(_ids(client, headers, limit=size, after=pages[-1][-1], **params))
    return pages


@pytest.fixture
def states_beyond_the_first_page(db, tiny_city) -> None:
    """40 devices in two communities; the ones with a state other than never-heard-from come late in id order."""
    _many_devices(db, "A", 30, "430223001001001")
    _many_devices(db, "B", 10, "430223001002001")
    for device_id in ("A-0025", "A-0027", "A-0028", "A-0029", "B-0005"):
        _seen(db, device_id, online=True)
    _seen(db, "A-0026", online=False)
    for device_id in ("A-0027", "B-0005"):
        _alarm(db, device_id, "active_unack")
    _alarm(db, "A-0029", "cleared")                               # over: A-0029 is normal again


def test_the_state_filter_finds_devices_beyond_the_first_page(client, login, states_beyond_the_first_page):
    operator = login("operator")
    assert _ids(client, operator, limit=10) == [f"A-{i:04d}" for i in range(1, 11)]
    assert _ids(client, operator, state="alarm", limit=10) == ["A-0027", "B-0005"]
    assert _ids(client, operator, state="normal", limit=10) == ["A-0025", "A-0028", "A-0029"]
    # Offline: said so (A-0026) or never heard from; an alarm outranks it, as on the page.
    offline = _all_pages(client, operator, 15, state="offline")
    assert [len(p) for p in offline] == [15, 15, 5]
    flat = [i for p in offline for i in p]
    assert flat == sorted(flat) and "A-0026" in flat and not {"A-0025", "A-0027", "B-0005"} & set(flat)
    # Paged one by one under a filter, nothing is skipped or repeated.
    assert _all_pages(client, operator, 1, state="alarm") == [["A-0027"], ["B-0005"], []]
    # The three states split the whole list, and each row answers the state it was found by.
    everything = _ids(client, operator, limit=100)
    assert sorted(flat + ["A-0027", "B-0005", "A-0025", "A-0028", "A-0029"]) == everything
    rows = client.get("/api/devices", headers=operator, params={"state": "alarm"}).json()
    assert [r["active_alarms"] for r in rows] == [1, 1]
    # With the other filters.
    assert _ids(client, operator, state="alarm", area="430223001002") == ["B-0005"]
    assert _ids(client, operator, state="normal", type="manhole_cover") == []


def test_the_state_filter_keeps_to_the_users_area(client, login, states_beyond_the_first_page):
    inspector = login("inspector", areas=["430223001002"])                 # the B devices only
    assert _ids(client, inspector, state="alarm") == ["B-0005"]
    assert _ids(client, inspector, state="normal") == []
    assert _all_pages(client, inspector, 4, state="offline") == [["B-0001", "B-0002", "B-0003", "B-0004"],
                                                                 ["B-0006", "B-0007", "B-0008", "B-0009"],
                                                                 ["B-0010"]]
    assert _ids(client, inspector, state="alarm", area="430223001001") == []


def test_an_unknown_state_is_refused_with_the_allowed_ones(client, login):
    r = client.get("/api/devices", headers=login("operator"), params={"state": "online"})
    assert r.status_code == 422
    assert "state" in r.json()["message"] and "'alarm', 'offline' or 'normal'" in r.json()["message"]
