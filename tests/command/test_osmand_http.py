"""OsmAnd over HTTP as Traccar Client sends it: query, form and JSON shapes stored once each,
refused requests answered 400/404/413 in plain text and kept in dead_letter with their
reason, counters in ingest_worker, and the same endpoint on a port of its own."""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from command.routes.osmand_routes import OsmandServer
from command.services import free_port
from devices.decoders.osmand import KNOT_MPS
from devices.fix import MAX_PAYLOAD_BYTES
from devices.registry import add_unit
from gis.db import open_pool
from tests.conftest import TEST_SECRET

T0 = int((dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).timestamp())
LAT, LON = 27.0005, 113.3405


@pytest.fixture
def unit(db, tiny_city):
    return add_unit(db, name="监督员李四", kind="inspector", devices=["osmand:860000001"], actor="test")


def positions(db, device="osmand:860000001"):
    return db.execute("SELECT * FROM position WHERE device = %s ORDER BY fix_time", (device,)).fetchall()


def dead_letters(db):
    return db.execute("SELECT source, topic, payload, payload_bytes, reason, message FROM dead_letter"
                      " ORDER BY id").fetchall()


def counters(db):
    return db.execute("SELECT * FROM ingest_worker WHERE name LIKE 'http-%'").fetchall()


def test_get_with_query_parameters_is_stored(client, db, unit):
    r = client.get("/osmand", params={"id": "860000001", "lat": LAT, "lon": LON, "timestamp": T0,
                                      "speed": "10", "bearing": "90", "altitude": "55", "accuracy": "8",
                                      "batt": "76"})
    assert r.status_code == 200 and r.text == ""
    [p] = positions(db)
    assert p["unit_id"] == unit and p["lat"] == LAT and p["lon"] == LON
    assert p["fix_time"] == dt.datetime.fromtimestamp(T0, dt.timezone.utc)
    assert p["speed_mps"] == pytest.approx(10 * KNOT_MPS, rel=1e-5)     # knots converted
    assert p["battery_pct"] == 76 and p["course_deg"] == 90
    state = db.execute("SELECT lon, lat, device FROM unit_state WHERE unit_id = %s", (unit,)).fetchone()
    assert state == {"lon": LON, "lat": LAT, "device": "osmand:860000001"}
    # The same report again (a client retrying after a lost answer) is answered 200, stored once.
    again = client.get("/osmand", params={"id": "860000001", "lat": LAT, "lon": LON, "timestamp": T0})
    assert again.status_code == 200 and len(positions(db)) == 1
    [c] = counters(db)
    assert (c["received"], c["stored"], c["duplicates"], c["dead_letters"]) == (2, 1, 1, 0)


def test_form_post_and_query_only_post(client, db, unit):
    form = client.post("/osmand", data={"id": "860000001", "lat": str(LAT), "lon": str(LON),
                                        "timestamp": str(T0 + 10)})
    assert form.status_code == 200, form.text
    # Older Traccar Client: POST with everything in the query string and an empty body; an
    # ISO time whose "+" arrived as a space.
    iso = dt.datetime.fromtimestamp(T0 + 20, dt.timezone(dt.timedelta(hours=8))).isoformat()
    query_only = client.post(f"/osmand?id=860000001&lat={LAT}&lon={LON}&timestamp={iso.replace('+', '%20')}")
    assert query_only.status_code == 200, query_only.text
    assert [p["fix_time"].timestamp() for p in positions(db)] == [T0 + 10, T0 + 20]


def test_json_body_and_batched_json(client, db, unit):
    one = {"device_id": "860000001", "location": {
        "timestamp": dt.datetime.fromtimestamp(T0 + 30, dt.timezone.utc).isoformat().replace("+00:00", "Z"),
        "coords": {"latitude": LAT, "longitude": LON, "accuracy": 5, "speed": 1.5, "heading": 180},
        "battery": {"level": 0.75, "is_charging": False}, "is_moving": True}}
    r = client.post("/osmand", json=one)
    assert r.status_code == 200, r.text
    batch = {"device_id": "860000001", "location": [
        {"timestamp": (T0 + 40 + i) * 1000, "coords": {"latitude": LAT + i * 1e-5, "longitude": LON}}
        for i in range(3)]}
    r = client.post("/osmand", content=json.dumps(batch), headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    stored = positions(db)
    assert len(stored) == 4
    assert stored[0]["speed_mps"] == 1.5 and stored[0]["battery_pct"] == 75       # m/s kept, 0..1 → %
    assert [p["lat"] for p in stored[1:]] == pytest.approx([LAT, LAT + 1e-5, LAT + 2e-5])
    [c] = counters(db)
    assert (c["received"], c["stored"]) == (2, 4)


@pytest.mark.parametrize("request_args, reason", [
    ({"method": "GET", "url": f"/osmand?lat={LAT}&lon={LON}&timestamp={T0}"}, "missing_field"),
    ({"method": "GET", "url": f"/osmand?id=860000001&lat=95&lon={LON}&timestamp={T0}"}, "bad_coordinates"),
    ({"method": "GET", "url": f"/osmand?id=860000001&lat={LAT}&lon={LON}&timestamp={T0 + 86400}"},
     "future_timestamp"),
    ({"method": "POST", "url": "/osmand", "content": b'{"device_id": "860000001", "location": ',
      "headers": {"Content-Type": "application/json"}}, "bad_json"),
    ({"method": "POST", "url": "/osmand", "content": b"--x\r\n", "headers": {"Content-Type": "multipart/form-data"}},
     "unsupported"),
    ({"method": "GET", "url": f"/osmand?id=86%00&lat={LAT}&lon={LON}&timestamp={T0}"}, "bad_type"),
])
def test_bad_requests_are_answered_400_and_dead_lettered(client, db, unit, request_args, reason):
    r = client.request(**request_args)
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("text/plain") and r.text.startswith(f"{reason}: ")
    [dead] = dead_letters(db)
    assert dead["source"] == "osmand" and dead["reason"] == reason
    assert dead["topic"] == f"{request_args['method']} /osmand"
    sent = request_args.get("content") or request_args["url"].split("?", 1)[1].encode()
    assert bytes(dead["payload"]) == sent
    assert positions(db) == []
    [c] = counters(db)
    assert (c["received"], c["stored"], c["dead_letters"]) == (1, 0, 1)


def test_oversized_body_is_refused_unread(client, db, unit):
    big = b'{"device_id": "860000001", "location": [' + b" " * MAX_PAYLOAD_BYTES + b"]}"
    r = client.post("/osmand", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.text.startswith("too_large: ")
    [dead] = dead_letters(db)
    assert dead["reason"] == "too_large" and dead["payload_bytes"] <= MAX_PAYLOAD_BYTES + 65536


def test_unknown_device_is_404_and_dead_lettered(client, db, unit):
    r = client.get("/osmand", params={"id": "999", "lat": LAT, "lon": LON, "timestamp": T0})
    assert r.status_code == 404
    assert "osmand:999 is not bound to any unit" in r.text
    [dead] = dead_letters(db)
    assert dead["reason"] == "unknown_device" and b"id=999" in bytes(dead["payload"])
    assert positions(db, "osmand:999") == []
    # Bound a moment later, the same device is taken (the directory reloads on a miss).
    other = add_unit(db, name="执法车", kind="vehicle", devices=["osmand:999"], actor="test")
    client.app.state.osmand.writer.directory.load(db)        # instead of waiting out the reload pause
    assert client.get("/osmand", params={"id": "999", "lat": LAT, "lon": LON, "timestamp": T0}).status_code == 200
    assert [p["unit_id"] for p in positions(db, "osmand:999")] == [other]


def test_dedicated_port_answers_at_root_and_osmand_only(settings, db, unit):
    pool = open_pool(settings, max_size=4)
    server = OsmandServer(settings, counter_name="http-test", host="127.0.0.1", port=free_port(), pool=pool)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        with httpx.Client(base_url=base, timeout=30) as http:
            # Traccar Client 9+ posts JSON to the server URL as given: the root path.
            root = http.post("/", json={"device_id": "860000001", "location": {
                "timestamp": T0 * 1000, "coords": {"latitude": LAT, "longitude": LON}}})
            assert root.status_code == 200 and root.text == ""
            assert http.get("/osmand", params={"id": "860000001", "lat": LAT, "lon": LON,
                                               "timestamp": T0 + 1}).status_code == 200
            assert http.get("/api/health").status_code == 404          # nothing else on this port
            assert http.get("/?id=nobody&lat=1&lon=1").status_code == 400

            # Many phones at once: every write takes its turn, none is lost or doubled.
            def phone(k: int) -> None:
                with httpx.Client(base_url=base, timeout=60) as own:
                    for i in range(5):
                        r = own.get("/", params={"id": "860000001", "lat": LAT, "lon": LON,
                                                 "timestamp": T0 + 100 + k * 10 + i})
                        assert r.status_code == 200, r.text

            threads = [threading.Thread(target=phone, args=(k,)) for k in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        server.stop()
        pool.close()
    assert len(positions(db)) == 2 + 30
    c = db.execute("SELECT * FROM ingest_worker WHERE name = 'http-test'").fetchone()
    assert (c["received"], c["stored"], c["duplicates"], c["dead_letters"]) == (33, 32, 0, 1)


def test_dedicated_port_taken_is_reported(settings, unit):
    pool = open_pool(settings, max_size=2)
    first = OsmandServer(settings, counter_name="http-a", host="127.0.0.1", port=free_port(), pool=pool)
    first.start()
    try:
        second = OsmandServer(settings, counter_name="http-b", host="127.0.0.1", port=first.port, pool=pool)
        with pytest.raises(RuntimeError, match="did not start"):
            second.start()
    finally:
        first.stop()
        pool.close()


def test_citygrid_ingest_serves_the_osmand_port(db_url, db, unit, mqtt_broker, tmp_path):
    port = free_port()
    env = {**os.environ, "CITYGRID_DATABASE_URL": db_url, "CITYGRID_MQTT_URL": f"mqtt://127.0.0.1:{mqtt_broker.port}",
           "CITYGRID_SECRET_KEY": TEST_SECRET, "CITYGRID_DATA_DIR": str(tmp_path / "data"),
           "CITYGRID_INGEST_SHARE_GROUP": f"test-osmand-{port}", "CITYGRID_OSMAND_PORT": str(port)}
    worker = subprocess.Popen([sys.executable, "-m", "command.cli", "ingest", "--name", "phones"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            answer = None
            deadline = time.monotonic() + 60
            while answer is None:
                assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
                try:
                    answer = http.get("/", params={"id": "860000001", "lat": LAT, "lon": LON, "timestamp": T0})
                except httpx.ConnectError:
                    assert time.monotonic() < deadline, "the OsmAnd port never opened"
                    time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    worker_log = worker.stderr.read().decode()[-3000:]
    assert answer.status_code == 200, answer.text + worker_log
    assert worker.returncode == 0, worker_log
    assert len(positions(db)) == 1
    row = db.execute("SELECT received, stored FROM ingest_worker WHERE name = 'http-phones'").fetchone()
    assert row == {"received": 1, "stored": 1}
