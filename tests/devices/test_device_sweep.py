"""Time-driven device alarms against the real database: a silent device is alarmed once and
its next reading clears it; an alarm nobody acknowledges is escalated once."""
from __future__ import annotations

import datetime as dt
import json


from devices.decoders.telemetry import decode
from devices.device_registry import NewDevice, add_device, set_rule_overrides
from devices.device_sweep import DeviceSweeper
from devices.store import Received
from devices.telemetry_store import TelemetryWriter, write_telemetry


def sweep(conn, writer, sweeper=None):
    writer.registry.load(conn)
    return (sweeper or DeviceSweeper(dt.timedelta(minutes=15))).sweep(conn, writer.registry, now=0.0)


def test_a_silent_device_is_alarmed_once_and_its_next_reading_clears_it(db, app_conn, tiny_city):
    add_device(db, NewDevice("WL-1", "waterlogging_gauge", 113.3425, 27.0005), actor="test")   # silent_s 1800
    add_device(db, NewDevice("WL-2", "waterlogging_gauge", 113.3415, 27.0005), actor="test")
    db.execute("UPDATE device SET created_at = now() - interval '2 hours' WHERE id = 'WL-1'")
    writer = TelemetryWriter()
    assert sweep(app_conn, writer) == (1, 0, 0)                    # WL-2 was registered just now
    assert sweep(app_conn, writer) == (0, 0, 0)                    # once, not every sweep
    alarm = db.execute("SELECT device_id, rule_id, severity, value FROM device_alarm").fetchone()
    assert (alarm["device_id"], alarm["rule_id"], alarm["severity"]) == ("WL-1", "silent", "minor")
    assert alarm["value"]["silent_minutes"] >= 120

    now = dt.datetime.now(dt.timezone.utc)
    body = json.dumps({"depth_cm": 2}).encode()
    message = Received("telemetry", "citygrid/devices/WL-1/telemetry", body, now)
    write_telemetry(app_conn, [(r, message) for r in decode(message.topic, body, now)], [], writer)
    assert db.execute("SELECT status, cleared_by FROM device_alarm").fetchone() == {
        "status": "cleared_unack", "cleared_by": "device"}


def test_a_heartbeat_shortened_or_added_for_one_device_is_kept(db, app_conn, tiny_city):
    for device in ("WL-1", "WL-2", "WL-3"):
        add_device(db, NewDevice(device, "waterlogging_gauge", 113.3425, 27.0005), actor="test")   # silent_s 1800
    db.execute("UPDATE device SET created_at = now() - interval '10 minutes'")
    set_rule_overrides(db, "WL-1", {"silent": {"when": {"silent_s": 300}}}, actor="test")
    set_rule_overrides(db, "WL-2", {"silent": {"enabled": False},
                                    "quiet_5min": {"name": "五分钟无数据", "severity": "major",
                                                   "when": {"silent_s": 300}}}, actor="test")
    assert sweep(app_conn, TelemetryWriter()) == (2, 0, 0)
    assert {(r["device_id"], r["rule_id"]) for r in db.execute("SELECT device_id, rule_id FROM device_alarm")} == {
        ("WL-1", "silent"), ("WL-2", "quiet_5min")}                    # WL-3 keeps its type's 30 minutes


def test_an_alarm_nobody_acknowledges_is_escalated_once(db, app_conn, tiny_city):
    add_device(db, NewDevice("MC-1", "manhole_cover", part_id="4302230101000001"), actor="test")
    for minutes, status in ((20, "active_unack"), (5, "active_unack"), (30, "active_ack")):
        db.execute("INSERT INTO device_alarm (device_id, rule_id, rule_name, severity, status, raised_at, last_at,"
                   " lon, lat) VALUES ('MC-1', %s, '井盖开启', 'critical', %s, now() - make_interval(mins => %s),"
                   " now(), 113.3405, 27.0005)", (f"r{minutes}", status, minutes))
    writer = TelemetryWriter()
    assert sweep(app_conn, writer) == (0, 1, 0)
    assert sweep(app_conn, writer) == (0, 0, 0)
    notes = db.execute("SELECT role, message FROM notification WHERE kind = 'device_alarm.escalated'").fetchall()
    assert [n["role"] for n in notes] == ["shift_lead"] and "15 分钟无人确认" in notes[0]["message"]
    assert db.execute("SELECT rule_id FROM device_alarm WHERE escalated_at IS NOT NULL").fetchone()["rule_id"] == "r20"
