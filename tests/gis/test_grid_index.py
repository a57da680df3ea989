"""GridIndex (point → unit grid 单元网格) against ground truth computed with shapely.

Ground truth is independent of the index: for every grid, shapely.intersects_xy
over all points (closed polygons), and the rule under test is "the lowest index
among the grids whose closure holds the point, else -1". For a point inside
one grid that is simply that grid.

GridIndexCache and GridIndex.from_db need a real PostgreSQL and are not tested
here (no database mocks).
"""
from __future__ import annotations

import numpy as np
import pytest
import shapely
import shapely.affinity
from shapely.geometry import MultiPolygon, Polygon, box

import gis.grid_index as grid_index
from gis.grid_index import GridIndex

LON0, LAT0 = 113.345, 27.0
M = 1 / 111_320.0          # one metre of latitude, in degrees


# ---------------------------------------------------------------------- helpers
def truth(polys, lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """(lowest index of a grid whose closure holds the point or -1, number of such grids)."""
    lon, lat = np.asarray(lon, float), np.asarray(lat, float)
    hits = np.zeros((len(polys), lon.size), dtype=bool)
    for i, p in enumerate(polys):
        shapely.prepare(p)
        hits[i] = shapely.intersects_xy(p, lon, lat)
    count = hits.sum(axis=0)
    return np.where(count > 0, hits.argmax(axis=0), -1), count


def assert_matches_truth(index: GridIndex, polys, lon, lat) -> np.ndarray:
    got = index.lookup(lon, lat)
    expected, _ = truth(polys, lon, lat)
    bad = np.flatnonzero(got != expected)
    assert bad.size == 0, (f"{bad.size} of {got.size} points wrong, e.g. "
                           f"{[(lon[i], lat[i], got[i], expected[i]) for i in bad[:5]]}")
    return got


def voronoi_grids(seed: int, n_seeds: int, side_m: float) -> list[shapely.Geometry]:
    """Irregular grids like real 单元网格: Voronoi cells clipped to a square area."""
    rng = np.random.default_rng(seed)
    area = box(LON0, LAT0, LON0 + side_m * M, LAT0 + side_m * M)
    seeds = shapely.multipoints(rng.uniform((LON0, LAT0), (LON0 + side_m * M, LAT0 + side_m * M),
                                            size=(n_seeds, 2)))
    cells = shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=area))
    return [c for c in shapely.intersection(cells, area) if not c.is_empty]


def codes_for_count(n: int) -> list[str]:
    return [f"430281001001{i + 1:03d}" for i in range(n)]


def uniform_points(rng, bounds, n, pad=0.0):
    minx, miny, maxx, maxy = bounds
    return (rng.uniform(minx - pad, maxx + pad, n), rng.uniform(miny - pad, maxy + pad, n))


def near_edge_points(polys, rng, offsets) -> tuple[np.ndarray, np.ndarray]:
    """Points at `offsets` (degrees) on both sides of random spots on every edge."""
    xs, ys = [], []
    for p in polys:
        for ring in shapely.get_rings(p):
            xy = shapely.get_coordinates(ring)
            a, b = xy[:-1], xy[1:]
            t = rng.uniform(0, 1, (len(a), 1))
            spot = a + t * (b - a)
            normal = np.column_stack([a[:, 1] - b[:, 1], b[:, 0] - a[:, 0]])
            normal /= np.linalg.norm(normal, axis=1, keepdims=True)
            for d in offsets:
                for side in (-1, 1):
                    q = spot + side * d * normal
                    xs.append(q[:, 0])
                    ys.append(q[:, 1])
    return np.concatenate(xs), np.concatenate(ys)


@pytest.fixture(scope="module")
def voronoi():
    polys = voronoi_grids(seed=7, n_seeds=150, side_m=1200)
    return polys, GridIndex.build(codes_for_count(len(polys)), polys)


# ---------------------------------------------------------------------- irregular grids
def test_random_points_over_voronoi_grids_match_shapely(voronoi):
    polys, index = voronoi
    rng = np.random.default_rng(1)
    lon, lat = uniform_points(rng, shapely.total_bounds(polys), 200_000, pad=20 * M)
    got = assert_matches_truth(index, polys, lon, lat)
    assert (got >= 0).mean() > 0.9 and (got == -1).any()     # mostly inside, some outside
    assert len(np.unique(got[got >= 0])) == len(polys)        # every grid was hit


def test_auto_cell_is_about_a_metre_and_within_memory_cap(voronoi):
    _, index = voronoi
    assert 0.9 * M <= index.cell_deg <= 1.1 * M
    assert index.raster.nbytes <= grid_index.MAX_RASTER_BYTES
    assert index.raster.dtype == np.int16


@pytest.mark.parametrize("cell_m", [3.0, 11.0, 40.0])
def test_coarse_cells_still_exact(voronoi, cell_m):
    # Coarse cells push most points into the exact fallback; answers must not change.
    polys, _ = voronoi
    index = GridIndex.build(codes_for_count(len(polys)), polys, cell_deg=cell_m * M)
    lon, lat = uniform_points(np.random.default_rng(2), shapely.total_bounds(polys), 50_000, pad=5 * M)
    assert_matches_truth(index, polys, lon, lat)


def test_points_within_centimetres_of_edges(voronoi):
    polys, index = voronoi
    rng = np.random.default_rng(3)
    # ~1 cm, ~1 mm, ~0.1 mm and ~1 µm either side of every edge
    lon, lat = near_edge_points(polys, rng, offsets=[1e-7, 1e-8, 1e-9, 1e-11])
    got = assert_matches_truth(index, polys, lon, lat)
    assert (got >= 0).all() or (got == -1).sum() < lon.size / 4   # outer edges give some -1


def test_points_exactly_on_shared_vertices_get_lowest_touching_grid(voronoi):
    polys, index = voronoi
    xy = np.unique(shapely.get_coordinates(polys), axis=0)
    lon, lat = xy[:, 0], xy[:, 1]
    expected, count = truth(polys, lon, lat)
    assert (count >= 1).all() and (count >= 3).sum() > 100     # real 3-grid corners present
    got = index.lookup(lon, lat)
    np.testing.assert_array_equal(got, expected)
    # deterministic: order of the batch and single look-ups do not change the answer
    perm = np.random.default_rng(4).permutation(lon.size)
    np.testing.assert_array_equal(index.lookup(lon[perm], lat[perm]), got[perm])
    for i in range(0, lon.size, 97):
        assert index.locate(lon[i], lat[i]) == index.codes[got[i]]


# ---------------------------------------------------------------------- exact edges
def triangle_lattice(n: int, step: float) -> list[Polygon]:
    """Squares on a dyadic lattice, each split along a diagonal (alternating direction):
    every edge midpoint and quarter point is exactly representable and exactly on its edge."""
    x0, y0 = 113.25, 27.0          # both exact in binary at this step
    tris = []
    for i in range(n):
        for j in range(n):
            a = (x0 + i * step, y0 + j * step)
            b = (x0 + (i + 1) * step, y0 + j * step)
            c = (x0 + (i + 1) * step, y0 + (j + 1) * step)
            d = (x0 + i * step, y0 + (j + 1) * step)
            if (i + j) % 2:
                tris += [Polygon([a, b, c]), Polygon([a, c, d])]
            else:
                tris += [Polygon([a, b, d]), Polygon([b, c, d])]
    return tris


def test_points_exactly_on_edges_and_vertices_are_deterministic():
    step = 2.0 ** -12                        # ~24 m
    tris = triangle_lattice(8, step)
    rng = np.random.default_rng(5)
    order = rng.permutation(len(tris))       # codes not in spatial order
    polys = [tris[k] for k in order]
    index = GridIndex.build(codes_for_count(len(polys)), polys)
    xy = shapely.get_coordinates(polys)
    # quarter, half and three-quarter points of every edge, plus the vertices
    rings = [shapely.get_coordinates(p.exterior) for p in polys]
    spots = [r[:-1] + f * (r[1:] - r[:-1]) for r in rings for f in (0.0, 0.25, 0.5, 0.75)]
    pts = np.unique(np.concatenate([xy, *spots]), axis=0)
    lon, lat = pts[:, 0], pts[:, 1]
    expected, count = truth(polys, lon, lat)
    assert (count >= 1).all()
    assert (count == 2).sum() > 200 and (count >= 4).sum() > 30   # shared edges and corners
    got = index.lookup(lon, lat)
    np.testing.assert_array_equal(got, expected)
    # one of the touching grids, and always the same one
    for i in rng.choice(lon.size, 200, replace=False):
        assert polys[got[i]].intersects(shapely.Point(lon[i], lat[i]))
        assert index.locate(lon[i], lat[i]) == index.codes[got[i]]
    np.testing.assert_array_equal(index.lookup(lon[::-1], lat[::-1]), got[::-1])
    # random points inside the lattice, too
    lon_r, lat_r = uniform_points(rng, shapely.total_bounds(polys), 50_000, pad=step / 8)
    assert_matches_truth(index, polys, lon_r, lat_r)


def test_points_exactly_on_the_outer_boundary_belong_to_its_grid():
    g = box(LON0, LAT0, LON0 + 0.001, LAT0 + 0.001)
    index = GridIndex.build(["430281001001001"], [g])
    xy = shapely.get_coordinates(shapely.segmentize(g.exterior, 0.0001))
    np.testing.assert_array_equal(index.lookup(xy[:, 0], xy[:, 1]), 0)


# ---------------------------------------------------------------------- holes, multipolygons
def sq(x0, y0, x1, y1, unit=10 * M):
    return box(LON0 + x0 * unit, LAT0 + y0 * unit, LON0 + x1 * unit, LAT0 + y1 * unit)


@pytest.fixture(scope="module")
def nested():
    """A ring-shaped grid whose hole holds another ring-shaped grid whose hole holds a
    small grid with a gap around it; listed smallest first so index order ≠ draw order."""
    outer = sq(0, 0, 20, 20).difference(sq(4, 4, 16, 16))           # hole filled exactly by middle
    middle = sq(4, 4, 16, 16).difference(sq(7, 7, 13, 13))
    inner = sq(8, 8, 12, 12)                                         # gap 7..8 and 12..13 → -1
    neighbour = sq(20, 0, 26, 20)
    return [inner, middle, neighbour, outer]


def test_holes_and_grids_inside_holes(nested):
    polys = nested
    index = GridIndex.build(["a", "b", "c", "d"], polys)
    inner, middle, neighbour, outer = range(4)
    u = 10 * M
    probes = {(2, 2): outer, (5, 5): middle, (10, 10): inner, (7.5, 10): -1, (12.5, 12.5): -1,
              (23, 10): neighbour, (30, 10): -1, (-1, 5): -1}
    lon = np.array([LON0 + x * u for x, _ in probes])
    lat = np.array([LAT0 + y * u for _, y in probes])
    np.testing.assert_array_equal(index.lookup(lon, lat), list(probes.values()))
    rng = np.random.default_rng(6)
    lon, lat = uniform_points(rng, shapely.total_bounds(polys), 100_000, pad=2 * u)
    got = assert_matches_truth(index, polys, lon, lat)
    assert set(np.unique(got)) == {-1, 0, 1, 2, 3}
    lon_e, lat_e = near_edge_points(polys, rng, offsets=[1e-7, 1e-9])
    assert_matches_truth(index, polys, lon_e, lat_e)
    # on the shared hole ring: the lower index (middle=1 beats outer=3; inner=0 alone)
    assert index.locate(LON0 + 4 * u, LAT0 + 10 * u) == "b"
    assert index.locate(LON0 + 16 * u, LAT0 + 16 * u) == "b"
    assert index.locate(LON0 + 20 * u, LAT0 + 10 * u) == "c"          # outer/neighbour edge
    assert index.locate(LON0 + 8 * u, LAT0 + 8 * u) == "a"


def test_multipolygon_parts_all_map_to_their_grid():
    u = 10 * M
    ring = sq(0, 0, 10, 10, u).difference(sq(3, 3, 7, 7, u))
    # One grid in three pieces: inside ring's hole, beside it, and far off with its own hole
    multi = MultiPolygon([sq(4, 4, 6, 6, u), sq(10, 0, 12, 3, u),
                          sq(30, 30, 40, 40, u).difference(sq(33, 33, 37, 37, u))])
    island = sq(34, 34, 36, 36, u)                                  # inside multi's hole
    polys = [island, multi, ring]
    index = GridIndex.build(["x", "m", "r"], polys)
    for x, y, code in [(5, 5, "m"), (11, 1, "m"), (31, 31, "m"), (35, 35, "x"), (34.5, 33.5, None),
                       (1, 1, "r"), (3.5, 5, None), (20, 20, None)]:
        assert index.locate(LON0 + x * u, LAT0 + y * u) == code, (x, y)
    rng = np.random.default_rng(7)
    lon, lat = uniform_points(rng, shapely.total_bounds(polys), 100_000, pad=u)
    assert_matches_truth(index, polys, lon, lat)


# ---------------------------------------------------------------------- the raster itself
def cell_boxes(index: GridIndex, rows, cols):
    x0, y0, c = index.cell_bounds()
    return shapely.box(x0 + cols * c, y0 + rows * c, x0 + (cols + 1) * c, y0 + (rows + 1) * c)


@pytest.mark.parametrize("cell_m", [2.5, 3.7, 7.0, 19.0])
def test_every_cell_a_boundary_touches_is_ambiguous(voronoi, nested, cell_m):
    """The safety property behind exactness: a cell not marked ambiguous has no boundary in
    its closed square and the label of its centre, so every point in it is answered right."""
    rng = np.random.default_rng(8)
    slivers = [shapely.affinity.rotate(box(LON0 + 1500 * M, LAT0 + k * 30 * M,
                                           LON0 + 1600 * M, LAT0 + k * 30 * M + w * M), angle,
                                       origin="centroid")
               for k, (w, angle) in enumerate(zip(rng.uniform(0.05, 3, 20), rng.uniform(0, 180, 20)))]
    # grids far smaller than a cell
    tiny = [shapely.affinity.translate(box(0, 0, 0.3 * M, 0.2 * M), LON0 + 1300 * M + k * 7 * M,
                                       LAT0 + 100 * M + k * 3.1 * M) for k in range(20)]
    polys = voronoi[0] + [shapely.affinity.translate(p, 0, -600 * M) for p in nested] + slivers + tiny
    index = GridIndex.build(codes_for_count(len(polys)), polys, cell_deg=cell_m * M)
    raster = index.raster
    rows, cols = np.nonzero(raster != grid_index.AMBIGUOUS)
    edges = shapely.STRtree(shapely.get_parts(shapely.boundary(polys)))
    touched, _ = edges.query(cell_boxes(index, rows, cols), predicate="intersects")
    assert touched.size == 0, f"{np.unique(touched).size} boundary cells not marked ambiguous"
    # ...with a safety margin: labelled cell centres are >= 1.5 cells from every edge
    # (the band reaches ~1.58; a boundary cell only needs 0.71, half the diagonal)
    x0, y0, c = index.cell_bounds()
    centres = shapely.points(x0 + (cols + 0.5) * c, y0 + (rows + 0.5) * c)
    close, _ = edges.query(centres, predicate="dwithin", distance=1.5 * c)
    assert close.size == 0, f"{np.unique(close).size} labelled cells closer than 1.5 cells to an edge"
    expected, _ = truth(polys, x0 + (cols + 0.5) * c, y0 + (rows + 0.5) * c)
    np.testing.assert_array_equal(raster[rows, cols].astype(int) - 1, expected)
    # the outermost cells (where far-away points are clamped to) are empty; the band is sane
    for border in (raster[0], raster[-1], raster[:, 0], raster[:, -1]):
        assert (border == 0).all()
    assert (raster == grid_index.AMBIGUOUS).mean() < 0.9


def test_int32_labels_for_very_many_grids(voronoi, monkeypatch):
    polys, _ = voronoi
    monkeypatch.setattr(grid_index, "_label_dtype", lambda n: np.int32)
    index = GridIndex.build(codes_for_count(len(polys)), polys)
    assert index.raster.dtype == np.int32
    lon, lat = uniform_points(np.random.default_rng(9), shapely.total_bounds(polys), 20_000)
    assert_matches_truth(index, polys, lon, lat)


# ---------------------------------------------------------------------- edges of the input
def test_outside_extent_gaps_nan_and_infinities(nested):
    index = GridIndex.build(["a", "b", "c", "d"], nested)
    minx, miny, maxx, maxy = shapely.total_bounds(nested)
    lon = np.array([np.nan, LON0, np.nan, np.inf, -np.inf, LON0, 0.0, 179.9, minx - 1e-9,
                    maxx + 1e-9, minx - 3 * M, LON0 + 75 * M, 1e300])
    lat = np.array([LAT0, np.nan, np.nan, LAT0, LAT0, np.inf, 0.0, -89.0, miny + 1e-4,
                    maxy - 1e-5, miny - 3 * M, LAT0 + 100 * M, -1e300])
    np.testing.assert_array_equal(index.lookup(lon, lat), -1)
    assert index.locate(float("nan"), LAT0) is None
    assert list(index.codes_for(lon, lat)) == [None] * lon.size


def test_empty_input_and_shapes(voronoi):
    polys, index = voronoi
    empty = index.lookup(np.array([]), np.array([]))
    assert empty.shape == (0,) and empty.dtype == np.int32
    assert index.codes_for([], []).shape == (0,)
    # shape is kept; lists and scalars broadcast
    lon, lat = uniform_points(np.random.default_rng(10), shapely.total_bounds(polys), 12)
    grid2d = index.lookup(lon.reshape(3, 4), lat.reshape(3, 4))
    assert grid2d.shape == (3, 4) and grid2d.dtype == np.int32
    np.testing.assert_array_equal(grid2d.ravel(), index.lookup(list(lon), list(lat)))
    np.testing.assert_array_equal(index.lookup(lon, lat[0]), index.lookup(lon, np.full(12, lat[0])))


def test_index_without_grids():
    index = GridIndex.build([], [])
    assert len(index.codes) == 0
    np.testing.assert_array_equal(index.lookup([LON0, 0.0], [LAT0, 0.0]), [-1, -1])
    assert index.locate(LON0, LAT0) is None
    assert list(index.codes_for([LON0], [LAT0])) == [None]


def test_single_grid():
    g = voronoi_grids(seed=11, n_seeds=1, side_m=100)[0]
    index = GridIndex.build(["430281001001001"], [g])
    rng = np.random.default_rng(12)
    lon, lat = uniform_points(rng, g.bounds, 20_000, pad=10 * M)
    got = assert_matches_truth(index, [g], lon, lat)
    assert (got == 0).any() and (got == -1).any()
    assert index.locate(*g.centroid.coords[0]) == "430281001001001"
    assert index.locate(LON0 - 1, LAT0) is None


def test_codes_for_and_locate_return_codes(voronoi):
    polys, index = voronoi
    centres = shapely.get_coordinates(shapely.point_on_surface(polys))
    codes = index.codes_for(np.append(centres[:, 0], 0.0), np.append(centres[:, 1], 0.0))
    assert codes.dtype == object
    assert list(codes) == codes_for_count(len(polys)) + [None]
    assert all(isinstance(c, str) for c in codes[:-1])
    assert index.locate(*centres[5]) == codes_for_count(len(polys))[5]


def test_empty_geometries_never_match(voronoi):
    polys, _ = voronoi
    with_empty = [Polygon(), *polys[:10], None]
    index = GridIndex.build(codes_for_count(len(with_empty)), with_empty)
    lon, lat = uniform_points(np.random.default_rng(13), shapely.total_bounds(polys[:10]), 20_000)
    got = index.lookup(lon, lat)
    expected, _ = truth(polys[:10], lon, lat)
    np.testing.assert_array_equal(got, np.where(expected >= 0, expected + 1, -1))


def test_bad_input_is_refused(voronoi):
    polys, _ = voronoi
    with pytest.raises(ValueError, match="codes but"):
        GridIndex.build(["1"], polys[:2])
    with pytest.raises(TypeError, match="LineString"):
        GridIndex.build(["1"], [shapely.LineString([(0, 0), (1, 1)])])
    with pytest.raises(ValueError, match="cell_deg"):
        GridIndex.build(["1"], polys[:1], cell_deg=0.0)
    with pytest.raises(ValueError, match="larger than"):
        GridIndex.build(["1", "2"], [polys[0], shapely.affinity.translate(polys[0], 5.0)], cell_deg=1e-6)
