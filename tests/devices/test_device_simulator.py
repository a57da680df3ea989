"""The demo's simulated IoT fleet end to end through a real broker and ingest worker: each
scripted fault becomes an alarm on the live bus, marks the right part and opens the right case;
the faults' end clears them; a command reaches a simulated lamp and its answer comes back."""
from __future__ import annotations

import json
import threading
import time

import psycopg
import pytest

from devices.device_commands import queue_command
from devices.device_registry import set_rule_overrides
from devices.device_simulator import DeviceSimulation, FaultScript, prepare_devices
from devices.ingest import IngestWorker
from tests.devices.test_ingest import settings_for, wait_for
from workflows.notify import LIVE_CHANNEL

SCRIPT = FaultScript(cycle_s=100, cover_lifted_at=10, cover_lifted_for=20, flood_at=10, flood_for=20,
                     lamp_fault_at=10, lamp_fault_for=20, offline_at=10, offline_for=20, bin_full_at=10,
                     bin_full_for=20)


@pytest.fixture
def running_worker(db, mqtt_broker, tmp_path, tiny_city):
    settings = settings_for(db.info.dsn, mqtt_broker, tmp_path)
    worker = IngestWorker(settings, "sim-devices", client_id=f"citygrid-ingest-simdev-{time.monotonic_ns()}")
    yield worker
    worker.stop()


def test_the_fleet_registers_once_with_devices_on_parts_and_in_grids(db, tiny_city):
    fleet = prepare_devices(db, 30)
    assert [d.device_id for d in prepare_devices(db, 30)] == [d.device_id for d in fleet]     # found again
    rows = {r["id"]: r for r in db.execute("SELECT id, type_code, part_id, grid_code FROM device")}
    assert len(rows) == len(fleet) and {r["type_code"] for r in rows.values()} >= {
        "manhole_cover", "street_light", "waterlogging_gauge", "gas_detector", "garbage_bin"}
    assert {r["part_id"] for r in rows.values() if r["type_code"] == "street_light"} == {
        "4302230114000001", "4302230114000002"}                          # the city's two lamps, nothing more
    assert all(r["grid_code"] for r in rows.values())
    assert db.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'device.add'").fetchone()["n"] == len(fleet)


def test_scripted_faults_become_alarms_parts_and_cases_and_a_lamp_answers_a_command(db, running_worker,
                                                                                  mqtt_broker):
    fleet = prepare_devices(db, 30)
    first = {}
    for d in fleet:
        first.setdefault(d.type_code, d.device_id)
        d.every_s = 0                                                    # every tick reports everyone
    # The operators' overrides that make a minutes-long demo fault show within a test.
    set_rule_overrides(db, first["waterlogging_gauge"], {"waterlogged": {"for_s": 0}}, actor="test")
    set_rule_overrides(db, first["garbage_bin"], {"bin_full": {"for_s": 0}}, actor="test")
    set_rule_overrides(db, first["gas_detector"], {"silent": {"when": {"silent_s": 2}}}, actor="test")
    thread = threading.Thread(target=running_worker.run, daemon=True)
    thread.start()
    assert running_worker.connected.wait(10)
    sim = DeviceSimulation(fleet, "127.0.0.1", mqtt_broker.port, script=SCRIPT)
    try:
        with psycopg.connect(db.info.dsn, autocommit=True) as listener:
            listener.execute(f"LISTEN {LIVE_CHANNEL}")
            sim.tick(1)                                                  # all well
            wait_for(db, "SELECT count(DISTINCT device_id) AS n FROM telemetry", len(fleet) - 1)
            sim.tick(20)                                                 # halfway through every fault
            expected = {(first["manhole_cover"], "cover_open"), (first["waterlogging_gauge"], "waterlogged"),
                        (first["street_light"], "lamp_fault"), (first["garbage_bin"], "bin_full"),
                        (first["gas_detector"], "silent")}
            raised, end = set(), time.monotonic() + 30
            while time.monotonic() < end and not expected <= raised:
                for n in listener.notifies(timeout=0.5):
                    m = json.loads(n.payload)
                    if m["kind"] == "device_alarm" and m["state"] == "raised":
                        rule = db.execute("SELECT rule_id FROM device_alarm WHERE id = %s", (m["id"],)).fetchone()
                        raised.add((m["device_id"], rule["rule_id"]))
            assert expected <= raised

        alarms = {r["rule_id"]: r for r in db.execute(
            "SELECT a.rule_id, a.part_id, a.case_id, c.kind, c.event_class, c.part_class, c.source, c.part_id AS case_part"
            " FROM device_alarm a LEFT JOIN case_file c ON c.id = a.case_id")}
        assert (alarms["cover_open"]["event_class"], alarms["waterlogged"]["event_class"],
                alarms["bin_full"]["event_class"]) == ("0406", "0405", "0102")       # 井盖缺失, 道路积水, 暴露垃圾
        lamp = alarms["lamp_fault"]
        assert (lamp["kind"], lamp["part_class"], lamp["case_part"]) == ("part", "0114", lamp["part_id"])
        assert {a["source"] for a in alarms.values() if a["case_id"]} == {"device"}
        assert alarms["silent"]["case_id"] is None                      # offline is for the operators, not a case
        part_status = {r["id"]: r["status"] for r in db.execute("SELECT id, status FROM part")}
        assert part_status["4302230101000001"] == "丢失" and part_status[lamp["part_id"]] == "破损"
        assert db.execute("SELECT online FROM device_state WHERE device_id = %s",
                          (first["gas_detector"],)).fetchone()["online"] is False          # its last will

        sim.tick(40)                                                     # every fault over: cleared by the devices
        assert wait_for(db, "SELECT count(*) AS n FROM device_alarm WHERE status IN ('cleared', 'cleared_unack')",
                        5) == 5
        assert db.execute("SELECT status FROM part WHERE id = '4302230101000001'").fetchone()["status"] == "完好"
        assert db.execute("SELECT online FROM device_state WHERE device_id = %s",
                          (first["gas_detector"],)).fetchone()["online"] is True            # its birth message

        other_lamp = next(d for d in fleet if d.type_code == "street_light" and d.device_id != first["street_light"])
        command = queue_command(db, other_lamp.device_id, "switch", {"on": True}, by="op1", by_id=None)
        assert wait_for(db, "SELECT count(*) AS n FROM device_command WHERE status = 'acked'", 1) == 1
        assert db.execute("SELECT result FROM device_command WHERE id = %s", (command["id"],)).fetchone()[
            "result"] == {"on": True}
        assert wait_for(db, "SELECT count(*) AS n FROM device_state WHERE device_id = '%s'"
                        " AND values @> '{\"on\": true}'" % other_lamp.device_id, 1) == 1     # it says so itself
        assert db.execute("SELECT count(*) AS n FROM dead_letter").fetchone()["n"] == 0
    finally:
        sim.close()
