"""The malformed-telemetry corpus through a real broker and a real ingest worker: every kind
of bad message is dead-lettered once with its reason and its bytes, the worker keeps going,
the good devices' readings in between are all stored, and a flooding device is rate-limited
without costing anyone else a reading."""
from __future__ import annotations

import json
import threading
import time

import pytest

from devices.device_commands import queue_command
from devices.device_registry import NewDevice, add_device
from devices.ingest import IngestWorker
from tests.devices.test_ingest import publish_all, publisher, settings_for, wait_for

NOW_MS = int(time.time() * 1000)
T = "citygrid/devices/{}/telemetry"
MC, WL = T.format("MC-1"), T.format("WL-1")


def _many_fields() -> bytes:
    return json.dumps({"values": {f"f{i}": i for i in range(65)}}).encode()


# (topic, payload, reason): at least one of every kind the worker must survive.
CORPUS = [
    (MC, b"{not json", "bad_json"),
    (MC, b"", "bad_json"),                                                  # empty
    (MC, b"\xff\xfe\x00garbage", "bad_json"),                              # not UTF-8
    (MC, b'{"open": NaN}', "bad_json"),
    (MC, b'{"tilt_deg": Infinity}', "bad_json"),
    (MC, b'"open"', "bad_type"),                                           # a JSON string
    (MC, b"42", "bad_type"),
    (MC, b"null", "bad_type"),
    (MC, b"[]", "bad_type"),                                               # an empty batch
    (MC, b'{"values": {}}', "missing_field"),
    (MC, b'{"open": "yes"}', "bad_type"),
    (MC, b'{"values": {"tilt_deg": "15deg"}}', "bad_type"),                # unit in the text
    (MC, b'{"values": {"tilt_deg": {"value": 3}}}', "bad_type"),           # nested
    (MC, b'{"values": {"tilt_deg": 1e400}}', "bad_json"),                 # overflows a double
    (MC, b'{"ts": 1763000000000, "open": true}', "bad_type"),              # ts without values
    (MC, b'{"ts": 1, "values": {"open": true}}', "ancient_timestamp"),
    (MC, b'{"ts": "2099-01-01T00:00:00Z", "values": {"open": true}}', "future_timestamp"),
    (MC, b'{"ts": "2026-01-01 08:00", "values": {"open": true}}', "bad_timestamp"),
    (MC, b'{"ts": true, "values": {"open": true}}', "bad_type"),
    (MC, b'{"values": {"open": true}, "colour": "red"}', "bad_type"),     # an unknown key
    (MC, json.dumps([{"ts": NOW_MS - 900_000 + i, "values": {"tilt_deg": 1}} for i in range(1001)]).encode(),
     "too_large"),                                                         # too many readings
    (MC, _many_fields(), "too_large"),                                     # too many fields
    (MC, b'{"pad": "' + b"x" * 300_000 + b'"}', "too_large"),              # oversize
    (MC, b'{"device_id": "MC-2", "values": {"open": false}}', "device_mismatch"),   # another's reading
    (WL, b'{"values": {"depth_cm": 0.2}, "units": {"depth_cm": "m"}}', "unit_mismatch"),
    (MC, b'{"values": {"open": false}, "units": "cm"}', "bad_type"),
    (MC, b'{"tilt_deg": 120}', "out_of_range"),
    (MC, b'{"water_level_cm": -3}', "out_of_range"),
    (MC, b'{"tilt_cm": 3}', "unknown_field"),
    (MC, b'{"open": 1}', "bad_type"),                                      # a number for a boolean
    (MC, b'{"tilt_deg": true}', "bad_type"),                               # a boolean for a number
    (MC, json.dumps([{"ts": NOW_MS - 800_000, "values": {"tilt_deg": 2}},
                     {"ts": NOW_MS - 799_000, "values": {"tilt_deg": 200}}]).encode(), "out_of_range"),  # one bad
    (T.format("MC-9"), b'{"open": true}', "unknown_device"),
    (T.format("a b"), b'{"open": true}', "bad_topic"),
    ("citygrid/devices/MC-1/status", b"maybe", "bad_json"),
    ("citygrid/devices/MC-1/status", b'{"online": "yes"}', "bad_type"),
    ("citygrid/devices/MC-1/cmd/ack", b'{"id": "x", "ok": true}', "bad_type"),
    ("citygrid/devices/MC-1/cmd/ack", b'{"id": 7, "ok": "fine"}', "bad_type"),
    ("citygrid/devices/MC-1/cmd/ack", b'{"id": 999999, "ok": true}', "unknown_command"),
]


@pytest.fixture(params=[(20.0, 600)])
def limited_worker(request, db_url, mqtt_broker, tmp_path, db, tiny_city):
    """A worker limiting each device to (messages/s, burst): the defaults unless the test says."""
    settings = settings_for(db_url, mqtt_broker, tmp_path)
    settings.device_rate_per_s, settings.device_burst = request.param
    add_device(db, NewDevice("MC-1", "manhole_cover", part_id="4302230101000001"), actor="test")
    add_device(db, NewDevice("WL-1", "waterlogging_gauge", 113.3405, 27.0005), actor="test")
    add_device(db, NewDevice("NZ-1", "noise", 113.3415, 27.0005), actor="test")
    worker = IngestWorker(settings, "corpus", client_id=f"citygrid-ingest-corpus-{time.monotonic_ns()}")
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    assert worker.connected.wait(10)
    time.sleep(0.3)
    yield worker, thread
    worker.stop()
    thread.join(10)


def test_every_malformed_kind_is_dead_lettered_with_its_reason_and_good_readings_go_on(db, limited_worker,
                                                                                      mqtt_broker):
    worker, thread = limited_worker
    assert len({reason for _, _, reason in CORPUS}) >= 14 and len(CORPUS) >= 30
    good = [(WL, json.dumps({"ts": NOW_MS - 600_000 + i * 1000, "values": {"depth_cm": 1}}).encode())
            for i in range(len(CORPUS))]
    pub = publisher(mqtt_broker)
    interleaved = [m for pair in zip([(t, p) for t, p, _ in CORPUS], good) for m in pair]
    publish_all(pub, interleaved)
    assert wait_for(db, "SELECT count(*) AS n FROM dead_letter", len(CORPUS)) == len(CORPUS)
    assert wait_for(db, "SELECT count(*) AS n FROM telemetry WHERE device_id = 'WL-1'", len(good)) == len(good)
    letters = {(r["topic"], bytes(r["payload"])): r for r in db.execute(
        "SELECT topic, payload, payload_bytes, reason, message FROM dead_letter")}
    for topic, payload, reason in CORPUS:
        letter = letters[(topic, payload[:65536])]
        assert letter["reason"] == reason, (payload[:80], letter["message"])
        assert letter["payload_bytes"] == len(payload) and letter["message"]
    assert db.execute("SELECT count(*) AS n FROM telemetry WHERE device_id = 'MC-1'").fetchone()["n"] == 0
    assert thread.is_alive() and worker.counters.dead_letters == len(CORPUS)

    # A command answered by the right device still settles: the bad answers blocked nothing.
    command = queue_command(db, "MC-1", "reset", {}, by="op1", by_id=None)
    publish_all(pub, [("citygrid/devices/MC-1/cmd/ack", json.dumps({"id": command["id"], "ok": True}).encode())])
    assert wait_for(db, "SELECT count(*) AS n FROM device_command WHERE status = 'acked'", 1) == 1
    pub.loop_stop()


@pytest.mark.parametrize("limited_worker", [(5.0, 20)], indirect=True)
def test_a_flooding_device_is_rate_limited_and_nobody_else_loses_a_reading(db, limited_worker, mqtt_broker):
    worker, thread = limited_worker
    flood = [(T.format("NZ-1"), json.dumps({"ts": NOW_MS - 500_000 + i, "values": {"db": 60}}).encode())
             for i in range(300)]
    calm = [(WL, json.dumps({"ts": NOW_MS - 400_000 + i * 1000, "values": {"depth_cm": 2}}).encode())
            for i in range(15)]                                          # within its own burst
    pub = publisher(mqtt_broker)
    publish_all(pub, flood + calm)
    assert wait_for(db, "SELECT count(*) AS n FROM telemetry WHERE device_id = 'WL-1'", 15) == 15     # all of them
    stored = wait_for(db, "SELECT count(*) AS n FROM telemetry WHERE device_id = 'NZ-1'", 20)
    limited = db.execute("SELECT count(*) AS n FROM dead_letter WHERE reason = 'rate_limited'").fetchone()["n"]
    assert stored + limited == 300 and 20 <= stored < 150                  # its burst, and a little refill
    message = db.execute("SELECT message FROM dead_letter WHERE reason = 'rate_limited' LIMIT 1").fetchone()["message"]
    assert "NZ-1 sent more than 5 messages/s" in message
    assert thread.is_alive()
    pub.loop_stop()
