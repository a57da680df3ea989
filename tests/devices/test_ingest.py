"""The ingest pipeline with a real Mosquitto and PostgreSQL: every fix stored once, refused
messages in the dead-letter table with their reason, and a worker killed with SIGKILL in
the middle of a QoS 1 burst loses nothing and duplicates nothing once restarted."""
from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from devices.ingest import IngestWorker
from devices.mqtt import ingest_client
from devices.registry import add_unit
from gis.config import Settings
from tests.conftest import TEST_SECRET

T0 = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=3)


def settings_for(db_url: str, broker, tmp_path) -> Settings:
    # A share group of its own: the sessions of earlier tests' workers stay in theirs.
    return Settings(demo=False, database_url=db_url, mqtt_url=f"mqtt://127.0.0.1:{broker.port}",
                    secret_key=TEST_SECRET, data_dir=tmp_path / "data", run_dir=tmp_path / "run",
                    ingest_share_group=f"test-{time.monotonic_ns()}")


def owntracks(seconds: int, lat: float = 27.0005, lon: float = 113.3405) -> bytes:
    return json.dumps({"_type": "location", "lat": lat, "lon": lon, "tst": int(T0.timestamp()) + seconds,
                       "acc": 8, "vel": 4, "batt": 80, "tid": "zs"}).encode()


def publisher(broker) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-pub-{time.monotonic_ns()}")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    return client


def publish_all(client: mqtt.Client, messages: list[tuple[str, bytes]]) -> None:
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(timeout=30)
        assert info.is_published()


def wait_for(db, sql: str, expected: int, timeout: float = 60.0) -> int:
    end = time.monotonic() + timeout
    while True:
        n = db.execute(sql).fetchone()["n"]
        if n >= expected or time.monotonic() > end:
            return n
        time.sleep(0.1)


@pytest.fixture
def unit(db):
    return add_unit(db, name="监督员张三", kind="inspector", devices=["owntracks:zhangsan/phone"], actor="test")


@pytest.fixture
def worker(db_url, mqtt_broker, tmp_path):
    w = IngestWorker(settings_for(db_url, mqtt_broker, tmp_path), "test-1",
                     client_id=f"citygrid-ingest-test-{time.monotonic_ns()}")
    thread = threading.Thread(target=w.run, daemon=True)
    thread.start()
    assert w.connected.wait(10), "the worker did not reach the broker"
    time.sleep(0.3)                          # the subscription is acknowledged
    yield w
    w.stop()
    thread.join(10)


def test_fixes_are_stored_once_and_bad_messages_are_dead_lettered(db, unit, worker, mqtt_broker):
    pub = publisher(mqtt_broker)
    good = [("owntracks/zhangsan/phone", owntracks(k)) for k in range(200)]
    publish_all(pub, good + good[:50])       # 50 delivered twice
    publish_all(pub, [("owntracks/zhangsan/phone", b"{not json"),
                      ("owntracks/lisi/phone", owntracks(5)),                      # nobody's device
                      ("owntracks/zhangsan/phone", owntracks(7, lat=91.0)),
                      ("citygrid/units/abc/pos", b'{"ts": 1, "lat": 1, "lon": 1}')])
    assert wait_for(db, "SELECT count(*) AS n FROM dead_letter", 4) == 4
    assert wait_for(db, "SELECT count(*) AS n FROM position", 200) == 200
    time.sleep(0.5)
    assert db.execute("SELECT count(*) AS n FROM position").fetchone()["n"] == 200
    reasons = sorted(r["reason"] for r in db.execute("SELECT reason FROM dead_letter").fetchall())
    assert reasons == ["bad_coordinates", "bad_json", "bad_topic", "unknown_device"]
    state = db.execute("SELECT * FROM unit_state WHERE unit_id = %s", (unit,)).fetchone()
    assert state["fix_time"] == T0 + dt.timedelta(seconds=199)
    row = db.execute("SELECT speed_mps, accuracy_m, battery_pct, flags FROM position ORDER BY fix_time LIMIT 1").fetchone()
    assert row == {"speed_mps": pytest.approx(4 / 3.6), "accuracy_m": 8, "battery_pct": 80, "flags": 0}
    end = time.monotonic() + 10
    while worker.counters.duplicates < 50 and time.monotonic() < end:
        time.sleep(0.1)
    assert (worker.counters.stored, worker.counters.duplicates, worker.counters.dead_letters) == (200, 50, 4)
    pub.loop_stop()


def test_poor_and_impossible_fixes_are_kept_but_flagged(db, unit, worker, mqtt_broker):
    pub = publisher(mqtt_broker)
    jump = json.loads(owntracks(20, lat=27.2))                  # 22 km in 10 s
    vague = json.loads(owntracks(30))
    vague["acc"] = 900
    publish_all(pub, [("owntracks/zhangsan/phone", owntracks(10)),
                      ("owntracks/zhangsan/phone", json.dumps(jump).encode()),
                      ("owntracks/zhangsan/phone", json.dumps(vague).encode()),
                      ("owntracks/zhangsan/phone", owntracks(40, lat=0.0, lon=0.0))])
    assert wait_for(db, "SELECT count(*) AS n FROM position", 4) == 4, \
        db.execute("SELECT reason, message FROM dead_letter").fetchall()
    flags = [r["flags"] for r in db.execute("SELECT flags FROM position ORDER BY fix_time").fetchall()]
    assert flags == [0, 2, 4, 1]                 # good, speed jump, poor accuracy, null island
    state = db.execute("SELECT fix_time FROM unit_state WHERE unit_id = %s", (unit,)).fetchone()
    assert state["fix_time"] == T0 + dt.timedelta(seconds=10)      # flagged fixes never move the unit
    pub.loop_stop()


def test_an_sos_through_the_broker_reaches_the_nearby_unit_on_its_cmd_topic(db, unit, worker, mqtt_broker):
    from devices.shifts import add_shift

    helper = add_unit(db, name="附近的巡逻车", kind="vehicle", actor="test")
    now = dt.datetime.now(dt.timezone.utc)
    add_shift(db, unit_id=helper, starts_at=now - dt.timedelta(hours=1), ends_at=now + dt.timedelta(hours=1),
              polygon={"type": "Polygon", "coordinates": [[[113, 26], [114, 26], [114, 28], [113, 28], [113, 26]]]},
              actor="test")
    commands: list[dict] = []
    listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-cmd-{time.monotonic_ns()}")
    listener.on_message = lambda c, u, m: commands.append({"topic": m.topic, **json.loads(m.payload)})
    listener.connect("127.0.0.1", mqtt_broker.port)
    listener.subscribe("citygrid/units/+/cmd", qos=1)
    listener.loop_start()
    pub = publisher(mqtt_broker)
    publish_all(pub, [(f"citygrid/units/{helper}/pos", json.dumps(
        {"ts": now.isoformat(), "lat": 27.0005, "lon": 113.3415}).encode())])
    assert wait_for(db, "SELECT count(*) AS n FROM unit_state", 1) == 1
    sos = json.loads(owntracks(0))
    sos.update(tst=int(now.timestamp()), poi="SOS")
    publish_all(pub, [("owntracks/zhangsan/phone", json.dumps(sos).encode())])
    end = time.monotonic() + 20
    while not commands and time.monotonic() < end:
        time.sleep(0.1)
    [command] = commands
    assert command["topic"] == f"citygrid/units/{helper}/cmd" and command["cmd"] == "sos_assist"
    assert command["unit_id"] == unit and "SOS" in command["message"]
    assert wait_for(db, "SELECT count(*) AS n FROM unit_command WHERE sent_at IS NOT NULL", 1) == 1
    listener.loop_stop()
    pub.loop_stop()


def _start_worker_process(db_url: str, broker, name: str) -> subprocess.Popen:
    env = {**os.environ, "CITYGRID_DATABASE_URL": db_url, "CITYGRID_MQTT_URL": f"mqtt://127.0.0.1:{broker.port}",
           "CITYGRID_SECRET_KEY": TEST_SECRET, "CITYGRID_INGEST_BATCH_MAX": "200",
           "CITYGRID_INGEST_SHARE_GROUP": name}
    return subprocess.Popen([sys.executable, "-m", "command.cli", "ingest", "--name", name], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_a_worker_killed_mid_burst_loses_and_duplicates_nothing(db, db_url, unit, mqtt_broker):
    name = f"kill-{time.monotonic_ns()}"
    proc = _start_worker_process(db_url, mqtt_broker, name)
    try:
        pub = publisher(mqtt_broker)
        # One fix first, until it is stored: the worker is subscribed before the burst.
        end = time.monotonic() + 30
        while db.execute("SELECT count(*) AS n FROM position").fetchone()["n"] == 0 and time.monotonic() < end:
            publish_all(pub, [("owntracks/zhangsan/phone", owntracks(-1))])
            time.sleep(0.5)
        burst = [("owntracks/zhangsan/phone", owntracks(k)) for k in range(5000)]
        sent = threading.Thread(target=publish_all, args=(pub, burst))
        sent.start()
        in_burst = f"SELECT count(*) AS n FROM position WHERE fix_time >= '{T0.isoformat()}'"
        stored = wait_for(db, in_burst, 500)
        proc.send_signal(signal.SIGKILL)             # in the middle of the burst, no goodbye
        proc.wait(10)
        sent.join(60)
        assert 500 <= stored < 5000, "the kill did not land mid-burst"
        proc = _start_worker_process(db_url, mqtt_broker, name)   # same name: the broker kept its messages
        assert wait_for(db, in_burst, 5000) == 5000
        time.sleep(1.0)
        rows = db.execute("SELECT count(*) AS n, count(DISTINCT fix_time) AS d, min(fix_time) AS lo,"
                          " max(fix_time) AS hi FROM position WHERE fix_time >= %s", (T0,)).fetchone()
        assert rows == {"n": 5000, "d": 5000, "lo": T0, "hi": T0 + dt.timedelta(seconds=4999)}
        assert db.execute("SELECT count(*) AS n FROM dead_letter").fetchone()["n"] == 0
        pub.loop_stop()
    finally:
        proc.kill()
        proc.wait(10)


def test_a_command_claimed_by_a_worker_that_died_is_sent_again(db, unit, worker, mqtt_broker):
    received: list[dict] = []
    listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-cmd-{time.monotonic_ns()}")
    listener.on_message = lambda c, u, m: received.append(json.loads(m.payload))
    listener.connect("127.0.0.1", mqtt_broker.port)
    listener.subscribe(f"citygrid/units/{unit}/cmd", qos=1)
    listener.loop_start()
    time.sleep(0.3)
    db.execute("INSERT INTO unit_command (unit_id, kind, payload, claimed_at) VALUES"
               " (%s, 'dispatch', '{\"cmd\": \"dispatch\", \"n\": 1}', now() - interval '5 minutes'),"
               " (%s, 'dispatch', '{\"cmd\": \"dispatch\", \"n\": 2}', now())", (unit, unit))
    assert wait_for(db, "SELECT count(*) AS n FROM unit_command WHERE sent_at IS NOT NULL", 1, timeout=20) == 1
    time.sleep(2)                                       # the fresh claim is another worker's, still in time
    assert [c["n"] for c in received] == [1]
    assert db.execute("SELECT sent_at FROM unit_command WHERE payload->>'n' = '2'").fetchone()["sent_at"] is None
    listener.loop_stop()


def test_retiring_a_worker_stores_what_the_broker_kept_for_it_and_ends_its_share(db, db_url, unit, mqtt_broker,
                                                                                  tmp_path):
    group = f"retire-{time.monotonic_ns()}"
    settings = settings_for(db_url, mqtt_broker, tmp_path)
    settings.ingest_share_group = group

    def start(name: str, retiring: bool = False) -> tuple[IngestWorker, threading.Thread]:
        w = IngestWorker(settings, name, client_id=f"citygrid-ingest-{group}-{name}")
        w.retiring = retiring
        t = threading.Thread(target=w.run, daemon=True)
        t.start()
        assert w.connected.wait(10)
        return w, t

    gone, gone_thread = start("gone")
    stays, stays_thread = start("stays")
    time.sleep(0.5)
    gone.stop()
    gone_thread.join(10)                                  # stopped, not retired: its session stays
    pub = publisher(mqtt_broker)
    publish_all(pub, [("owntracks/zhangsan/phone", owntracks(k)) for k in range(400)])
    time.sleep(2)
    kept_for_gone = 400 - db.execute("SELECT count(*) AS n FROM position").fetchone()["n"]
    assert kept_for_gone > 0                              # the broker dealt the stopped worker a share
    retired, retired_thread = start("gone", retiring=True)
    retired_thread.join(30)
    assert not retired_thread.is_alive(), "the retiring worker did not finish"
    assert db.execute("SELECT count(*) AS n FROM position").fetchone()["n"] == 400
    publish_all(pub, [("owntracks/zhangsan/phone", owntracks(k)) for k in range(400, 600)])
    assert wait_for(db, "SELECT count(*) AS n FROM position", 600, timeout=20) == 600   # all to the one left
    expected = 600 - 400 + (400 - kept_for_gone)          # the counters follow the commit by a moment
    end = time.monotonic() + 10
    while stays.counters.stored < expected and time.monotonic() < end:
        time.sleep(0.05)
    assert stays.counters.stored == expected
    # The broker kept no session for the retired name: coming back under it starts afresh.
    sessions = []
    probe = ingest_client(f"citygrid-ingest-{group}-gone", on_connect=lambda c, u, flags, rc, p:
                               sessions.append(flags.session_present), on_disconnect=None, on_message=None)
    probe.connect("127.0.0.1", mqtt_broker.port)
    while not sessions:
        probe.loop(0.05)
    probe.disconnect()
    assert sessions == [False]
    pub.loop_stop()
    stays.stop()
    stays_thread.join(10)


def test_device_telemetry_through_the_broker_raises_and_clears_an_alarm(db, worker, mqtt_broker, tiny_city):
    from devices.device_registry import NewDevice, add_device
    add_device(db, NewDevice("MC-1", "manhole_cover", part_id="4302230101000001"), actor="test")   # after the worker started
    now = int(time.time() * 1000)
    pub = publisher(mqtt_broker)
    publish_all(pub, [("citygrid/devices/MC-1/status", b"online"),
                      ("citygrid/devices/MC-1/telemetry", json.dumps({"ts": now - 2000, "values": {"open": True}}).encode()),
                      ("citygrid/devices/MC-1/telemetry", b'{"open": "yes"}'),
                      ("citygrid/devices/MC-2/telemetry", b'{"open": true}')])
    assert wait_for(db, "SELECT count(*) AS n FROM device_alarm WHERE status = 'active_unack'", 1) == 1
    assert wait_for(db, "SELECT count(*) AS n FROM dead_letter", 2) == 2
    assert {r["reason"] for r in db.execute("SELECT reason FROM dead_letter")} == {"bad_type", "unknown_device"}
    publish_all(pub, [("citygrid/devices/MC-1/telemetry", json.dumps({"ts": now - 1000, "values": {"open": False}}).encode())])
    assert wait_for(db, "SELECT count(*) AS n FROM device_alarm WHERE status = 'cleared_unack'", 1) == 1
    state = db.execute("SELECT online, values FROM device_state WHERE device_id = 'MC-1'").fetchone()
    assert state == {"online": True, "values": {"open": False}}
    pub.loop_stop()


def test_a_command_reaches_the_device_and_its_answer_comes_back(db, worker, mqtt_broker, tiny_city):
    from devices.device_commands import queue_command
    from devices.device_registry import NewDevice, add_device
    add_device(db, NewDevice("SL-1", "street_light", part_id="4302230114000001"), actor="test")
    add_device(db, NewDevice("SL-2", "street_light", part_id="4302230114000002"), actor="test")
    received = []
    lamp = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-lamp-{time.monotonic_ns()}")
    lamp.on_message = lambda c, u, m: received.append(json.loads(m.payload))
    lamp.connect("127.0.0.1", mqtt_broker.port)
    lamp.subscribe("citygrid/devices/SL-1/cmd", qos=1)
    lamp.loop_start()
    time.sleep(0.3)
    command = queue_command(db, "SL-1", "switch", {"on": False}, by="op1", by_id=None)
    end = time.monotonic() + 20
    while not received and time.monotonic() < end:
        time.sleep(0.05)
    assert received == [{"id": command["id"], "name": "switch", "params": {"on": False}}]
    answer = json.dumps({"id": command["id"], "ok": True, "result": {"on": False}}).encode()
    publish_all(lamp, [("citygrid/devices/SL-1/cmd/ack", answer),
                       ("citygrid/devices/SL-2/cmd/ack", answer)])          # another lamp cannot answer for it
    assert wait_for(db, "SELECT count(*) AS n FROM device_command WHERE status = 'acked'", 1) == 1
    assert wait_for(db, "SELECT count(*) AS n FROM device_command WHERE sent_at IS NOT NULL", 1) == 1
    row = db.execute("SELECT status, result FROM device_command").fetchone()
    assert row == {"status": "acked", "result": {"on": False}}
    assert wait_for(db, "SELECT count(*) AS n FROM dead_letter WHERE reason = 'unknown_command'", 1) == 1
    lamp.loop_stop()


def test_a_worker_killed_mid_telemetry_burst_stores_every_reading_once_and_alarms_once(db, db_url, mqtt_broker,
                                                                                      tiny_city):
    from devices.device_registry import NewDevice, add_device
    add_device(db, NewDevice("MC-1", "manhole_cover", part_id="4302230101000001"), actor="test")
    for k in range(20):
        add_device(db, NewDevice(f"NZ-{k}", "noise", 113.3405 + k * 0.0001, 27.0005), actor="test")
    name = f"kill-tel-{time.monotonic_ns()}"
    proc = _start_worker_process(db_url, mqtt_broker, name)
    start_ms = int(T0.timestamp() * 1000)
    try:
        pub = publisher(mqtt_broker)
        end = time.monotonic() + 30                      # subscribed before the burst
        while db.execute("SELECT count(*) AS n FROM telemetry").fetchone()["n"] == 0 and time.monotonic() < end:
            first = json.dumps({"ts": start_ms - 1000, "values": {"db": 50}}).encode()
            publish_all(pub, [("citygrid/devices/NZ-0/telemetry", first)])
            time.sleep(0.5)
        # 20 noise meters × 200 readings, and a cover that opens halfway and stays open
        burst = [(f"citygrid/devices/NZ-{k}/telemetry",
                  json.dumps({"ts": start_ms + i * 1000, "values": {"db": 50}}).encode())
                 for i in range(200) for k in range(20)]
        burst[2000:2000] = [("citygrid/devices/MC-1/telemetry",
                             json.dumps({"ts": start_ms + i * 1000, "values": {"open": i >= 50}}).encode())
                            for i in range(100)]
        sent = threading.Thread(target=publish_all, args=(pub, burst))
        sent.start()
        in_burst = f"SELECT count(*) AS n FROM telemetry WHERE ts >= '{T0.isoformat()}'"
        stored = wait_for(db, in_burst, 600)
        proc.send_signal(signal.SIGKILL)                 # mid-burst, no goodbye
        proc.wait(10)
        sent.join(60)
        assert 600 <= stored < len(burst), "the kill did not land mid-burst"
        proc = _start_worker_process(db_url, mqtt_broker, name)
        assert wait_for(db, in_burst, len(burst)) == len(burst)
        time.sleep(1.0)
        assert db.execute(in_burst).fetchone()["n"] == len(burst)             # once each
        alarms = db.execute("SELECT rule_id, status FROM device_alarm WHERE rule_id <> 'silent'").fetchall()
        assert [(a["rule_id"], a["status"]) for a in alarms] == [("cover_open", "active_unack")]   # (and silent:
        #                                                                            the readings are 3 h old)
        assert db.execute("SELECT count(*) AS n FROM case_file WHERE source = 'device'").fetchone()["n"] == 1
        assert db.execute("SELECT count(*) AS n FROM dead_letter").fetchone()["n"] == 0
        pub.loop_stop()
    finally:
        proc.kill()
        proc.wait(10)


def test_a_dispatch_order_reaches_the_units_cmd_topic(db, tiny_city, worker, mqtt_broker):
    """A resource bound to a tracked unit gets its dispatch order (调度指令) on
    citygrid/units/{id}/cmd through the outbox the worker publishes."""
    from workflows import dispatch, incidents
    from workflows.resources import NewResource, add_resource

    class Commander:
        username, id, role = "cmdr", None, "commander"

    team = add_unit(db, name="排水抢险一队", kind="team", actor="test")
    resource = add_resource(db, NewResource("排水抢险一队", "drainage_team", 113.3415, 27.0005), actor="test")["id"]
    db.execute("UPDATE resource SET unit_id = %s WHERE id = %s", (team, resource))
    db.commit()
    commands: list[dict] = []
    listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-cmd-{time.monotonic_ns()}")
    listener.on_message = lambda c, u, m: commands.append({"topic": m.topic, **json.loads(m.payload)})
    listener.connect("127.0.0.1", mqtt_broker.port)
    listener.subscribe(f"citygrid/units/{team}/cmd", qos=1)
    listener.loop_start()
    time.sleep(0.3)
    inc = incidents.create(db, incidents.NewIncident("建设路积水", "自然灾害", "水旱灾害", "Ⅳ", 113.3405, 27.0005,
                                                     drill=True), Commander())
    order = dispatch.dispatch(db, inc["id"], resource, Commander(), note="带两台移动泵")
    end = time.monotonic() + 20
    while not commands and time.monotonic() < end:
        time.sleep(0.1)
    listener.loop_stop()
    [command] = commands
    assert command["cmd"] == "dispatch" and command["incident"] == inc["incident_no"] and command["order"] == order["id"]
    assert command["drill"] is True and command["message"].startswith("【演练】") and command["note"] == "带两台移动泵"
    assert wait_for(db, "SELECT count(*) AS n FROM unit_command WHERE sent_at IS NOT NULL", 1) == 1
