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
