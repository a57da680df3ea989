"""Real services for the suite: a throwaway PostGIS cluster and a Mosquitto broker on free
ports, and a fresh database per test cloned from a migrated template. No mocks."""
from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest

from command.services import MosquittoBroker, PostgresCluster, free_port
from gis import catalog, migrate
from gis.config import Settings
from gis.db import connect

TEMPLATE = "citygrid_template"
TEST_SECRET = "test-secret-key-0123456789abcdef"


def _service_dir(prefix: str) -> Path:
    # Not under pytest's tmp folder: that one is private to root, and PostgreSQL and
    # Mosquitto drop to their own system users.
    return Path(tempfile.mkdtemp(prefix=prefix))


@pytest.fixture(scope="session")
def pg_cluster() -> PostgresCluster:
    home = _service_dir("citygrid-test-pg-")
    cluster = PostgresCluster(home / "data", free_port(), superuser="postgres", password=None)
    try:
        cluster.init()
        cluster.start(fast=True)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg_cluster: PostgresCluster) -> str:
    pg_cluster.ensure_database(TEMPLATE)
    with connect(pg_cluster.url(TEMPLATE)) as conn:
        migrate.migrate(conn)
        with conn.transaction():
            catalog.load_catalog(conn, catalog.read_catalog())
    return TEMPLATE


@pytest.fixture
def db_url(pg_cluster: PostgresCluster, template_db: str) -> str:
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_cluster.url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield pg_cluster.url(name)
    with psycopg.connect(pg_cluster.url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db(db_url: str) -> psycopg.Connection:
    """An owner connection to this test's own database."""
    with connect(db_url) as conn:
        yield conn


@pytest.fixture(scope="session")
def mqtt_broker() -> MosquittoBroker:
    home = _service_dir("citygrid-test-mqtt-")
    broker = MosquittoBroker(home, free_port())
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(demo=False, database_url=db_url, secret_key=TEST_SECRET,
                    data_dir=tmp_path / "data", run_dir=tmp_path / "run")
