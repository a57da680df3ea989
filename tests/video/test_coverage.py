"""Blind-spot analysis on the tiny city with a road and a building inserted here, checked
against an independent shapely computation in another projection (UTM 49N) from the
sectors the registry stored."""
from __future__ import annotations

import numpy as np
import pytest
import shapely
from pyproj import Geod, Transformer

from video import coverage as cov
from video.cameras import NewCamera, add_camera

MID_LAT = 27.0005
ROAD_END = 113.3428                    # the road stops short of grid …002002, which has no street
WIDTH = 10.0
GRIDS = ["430223001001001", "430223001001002", "430223001002001", "430223001002002"]
_UTM = Transformer.from_crs("EPSG:4326", "EPSG:32649", always_xy=True)
_GEOD = Geod(ellps="WGS84")


def utm(geom):
    return shapely.transform(geom, lambda xy: np.column_stack(_UTM.transform(xy[:, 0], xy[:, 1])))


def geodesic_sector(lon, lat, bearing, fov, reach, n=360):
    az = bearing - fov / 2 + np.linspace(0, fov, n)
    xs, ys, _ = _GEOD.fwd(np.full(n, lon), np.full(n, lat), az, np.full(n, float(reach)))
    return shapely.Polygon([(lon, lat), *zip(xs, ys)])


@pytest.fixture
def street(db, tiny_city):
    db.execute("INSERT INTO basemap_road (name, kind, width_m, geom) VALUES ('联星路', '支路', %s,"
               " ST_GeomFromText(%s, 4326))", (WIDTH, f"LINESTRING(113.3400 {MID_LAT}, {ROAD_END} {MID_LAT})"))
    grids = {r["code"]: utm(shapely.from_wkb(bytes(r["wkb"]))) for r in
             db.execute("SELECT code, ST_AsBinary(geom) AS wkb FROM grid").fetchall()}
    road = utm(shapely.LineString([(113.3400, MID_LAT), (ROAD_END, MID_LAT)])).buffer(WIDTH / 2)
    return {code: road & g for code, g in grids.items()}


def stored_sector(db, camera_id: int):
    wkb = db.execute("SELECT ST_AsBinary(sector) AS wkb FROM camera WHERE id = %s", (camera_id,)).fetchone()["wkb"]
    return utm(shapely.from_wkb(bytes(wkb)))


def camera(db, **kw) -> int:
    base = dict(name="路口", url="rtsp://10.0.0.5/main", lon=113.3415, lat=MID_LAT, bearing_deg=90.0, fov_deg=90.0,
                range_m=80.0)
    return add_camera(db, NewCamera(**{**base, **kw}), actor="test")["id"]


def add_building(db, x0, y0, x1, y1):
    db.execute("INSERT INTO basemap_building (kind, floors, geom) VALUES ('住宅', 6, ST_MakeEnvelope(%s, %s, %s, %s, 4326))",
               (x0, y0, x1, y1))


def by_code(rows):
    return {r.code: r for r in rows}


def test_no_cameras_no_coverage_and_a_grid_without_street(db, street):
    rows = by_code(cov.coverage(db))
    assert list(rows) == GRIDS
    assert all(rows[c].covered_m2 == 0 and rows[c].share == 0 for c in GRIDS[:3])
    assert rows[GRIDS[3]].street_m2 == 0 and rows[GRIDS[3]].share is None      # no street: no share at all
    for code in GRIDS[:3]:
        assert rows[code].street_m2 == pytest.approx(street[code].area, rel=0.005)


def test_the_share_is_the_street_inside_the_sector(db, street):
    sector = stored_sector(db, camera(db))                      # looks east along the road, 90°, 80 m
    rows = by_code(cov.coverage(db))
    for code in GRIDS[:3]:
        expected = (street[code] & sector).area
        assert rows[code].covered_m2 == pytest.approx(expected, rel=0.01, abs=1.0)
        assert rows[code].share == pytest.approx(expected / street[code].area, rel=0.01, abs=0.001)
    assert rows[GRIDS[0]].share == 0                             # west of the camera
    assert 0.3 < rows[GRIDS[1]].share < 0.6 and rows[GRIDS[2]].share > 0.1
    # a second camera over the same street counts once (the union, not the sum)
    camera(db, lon=113.3416)
    again = by_code(cov.coverage(db))
    assert again[GRIDS[1]].covered_m2 < rows[GRIDS[1]].covered_m2 + 0.05 * street[GRIDS[1]].area


def test_a_building_blocks_what_lies_behind_it(db, street):
    west = 113.3418
    sector = stored_sector(db, camera(db, lon=113.3410, fov_deg=30, range_m=150))
    before = by_code(cov.coverage(db))
    assert before[GRIDS[2]].covered_m2 > 300                   # the sector reaches into grid …002001
    add_building(db, west, 27.0002, 113.3419, 27.0008)          # across the road, wider than the sector there
    shaded = by_code(cov.coverage(db))                          # the cache notices the new building
    assert shaded[GRIDS[2]].covered_m2 < 1.0                    # all of it lies behind the building
    wall_x = utm(shapely.Point(west, MID_LAT)).x
    in_front = shapely.clip_by_rect(sector, -1e9, -1e9, wall_x, 1e9)
    expected = sum((street[c] & in_front).area for c in GRIDS[:3])
    assert sum(r.covered_m2 for r in shaded.values()) == pytest.approx(expected, rel=0.02)
    plain = by_code(cov.coverage(db, shadows=False))            # footprints ignored: as before
    assert plain[GRIDS[2]].covered_m2 == pytest.approx(before[GRIDS[2]].covered_m2)


def test_a_camera_on_a_building_is_not_blocked_by_it(db, street):
    add_building(db, 113.3410, MID_LAT + 0.00006, 113.3414, MID_LAT + 0.0003)    # north of the road
    camera(db, lon=113.3412, lat=MID_LAT + 0.00006, bearing_deg=180, fov_deg=120, range_m=40)   # on its south wall
    rows = by_code(cov.coverage(db))
    assert rows[GRIDS[1]].covered_m2 > 100


def test_uncovered_grids_are_listed_most_unseen_first(db, street):
    camera(db)
    rows = cov.coverage(db)
    blind = cov.uncovered(rows)
    shares = by_code(rows)
    assert [r.code for r in blind] == [c for c in (GRIDS[0], GRIDS[2]) if shares[c].share < cov.SHARE_THRESHOLD]
    assert GRIDS[0] in [r.code for r in blind] and GRIDS[3] not in [r.code for r in blind]   # no street: not blind
    assert GRIDS[1] not in [r.code for r in blind]
    assert [r.code for r in cov.uncovered(rows, threshold=1.0)][0] == GRIDS[0]     # the most unseen street first
    gj = cov.coverage_geojson(db, rows)
    assert len(gj["features"]) == 4 and gj["features"][0]["geometry"]["type"] == "MultiPolygon"
    assert gj["summary"]["blind_grids"] == len(blind)


def test_suggestions_pick_the_best_first_and_gains_shrink(db, street):
    existing = stored_sector(db, camera(db, lon=113.3402, range_m=60))      # covers the west end already
    picks = cov.suggest_positions(db, k=4, range_m=40, fov_deg=90, spacing_m=25, bearing_step_deg=45)
    assert len(picks) == 4
    gains = [p.gain_m2 for p in picks]
    assert gains == sorted(gains, reverse=True) and gains[0] > gains[-1]
    # independently: every candidate (every 25 m on the centre line × 8 bearings) against the street
    # not yet seen
    road_street = shapely.union_all(list(street.values()))
    unseen = road_street - existing
    best = 0.0
    for x in np.arange(0, 1000, 25.0):
        lon = 113.3400 + x / (111_320 * np.cos(np.radians(MID_LAT)))
        if lon > ROAD_END:
            break
        for bearing in range(0, 360, 45):
            best = max(best, (unseen & utm(geodesic_sector(lon, MID_LAT, bearing, 90, 40))).area)
    assert gains[0] == pytest.approx(best, rel=0.06)
    first = utm(geodesic_sector(picks[0].lon, picks[0].lat, picks[0].bearing_deg, 90, 40))
    assert gains[0] == pytest.approx((unseen & first).area, rel=0.06)
    assert picks[0].lon > 113.3409                                # not where the camera already looks
    assert picks[0].bearing_deg in (90.0, 270.0)                  # along the road
    assert picks[0].grid_code in GRIDS
    second = utm(geodesic_sector(picks[1].lon, picks[1].lat, picks[1].bearing_deg, 90, 40))
    assert gains[1] == pytest.approx(((unseen - first) & second).area, rel=0.08)   # counted after the first


def test_suggestions_on_a_city_without_streets_are_empty(db, tiny_city):
    assert cov.suggest_positions(db, k=3) == []
    assert all(r.share is None for r in cov.coverage(db))
