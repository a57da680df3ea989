"""Broker logins and ACL generated from the registry, checked on a real Mosquitto: a device
publishes on its own topics and nobody else's, a wrong password is refused, service
accounts see everything."""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from command.services import MosquittoBroker, free_port
from devices.broker_auth import write_broker_auth
from devices.device_registry import NewDevice, add_device
from gis.errors import Invalid


@pytest.fixture
def locked_broker(db, tiny_city):
    add_device(db, NewDevice("MC-1", "manhole_cover", part_id="4302230101000001", password="cover-pass-1"),
               actor="test")
    add_device(db, NewDevice("WL-1", "waterlogging_gauge", 113.3425, 27.0005, password="gauge-pass-1"), actor="test")
    add_device(db, NewDevice("WL-9", "waterlogging_gauge", 113.3415, 27.0005), actor="test")      # no login yet
    home = Path(tempfile.mkdtemp(prefix="citygrid-test-mqtt-auth-"))
    assert write_broker_auth(db, home / "auth", {"citygrid-svc": "svc-pass-123"}) == 2
    broker = MosquittoBroker(home, free_port(), auth_dir=home / "auth")
    broker.start()
    yield broker
    broker.stop()
    shutil.rmtree(home, ignore_errors=True)


def client(broker, username: str, password: str, got: list | None = None) -> tuple[mqtt.Client, list]:
    answers: list = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{username}-{time.monotonic_ns()}")
    c.username_pw_set(username, password)
    c.on_connect = lambda cl, u, flags, rc, p: answers.append(rc)
    if got is not None:
        c.on_message = lambda cl, u, m: got.append((m.topic, m.payload))
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    end = time.monotonic() + 10
    while not answers and time.monotonic() < end:
        time.sleep(0.02)
    return c, answers


def test_devices_publish_only_as_themselves(locked_broker):
    got: list = []
    svc, answer = client(locked_broker, "citygrid-svc", "svc-pass-123", got)
    assert not answer[0].is_failure
    svc.subscribe("citygrid/devices/#", qos=1)
    time.sleep(0.3)
    cover, answer = client(locked_broker, "MC-1", "cover-pass-1")
    assert not answer[0].is_failure
    cover.publish("citygrid/devices/WL-1/telemetry", b'{"depth_cm": 99}', qos=1).wait_for_publish(5)   # not its own
    cover.publish("citygrid/devices/MC-1/telemetry", b'{"open": true}', qos=1).wait_for_publish(5)
    end = time.monotonic() + 10
    while not got and time.monotonic() < end:
        time.sleep(0.02)
    assert got == [("citygrid/devices/MC-1/telemetry", b'{"open": true}')]    # the other was dropped before it
    _, answer = client(locked_broker, "MC-1", "wrong-password")
    assert answer and answer[0].is_failure
    _, answer = client(locked_broker, "WL-9", "anything-at-all")                # no password issued: no login
    assert answer and answer[0].is_failure
    for c in (svc, cover):
        c.loop_stop()


def test_a_service_account_cannot_take_a_device_login(db, tiny_city, tmp_path):
    add_device(db, NewDevice("MC-1", "manhole_cover", part_id="4302230101000001", password="cover-pass-1"),
               actor="test")
    with pytest.raises(Invalid, match="are device logins"):
        write_broker_auth(db, tmp_path, {"MC-1": "svc-pass-123"})
    with pytest.raises(Invalid, match="at least 8"):
        write_broker_auth(db, tmp_path, {"svc": "short"})
    assert not (tmp_path / "passwd").exists()


def test_an_ingest_worker_logs_in_with_the_service_account_from_the_url(locked_broker, db_url, tmp_path):
    import threading

    from devices.ingest import IngestWorker
    from gis.config import Settings
    from tests.conftest import TEST_SECRET

    def worker(url: str) -> IngestWorker:
        return IngestWorker(Settings(demo=False, database_url=db_url, mqtt_url=url, secret_key=TEST_SECRET,
                                     data_dir=tmp_path / "data", run_dir=tmp_path / "run",
                                     ingest_share_group="auth-test"), "auth-test")

    good = worker(f"mqtt://citygrid-svc:svc-pass-123@127.0.0.1:{locked_broker.port}")
    assert good.settings.mqtt_login == ("citygrid-svc", "svc-pass-123")
    thread = threading.Thread(target=good.run, daemon=True)
    thread.start()
    assert good.connected.wait(10)
    good.stop()
    thread.join(10)
    bad = worker(f"mqtt://citygrid-svc:nope@127.0.0.1:{locked_broker.port}")
    thread = threading.Thread(target=bad.run, daemon=True)
    thread.start()
    assert not bad.connected.wait(2)                       # refused: it keeps trying, never connected
    bad.stop()
    thread.join(10)
