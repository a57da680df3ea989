"""GridIndex loaded from, and kept in step with, a real PostGIS grid table."""
from __future__ import annotations

import numpy as np
import psycopg
import pytest

from gis.db import connect, open_pool
from gis.grid_index import GridIndex, GridIndexCache


def _add_grid(db, code: str, x: float) -> None:
    db.execute("INSERT INTO county VALUES ('430223', '攸县', NULL) ON CONFLICT DO NOTHING")
    db.execute("INSERT INTO street VALUES ('430223001', '430223', '联星街道', '街道', NULL) ON CONFLICT DO NOTHING")
    db.execute("INSERT INTO community VALUES ('430223001001', '430223001', '东正社区', NULL) ON CONFLICT DO NOTHING")
    db.execute("INSERT INTO grid (code, community_code, name, area_m2, geom) VALUES (%s, '430223001001', %s, 1,"
               " ST_Multi(ST_MakeEnvelope(%s, 27.0, %s, 27.001, 4326)))", (code, code, x, x + 0.001))
    db.commit()


def test_from_db_agrees_with_postgis(db):
    for i in range(6):
        _add_grid(db, f"430223001001{i + 1:03d}", 113.340 + i * 0.001)
    index = GridIndex.from_db(db)
    rng = np.random.default_rng(7)
    lon, lat = rng.uniform(113.3395, 113.3465, 2000), rng.uniform(26.9995, 27.0015, 2000)
    ours = index.codes_for(lon, lat)
    theirs = [r["code"] for r in db.execute(
        "SELECT (SELECT code FROM grid WHERE ST_Intersects(geom, ST_SetSRID(ST_MakePoint(x, y), 4326))"
        " ORDER BY code LIMIT 1) AS code FROM unnest(%s::float8[], %s::float8[]) AS p(x, y)",
        (lon.tolist(), lat.tolist())).fetchall()]
    assert list(ours) == theirs
    assert sum(c is None for c in theirs) > 100   # some points fall outside, and both agree


def test_cache_rebuilds_when_the_grid_table_changes(db, db_url):
    _add_grid(db, "430223001001001", 113.340)
    cache = GridIndexCache(lambda: connect(db_url), check_seconds=0)
    first = cache.get()
    assert cache.get() is first                         # unchanged table: same index
    assert first.locate(113.3415, 27.0005) is None
    _add_grid(db, "430223001001002", 113.341)
    second = cache.get()
    assert second is not first and second.locate(113.3415, 27.0005) == "430223001001002"
    db.execute("DELETE FROM grid WHERE code = '430223001001002'")
    db.commit()
    assert cache.get().locate(113.3415, 27.0005) is None


def test_cache_waits_between_checks(db, db_url):
    _add_grid(db, "430223001001001", 113.340)
    cache = GridIndexCache(lambda: connect(db_url), check_seconds=3600)
    first = cache.get()
    _add_grid(db, "430223001001002", 113.341)
    assert cache.get() is first                         # within the check window: no database round trip


def _move_grid(conn, code: str, x: float) -> None:
    """Move a grid with plain SQL that leaves updated_at as it was."""
    with conn.transaction():
        conn.execute("UPDATE grid SET geom = ST_Multi(ST_MakeEnvelope(%s, 27.0, %s, 27.001, 4326)) WHERE code = %s",
                     (x, x + 0.001, code))


def test_cache_sees_a_geometry_update_that_leaves_updated_at_alone(db, db_url):
    _add_grid(db, "430223001001001", 113.340)
    cache = GridIndexCache(lambda: connect(db_url), check_seconds=0)
    assert cache.get().locate(113.3415, 27.0005) is None
    stamp = db.execute("SELECT updated_at FROM grid").fetchone()["updated_at"]
    _move_grid(db, "430223001001001", 113.341)
    assert db.execute("SELECT updated_at FROM grid").fetchone()["updated_at"] == stamp   # untouched
    assert cache.get().locate(113.3415, 27.0005) == "430223001001001"


def test_cache_sees_a_long_import_that_commits_after_a_shorter_one(db, db_url):
    _add_grid(db, "430223001001001", 113.340)
    _add_grid(db, "430223001001002", 113.341)
    cache = GridIndexCache(lambda: connect(db_url), check_seconds=0)
    with connect(db_url) as long_import, connect(db_url) as short_import:
        with long_import.transaction():
            long_import.execute("SELECT 1")         # begins first: its now() is the older timestamp
            with short_import.transaction():
                short_import.execute("UPDATE grid SET updated_at = now() WHERE code = '430223001001002'")
            assert cache.get().locate(113.3425, 27.0005) is None
            long_import.execute("UPDATE grid SET updated_at = now(),"
                                " geom = ST_Multi(ST_MakeEnvelope(113.342, 27.0, 113.343, 27.001, 4326))"
                                " WHERE code = '430223001001001'")
    # the same count and max(updated_at) as when the cache last looked, yet a grid moved
    assert cache.get().locate(113.3425, 27.0005) == "430223001001001"


def test_every_grid_statement_bumps_the_version_once_also_for_the_app_role(db, settings):
    def version() -> int:
        return db.execute("SELECT n FROM grid_version").fetchone()["n"]

    assert db.execute("SELECT count(*) AS rows FROM grid_version").fetchone()["rows"] == 1
    _add_grid(db, "430223001001001", 113.340)
    start = version()
    pool = open_pool(settings)
    try:
        with pool.connection() as app:
            with app.transaction():
                app.execute("UPDATE grid SET name = '改名' WHERE code LIKE '430223%'")   # the app role may
            with pytest.raises(psycopg.errors.InsufficientPrivilege), app.transaction():
                app.execute("DELETE FROM grid_version")                              # ... but not this
    finally:
        pool.close()
    with db.transaction():
        db.execute("DELETE FROM grid WHERE false")              # a statement touching no row counts too
        db.execute("TRUNCATE grid CASCADE")
    assert version() == start + 3
