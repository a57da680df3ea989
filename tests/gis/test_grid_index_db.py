"""GridIndex loaded from, and kept in step with, a real PostGIS grid table."""
from __future__ import annotations

import numpy as np

from gis.db import connect
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
