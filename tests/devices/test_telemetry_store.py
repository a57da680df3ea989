"""Writing telemetry against the real database: readings stored once, bad messages dead-
lettered with their reason, the rules raising, repeating and clearing alarms that change the
part the device sits on, with audit rows and live-bus messages."""
from __future__ import annotations

import datetime as dt
import json

import psycopg
import pytest

from devices.decoders.telemetry import decode
from devices.device_registry import NewDevice, add_device
from devices.fix import DecodeError, Reading
from devices.store import Received
from devices.telemetry_store import TelemetryWriter, write_telemetry
from workflows.notify import LIVE_CHANNEL

COVER = "4302230101000001"
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@pytest.fixture
def cover(db, tiny_city):
    add_device(db, NewDevice("MC-1", "manhole_cover", part_id=COVER), actor="test")
    return "MC-1"


def push(conn, writer, *messages: tuple[str, object]):
    """(device id, payload) → one batch through the decoder and the writer."""
    readings, statuses, refused = [], [], []
    for device_id, payload in messages:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        topic = f"citygrid/devices/{device_id}/telemetry"
        message = Received("telemetry", topic, body, NOW)
        for item in decode(topic, body, NOW):
            readings.append((item, message))
    return write_telemetry(conn, readings, statuses, writer, refused)


def at(seconds: int) -> int:
    return int((NOW + dt.timedelta(seconds=seconds)).timestamp() * 1000)


def test_an_open_cover_raises_one_alarm_marks_the_part_and_clears_when_closed(db, app_conn, cover, settings):
    writer = TelemetryWriter()
    with psycopg.connect(settings.database_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {LIVE_CHANNEL}")
        push(app_conn, writer, (cover, {"ts": at(-30), "values": {"open": False, "tilt_deg": 1}}))
        written = push(app_conn, writer, (cover, {"ts": at(-20), "values": {"open": True}}),
                       (cover, [{"ts": at(-10), "values": {"open": True}}, {"ts": at(-5), "values": {"open": True}}]))
        assert written.stored == 3 and [t.kind for _, t in written.transitions] == ["raise", "repeat", "repeat"]
        alarm = db.execute("SELECT * FROM device_alarm").fetchone()
        assert (alarm["rule_id"], alarm["severity"], alarm["status"], alarm["repeats"]) == (
            "cover_open", "critical", "active_unack", 2)
        assert db.execute("SELECT status FROM part WHERE id = %s", (COVER,)).fetchone()["status"] == "丢失"
        live = [json.loads(n.payload) for n in listener.notifies(timeout=0.3)]
        assert {"kind": "device_alarm", "id": alarm["id"], "device_id": cover, "severity": "critical",
                "state": "raised"} in live

        push(app_conn, writer, (cover, {"ts": at(0), "values": {"open": False}}))
        alarm = db.execute("SELECT * FROM device_alarm").fetchone()
        assert (alarm["status"], alarm["cleared_by"]) == ("cleared_unack", "device")
        assert db.execute("SELECT status FROM part WHERE id = %s", (COVER,)).fetchone()["status"] == "完好"
    actions = [r["action"] for r in db.execute("SELECT action FROM audit_log WHERE actor = 'device:MC-1' ORDER BY id")]
    assert actions == ["part.status", "device_alarm.raise", "part.status", "device_alarm.clear"]
    state = db.execute("SELECT values FROM device_state WHERE device_id = %s", (cover,)).fetchone()
    assert state["values"] == {"open": False, "tilt_deg": 1.0}          # merged field by field


def test_redelivery_stores_nothing_twice_and_a_late_reading_is_not_judged(db, app_conn, cover):
    writer = TelemetryWriter()
    push(app_conn, writer, (cover, {"ts": at(0), "values": {"open": False}}))
    again = push(app_conn, writer, (cover, {"ts": at(0), "values": {"open": False}}))
    assert (again.stored, again.duplicates) == (0, 1)
    late = push(app_conn, writer, (cover, {"ts": at(-60), "values": {"open": True}}))    # older than the newest
    assert late.stored == 1 and late.transitions == []
    assert db.execute("SELECT count(*) AS n FROM telemetry").fetchone()["n"] == 2
    assert db.execute("SELECT count(*) AS n FROM device_alarm").fetchone()["n"] == 0


@pytest.mark.parametrize("device, payload, reason", [
    ("MC-1", {"open": 1}, "bad_type"),
    ("MC-1", {"tilt_deg": True}, "bad_type"),
    ("MC-1", {"tilt_deg": 120}, "out_of_range"),
    ("MC-1", {"tilt_cm": 3}, "unknown_field"),
    ("MC-9", {"open": True}, "unknown_device"),
    ("MC-1", [{"ts": at(0), "values": {"open": False}}, {"ts": at(1), "values": {"water_level_cm": -3}}],
     "out_of_range"),
])
def test_a_message_that_does_not_fit_its_device_is_dead_lettered_whole(db, app_conn, cover, device, payload, reason):
    written = push(app_conn, TelemetryWriter(), (device, payload), (cover, {"ts": at(5), "values": {"open": False}}))
    assert (written.stored, written.dead_letters) == (1, 1)                # the other device's reading still stored
    letter = db.execute("SELECT reason, topic, message FROM dead_letter").fetchone()
    assert letter["reason"] == reason and letter["topic"] == f"citygrid/devices/{device}/telemetry"


@pytest.mark.parametrize("payload, reason", [
    (b"{not json", "bad_json"),
    (b'{"open": NaN}', "bad_json"),
    (b'{"ts": 1, "values": {"open": true}}', "ancient_timestamp"),
    (b'{"values": {"open": true}, "ts": "2099-01-01T00:00:00Z"}', "future_timestamp"),
    (b'{"values": {"open": true}, "ts": "2026-01-01 08:00"}', "bad_timestamp"),
    (b'{"values": {}}', "missing_field"),
    (b'{"values": {"depth": "15cm"}}', "bad_type"),
    (b'{"open": "yes"}', "bad_type"),
    (b"[]", "bad_type"),
    (b'{"ts": 1763000000000, "open": true}', "bad_type"),
])
def test_the_decoder_names_what_is_wrong(payload, reason):
    with pytest.raises(DecodeError) as refused:
        decode("citygrid/devices/MC-1/telemetry", payload, NOW)
    assert refused.value.reason == reason


def test_bare_values_are_stamped_on_arrival_and_status_is_understood():
    [reading] = decode("citygrid/devices/MC-1/telemetry", b'{"open": true, "tilt_deg": 3}', NOW)
    assert reading == Reading("MC-1", NOW, {"open": True, "tilt_deg": 3.0})
    assert decode("citygrid/devices/MC-1/status", b"offline", NOW)[0].online is False
    assert decode("citygrid/devices/MC-1/status", b'{"online": true}', NOW)[0].online is True
    with pytest.raises(DecodeError, match="bad_topic|not citygrid/devices"):
        decode("citygrid/devices/a b/telemetry", b"{}", NOW)


def test_alarms_whose_rule_says_so_open_one_case_each(db, app_conn, cover, tiny_city):
    from workflows.cases import CaseDesk
    add_device(db, NewDevice("SL-1", "street_light", part_id="4302230114000001"), actor="test")
    writer = TelemetryWriter(desk=CaseDesk.default())
    push(app_conn, writer, (cover, {"ts": at(0), "values": {"open": True}}),
         ("SL-1", {"ts": at(0), "values": {"fault": True, "on": True, "current_a": 0.8}}),
         (cover, {"ts": at(1), "values": {"open": True}}))
    rows = db.execute("SELECT a.device_id, a.case_id, c.kind, c.event_class, c.part_class, c.part_id, c.source, c.state,"
                      " r.client_ref FROM device_alarm a JOIN case_file c ON c.id = a.case_id"
                      " JOIN case_reporter r ON r.case_id = c.id ORDER BY a.device_id").fetchall()
    assert [(r["device_id"], r["kind"], r["event_class"] or r["part_class"], r["part_id"], r["source"], r["state"])
            for r in rows] == [("MC-1", "event", "0406", None, "device", "verifying"),
                               ("SL-1", "part", "0114", "4302230114000001", "device", "verifying")]
    assert all(r["client_ref"].startswith("device-alarm:") for r in rows)
    assert db.execute("SELECT count(*) AS n FROM case_file").fetchone()["n"] == 2        # the repeat opened none


def test_an_alarm_whose_case_cannot_be_filed_is_still_raised(db, app_conn, tiny_city):
    from workflows.cases import CaseDesk
    add_device(db, NewDevice("MC-9", "manhole_cover", 113.3405, 27.0005), actor="test")
    db.execute("UPDATE device SET location = ST_SetSRID(ST_MakePoint(113.9, 27.9), 4326), grid_code = NULL"
               " WHERE id = 'MC-9'")                     # moved outside the city after registration
    written = push(app_conn, TelemetryWriter(desk=CaseDesk.default()), ("MC-9", {"ts": at(0), "values": {"open": True}}))
    assert [t.kind for _, t in written.transitions] == ["raise"]
    assert db.execute("SELECT status, case_id FROM device_alarm").fetchone() == {"status": "active_unack",
                                                                                 "case_id": None}
    detail = db.execute("SELECT detail FROM audit_log WHERE action = 'device_alarm.raise'").fetchone()["detail"]
    assert "outside" in detail["case_problem"]


def test_a_bug_in_judging_keeps_the_readings_and_is_counted(db, app_conn, cover, monkeypatch):
    from devices import telemetry_store
    writer = TelemetryWriter()

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")
    monkeypatch.setattr(telemetry_store, "_judge", broken)
    written = push(app_conn, writer, (cover, {"ts": at(0), "values": {"open": True}}))
    assert (written.stored, writer.errors) == (1, 1)
    assert db.execute("SELECT count(*) AS n FROM telemetry").fetchone()["n"] == 1


def test_a_device_judged_by_two_workers_at_once_is_judged_again_on_the_newer_state(db, app_conn, cover, settings):
    """Worker 2 judges its reading while worker 1's batch on the same device is not committed
    yet; writing back, it finds the state moved on and judges again: one alarm, one repeat."""
    import threading

    from gis.db import connect, prepare_app_session
    other = connect(settings.database_url)
    prepare_app_session(other, settings.db_app_role)
    first, second = TelemetryWriter(), TelemetryWriter()
    push(app_conn, first, (cover, {"ts": at(-40), "values": {"open": False}}))     # their days' partitions known
    push(other, second, (cover, {"ts": at(-30), "values": {"open": False}}))
    done = threading.Event()
    with app_conn.transaction():                          # worker 1's batch, not committed yet
        push(app_conn, first, (cover, {"ts": at(-20), "values": {"open": True}}))
        threading.Thread(target=lambda: (push(other, second, (cover, {"ts": at(-10), "values": {"open": True}})),
                                         done.set()), daemon=True).start()
        assert not done.wait(1.0)                         # it judged on the old state; now it waits to write
    assert done.wait(10)
    alarm = db.execute("SELECT status, repeats FROM device_alarm").fetchone()
    assert alarm == {"status": "active_unack", "repeats": 1}       # judged again on worker 1's state: a repeat
    state = db.execute("SELECT ts, version FROM device_state WHERE device_id = %s", (cover,)).fetchone()
    assert state == {"ts": NOW - dt.timedelta(seconds=10), "version": 4}
    other.close()
