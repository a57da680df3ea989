"""The demo county town (gis.demo_city): every promise the generator makes, checked on the
generated data. The town is generated once per module; measurements are in metres in
CGCS2000 / 3-degree GK CM 114E (EPSG:4547)."""
from __future__ import annotations

import random
import re
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import shapely
import yaml
from shapely import STRtree

from gis.codes import parse_grid_code, street_kind
from gis.demo_city import CATALOG_PATH, DemoCity, generate_city

SEED = 2026
METRIC = "EPSG:4547"
LAYERS = ("roads", "buildings", "water", "grids", "parts")
ROAD_KINDS = {"主干道", "次干道", "支路", "步行街"}
BUILDING_KINDS = {"住宅", "商业", "公共", "工业"}
MANHOLE_CLASSES = [f"01{n:02d}" for n in range(1, 13) if n != 4]   # 01xx 井盖 (0104 is a gully grate)
CATALOG = yaml.safe_load(CATALOG_PATH.read_text(encoding="utf-8"))
CLASS_NAMES = {str(code): cls["name"] for big in CATALOG["parts"].values()   # big class 99 has none
               for code, cls in (big.get("classes") or {}).items()}


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def generated() -> tuple[DemoCity, float]:
    began = time.perf_counter()
    city = generate_city(SEED)
    return city, time.perf_counter() - began


@pytest.fixture(scope="module")
def city(generated) -> DemoCity:
    return generated[0]


@pytest.fixture(scope="module")
def m(city) -> SimpleNamespace:
    """The layers in metres."""
    return SimpleNamespace(**{name: getattr(city, name).to_crs(METRIC) for name in LAYERS})


@pytest.fixture(scope="module")
def road_lines(m) -> np.ndarray:
    return np.asarray(m.roads.geometry.values, dtype=object)


@pytest.fixture(scope="module")
def grid_geoms(m) -> np.ndarray:
    return np.asarray(m.grids.geometry.values, dtype=object)


@pytest.fixture(scope="module")
def river(m) -> shapely.Geometry:
    return m.water.geometry[m.water["name"] == "洣水"].iloc[0]


@pytest.fixture(scope="module")
def junctions(road_lines, m) -> pd.DataFrame:
    """Points where two roads cross or meet, with the kinds of both roads."""
    a, b = STRtree(road_lines).query(road_lines, predicate="intersects")
    a, b = a[a < b], b[a < b]
    points, which = shapely.get_parts(shapely.intersection(road_lines[a], road_lines[b]), return_index=True)
    single = shapely.get_type_id(points) == 0
    kinds = m.roads["kind"].to_numpy()
    return pd.DataFrame({"geometry": points[single], "kind_a": kinds[a[which[single]]],
                         "kind_b": kinds[b[which[single]]]})


def parts_of(m, *classes: str) -> np.ndarray:
    return np.asarray(m.parts.geometry.values[m.parts["class_code"].isin(classes).to_numpy()], dtype=object)


def along_own_road(m, road_lines: np.ndarray, code: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parts of a class placed along streets, with the road each is named after ("人民路路灯0032")
    and the distance to its centreline: (points, road index, distance). A road cut by the
    river has two pieces of one name; the nearer piece is the part's road."""
    parts = m.parts[m.parts["class_code"] == code]
    names = parts["name"].str.replace(r"\d{4}$", "", regex=True)
    for piece in sorted(set(CLASS_NAMES[code].split("/")) | {CLASS_NAMES[code]}, key=len, reverse=True):
        names = names.str.removesuffix(piece)
    pairs = pd.DataFrame({"part": np.arange(len(parts)), "name": names.to_numpy()}).merge(
        pd.DataFrame({"road": np.arange(len(road_lines)), "name": m.roads["name"].to_numpy()}), on="name")
    assert pairs["part"].nunique() == len(parts), f"{code}: a part is not named after a road"
    points = np.asarray(parts.geometry.values, dtype=object)
    pairs["distance"] = shapely.distance(points[pairs["part"]], road_lines[pairs["road"]])
    best = pairs.sort_values(["part", "distance"]).groupby("part").first()
    return points, best["road"].to_numpy(), best["distance"].to_numpy()


def gaps_along_roads(road_lines: np.ndarray, points: np.ndarray, road: np.ndarray, by_side: bool) -> np.ndarray:
    """Distances between successive points along their road (per side if by_side)."""
    lines = road_lines[road]
    d = shapely.line_locate_point(lines, points)
    foot = shapely.get_coordinates(shapely.line_interpolate_point(lines, d))
    ahead = shapely.get_coordinates(shapely.line_interpolate_point(lines, d + 0.5))
    behind = shapely.get_coordinates(shapely.line_interpolate_point(lines, d - 0.5))
    t, off = ahead - behind, shapely.get_coordinates(points) - foot
    side = np.sign(t[:, 0] * off[:, 1] - t[:, 1] * off[:, 0]) if by_side else np.zeros(len(points))
    frame = pd.DataFrame({"road": road, "side": side, "d": d}).sort_values(["road", "side", "d"])
    return frame.groupby(["road", "side"])["d"].diff().dropna().to_numpy()


def chord_deviation(lines: np.ndarray) -> np.ndarray:
    """How far each line strays from the straight chord between its ends (m)."""
    ends = shapely.linestrings(np.stack([shapely.get_coordinates(shapely.get_point(lines, 0)),
                                         shapely.get_coordinates(shapely.get_point(lines, -1))], axis=1))
    return shapely.hausdorff_distance(lines, ends)


def azimuth(lines: np.ndarray) -> np.ndarray:
    """Direction of each line's chord, degrees in [0, 180)."""
    a = shapely.get_coordinates(shapely.get_point(lines, 0))
    b = shapely.get_coordinates(shapely.get_point(lines, -1))
    return np.degrees(np.arctan2(b[:, 1] - a[:, 1], b[:, 0] - a[:, 0])) % 180


def angle_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    diff = np.abs(a - b) % 180
    return np.minimum(diff, 180 - diff)


# ---------------------------------------------------------------------------- API
def test_the_city_is_攸县_in_wgs84_with_the_promised_columns(city):
    assert (city.county_code, city.county_name) == ("430223", "攸县")
    columns = {
        "roads": ["name", "kind", "width_m", "geometry"],
        "buildings": ["kind", "floors", "geometry"],
        "water": ["name", "geometry"],
        "grids": ["code", "name", "community_name", "street_name", "population", "geometry"],
        "parts": ["class_code", "name", "status", "dept_owner", "dept_rights", "dept_maintainer",
                  "source", "geometry"],
    }
    types = {"roads": {"LineString"}, "buildings": {"Polygon"}, "water": {"Polygon", "MultiPolygon"},
             "grids": {"Polygon"}, "parts": {"Point"}}
    for name, expected in columns.items():
        layer = getattr(city, name)
        assert layer.crs.to_epsg() == 4326, name
        assert list(layer.columns) == expected, name
        assert set(layer.geom_type) <= types[name], name
        assert layer.geometry.is_valid.all() and not layer.geometry.is_empty.any(), name
    lon0, lat0, lon1, lat1 = city.grids.total_bounds
    assert lon0 < 113.345 < lon1 and lat0 < 27.0 < lat1           # centred on the town of 攸县
    assert lon1 - lon0 < 0.06 and lat1 - lat0 < 0.06              # a county town, ~3 km across


# ---------------------------------------------------------------------------- determinism
def test_same_seed_gives_the_identical_city_whatever_the_global_random_state(city):
    random.seed(99)
    np.random.seed(99)       # noqa: NPY002 - proves the generator ignores the global state
    again = generate_city(SEED)
    for name in LAYERS:
        a, b = getattr(city, name), getattr(again, name)
        assert len(a) == len(b), name
        assert list(shapely.to_wkb(a.geometry.values)) == list(shapely.to_wkb(b.geometry.values)), name
        pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"), obj=name)
    assert again.departments == city.departments


def test_another_seed_gives_another_layout(city):
    other = generate_city(SEED + 1)
    for name in ("roads", "grids", "parts"):
        ours = set(shapely.to_wkb(getattr(city, name).geometry.values))
        theirs = set(shapely.to_wkb(getattr(other, name).geometry.values))
        assert not ours & theirs, name


# ---------------------------------------------------------------------------- streets
def test_roads_have_kinds_widths_and_real_names(m):
    roads = m.roads
    assert set(roads["kind"]) <= ROAD_KINDS
    assert {"主干道", "次干道", "支路"} <= set(roads["kind"])
    assert roads["width_m"].dtype == float and (roads["width_m"] > 0).all()
    median = roads.groupby("kind")["width_m"].median()
    assert median["主干道"] > median["次干道"] > median["支路"]
    mains = set(roads.loc[roads["kind"] == "主干道", "name"])
    assert len(mains) >= 4
    assert mains & {"建设路", "人民路", "解放大道", "攸州大道", "胜利路", "新华路"}
    assert all(re.fullmatch(r"[\u4e00-\u9fff]+(路|大道|街|巷)", n) for n in roads["name"])


def test_main_roads_are_bent_and_300_to_500_m_apart(m, road_lines):
    main = (m.roads["kind"] == "主干道").to_numpy()
    lines = road_lines[main]
    assert (chord_deviation(lines) > 2.0).all()                    # no ruler-straight main road
    directions = azimuth(lines)
    first = angle_between(directions, directions[0]) < 45          # the two families of main roads
    spacings = []
    for family in (first, ~first):
        group = lines[family]
        assert len(group) >= 3
        middles = shapely.line_interpolate_point(group, 0.5, normalized=True)
        dist = shapely.distance(middles[:, None], group[None, :])
        dist[np.arange(len(group)), np.arange(len(group))] = np.inf
        spacings.append(dist.min(axis=1))
    spacings = np.concatenate(spacings)
    assert 300 <= np.median(spacings) <= 500
    assert spacings.min() >= 280 and spacings.max() <= 560


def test_minor_roads_are_about_100_m_apart_bent_and_staggered(m, road_lines):
    minor = np.flatnonzero((m.roads["kind"] == "支路").to_numpy())
    assert len(minor) >= 150
    middles = shapely.line_interpolate_point(road_lines[minor], 0.5, normalized=True)
    directions = azimuth(road_lines)
    nearest = []
    for k, middle in zip(minor, middles):
        parallel = np.flatnonzero(angle_between(directions, directions[k]) < 25)
        parallel = parallel[parallel != k]
        nearest.append(shapely.distance(middle, road_lines[parallel]).min())
    nearest = np.array(nearest)
    assert 80 <= np.median(nearest) <= 125
    assert np.mean((nearest > 60) & (nearest < 150)) >= 0.9
    # Bent with the town, not a lattice: lanes curve, and across a main road they mostly do
    # not continue (T-junctions).
    assert np.median(chord_deviation(road_lines[minor])) > 1.0
    assert np.std(angle_between(directions[minor] % 90, 45)) > 1.0
    ends = np.concatenate([shapely.get_point(road_lines[minor], 0), shapely.get_point(road_lines[minor], -1)])
    mains = road_lines[(m.roads["kind"] == "主干道").to_numpy()]
    on_main = ends[shapely.distance(ends[:, None], mains[None, :]).min(axis=1) < 1.0]
    continued = [(shapely.distance(e, on_main) < 3.0).sum() > 1 for e in on_main]
    assert len(on_main) >= 50 and np.mean(continued) < 0.5


def test_the_river_洣水_crosses_the_town_and_a_park_pond_lies_in_it(m, river, grid_geoms):
    assert river.is_valid and river.area > 200_000
    town = shapely.union_all(grid_geoms)
    assert shapely.get_num_geometries(town) == 2                   # the river cuts the town in two
    hull = shapely.convex_hull(town)
    assert river.intersection(hull).area > 0.1 * river.area
    overlap = shapely.area(shapely.intersection(grid_geoms, river))
    assert overlap.sum() < 1.0                                     # grids stop at the bank
    ponds = m.water[m.water["name"] != "洣水"]
    assert len(ponds) >= 1
    for pond in ponds.geometry:
        assert pond.area > 500 and town.contains(pond)


# ---------------------------------------------------------------------------- unit grids
def test_there_are_500_plus_valid_grids_of_about_a_hectare(m, grid_geoms):
    assert len(grid_geoms) >= 500
    assert shapely.is_valid(grid_geoms).all() and not shapely.is_empty(grid_geoms).any()
    area = shapely.area(grid_geoms)
    assert area.min() >= 6_000 and area.max() <= 20_000
    assert 8_000 <= np.median(area) <= 13_000


def test_grids_do_not_overlap(grid_geoms):
    a, b = STRtree(grid_geoms).query(grid_geoms, predicate="intersects")
    a, b = a[a < b], b[a < b]
    assert len(a) > len(grid_geoms)                                # neighbours touch …
    overlap = shapely.area(shapely.intersection(grid_geoms[a], grid_geoms[b]))
    assert overlap.max() < 0.01                                    # … but never overlap


def test_each_community_is_one_block_without_holes(m, grid_geoms):
    community = m.grids["code"].str[:12].to_numpy()
    for code in np.unique(community):
        union = shapely.union_all(grid_geoms[community == code])
        assert union.geom_type == "Polygon", code
        holes = [shapely.area(shapely.polygons(ring)) for ring in union.interiors]
        assert all(h <= 1.0 for h in holes), code


def test_grid_edges_follow_the_streets(m, grid_geoms, road_lines, river):
    rings = shapely.get_exterior_ring(grid_geoms)
    lengths = shapely.length(rings)
    count = (lengths // 5).astype(int)
    ring = np.repeat(np.arange(len(rings)), count)
    d = (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)) * 5.0
    samples = shapely.line_interpolate_point(rings[ring], d)
    edges = np.concatenate([road_lines, [shapely.boundary(river)]])
    on_edge = np.unique(STRtree(edges).query(samples, predicate="dwithin", distance=0.5)[0])
    assert len(on_edge) >= 0.95 * len(samples)     # the rest: cuts splitting the park


def test_grid_codes_carry_the_hierarchy(m):
    grids = m.grids
    codes = grids["code"]
    assert codes.is_unique
    assert codes.str.fullmatch(r"430223\d{9}").all()
    assert all(parse_grid_code(c).code == c for c in codes)
    street = codes.str[6:9]
    kinds = street.map(street_kind)
    assert street.nunique() >= 3
    assert (kinds == "街道").any() and (kinds == "镇").any()
    assert set(kinds) <= {"街道", "镇"}
    community = codes.str[:12]
    assert community.nunique() >= 20
    sizes = grids.groupby(community).size()
    assert sizes.between(15, 40).all()
    for code, group in grids.groupby(community):
        sequence = group["code"].str[12:].astype(int).sort_values().to_list()
        assert sequence == list(range(1, len(group) + 1)), code   # 001, 002, … per community
    # Names agree with the codes at every level.
    assert (grids.groupby(community)["community_name"].nunique() == 1).all()
    assert grids.groupby("community_name")["code"].apply(lambda c: c.str[:12].nunique()).eq(1).all()
    assert (grids.groupby(street)["street_name"].nunique() == 1).all()
    for kind, name in zip(kinds, grids["street_name"]):
        assert name.endswith(kind)
    for kind, name in zip(kinds, grids["community_name"]):
        assert name.endswith("社区" if kind == "街道" else "村")
    expected = [f"{c}第{s}网格" for c, s in zip(grids["community_name"], codes.str[12:])]
    assert grids["name"].to_list() == expected


def test_population_is_plausible_and_follows_the_homes(m, grid_geoms):
    population = m.grids["population"]
    assert pd.api.types.is_integer_dtype(population)
    assert population.between(50, 800).all()
    homes = m.buildings[m.buildings["kind"] == "住宅"]
    index, grid = STRtree(grid_geoms).query(homes.geometry.values, predicate="within")
    floor_area = np.bincount(grid, weights=(homes.area * homes["floors"]).to_numpy()[index],
                             minlength=len(grid_geoms))
    ranks = pd.DataFrame({"homes": floor_area, "people": population.to_numpy()}).rank()
    assert ranks["homes"].corr(ranks["people"]) > 0.8


# ---------------------------------------------------------------------------- buildings
def test_buildings_stand_inside_the_blocks_off_the_streets(m, grid_geoms, road_lines, river):
    buildings = m.buildings
    assert len(buildings) >= 1500
    assert set(buildings["kind"]) <= BUILDING_KINDS and len(set(buildings["kind"])) >= 3
    assert pd.api.types.is_integer_dtype(buildings["floors"])
    assert buildings["floors"].between(1, 40).all()
    geoms = np.asarray(buildings.geometry.values, dtype=object)
    index, grid = STRtree(grid_geoms).query(geoms, predicate="within")
    assert np.array_equal(np.sort(index), np.arange(len(geoms)))   # each in exactly one grid
    assert len(STRtree(road_lines).query(geoms, predicate="intersects")[0]) == 0
    assert not shapely.intersects(geoms, river).any()
    per_grid = np.bincount(grid, minlength=len(grid_geoms))
    assert np.mean(per_grid >= 2) >= 0.7                           # several in built-up grids
    assert np.median(per_grid) >= 3


# ---------------------------------------------------------------------------- parts
def test_parts_cover_every_catalog_class(m):
    assert len(m.parts) >= 10_000
    assert len(CLASS_NAMES) >= 40
    assert set(m.parts["class_code"]) == set(CLASS_NAMES)
    assert m.parts["class_code"].str.fullmatch(r"\d{4}").all()


def test_every_part_lies_well_inside_exactly_one_grid(m, grid_geoms):
    points = np.asarray(m.parts.geometry.values, dtype=object)
    index, grid = STRtree(grid_geoms).query(points, predicate="within")
    assert np.array_equal(np.sort(index), np.arange(len(points)))
    clearance = shapely.distance(points[index], shapely.boundary(grid_geoms[grid]))
    assert clearance.min() >= 0.5


def test_part_attributes_use_the_catalog_values(m):
    parts = m.parts
    assert set(parts["status"]) == set(CATALOG["part_status"])
    share = parts["status"].value_counts(normalize=True)
    assert share["完好"] > 0.85
    assert all(0 < share[s] < 0.1 for s in ("破损", "丢失", "占用"))
    assert set(parts["source"]) <= set(CATALOG["part_data_source"])
    assert parts["name"].is_unique
    for code, name in zip(parts["class_code"], parts["name"]):
        assert re.fullmatch(r".+\d{4}", name), name
        assert any(piece in name for piece in CLASS_NAMES[code].split("/")), name


def test_departments_are_realistic_and_listed(city, m):
    parts = m.parts
    used = set(parts["dept_owner"]) | set(parts["dept_rights"]) | set(parts["dept_maintainer"])
    assert set(city.departments) == used and len(city.departments) == len(used)
    assert all(parts[f].str.len().gt(0).all() for f in ("dept_owner", "dept_rights", "dept_maintainer"))

    def only(code: str, field: str) -> set[str]:
        return set(parts.loc[parts["class_code"] == code, field])

    assert only("0101", "dept_rights") == {"攸县自来水公司"}                  # 上水井盖
    assert only("0102", "dept_owner") == only("0103", "dept_owner") == {"县住房和城乡建设局"}
    assert only("0105", "dept_rights") == {"国网攸县供电公司"}                # 电力井盖
    assert only("0107", "dept_rights") == {"中国电信攸县分公司"}              # 通信井盖
    assert only("0110", "dept_rights") == {"攸县燃气公司"}                    # 燃气井盖
    assert only("0114", "dept_owner") == {"县城市管理和综合执法局"}           # 路灯
    assert only("0114", "dept_maintainer") == {"县城市管理和综合执法局路灯管理所"}
    assert only("0402", "dept_maintainer") == only("0404", "dept_maintainer") == {"县园林绿化中心"}
    assert only("0302", "dept_maintainer") == {"县环卫中心"}                  # 垃圾箱
    assert only("0205", "dept_owner") == {"县公安局交警大队"}                 # 交通信号灯
    assert (parts["dept_owner"] != parts["dept_maintainer"]).any()           # they can differ


def test_manhole_covers_lie_in_the_carriageway_near_the_centreline(m, road_lines):
    distances = np.concatenate([along_own_road(m, road_lines, code)[2] for code in MANHOLE_CLASSES])
    assert len(distances) >= 3000
    assert distances.min() >= 1.45 and distances.max() <= 3.05


def test_street_lights_every_30_m_on_both_sides_7_m_out(m, road_lines):
    lights, road, distance = along_own_road(m, road_lines, "0114")
    kinds, widths = m.roads["kind"].to_numpy()[road], m.roads["width_m"].to_numpy()[road]
    minor = kinds == "支路"
    assert minor.mean() > 0.5
    assert np.abs(distance[minor] - 7.0).max() < 0.1               # ~7 m off a 支路's centreline
    assert np.abs(distance - np.maximum(7.0, widths / 2 - 1.0)).max() < 0.1   # at the kerb of wider roads
    assert 27 <= np.median(gaps_along_roads(road_lines, lights, road, by_side=True)) <= 33
    both = gaps_along_roads(road_lines, lights, road, by_side=False)
    assert 12 <= np.median(both) <= 18                             # the two sides staggered


def test_other_street_furniture_keeps_its_spacing(m, road_lines):
    expected = {   # class: (spacing m, per side?)
        "0402": (9, True),      # 行道树, both sides
        "0302": (50, False),    # 垃圾箱, alternating sides
        "0113": (120, False),   # 消火栓
    }
    for code, (spacing, by_side) in expected.items():
        points, road, _ = along_own_road(m, road_lines, code)
        gaps = gaps_along_roads(road_lines, points, road, by_side)
        assert 0.85 * spacing <= np.median(gaps) <= 1.15 * spacing, code
    _, _, distance = along_own_road(m, road_lines, "0402")
    assert distance.min() >= 5.4                                   # in the pavement, not the road


def test_bus_stops_stand_on_main_roads_every_500_m(m, road_lines):
    stops, road, distance = along_own_road(m, road_lines, "0201")
    kinds = m.roads["kind"].to_numpy()
    assert (kinds[road] == "主干道").all() and distance.max() < 25
    main_length = shapely.length(road_lines[kinds == "主干道"]).sum()
    assert 0.5 * 2 * main_length / 500 <= len(stops) <= 1.2 * 2 * main_length / 500


def test_signals_and_cameras_stand_at_junctions(m, junctions):
    crossings = junctions[((junctions.kind_a == "主干道") & junctions.kind_b.isin(["主干道", "次干道"]))
                          | ((junctions.kind_b == "主干道") & junctions.kind_a.isin(["主干道", "次干道"]))]
    crossing_points = crossings.geometry.to_numpy()
    signals = parts_of(m, "0205")
    assert len(signals) >= 2 * len(crossing_points)
    to_crossing = shapely.distance(signals[:, None], crossing_points[None, :]).min(axis=1)
    assert to_crossing.max() <= 45 and to_crossing.min() >= 3      # at the crossing, not on it
    cameras = parts_of(m, "0604")
    every_junction = junctions.geometry.to_numpy()
    _, to_junction = STRtree(every_junction).query_nearest(cameras, return_distance=True, all_matches=False)
    assert len(cameras) >= len(crossing_points) and to_junction.max() <= 40


def test_river_railings_line_the_bank_and_rare_or_park_parts_are_where_they_belong(m, river):
    railings = parts_of(m, "0603")
    assert len(railings) >= 100
    assert shapely.distance(railings, shapely.boundary(river)).max() <= 6.0
    assert not shapely.intersects(railings, river).any()
    assert 1 <= len(parts_of(m, "0401")) <= 20                     # 古树名木 are rare
    pond = m.water[m.water["name"] != "洣水"].geometry.iloc[0]
    greens = m.parts[m.parts["class_code"] == "0404"]
    in_park = greens[greens["name"].str.startswith("攸州公园")]
    assert len(in_park) >= 0.5 * len(greens)                     # 绿地 mostly in the park …
    assert shapely.distance(np.asarray(in_park.geometry.values), pond).max() < 350   # … by the pond
    assert not shapely.intersects(np.asarray(m.parts.geometry.values, dtype=object), pond).any()


def test_amenities_are_spread_sensibly(m, road_lines):
    communities = m.grids["code"].str[:12].nunique()
    stations = parts_of(m, "0303")                                 # 垃圾收集站: one per community
    assert 0.8 * communities <= len(stations) <= communities
    toilets = parts_of(m, "0301")                                  # 公共厕所: a few hundred m apart
    apart = shapely.distance(toilets[:, None], toilets[None, :])
    np.fill_diagonal(apart, np.inf)
    assert len(toilets) >= 20 and 150 <= np.median(apart.min(axis=1)) <= 800
    for code in ("0116", "0117", "0118"):                          # 邮筒, 报刊亭, 信息亭 on main roads
        _, road, distance = along_own_road(m, road_lines, code)
        assert (m.roads["kind"].to_numpy()[road] == "主干道").all() and distance.max() < 20, code
