"""Faults with real processes: PostgreSQL stopped for 30 s in the middle of a stream, and the
broker restarted under a running worker. Nothing may be lost or stored twice."""
from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from command.services import MosquittoBroker, PostgresCluster, free_port
from devices.ingest import IngestWorker
from devices.registry import add_unit
from gis import migrate
from gis.db import connect
from tests.devices.test_ingest import owntracks, publish_all, publisher, settings_for

TOPIC = "owntracks/zhangsan/phone"


def stored(url: str) -> int:
    with connect(url) as conn:
        return conn.execute("SELECT count(*) AS n FROM position").fetchone()["n"]


def wait_stored(url: str, expected: int, timeout: float) -> int:
    end = time.monotonic() + timeout
    while True:
        try:
            n = stored(url)
        except Exception:  # noqa: BLE001 - the database may still be starting
            n = -1
        if n >= expected or time.monotonic() > end:
            return n
        time.sleep(0.2)


@pytest.fixture
def own_cluster():
    """A cluster of this test's own, to stop and start at will."""
    home = Path(tempfile.mkdtemp(prefix="citygrid-test-fault-pg-"))
    cluster = PostgresCluster(home / "data", free_port(), superuser="postgres", password=None)
    try:
        cluster.init()
        cluster.start(fast=True)
        cluster.ensure_database("fault")
        url = cluster.url("fault")
        with connect(url) as conn:
            migrate.migrate(conn)
            add_unit(conn, name="监督员张三", kind="inspector", devices=["owntracks:zhangsan/phone"], actor="test")
        yield cluster, url
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


def run_worker(settings, name: str) -> tuple[IngestWorker, threading.Thread]:
    worker = IngestWorker(settings, name, client_id=f"citygrid-ingest-{name}-{time.monotonic_ns()}")
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    assert worker.connected.wait(10)
    time.sleep(0.3)
    return worker, thread


def test_database_stopped_for_30_seconds_mid_stream_loses_nothing(own_cluster, mqtt_broker, tmp_path):
    cluster, url = own_cluster
    worker, thread = run_worker(settings_for(url, mqtt_broker, tmp_path), "pg-fault")
    pub = publisher(mqtt_broker)
    try:
        publish_all(pub, [(TOPIC, owntracks(k)) for k in range(1000)])
        assert wait_stored(url, 1000, 30) == 1000
        cluster.stop()
        publish_all(pub, [(TOPIC, owntracks(k)) for k in range(1000, 3000)])    # the broker takes them meanwhile
        time.sleep(30)
        assert thread.is_alive(), "the worker gave up while the database was down"
        cluster.start(fast=True)
        assert wait_stored(url, 3000, 60) == 3000
        time.sleep(1)
        assert stored(url) == 3000
        with connect(url) as conn:
            assert conn.execute("SELECT count(*) AS n FROM dead_letter").fetchone()["n"] == 0
    finally:
        pub.loop_stop()
        worker.stop()
        thread.join(15)


def test_broker_restart_the_worker_reconnects_resubscribes_and_resumes(db_url, db, tmp_path):
    add_unit(db, name="监督员张三", kind="inspector", devices=["owntracks:zhangsan/phone"], actor="test")
    home = Path(tempfile.mkdtemp(prefix="citygrid-test-fault-mqtt-"))
    broker = MosquittoBroker(home, free_port())
    broker.start()
    try:
        worker, thread = run_worker(settings_for(db_url, broker, tmp_path), "mqtt-fault")
        pub = publisher(broker)
        publish_all(pub, [(TOPIC, owntracks(k)) for k in range(500)])
        assert wait_stored(db_url, 500, 30) == 500
        pub.loop_stop()
        broker.stop()
        end = time.monotonic() + 10
        while worker.connected.is_set() and time.monotonic() < end:
            time.sleep(0.1)
        assert not worker.connected.is_set()
        broker.start()
        assert worker.connected.wait(30), "the worker did not come back to the broker"
        time.sleep(0.5)
        pub = publisher(broker)
        publish_all(pub, [(TOPIC, owntracks(k)) for k in range(500, 1000)])
        assert wait_stored(db_url, 1000, 30) == 1000
        pub.loop_stop()
        worker.stop()
        thread.join(15)
        assert stored(db_url) == 1000
        assert worker.counters.dead_letters == 0 and worker.counters.stored == 1000
    finally:
        broker.stop()
        shutil.rmtree(home, ignore_errors=True)

