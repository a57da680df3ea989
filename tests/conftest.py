"""Real services for the suite: a throwaway PostGIS cluster and a Mosquitto broker on free
ports, and a fresh database per test cloned from a migrated template. No mocks."""
from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
from argon2 import PasswordHasher

import command.auth

from command.services import MosquittoBroker, PostgresCluster, free_port
from devices import device_types
from gis import catalog, migrate
from gis.config import Settings
from gis.db import connect

TEMPLATE = "citygrid_template"

# Tests create hundreds of users: argon2 at its production cost (~0.2 s a hash) would spend
# minutes on that alone. The hashes stay real argon2, just cheap; production keeps the defaults.
command.auth._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
command.auth._DUMMY_HASH = command.auth._hasher.hash("citygrid-no-such-user")
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
        device_types.load_types(conn, device_types.read_types())
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
    # The timer loop is off: tests fire timers themselves at the times they choose.
    return Settings(demo=False, database_url=db_url, secret_key=TEST_SECRET, timer_interval_seconds=0,
                    data_dir=tmp_path / "data", run_dir=tmp_path / "run")


# ---------------------------------------------------------------- a tiny hand-made city
PASSWORD = "correct-horse-battery"
COUNTY = "430223"
# Two communities of two 0.001° squares each (~100 m × 110 m), side by side.
GRID_CELLS = {
    "430223001001001": (113.340, 27.000), "430223001001002": (113.341, 27.000),
    "430223001002001": (113.342, 27.000), "430223001002002": (113.343, 27.000),
}


def _square(x: float, y: float) -> str:
    return f"MULTIPOLYGON((({x} {y},{x + .001} {y},{x + .001} {y + .001},{x} {y + .001},{x} {y})))"


@pytest.fixture
def tiny_city(db):
    with db.transaction():
        db.execute("INSERT INTO county (code, name) VALUES (%s, '攸县')", (COUNTY,))
        db.execute("INSERT INTO street (code, county_code, name, kind) VALUES ('430223001', %s, '联星街道', '街道')",
                   (COUNTY,))
        for community, name in (("430223001001", "东正社区"), ("430223001002", "西正社区")):
            db.execute("INSERT INTO community (code, street_code, name) VALUES (%s, '430223001', %s)",
                       (community, name))
        for code, (x, y) in GRID_CELLS.items():
            db.execute("INSERT INTO grid (code, community_code, name, area_m2, geom)"
                       " VALUES (%s, %s, %s, ST_Area(ST_GeomFromText(%s, 4326)::geography), ST_GeomFromText(%s, 4326))",
                       (code, code[:12], f"第{code[-3:]}网格", _square(x, y), _square(x, y)))
        for name in ("攸县自来水公司", "县城市管理和综合执法局"):
            db.execute("INSERT INTO department (name) VALUES (%s)", (name,))
        water, city = (r["id"] for r in db.execute("SELECT id FROM department ORDER BY id").fetchall())
        parts = [("4302230101000001", "0101", "上水井盖0001", 113.3405, 27.0005, water),
                 ("4302230114000001", "0114", "路灯0001", 113.3415, 27.0005, city),
                 ("4302230114000002", "0114", "路灯0002", 113.3425, 27.0005, city)]
        for pid, cls, name, x, y, dept in parts:
            db.execute("INSERT INTO part (id, class_code, name, grid_code, geom, location, dept_owner_id,"
                       " dept_maintainer_id) SELECT %s, %s, %s, g.code, p, p, %s, %s FROM grid g,"
                       " ST_SetSRID(ST_MakePoint(%s, %s), 4326) p WHERE ST_Intersects(g.geom, p)",
                       (pid, cls, name, dept, dept, x, y))
    return {"water_dept": "攸县自来水公司", "city_dept": "县城市管理和综合执法局"}
