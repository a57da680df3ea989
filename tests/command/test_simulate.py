"""The demo simulator end to end: inspectors over MQTT (OwnTracks) into a real ingest worker,
vehicles over HTTP (OsmAnd) into a real server, and the scripted wander-off and SOS presses
arriving as alarms on the live bus."""
from __future__ import annotations

import json
import threading
import time

import psycopg
import pytest

from devices.ingest import IngestWorker
from devices.mqtt import Publisher
from devices.simulator import Script, Simulation, prepare
from workflows.notify import LIVE_CHANNEL


@pytest.fixture
def fast_settings(settings, mqtt_broker):
    settings.mqtt_url = f"mqtt://127.0.0.1:{mqtt_broker.port}"
    settings.ingest_share_group = f"sim-{time.monotonic_ns()}"
    settings.out_of_area_seconds = 2
    return settings


def test_simulated_units_report_over_both_protocols_and_their_alarms_reach_the_live_bus(db, fast_settings, server,
                                                                                       mqtt_broker):
    walkers = prepare(db, inspectors=4, vehicles=1)
    assert prepare(db, inspectors=4, vehicles=1)[0].unit_id == walkers[0].unit_id      # registered once
    assert db.execute("SELECT count(*) AS n FROM shift").fetchone()["n"] == 5
    worker = IngestWorker(fast_settings, "sim", client_id=f"citygrid-ingest-sim-{time.monotonic_ns()}")
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    assert worker.connected.wait(10)
    time.sleep(0.3)
    with psycopg.connect(fast_settings.database_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {LIVE_CHANNEL}")
        publisher = Publisher("127.0.0.1", mqtt_broker.port)
        script = Script(cycle_s=60, wander_at=0, wander_for=60, still_at=0, still_for=60, silent_at=0, silent_for=60,
                        sos_at=1)
        sim = Simulation(walkers, publisher, server, interval=0.5, script=script)
        walkers[0].speed_mps = 80.0                           # out of a 200 m community within the test
        for k in range(12):                                   # six seconds of patrol
            sim.tick(31.0 if k == 11 else k * 0.5)            # the last tick: the vehicle's SOS, half a cycle on
            time.sleep(0.5)
        publisher.flush(10)
        end = time.monotonic() + 20
        raised = set()
        while time.monotonic() < end and not {"out_of_area", "sos"} <= {k for k, _ in raised}:
            for n in listener.notifies(timeout=0.5):
                m = json.loads(n.payload)
                if m["kind"] == "unit_alarm" and m["state"] == "raised":
                    raised.add((m["alarm"], m["unit_id"]))
    worker.stop()
    thread.join(10)
    wanderer, still, silent, sos, vehicle = walkers
    assert ("out_of_area", wanderer.unit_id) in raised
    assert ("sos", sos.unit_id) in raised
    assert db.execute("SELECT count(*) AS n FROM unit_alarm WHERE unit_id = %s AND kind = 'sos'",
                      (vehicle.unit_id,)).fetchone()["n"] == 1                    # the OsmAnd alarm=sos
    counts = {r["unit_id"]: r["n"] for r in db.execute("SELECT unit_id, count(*) AS n FROM position GROUP BY 1")}
    assert counts[wanderer.unit_id] >= 5 and counts[vehicle.unit_id] >= 5        # both protocols (1 s resolution)
    assert silent.unit_id not in counts                                          # the quiet phone said nothing
    still_fixes = db.execute("SELECT DISTINCT lon, lat FROM position WHERE unit_id = %s", (still.unit_id,)).fetchall()
    assert len(still_fixes) == 1                                                 # stood still
    assert sim.sent["osmand_refused"] == 0 and sim.sent["osmand"] >= 10
    assert db.execute("SELECT count(*) AS n FROM dead_letter").fetchone()["n"] == 0
