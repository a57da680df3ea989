"""The offline demo city: a believable county town of 攸县 (Hunan), generated deterministically.

`generate_city(seed)` returns roads, buildings, water, unit grids (单元网格) and city parts
(部件) as GeoDataFrames in EPSG:4326 for `citygrid demo seed`. Nothing here touches a database.

How the town is made:
1. Plan space (u east, v north, metres from the south-west corner): bent main roads (主干道)
   ~450 m apart with a ring road around the town, secondary roads (次干道) between some of
   them, the river 洣水 across the middle, and minor roads (支路) ~100 m apart inside every
   block, blended between the block's bounding roads so that they bend with them and do not
   line up across the main roads (T-junctions, not a lattice).
2. The noded street lines (plus the river banks) are polygonized: the faces are the unit
   grids, so grid edges follow the streets.
3. Everything is bent once more, turned and moved onto the real place in CGCS2000 / 3-degree
   Gauss-Kruger CM 114E (EPSG:4547), where grid sizes are fitted (faces too large are split,
   too small merged), grids are grouped into communities (社区/村) and streets (街道/镇),
   buildings are laid out behind the road set-backs and parts are placed along the streets.
4. The layers are reprojected to WGS 84.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import yaml
from pyproj import Transformer
from shapely import STRtree
from shapely.geometry import LineString, Polygon
from shapely.ops import split as split_geometry

from gis.codes import street_kind

COUNTY_CODE = "430223"                 # 攸县, GB/T 2260
COUNTY_NAME = "攸县"
CENTER_LONLAT = (113.345, 27.000)
METRIC_CRS = "EPSG:4547"               # CGCS2000 / 3-degree Gauss-Kruger CM 114E
OUTPUT_CRS = "EPSG:4326"
CATALOG_PATH = Path(__file__).parent / "seed" / "catalog.yaml"

GRID_AREA_RANGE = (6_000.0, 20_000.0)  # m², what a unit grid may measure
COMMUNITY_GRID_RANGE = (15, 40)        # grids per community
PART_EDGE_CLEARANCE = 0.6              # m, parts keep this far inside their grid

MAIN, SECONDARY, MINOR, PEDESTRIAN = "主干道", "次干道", "支路", "步行街"
RIVER_NAME, POND_NAME, PARK_NAME = "洣水", "荷花塘", "攸州公园"

_AREA_LO, _AREA_HI = 6_500.0, 19_000.0  # targets for fitting grid sizes, inside GRID_AREA_RANGE
_STEP = 10.0                            # m, vertex spacing of plan curves
_EXT = 600.0                            # m, plan curves run this far beyond the town
_SNAP = 0.001                           # m, precision grids are re-noded at
_OVERSHOOT = 0.2                        # m, road ends poke past the road they meet, so noding is exact
_MINOR_SPACING = 100.0                  # m between 支路
_BUILDING_INSET = 10.0                  # m, buildings stay behind the 支路 red line plus a yard
_ARTERIAL_SETBACK = 4.0                 # m, buildings stay behind main/secondary road red lines

# (street code, name): 街道 001–099, 镇 100–199 (GB/T 10114).
STREETS = {"001": "联星街道", "002": "江桥街道", "003": "春联街道", "100": "网岭镇"}
_NS_MAIN_NAMES = ["建设路", "人民路", "解放大道", "攸州大道", "东正路", "雪花路", "城关路", "迎宾大道"]
_EW_MAIN_NAMES = ["胜利路", "新华路", "联星路", "江桥路", "春联路", "府前路", "长兴路", "伍家路"]
_SECONDARY_NAMES = ["育才路", "体育路", "东风路", "和平路", "向阳路", "朝阳路", "光明路", "书院路",
                    "宝塔路", "紫荆路", "金鸡路", "凤岭路", "文化路", "花园路", "石门路", "梅城路"]
_RING_NAMES = {"west": "西环路", "east": "东环路", "south": "南环路", "north": "北环路"}
_PEDESTRIAN_NAME = "文昌步行街"
_COMMUNITY_NAMES = [
    "东正社区", "西正社区", "城关社区", "新市社区", "雪花社区", "胜利社区", "建设社区", "文化社区",
    "府前社区", "南门社区", "北门社区", "紫荆社区", "桃源社区", "百花社区", "青龙社区", "凤岭社区",
    "金鸡社区", "锦绣社区", "阳光社区", "和平社区", "柳湖社区", "江南社区", "江北社区", "河滨社区",
    "朝阳社区", "长岭社区", "梅园社区", "书院社区", "宝塔社区", "迎宾社区", "育才社区", "东门社区",
    "西门社区", "新华社区", "光明社区", "春晖社区", "石门社区", "龙井社区", "花桥社区", "洣江社区",
    "潭湖社区", "铁山社区", "太和社区", "城南社区", "城北社区", "凤凰社区", "荷花社区", "枫林社区",
]
_VILLAGE_NAMES = ["网岭村", "罗家坪村", "石羊塘村", "大塘村", "黄丰桥村", "高枧村", "新塘村", "枫林村",
                  "合兴村", "龙山村", "洣江村", "坪阳村", "柏市村", "丫江村", "洲上村", "荷塘村",
                  "樟树村", "沙陂村", "泉塘村", "丁家村"]

# 主管部门, 权属单位, 养护单位 per part class; "{office}" is the street office of the part's grid.
_CONSTRUCTION = "县住房和城乡建设局"
_CITY = "县城市管理和综合执法局"
_LIGHTING = "县城市管理和综合执法局路灯管理所"
_DRAINAGE = "县住房和城乡建设局排水管理所"
_MUNICIPAL = "县市政设施维护中心"
_GARDENS = "县园林绿化中心"
_SANITATION = "县环卫中心"
_TRAFFIC = "县公安局交警大队"
_WATER = "攸县自来水公司"
_POWER = "国网攸县供电公司"
_TELECOM = "中国电信攸县分公司"
_POST = "中国邮政集团有限公司攸县分公司"
_DEPARTMENTS: dict[str, tuple[str, str, str]] = {
    "0101": (_CONSTRUCTION, _WATER, _WATER),
    "0102": (_CONSTRUCTION, _CONSTRUCTION, _DRAINAGE),
    "0103": (_CONSTRUCTION, _CONSTRUCTION, _DRAINAGE),
    "0104": (_CONSTRUCTION, _CONSTRUCTION, _DRAINAGE),
    "0105": (_POWER, _POWER, _POWER),
    "0106": (_CITY, _CITY, _LIGHTING),
    "0107": ("县工业和信息化局", _TELECOM, _TELECOM),
    "0108": ("县文化旅游广电体育局", "湖南有线攸县网络有限公司", "湖南有线攸县网络有限公司"),
    "0109": (_CONSTRUCTION, "攸县工业园供热有限公司", "攸县工业园供热有限公司"),
    "0110": (_CONSTRUCTION, "攸县燃气公司", "攸县燃气公司"),
    "0111": ("县公安局", "县公安局", "县公安局"),
    "0112": (_CONSTRUCTION, _CONSTRUCTION, _MUNICIPAL),
    "0113": ("县消防救援大队", _WATER, _WATER),
    "0114": (_CITY, _CITY, _LIGHTING),
    "0115": (_POWER, _POWER, _POWER),
    "0116": ("县邮政管理局", _POST, _POST),
    "0117": (_CITY, _POST, _POST),
    "0118": ("县工业和信息化局", _TELECOM, _TELECOM),
    "0201": ("县交通运输局", "攸县公共交通有限公司", "攸县公共交通有限公司"),
    "0202": (_TRAFFIC, "攸县城市建设投资集团", "攸县城市建设投资集团"),
    "0203": (_CONSTRUCTION, _CONSTRUCTION, _MUNICIPAL),
    "0204": (_CONSTRUCTION, _CONSTRUCTION, _MUNICIPAL),
    "0205": (_TRAFFIC, _TRAFFIC, _TRAFFIC),
    "0206": (_TRAFFIC, "县交通运输局", "县交通运输局"),
    "0207": (_TRAFFIC, _CONSTRUCTION, _MUNICIPAL),
    "0208": (_TRAFFIC, _TRAFFIC, _MUNICIPAL),
    "0209": ("县民政局", "县民政局", _MUNICIPAL),
    "0210": (_CITY, _CITY, _CITY),
    "0301": (_CITY, _SANITATION, _SANITATION),
    "0302": (_CITY, _SANITATION, _SANITATION),
    "0303": (_CITY, _SANITATION, _SANITATION),
    "0304": (_CITY, _CITY, _CITY),
    "0305": (_CITY, _CITY, _CITY),
    "0401": ("县林业局", "县林业局", _GARDENS),
    "0402": (_CONSTRUCTION, _GARDENS, _GARDENS),
    "0403": (_CONSTRUCTION, _GARDENS, _GARDENS),
    "0404": (_CONSTRUCTION, _GARDENS, _GARDENS),
    "0405": (_CONSTRUCTION, _GARDENS, _GARDENS),
    "0406": ("县文化旅游广电体育局", _CONSTRUCTION, _GARDENS),
    "0407": (_CONSTRUCTION, _GARDENS, _GARDENS),
    "0501": ("县委宣传部", "{office}", "{office}"),
    "0502": ("县人民防空办公室", "县人民防空办公室", "县人民防空办公室"),
    "0503": ("县自然资源局", "县自然资源局", "{office}"),
    "0601": ("县应急管理局", "县应急管理局", "县应急管理局"),
    "0602": (_CONSTRUCTION, "攸县城市建设投资集团", "县建设工程质量安全监督站"),
    "0603": ("县水利局", "县水利局", _MUNICIPAL),
    "0604": ("县公安局", "县公安局", _TELECOM),   # 雪亮工程 cameras, kept up by the carrier
}
_STATUS_WEIGHTS = {"完好": 0.94, "破损": 0.035, "丢失": 0.01, "占用": 0.015}
_SOURCE_WEIGHTS = {"实测": 0.72, "地形图": 0.10, "调绘": 0.15, "其它": 0.03}


@dataclass
class DemoCity:
    county_code: str          # "430223"
    county_name: str          # "攸县"
    roads: gpd.GeoDataFrame      # name, kind ('主干道'|'次干道'|'支路'|'步行街'), width_m, LineString
    buildings: gpd.GeoDataFrame  # kind ('住宅'|'商业'|'公共'|'工业'), floors, Polygon
    water: gpd.GeoDataFrame      # name, Polygon
    grids: gpd.GeoDataFrame      # 单元网格: code, name, community_name, street_name, population, Polygon
    parts: gpd.GeoDataFrame      # 部件: class_code, name, status, dept_owner, dept_rights,
    #                              dept_maintainer, source, Point
    departments: list[str]       # every department name used in parts


def generate_city(seed: int = 2026) -> DemoCity:
    """The demo town for `seed`: the same seed gives the same town, byte for byte."""
    plan_rng, town_rng, build_rng, part_rng = np.random.default_rng(seed).spawn(4)
    plan = _plan(plan_rng)
    warp = _make_warp(plan, plan_rng)
    roads = _roads_to_metric(plan, warp)
    faces = _faces_to_metric(plan, warp)
    grids = _grids(plan, faces, warp, town_rng)
    landuse = _landuse(plan, grids, roads, warp, town_rng)
    buildings = _buildings(grids, landuse, roads, build_rng)
    grids["population"] = _population(grids, buildings, town_rng)
    river = shapely.set_precision(_to_metric(plan.river, warp), _SNAP)   # its banks, as the grids'
    pond = _to_metric(plan.pond, warp)
    parts = _parts(plan, roads, grids, landuse, river, pond, warp, part_rng)
    water = gpd.GeoDataFrame({"name": [RIVER_NAME, POND_NAME]}, geometry=[river, pond], crs=METRIC_CRS)
    return DemoCity(
        county_code=COUNTY_CODE,
        county_name=COUNTY_NAME,
        roads=_output(roads[["name", "kind", "width_m", "geometry"]]),
        buildings=_output(buildings[["kind", "floors", "geometry"]]),
        water=_output(water),
        grids=_output(grids[["code", "name", "community_name", "street_name", "population", "geometry"]]),
        parts=_output(parts),
        departments=sorted(set(parts["dept_owner"]) | set(parts["dept_rights"]) | set(parts["dept_maintainer"])),
    )


def _output(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(frame.reset_index(drop=True), geometry="geometry", crs=METRIC_CRS).to_crs(OUTPUT_CRS)


@lru_cache(maxsize=1)
def part_classes() -> dict[str, str]:
    """Part class code → name from the seed catalog (big class 99 has none)."""
    doc = yaml.safe_load(CATALOG_PATH.read_text(encoding="utf-8"))
    return {str(code): cls["name"] for big in doc["parts"].values()
            for code, cls in (big.get("classes") or {}).items()}


# =============================================================================== plan space
Wave = tuple[float, float, float]   # amplitude m, wavelength m, phase rad


@dataclass(frozen=True)
class _Curve:
    """A gently bent line in plan space: u = f(v) if it runs north–south ("ns"), v = f(u) if
    it runs west–east ("ew"). A minor road blends two curves at fraction t."""
    axis: str
    base: float
    waves: tuple[Wave, ...] = ()
    blend: tuple[_Curve, _Curve, float] | None = None

    def __call__(self, s: np.ndarray) -> np.ndarray:
        s = np.asarray(s, dtype=float)
        if self.blend:
            lo, hi, t = self.blend
            out = (1 - t) * lo(s) + t * hi(s)
        else:
            out = np.full_like(s, self.base)
        for amplitude, wavelength, phase in self.waves:
            out = out + amplitude * np.sin(2 * np.pi * s / wavelength + phase)
        return out

    def line(self, s0: float, s1: float) -> LineString:
        # Samples on multiples of _STEP, so curves sampled twice share their vertices exactly.
        s = np.arange(np.floor(s0 / _STEP), np.ceil(s1 / _STEP) + 1) * _STEP
        f = self(s)
        return LineString(np.column_stack([f, s] if self.axis == "ns" else [s, f]))


@dataclass
class _Artery:
    """A main or secondary road (or ring road) of the plan."""
    name: str
    kind: str
    width: float
    curve: _Curve
    bridge: bool      # crosses the river (north–south roads only)


@dataclass
class _Block:
    """The land between two neighbouring arteries each way; minor roads are laid inside it."""
    poly: Polygon     # plan space
    col: int          # index of the west artery in _Plan.ns
    row: int          # index of the south boundary in _Plan.rows
    super_col: int    # main-road block (superblock) it belongs to
    super_row: int
    north: bool       # north of the river
    street: str = ""  # street/town code (街道/镇) of its superblock
    park: bool = False


@dataclass
class _PlanRoad:
    name: str
    kind: str
    width: float
    line: LineString  # plan space


@dataclass
class _Plan:
    """The town in plan space (u east, v north, metres from the south-west corner)."""
    width: float                   # town extent west–east, m
    height: float                  # south–north, m
    river: Polygon                 # 洣水, reaching beyond the town
    banks: list[LineString]        # the river banks inside the ring road
    town: Polygon                  # inside the ring road
    blocks: list[_Block]
    roads: list[_PlanRoad]
    pond: Polygon
    centre: tuple[float, float]    # commercial centre (plan space)


def _plan(rng: np.random.Generator) -> _Plan:
    """Arteries, river, blocks and minor roads. West–east block boundaries (`rows`) are the
    west–east arteries plus both river banks; the river lies between rows[r] and rows[r + 1]
    where r = len(south)."""
    width, height = rng.uniform(2700, 3100), rng.uniform(2400, 2700)
    names = _NamePool(rng)
    u_main, v_main = _main_positions(width, rng), _main_positions(height, rng)
    river_at = len(v_main) // 2                 # the river takes the place of a main road
    ns = _ns_arteries(u_main, names, rng)
    ew = _ew_arteries(v_main, river_at, names, rng)
    south_bank, north_bank = _river_banks(v_main[river_at], rng)
    south = [a for a in ew if a.curve.base < v_main[river_at]]
    north = [a for a in ew if a.curve.base > v_main[river_at]]
    rows = [a.curve for a in south] + [south_bank, north_bank] + [a.curve for a in north]
    row_is_main = [a.kind == MAIN for a in south] + [True, True] + [a.kind == MAIN for a in north]
    river = _band(south_bank, north_bank, -_EXT, width + _EXT)
    town = _band(ns[0].curve, ns[-1].curve, -_EXT, height + _EXT).intersection(
        _band(ew[0].curve, ew[-1].curve, -_EXT, width + _EXT))
    blocks = _blocks(ns, rows, row_is_main, len(south), width, height)
    park = _choose_park(blocks, len(ns), len(south), rng)
    centre = _centre(ns, north, width)
    roads = _artery_roads(ns, ew, river, width, height)
    row_names = [a.name for a in south] + [None, None] + [a.name for a in north]   # None: a bank
    roads += _minor_roads(blocks, ns, rows, row_names, _pedestrian_block(blocks, centre), names, rng)
    _assign_streets(blocks, ns)
    between_ns_rings = _band(ns[0].curve, ns[-1].curve, -_EXT, height + _EXT).buffer(_OVERSHOOT)
    banks = [bank.line(-_EXT, width + _EXT).intersection(between_ns_rings) for bank in (south_bank, north_bank)]
    return _Plan(width, height, river, banks, town, blocks, roads, _pond(park, rng), centre)


def _assign_streets(blocks: list[_Block], ns: list[_Artery]) -> None:
    """North of the river: 联星街道 west, 江桥街道 east; south: 春联街道, and 网岭镇 on the
    eastern edge of town. Streets part along main roads, so superblocks stay whole."""
    mains = [a.curve.base for a in ns if a.kind == MAIN]
    north_split, south_split = mains[len(mains) // 2], mains[-3]
    for b in blocks:
        west = ns[b.col].curve.base
        if b.north:
            b.street = "001" if west < north_split else "002"
        else:
            b.street = "003" if west < south_split else "100"


class _NamePool:
    """Road names drawn without repeats; numbered lanes (巷) per road they branch from."""

    def __init__(self, rng: np.random.Generator):
        self.ns_main = [str(n) for n in rng.permutation(_NS_MAIN_NAMES)]
        self.ew_main = [str(n) for n in rng.permutation(_EW_MAIN_NAMES)]
        self.secondary = [str(n) for n in rng.permutation(_SECONDARY_NAMES)]
        self.lanes: dict[str, int] = {}

    def lane(self, road: str) -> str:
        self.lanes[road] = self.lanes.get(road, 0) + 1
        return f"{road}{_chinese_number(self.lanes[road])}巷"


def _chinese_number(n: int) -> str:
    digits = "零一二三四五六七八九"
    if n < 10:
        return digits[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else digits[tens]) + "十" + (digits[ones] if ones else "")


def _main_positions(length: float, rng: np.random.Generator) -> np.ndarray:
    """Main roads ~400–500 m apart, the outer two at the town edge (the ring road)."""
    n = int(np.ceil(length / 470))
    positions = np.linspace(0, length, n + 1)
    positions[1:-1] += rng.uniform(-30, 30, n - 1)
    return positions


def _waves(rng: np.random.Generator, amplitude: tuple[float, float]) -> tuple[Wave, ...]:
    """One long bend plus a small wiggle, so no road is ruler-straight."""
    return ((rng.uniform(*amplitude), rng.uniform(700, 1500), rng.uniform(0, 2 * np.pi)),
            (rng.uniform(0.5, 2.0), rng.uniform(250, 400), rng.uniform(0, 2 * np.pi)))


def _ns_arteries(u_main: np.ndarray, names: _NamePool, rng: np.random.Generator) -> list[_Artery]:
    arteries = []
    for k, u in enumerate(u_main):
        name = (_RING_NAMES["west"] if k == 0 else _RING_NAMES["east"] if k == len(u_main) - 1
                else names.ns_main.pop())
        arteries.append(_Artery(name, MAIN, float(rng.choice([30.0, 32.0, 36.0, 40.0])),
                                _Curve("ns", float(u), _waves(rng, (5, 12))), bridge=True))
    arteries += _secondaries("ns", u_main, set(), names, rng)
    return sorted(arteries, key=lambda a: a.curve.base)


def _ew_arteries(v_main: np.ndarray, river_at: int, names: _NamePool,
                 rng: np.random.Generator) -> list[_Artery]:
    arteries = []
    for k, v in enumerate(v_main):
        if k == river_at:
            continue
        name = (_RING_NAMES["south"] if k == 0 else _RING_NAMES["north"] if k == len(v_main) - 1
                else names.ew_main.pop())
        arteries.append(_Artery(name, MAIN, float(rng.choice([30.0, 32.0, 36.0, 40.0])),
                                _Curve("ew", float(v), _waves(rng, (5, 12))), bridge=False))
    # No secondary road in the two intervals next to the river: the banks bound those blocks.
    arteries += _secondaries("ew", v_main, {river_at - 1, river_at}, names, rng)
    return sorted(arteries, key=lambda a: a.curve.base)


def _secondaries(axis: str, mains: np.ndarray, skip: set[int], names: _NamePool,
                 rng: np.random.Generator) -> list[_Artery]:
    """次干道 halfway between every other pair of main roads."""
    first = int(rng.integers(2))
    out = []
    for k in range(len(mains) - 1):
        if k in skip or (k + first) % 2:
            continue
        base = (mains[k] + mains[k + 1]) / 2 + rng.uniform(-15, 15)
        out.append(_Artery(names.secondary.pop(), SECONDARY, float(rng.choice([20.0, 22.0, 24.0])),
                           _Curve(axis, float(base), _waves(rng, (3, 8))), bridge=False))
    return out


def _river_banks(v: float, rng: np.random.Generator) -> tuple[_Curve, _Curve]:
    """洣水 meanders west–east through the middle of town, 140–190 m wide."""
    course = ((rng.uniform(20, 35), rng.uniform(1300, 2200), rng.uniform(0, 2 * np.pi)),
              (rng.uniform(4, 9), rng.uniform(450, 800), rng.uniform(0, 2 * np.pi)))
    half, swell = rng.uniform(70, 95), (rng.uniform(5, 12), rng.uniform(600, 1100), rng.uniform(0, 2 * np.pi))
    south = _Curve("ew", v - half, course + ((-swell[0], swell[1], swell[2]),))
    north = _Curve("ew", v + half, course + (swell,))
    return south, north


def _band(lo: _Curve, hi: _Curve, s0: float, s1: float) -> Polygon:
    """The strip between two curves of the same axis."""
    a = np.asarray(lo.line(s0, s1).coords)
    b = np.asarray(hi.line(s0, s1).coords)[::-1]
    return Polygon(np.vstack([a, b]))


def _blocks(ns: list[_Artery], rows: list[_Curve], row_is_main: list[bool], river_row: int,
            width: float, height: float) -> list[_Block]:
    ns_is_main = [a.kind == MAIN for a in ns]
    blocks = []
    for col in range(len(ns) - 1):
        strip = _band(ns[col].curve, ns[col + 1].curve, -_EXT, height + _EXT)
        for row in range(len(rows) - 1):
            if row == river_row:                      # between the banks: the river itself
                continue
            poly = strip.intersection(_band(rows[row], rows[row + 1], -_EXT, width + _EXT))
            blocks.append(_Block(poly, col, row, super_col=sum(ns_is_main[1:col + 1]),
                                 super_row=sum(row_is_main[1:row + 1]), north=row > river_row))
    return blocks


def _choose_park(blocks: list[_Block], n_cols: int, river_row: int, rng: np.random.Generator) -> _Block:
    """攸州公园: a riverside block north of the river, not on the ring road."""
    options = [b for b in blocks if b.row == river_row + 1 and 0 < b.col < n_cols - 2]
    park = options[int(rng.integers(len(options)))]
    park.park = True
    return park


def _pond(park: _Block, rng: np.random.Generator) -> Polygon:
    """荷花塘: an oval pond in the park, well inside it."""
    c = np.asarray(park.poly.point_on_surface().coords[0])
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    a, b, turn = rng.uniform(30, 42), rng.uniform(18, 26), rng.uniform(0, np.pi)
    x, y = a * np.cos(t), b * np.sin(t)
    pond = Polygon(np.column_stack([c[0] + x * np.cos(turn) - y * np.sin(turn),
                                    c[1] + x * np.sin(turn) + y * np.cos(turn)]))
    return pond if park.poly.buffer(-20).contains(pond) else pond.intersection(park.poly.buffer(-20))


def _centre(ns: list[_Artery], north: list[_Artery], width: float) -> tuple[float, float]:
    """The old commercial centre: the middle main-road crossing just north of the river."""
    mains = [a.curve.base for a in ns if a.kind == MAIN]
    u = min(mains[1:-1], key=lambda m: abs(m - width / 2))
    v = next(a.curve.base for a in north if a.kind == MAIN)
    return float(u), float(v)


def _pedestrian_block(blocks: list[_Block], centre: tuple[float, float]) -> _Block:
    """The non-park block north of the river nearest the centre, wide enough for a lane
    (~170 m), turns its first north–south lane into a 步行街."""
    candidates = [b for b in blocks if b.north and not b.park and np.ptp(b.poly.bounds[::2]) > 170]
    point = shapely.Point(centre)
    return min(candidates, key=lambda b: b.poly.centroid.distance(point))


def _artery_roads(ns: list[_Artery], ew: list[_Artery], river: Polygon,
                  width: float, height: float) -> list[_PlanRoad]:
    """Arteries clipped to the ring road (with a short overshoot); roads without a bridge
    stop at the river bank."""
    between_ew_rings = _band(ew[0].curve, ew[-1].curve, -_EXT, width + _EXT).buffer(_OVERSHOOT)
    between_ns_rings = _band(ns[0].curve, ns[-1].curve, -_EXT, height + _EXT).buffer(_OVERSHOOT)
    water = river.buffer(-_OVERSHOOT)
    roads = []
    for artery, limit, extent in [(a, between_ew_rings, height) for a in ns] + \
                                 [(a, between_ns_rings, width) for a in ew]:
        line = artery.curve.line(-_EXT, extent + _EXT).intersection(limit)
        if not artery.bridge:
            line = line.difference(water)
        for piece in shapely.get_parts(line):
            roads.append(_PlanRoad(artery.name, artery.kind, artery.width, piece))
    return roads


def _minor_roads(blocks: list[_Block], ns: list[_Artery], rows: list[_Curve], row_names: list[str | None],
                 pedestrian: _Block, names: _NamePool, rng: np.random.Generator) -> list[_PlanRoad]:
    """支路 ~100 m apart in every block but the park. Lanes running north–south are named after
    the west–east road they branch from, and the other way round (e.g. 人民路三巷)."""
    roads = []
    for block in blocks:
        if block.park:
            continue
        clip = block.poly.buffer(_OVERSHOOT)
        x0, y0, x1, y1 = block.poly.bounds
        south, north = row_names[block.row], row_names[block.row + 1]
        ns_name = south if south else north
        for curve in _lanes(ns[block.col].curve, ns[block.col + 1].curve, y0, y1, rng):
            line = _longest(curve.line(y0 - 20, y1 + 20).intersection(clip))
            if block is pedestrian and not any(r.kind == PEDESTRIAN for r in roads):
                roads.append(_PlanRoad(_PEDESTRIAN_NAME, PEDESTRIAN, 12.0, line))
            else:
                roads.append(_PlanRoad(names.lane(ns_name), MINOR, float(rng.choice([12.0, 13.0, 14.0])), line))
        for curve in _lanes(rows[block.row], rows[block.row + 1], x0, x1, rng):
            line = _longest(curve.line(x0 - 20, x1 + 20).intersection(clip))
            roads.append(_PlanRoad(names.lane(ns[block.col].name), MINOR,
                                   float(rng.choice([12.0, 13.0, 14.0])), line))
    return roads


def _lanes(lo: _Curve, hi: _Curve, s0: float, s1: float, rng: np.random.Generator) -> list[_Curve]:
    """Curves splitting the strip between lo and hi into ~100 m bands, each a little off the
    even split and with its own small wiggle."""
    s = np.linspace(s0, s1, 25)
    span = float(np.mean(hi(s) - lo(s)))
    n = max(1, round(span / _MINOR_SPACING))
    curves = []
    for k in range(1, n):
        t = k / n + rng.normal(0, 0.012)
        wiggle = ((rng.uniform(0, 2.5), rng.uniform(300, 700), rng.uniform(0, 2 * np.pi)),)
        curves.append(_Curve(lo.axis, 0.0, wiggle, blend=(lo, hi, t)))
    return curves


def _longest(geom: shapely.Geometry) -> LineString:
    parts = shapely.get_parts(geom)
    return max(parts, key=lambda g: g.length)


# =============================================================================== to the map
@dataclass(frozen=True)
class _Warp:
    """Plan space → EPSG:4547: a gentle bend (each axis shifted along the other, which keeps
    areas), a turn, and a move onto 攸县."""
    half: tuple[float, float]      # plan point that lands on CENTER_LONLAT
    bend_u: tuple[Wave, ...]       # east shift as a function of v
    bend_v: tuple[Wave, ...]       # north shift as a function of u
    turn: float                    # rad, anticlockwise
    origin: tuple[float, float]    # CENTER_LONLAT in EPSG:4547

    def __call__(self, uv: np.ndarray) -> np.ndarray:
        u, v = uv[:, 0] - self.half[0], uv[:, 1] - self.half[1]
        x = u + sum(a * np.sin(2 * np.pi * v / length + p) for a, length, p in self.bend_u)
        y = v + sum(a * np.sin(2 * np.pi * u / length + p) for a, length, p in self.bend_v)
        c, s = np.cos(self.turn), np.sin(self.turn)
        return np.column_stack([self.origin[0] + c * x - s * y, self.origin[1] + s * x + c * y])

    def unturned(self, xy: np.ndarray) -> np.ndarray:
        """Undo the move and the turn (not the bend): near-plan axes, for ordering grids."""
        x, y = xy[:, 0] - self.origin[0], xy[:, 1] - self.origin[1]
        c, s = np.cos(self.turn), np.sin(self.turn)
        return np.column_stack([c * x + s * y, -s * x + c * y])


def _make_warp(plan: _Plan, rng: np.random.Generator) -> _Warp:
    def bend() -> tuple[Wave, ...]:
        return ((rng.uniform(15, 30), rng.uniform(2200, 3600), rng.uniform(0, 2 * np.pi)),)
    to_metric = Transformer.from_crs(OUTPUT_CRS, METRIC_CRS, always_xy=True)
    origin = to_metric.transform(*CENTER_LONLAT)
    return _Warp((plan.width / 2, plan.height / 2), bend(), bend(), float(rng.uniform(-0.25, 0.25)),
                 (float(origin[0]), float(origin[1])))


def _to_metric(geoms, warp: _Warp):
    return shapely.transform(geoms, warp)


def _roads_to_metric(plan: _Plan, warp: _Warp) -> gpd.GeoDataFrame:
    lines = _to_metric(np.array([r.line for r in plan.roads], dtype=object), warp)
    return gpd.GeoDataFrame({"name": [r.name for r in plan.roads], "kind": [r.kind for r in plan.roads],
                             "width_m": [r.width for r in plan.roads]}, geometry=lines, crs=METRIC_CRS)


def _faces_to_metric(plan: _Plan, warp: _Warp) -> gpd.GeoDataFrame:
    """Faces of the noded street network and river banks, inside the ring road and out of
    the river, each with the block it lies in."""
    lines = [r.line for r in plan.roads] + plan.banks
    noded = shapely.get_parts(shapely.unary_union(lines))
    faces = shapely.get_parts(shapely.polygonize(noded))
    inside = shapely.point_on_surface(faces)
    keep = shapely.contains(plan.town, inside) & ~shapely.contains(plan.river, inside)
    faces, inside = faces[keep], inside[keep]
    point, block = STRtree([b.poly for b in plan.blocks]).query(inside, predicate="within")
    owner = np.full(len(faces), -1)
    owner[point] = block
    if (owner < 0).any():
        raise RuntimeError("a street face lies in no block; the plan is inconsistent")
    return gpd.GeoDataFrame({"block": owner}, geometry=_to_metric(faces, warp), crs=METRIC_CRS)


# =============================================================================== grids
def _grids(plan: _Plan, faces: gpd.GeoDataFrame, warp: _Warp, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """Unit grids (单元网格) from the street faces: sizes fitted, grouped into communities
    (one or two superblocks each) and streets, coded 430223 + street + community + sequence."""
    blocks = plan.blocks
    geoms, owner = _fit_sizes(list(faces.geometry), list(faces["block"]),
                              [blocks[k].super_col * 1000 + blocks[k].super_row for k in faces["block"]])
    grids = gpd.GeoDataFrame({"block": owner}, geometry=_renode(np.array(geoms, dtype=object)), crs=METRIC_CRS)
    grids["superblock"] = [(blocks[k].super_col, blocks[k].super_row) for k in owner]
    grids["street"] = [blocks[k].street for k in owner]
    grids["park"] = [blocks[k].park for k in owner]
    community = _group_communities(grids)
    grids["community_key"] = grids["superblock"].map(community)
    _check_grids(grids)
    return _code_grids(grids, warp, rng)


def _check_grids(grids: gpd.GeoDataFrame) -> None:
    """Fail loudly rather than hand out grids that break the rules of a unit grid."""
    area = grids.area
    if not area.between(*GRID_AREA_RANGE).all():
        raise RuntimeError(f"grid areas {area.min():.0f}–{area.max():.0f} m² leave {GRID_AREA_RANGE}")
    sizes = grids.groupby("community_key").size()
    if not sizes.between(*COMMUNITY_GRID_RANGE).all():
        raise RuntimeError(f"communities of {sizes.min()}–{sizes.max()} grids leave {COMMUNITY_GRID_RANGE}")


def _fit_sizes(polys: list[Polygon], owner: list[int], group: list[int]) -> tuple[list[Polygon], list[int]]:
    """Split faces larger than _AREA_HI and merge those smaller than _AREA_LO into the
    neighbour (same superblock) they share most edge with."""
    polys, owner, group = list(polys), list(owner), list(group)
    for _ in range(4 * len(polys)):
        areas = shapely.area(np.array(polys, dtype=object))
        big = np.flatnonzero(areas > _AREA_HI)
        if big.size:
            k = int(big[0])
            halves = _halve(polys[k])
            if len(halves) < 2:
                raise RuntimeError(f"could not split a {areas[k]:.0f} m² street face")
            polys[k:k + 1], owner[k:k + 1], group[k:k + 1] = (
                halves, [owner[k]] * len(halves), [group[k]] * len(halves))
            continue
        small = [int(k) for k in np.argsort(areas, kind="stable") if areas[k] < _AREA_LO]
        pairs = ((k, _merge_partner(polys, group, k, areas)) for k in small)
        k, j = next(((k, j) for k, j in pairs if j is not None), (None, None))
        if k is None:
            break
        keep = j if areas[j] >= areas[k] else k
        polys[j] = shapely.union(polys[j], polys[k])
        owner[j], group[j] = owner[keep], group[keep]
        del polys[k], owner[k], group[k]
    return polys, owner


def _renode(polys: np.ndarray) -> np.ndarray:
    """The same polygons, re-noded so that neighbours share every vertex: a cut adds vertices
    to the faces it splits but not to their neighbours, which leaves sub-micrometre slivers.
    Snap-rounding the boundaries to _SNAP m and polygonizing them again closes those."""
    noded = shapely.get_parts(shapely.unary_union(shapely.boundary(polys), grid_size=_SNAP))
    faces = shapely.get_parts(shapely.polygonize(noded))
    face, poly = STRtree(polys).query(shapely.point_on_surface(faces), predicate="within")
    if len(faces) != len(polys) or len(np.unique(poly)) != len(polys):
        raise RuntimeError("re-noding the grids changed how many there are")
    out = np.empty(len(polys), dtype=object)
    out[poly] = faces[face]
    return out


def _merge_partner(polys: list[Polygon], group: list[int], k: int, areas: np.ndarray) -> int | None:
    """The neighbour a too-small face joins: same superblock first, preferring a union that
    stays within _AREA_HI, then the longest shared edge (a sliver left where two road ends
    cross shares only centimetres)."""
    boundaries = shapely.boundary(np.array(polys, dtype=object))
    shared = shapely.length(shapely.intersection(boundaries[k], boundaries))
    shared[k] = 0
    touching = shared > 0
    same = touching & (np.array(group) == group[k])
    candidates = np.flatnonzero(same) if same.any() else np.flatnonzero(touching)
    if not candidates.size:
        return None
    fits = areas[candidates] + areas[k] <= _AREA_HI
    pool = candidates[fits] if fits.any() else candidates
    return int(pool[np.argmax(shared[pool])])


def _halve(poly: Polygon) -> list[Polygon]:
    """Cut a face in two equal areas across its long axis."""
    rect = np.asarray(shapely.oriented_envelope(poly).exterior.coords)
    axis = max([rect[1] - rect[0], rect[2] - rect[1]], key=np.linalg.norm)
    axis = axis / np.linalg.norm(axis)
    normal = np.array([-axis[1], axis[0]])
    origin = np.asarray(poly.centroid.coords[0])
    along = (shapely.get_coordinates(poly) - origin) @ axis
    lo, hi = along.min(), along.max()
    reach = 10 * (hi - lo) + 100

    def cutter(s: float) -> LineString:
        return LineString([origin + s * axis + reach * normal, origin + s * axis - reach * normal])

    def area_below(s: float) -> float:
        below = Polygon([origin + (lo - 1) * axis + reach * normal, *cutter(s).coords,
                         origin + (lo - 1) * axis - reach * normal])
        return poly.intersection(below).area

    target, a, b = poly.area / 2, lo, hi
    for _ in range(40):                       # bisection on where the cut goes
        mid = (a + b) / 2
        a, b = (mid, b) if area_below(mid) < target else (a, mid)
    pieces = split_geometry(poly, cutter((a + b) / 2))
    return [p for p in shapely.get_parts(pieces) if p.area > 0]


def _group_communities(grids: gpd.GeoDataFrame) -> dict[tuple[int, int], tuple[int, int]]:
    """Superblock → community: every superblock is a community; one with too few grids joins
    its smallest neighbour of the same street, as long as the result stays within range."""
    lo, hi = COMMUNITY_GRID_RANGE
    size = grids.groupby("superblock").size().to_dict()
    street = dict(zip(grids["superblock"], grids["street"]))
    owner = {key: key for key in sorted(size)}
    members = {key: [key] for key in sorted(size)}

    def total(c: tuple[int, int]) -> int:
        return sum(size[m] for m in members[c])

    merged = True
    while merged:
        merged = False
        for c in sorted(members, key=lambda c: (total(c), c)):
            if total(c) >= lo:
                continue
            near = {owner[n] for m in members[c] for n in _lattice_neighbours(m)
                    if n in owner and street[n] == street[m] and owner[n] != c}
            fits = sorted((total(o), o) for o in near if total(o) + total(c) <= hi)
            if fits:
                into = fits[0][1]
                for m in members.pop(c):
                    owner[m] = into
                    members[into].append(m)
                merged = True
                break
    return owner


def _lattice_neighbours(key: tuple[int, int]) -> list[tuple[int, int]]:
    c, r = key
    return [(c - 1, r), (c + 1, r), (c, r - 1), (c, r + 1)]


def _code_grids(grids: gpd.GeoDataFrame, warp: _Warp, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """Codes and names: communities numbered north to south, west to east within their street
    (社区 001…, 村 201… as in the statistical area codes), grids likewise within a community."""
    community_names = [str(n) for n in rng.permutation(_COMMUNITY_NAMES)]
    village_names = [str(n) for n in rng.permutation(_VILLAGE_NAMES)]
    xy = warp.unturned(shapely.get_coordinates(shapely.point_on_surface(grids.geometry.values)))
    grids["_x"], grids["_y"] = xy[:, 0], xy[:, 1]
    keys = grids.groupby("community_key").agg(street=("street", "first"), x=("_x", "mean"), y=("_y", "mean"))
    code_of, name_of = {}, {}
    for street, group in keys.groupby("street", sort=True):
        order = group.sort_values(["y", "x"], ascending=[False, True]).index
        village = street_kind(street) != "街道"     # 镇/乡 are made of villages (村)
        for n, key in enumerate(order, start=1):
            code_of[key] = f"{COUNTY_CODE}{street}{(200 + n) if village else n:03d}"
            name_of[key] = village_names.pop() if village else community_names.pop()
    grids["community"] = grids["community_key"].map(code_of)
    grids["community_name"] = grids["community_key"].map(name_of)
    grids["street_name"] = grids["street"].map(STREETS)
    grids["_row"] = -np.round(grids["_y"] / 100)
    grids = grids.sort_values(["community", "_row", "_x"]).reset_index(drop=True)
    sequence = grids.groupby("community").cumcount() + 1
    grids["code"] = [f"{c}{n:03d}" for c, n in zip(grids["community"], sequence)]
    grids["name"] = [f"{name}第{n:03d}网格" for name, n in zip(grids["community_name"], sequence)]
    return grids.drop(columns=["_x", "_y", "_row", "community_key"])


# =============================================================================== land use, buildings
# Land use of a grid: 住宅 residential, 商业 commercial, 公共 public (schools, hospitals…),
# 工业 industry, 村庄 village, 公园 park, 空置 vacant plot, 工地 building site.
_LAYOUTS = {   # land use → building length, depth range (m), gaps along/across (m), share left out
    "住宅": ((24, 40), (11, 13), 8, 14, 0.06),
    "商业": ((24, 40), (16, 24), 8, 12, 0.10),
    "公共": ((36, 56), (18, 26), 14, 20, 0.15),
    "工业": ((40, 70), (24, 36), 12, 16, 0.10),
    "村庄": ((10, 14), (9, 12), 5, 7, 0.35),
}
_BUILDING_KINDS = {   # land use → building kinds and their shares
    "住宅": (("住宅", "商业", "公共"), (0.90, 0.07, 0.03)),
    "商业": (("商业", "住宅"), (0.75, 0.25)),
    "公共": (("公共", "住宅"), (0.85, 0.15)),
    "工业": (("工业", "公共"), (0.92, 0.08)),
    "村庄": (("住宅", "商业"), (0.95, 0.05)),
}
_FLOORS = {   # (land use, building kind) → floor counts and their shares
    ("村庄", "住宅"): ((2, 3, 4), (0.3, 0.5, 0.2)),
    ("村庄", "商业"): ((1, 2, 3), (0.3, 0.5, 0.2)),
    "住宅": ((4, 5, 6, 7, 9, 11, 18, 26), (0.05, 0.12, 0.30, 0.20, 0.10, 0.10, 0.10, 0.03)),
    "商业": ((2, 3, 4, 5, 6, 12, 20), (0.15, 0.20, 0.20, 0.15, 0.15, 0.10, 0.05)),
    "公共": ((2, 3, 4, 5, 6), (0.10, 0.30, 0.30, 0.20, 0.10)),
    "工业": ((1, 2, 3), (0.50, 0.35, 0.15)),
}


def _landuse(plan: _Plan, grids: gpd.GeoDataFrame, roads: gpd.GeoDataFrame, warp: _Warp,
             rng: np.random.Generator) -> np.ndarray:
    """Shops crowd the old centre and the main roads, industry and villages fill 网岭镇."""
    centre = shapely.Point(warp(np.array([plan.centre]))[0])
    near_centre = shapely.distance(grids.geometry.values, centre) < 450
    mains = roads.geometry.values[(roads["kind"] == MAIN).to_numpy()]
    on_main = np.zeros(len(grids), bool)
    on_main[STRtree(mains).query(grids.geometry.values, predicate="dwithin", distance=1.0)[0]] = True
    draw = rng.random(len(grids))
    industry = rng.random(len(grids)) < 0.4
    shops = np.where(near_centre, 0.70, np.where(on_main, 0.25, 0.04))
    use = np.select([draw < 0.02, draw < 0.05, draw < 0.12, draw < 0.12 + shops],
                    ["空置", "工地", "公共", "商业"], "住宅").astype(object)
    town = (grids["street"].map(street_kind) != "街道").to_numpy()
    use[town] = np.where(industry[town], "工业", "村庄")
    use[grids["park"].to_numpy()] = "公园"
    for needed in ("空置", "工地"):                   # the catalog's classes need one of each
        if not (use == needed).any():
            use[rng.choice(np.flatnonzero(use == "住宅"))] = needed
    return use


def _buildings(grids: gpd.GeoDataFrame, landuse: np.ndarray, roads: gpd.GeoDataFrame,
               rng: np.random.Generator) -> gpd.GeoDataFrame:
    """Footprints in rows inside each grid, behind the road set-backs, turned with the block."""
    areas = _buildable(grids, roads)
    shapely.prepare(areas)
    rects, owner, kinds, floors = [], [], [], []
    for k, (area, use) in enumerate(zip(areas, landuse)):
        if use not in _LAYOUTS or area is None or area.is_empty:
            continue
        candidates = _layout(area, _street_angle(grids.geometry.values[k]), _LAYOUTS[use], rng)
        inside = candidates[shapely.contains_properly(area, candidates)]
        inside = inside[rng.random(len(inside)) >= _LAYOUTS[use][4]]
        names, shares = _BUILDING_KINDS[use]
        kind = rng.choice(names, size=len(inside), p=shares)
        rects.append(inside)
        owner.append(np.full(len(inside), k))
        kinds.append(kind)
        floors.append(_floors(use, kind, rng))
    return gpd.GeoDataFrame({"kind": np.concatenate(kinds), "floors": np.concatenate(floors).astype(int),
                             "grid": np.concatenate(owner)},
                            geometry=np.concatenate(rects), crs=METRIC_CRS)


def _buildable(grids: gpd.GeoDataFrame, roads: gpd.GeoDataFrame) -> np.ndarray:
    """Each grid less a yard along its edges and the red lines (plus a set-back) of the
    roads: wide ones reach further in, and a merged grid may have a lane inside it."""
    inner = shapely.buffer(np.asarray(grids.geometry.values, dtype=object), -_BUILDING_INSET)
    setback = np.where(roads["kind"].isin([MAIN, SECONDARY]), _ARTERIAL_SETBACK, 2.0)
    corridors = shapely.buffer(np.asarray(roads.geometry.values, dtype=object),
                               roads["width_m"].to_numpy() / 2 + setback)
    grid, corridor = STRtree(corridors).query(inner, predicate="intersects")
    for k in np.unique(grid):
        inner[k] = shapely.difference(inner[k], shapely.union_all(corridors[corridor[grid == k]]))
    return inner


def _street_angle(grid: Polygon) -> float:
    """Direction of the grid's longer street edge (its oriented envelope)."""
    rect = np.asarray(shapely.oriented_envelope(grid).exterior.coords)
    edge = max([rect[1] - rect[0], rect[2] - rect[1]], key=np.linalg.norm)
    return float(np.arctan2(edge[1], edge[0]))


def _layout(area: shapely.Geometry, angle: float, spec: tuple, rng: np.random.Generator) -> np.ndarray:
    """Candidate footprints in rows across the area's extent, in the street's direction."""
    (l0, l1), (d0, d1), gap_along, gap_across, _ = spec
    length, depth = rng.uniform(l0, l1), rng.uniform(d0, d1)
    ex, ey = np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])
    xy = shapely.get_coordinates(area)
    origin = xy.mean(axis=0)
    pu, pv = (xy - origin) @ ex, (xy - origin) @ ey
    us = _row_centres(pu.min(), pu.max(), length, gap_along)
    vs = _row_centres(pv.min(), pv.max(), depth, gap_across)
    cu, cv = (g.ravel() for g in np.meshgrid(us, vs))
    n = cu.size
    half_l = length * rng.uniform(0.85, 1.0, n) / 2
    half_d = depth * rng.uniform(0.9, 1.0, n) / 2
    su = np.array([-1, 1, 1, -1, -1])[None, :] * half_l[:, None]
    sv = np.array([-1, -1, 1, 1, -1])[None, :] * half_d[:, None]
    corners = (origin + (cu[:, None] + su)[..., None] * ex + (cv[:, None] + sv)[..., None] * ey)
    return shapely.polygons(corners)


def _row_centres(lo: float, hi: float, size: float, gap: float) -> np.ndarray:
    """Centres of as many `size` items with `gap` between them as fit in [lo, hi], centred."""
    n = int((hi - lo + gap) // (size + gap))
    if n <= 0:
        return np.empty(0)
    used = n * size + (n - 1) * gap
    return lo + (hi - lo - used) / 2 + size / 2 + np.arange(n) * (size + gap)


def _floors(use: str, kinds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty(len(kinds), dtype=int)
    for kind in np.unique(kinds):
        values, shares = _FLOORS.get((use, kind)) or _FLOORS[kind]
        mask = kinds == kind
        out[mask] = rng.choice(values, size=int(mask.sum()), p=shares)
    return out


def _population(grids: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame, rng: np.random.Generator) -> np.ndarray:
    """Residents from the residential floor area (~35 m² each), eased into 50–800 per grid."""
    homes = buildings[buildings["kind"] == "住宅"]
    floor_area = np.bincount(homes["grid"], weights=homes.geometry.area * homes["floors"],
                             minlength=len(grids))
    people = floor_area * 0.85 / 35
    population = 50 + 740 * people / (people + 300) + rng.integers(0, 10, len(grids))
    return np.minimum(np.round(population), 800).astype(int)


# =============================================================================== parts (部件)
@dataclass
class _Streets:
    """Road arrays (EPSG:4547) for placing parts along them."""
    lines: np.ndarray
    names: np.ndarray
    kinds: np.ndarray
    half: np.ndarray        # half the red-line width, m
    length: np.ndarray

    @classmethod
    def of(cls, roads: gpd.GeoDataFrame) -> _Streets:
        lines = np.asarray(roads.geometry.values, dtype=object)
        return cls(lines, roads["name"].to_numpy(object), roads["kind"].to_numpy(object),
                   roads["width_m"].to_numpy(float) / 2, shapely.length(lines))

    def of_kind(self, *kinds: str) -> np.ndarray:
        return np.isin(self.kinds, kinds)


Offset = Callable[[np.ndarray, np.random.Generator], np.ndarray] | float
# An offset is the distance from the centreline, from the road's half width h (red line = 2h).


def _manhole(h: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(1.5, 3.0, len(h))              # in the carriageway, off the crown


def _lamp(h: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.maximum(7.0, h - 1.0)                   # 7 m out; at the kerb of wider roads


def _tree(h: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.maximum(5.5, h - 2.0)                   # tree pits in the pavement


def _tree_guard(h: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _tree(h, rng) + 0.6


def _pavement(h: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.maximum(4.5, h - 1.2)                   # bins, sign posts


def _gully(h: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.maximum(3.2, 0.6 * h - 0.3)             # at the carriageway's kerb


def _hydrant(h: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.maximum(4.8, h - 0.8)


def _lane_divider(h: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return 0.55 * h                                   # fence between motor and cycle lanes


def _red_line(delta: float) -> Offset:
    """`delta` m outside the red line (negative: inside it, on the pavement)."""
    return lambda h, rng: h + delta


def _parts(plan: _Plan, roads: gpd.GeoDataFrame, grids: gpd.GeoDataFrame, landuse: np.ndarray,
           river: Polygon, pond: Polygon, warp: _Warp, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """All part classes of the catalog, each where it belongs, kept strictly inside one grid."""
    st = _Streets.of(roads)
    batches = (_street_parts(st, rng) + _junction_parts(st, rng)
               + _grid_parts(grids, landuse, pond, rng)
               + _river_parts(_to_metric(np.array(plan.banks, dtype=object), warp), rng)
               + _centre_parts(st, warp(np.array([plan.centre]))[0], rng))
    candidates = pd.concat([b.assign(batch=k) for k, b in enumerate(batches)], ignore_index=True)
    placed = _settle(candidates, st, grids, landuse, river, pond)
    missing = set(part_classes()) - set(placed["class_code"])
    if missing:
        raise RuntimeError(f"demo city has no part of class {sorted(missing)}")
    return _describe(placed, grids, rng)


def _batch(cls: str, xy: np.ndarray, label, road=None, *, limit: int = 0, landuse: str = "",
           street: str = "") -> pd.DataFrame:
    """Candidate parts of one class; limit/landuse/street restrict which survive _settle."""
    n = len(xy)
    return pd.DataFrame({"class_code": cls, "x": xy[:, 0] if n else [], "y": xy[:, 1] if n else [],
                         "label": np.broadcast_to(np.asarray(label, dtype=object), (n,)),
                         "road": -1 if road is None else road, "limit": limit,
                         "landuse": landuse, "street": street})


def _stations(lengths: np.ndarray, spacing: float, rng: np.random.Generator):
    """Distances every `spacing` m along each road from a random start: (road, distance, k)."""
    start = rng.uniform(0, spacing, len(lengths))
    count = np.where(lengths > start, np.floor((lengths - start) / spacing).astype(int) + 1, 0)
    road = np.repeat(np.arange(len(lengths)), count)
    k = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    return road, start[road] + k * spacing, k


def _tangents(lines: np.ndarray, road: np.ndarray, d: np.ndarray) -> np.ndarray:
    g, length = lines[road], shapely.length(lines[road])
    a = shapely.get_coordinates(shapely.line_interpolate_point(g, np.clip(d - 1.0, 0, length)))
    b = shapely.get_coordinates(shapely.line_interpolate_point(g, np.clip(d + 1.0, 0, length)))
    t = b - a
    return t / np.linalg.norm(t, axis=1, keepdims=True)


def _beside(lines: np.ndarray, road: np.ndarray, d: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Points at distance d along each road, `offset` m to its left (negative: right)."""
    p = shapely.get_coordinates(shapely.line_interpolate_point(lines[road], d))
    t = _tangents(lines, road, d)
    return p + np.column_stack([-t[:, 1], t[:, 0]]) * offset[:, None]


def _along(st: _Streets, mask: np.ndarray, cls: str, spacing: float, offset: Offset,
           rng: np.random.Generator, sides: str = "both", **keep) -> pd.DataFrame:
    """Parts every `spacing` m along the masked roads: on both sides (staggered by half the
    spacing), alternating sides, or on one side per road (a pipe under one carriageway)."""
    idx = np.flatnonzero(mask)
    road, d, k = _stations(st.length[idx], spacing, rng)
    road = idx[road]
    if sides == "both":
        road, d = np.concatenate([road, road]), np.concatenate([d, d + spacing / 2])
        side = np.repeat([1.0, -1.0], len(road) // 2)
        inside = d < st.length[road]
        road, d, side = road[inside], d[inside], side[inside]
    elif sides == "alternate":
        side = np.where(k % 2 == 0, 1.0, -1.0)
    else:
        side = rng.choice([1.0, -1.0], size=len(st.lines))[road]
    dist = offset(st.half[road], rng) if callable(offset) else np.full(len(road), float(offset))
    xy = _beside(st.lines, road, d, side * dist)
    order = np.lexsort((d, road))
    return _batch(cls, xy[order], st.names[road][order], road[order], **keep)


def _street_parts(st: _Streets, rng: np.random.Generator) -> list[pd.DataFrame]:
    every = np.ones(len(st.lines), bool)
    arterial = st.of_kind(MAIN, SECONDARY)
    main, secondary = st.of_kind(MAIN), st.of_kind(SECONDARY)
    minor, walk = st.of_kind(MINOR), st.of_kind(PEDESTRIAN)
    ring = main & np.isin(st.names, list(_RING_NAMES.values()))
    return [
        _along(st, every, "0101", 80, _manhole, rng, "one"),        # 上水井盖
        _along(st, every, "0102", 50, _manhole, rng, "one"),        # 污水井盖
        _along(st, every, "0103", 50, _manhole, rng, "one"),        # 雨水井盖
        _along(st, every, "0104", 40, _gully, rng, "both"),         # 雨水箅子
        _along(st, arterial, "0105", 100, _manhole, rng, "one"),    # 电力井盖
        _along(st, every, "0106", 90, _manhole, rng, "one"),        # 路灯井盖
        _along(st, arterial, "0107", 80, _manhole, rng, "one"),     # 通信井盖
        _along(st, arterial, "0108", 120, _manhole, rng, "one"),    # 有线电视井盖
        _along(st, every, "0109", 150, _manhole, rng, "one", street="100"),   # 热力井盖: industry
        _along(st, arterial, "0110", 100, _manhole, rng, "one"),    # 燃气井盖
        _along(st, main, "0111", 250, _manhole, rng, "one"),        # 公安井盖
        _along(st, minor, "0112", 300, _manhole, rng, "one"),       # 其它井盖
        _along(st, every, "0113", 120, _hydrant, rng, "alternate"),            # 消火栓
        _along(st, every, "0114", 30, _lamp, rng, "both"),                     # 路灯
        _along(st, arterial, "0115", 250, _red_line(1.5), rng, "alternate"),   # 变压器/配电箱
        _along(st, main, "0116", 600, _red_line(-1.5), rng, "alternate"),      # 邮筒
        _along(st, main, "0117", 400, _red_line(-2.5), rng, "alternate"),      # 报刊亭
        _along(st, main, "0118", 800, _red_line(-2.5), rng, "alternate"),      # 信息亭
        _along(st, main, "0201", 500, _red_line(-2.0), rng, "both"),           # 公交站亭
        _along(st, arterial, "0206", 150, _pavement, rng, "alternate"),        # 交通标志牌
        _along(st, main, "0207", 60, _lane_divider, rng, "both"),              # 道路护栏
        _along(st, secondary, "0208", 200, 1.2, rng, "one"),                   # 隔离墩
        _along(st, arterial, "0210", 250, _red_line(-1.5), rng, "alternate"),  # 非机动车停放点
        _along(st, arterial, "0301", 600, _red_line(8.0), rng, "alternate"),   # 公共厕所
        _along(st, every, "0302", 50, _pavement, rng, "alternate"),            # 垃圾箱
        _along(st, every, "0304", 20, _red_line(4.0), rng, "both", landuse="商业"),   # 广告牌匾
        _along(st, every, "0305", 45, _red_line(3.5), rng, "both", landuse="商业"),   # 灯箱霓虹灯
        _along(st, every, "0402", 9, _tree, rng, "both"),                      # 行道树
        _along(st, main, "0403", 45, _tree_guard, rng, "both"),                # 护树设施
        _along(st, walk, "0405", 25, 3.0, rng, "both"),                        # 花架花钵
        _along(st, walk, "0407", 30, 4.5, rng, "alternate"),                   # 街头座椅
        _along(st, ring, "0601", 900, _red_line(12.0), rng, "alternate", limit=4),  # 重大危险源: 加油站
    ]


def _junctions(st: _Streets) -> dict[str, np.ndarray]:
    """Where two roads meet: the point, both roads and their directions there."""
    a, b = STRtree(st.lines).query(st.lines, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    points, which = shapely.get_parts(shapely.intersection(st.lines[a], st.lines[b]), return_index=True)
    single = shapely.get_type_id(points) == shapely.GeometryType.POINT
    points, a, b = points[single], a[which[single]], b[which[single]]
    da, db = shapely.line_locate_point(st.lines[a], points), shapely.line_locate_point(st.lines[b], points)
    return {"xy": shapely.get_coordinates(points), "a": a, "b": b,
            "ta": _tangents(st.lines, a, da), "tb": _tangents(st.lines, b, db)}


def _corners(st: _Streets, j: dict[str, np.ndarray], pick: np.ndarray, sa: np.ndarray, sb: np.ndarray,
             clearance: float) -> np.ndarray:
    """Points at the kerb corners of junctions `pick`, `clearance` m beyond both red lines."""
    reach_a = (st.half[j["b"][pick]] + clearance)[:, None]   # along road a, past road b
    reach_b = (st.half[j["a"][pick]] + clearance)[:, None]
    return (j["xy"][pick] + sa[:, None] * reach_a * j["ta"][pick]
            + sb[:, None] * reach_b * j["tb"][pick])


def _junction_parts(st: _Streets, rng: np.random.Generator) -> list[pd.DataFrame]:
    j = _junctions(st)
    ka, kb = st.kinds[j["a"]], st.kinds[j["b"]]
    arterial = np.isin(ka, [MAIN, SECONDARY]) & np.isin(kb, [MAIN, SECONDARY])
    signalled = arterial & ((ka == MAIN) | (kb == MAIN))
    n = len(j["a"])
    out = []
    # 交通信号灯: a pole at each of the four corners of a main-road crossing.
    for sa, sb in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        pick = np.flatnonzero(signalled)
        xy = _corners(st, j, pick, np.full(pick.size, sa), np.full(pick.size, sb), 2.5)
        out.append(_batch("0205", xy, st.names[j["a"][pick]], j["a"][pick]))
    # 监控摄像头: two opposite corners of arterial crossings, one at some minor junctions.
    for sign in (1, -1):
        pick = np.flatnonzero(arterial)
        xy = _corners(st, j, pick, np.full(pick.size, sign), np.full(pick.size, sign), 4.0)
        out.append(_batch("0604", xy, st.names[j["a"][pick]], j["a"][pick]))
    pick = np.flatnonzero(~arterial & (rng.random(n) < 0.12))
    xy = _corners(st, j, pick, rng.choice([-1, 1], pick.size), rng.choice([-1, 1], pick.size), 3.0)
    out.append(_batch("0604", xy, st.names[j["a"][pick]], j["a"][pick]))
    # 路名牌: one at a corner of every junction.
    pick = np.arange(n)
    xy = _corners(st, j, pick, rng.choice([-1, 1], n), rng.choice([-1, 1], n), 1.8)
    out.append(_batch("0209", xy, st.names[j["a"]], j["a"]))
    # 城市雕塑: at the corner plazas of two main-road crossings.
    pick = rng.permutation(np.flatnonzero((ka == MAIN) & (kb == MAIN)))[:6]
    xy = _corners(st, j, pick, np.ones(pick.size), np.ones(pick.size), 12.0)
    out.append(_batch("0406", xy, st.names[j["a"][pick]], j["a"][pick], limit=2))
    return out


def _centre_parts(st: _Streets, centre: np.ndarray, rng: np.random.Generator) -> list[pd.DataFrame]:
    """过街天桥 and 地下通道: a few on the main roads of the busy centre."""
    out = []
    for cls, offset in (("0203", 3.0), ("0204", 4.0)):
        main = np.flatnonzero(st.of_kind(MAIN) & (shapely.distance(st.lines, shapely.Point(centre)) < 700))
        road, d, _ = _stations(st.length[main], 150, rng)
        road = main[road]
        xy = _beside(st.lines, road, d, np.full(len(road), offset) * rng.choice([-1, 1], len(road)))
        order = rng.permutation(len(road))
        out.append(_batch(cls, xy[order], st.names[road][order], road[order], limit=2))
    return out


def _inside(polys: np.ndarray, inset: float, rng: np.random.Generator) -> np.ndarray:
    """One random point per polygon, at least `inset` m inside it where there is room."""
    shrunk = shapely.buffer(polys, -inset)
    thin = shapely.is_empty(shrunk)
    shrunk[thin] = shapely.buffer(polys[thin], -min(inset, 3.0))
    shapely.prepare(shrunk)
    bounds = shapely.bounds(shrunk)
    tries = rng.random((len(polys), 32, 2))
    x = bounds[:, [0]] + tries[..., 0] * (bounds[:, [2]] - bounds[:, [0]])
    y = bounds[:, [1]] + tries[..., 1] * (bounds[:, [3]] - bounds[:, [1]])
    points = shapely.points(x, y)
    hit = shapely.contains_properly(shrunk[:, None], points)
    chosen = points[np.arange(len(polys)), hit.argmax(axis=1)]
    missed = ~hit.any(axis=1)
    chosen[missed] = shapely.point_on_surface(shrunk[missed])
    return shapely.get_coordinates(chosen)


def _lattice(polys: np.ndarray, spacing: float, inset: float, rng: np.random.Generator):
    """Points on a `spacing` m lattice inside the polygons: (xy, polygon index)."""
    xy, owner = [], []
    for k, poly in enumerate(shapely.buffer(polys, -inset)):
        x0, y0, x1, y1 = poly.bounds
        gx, gy = np.meshgrid(np.arange(x0, x1, spacing) + rng.uniform(0, spacing),
                             np.arange(y0, y1, spacing) + rng.uniform(0, spacing))
        points = shapely.points(gx.ravel(), gy.ravel())
        points = points[shapely.contains_properly(poly, points)]
        xy.append(shapely.get_coordinates(points))
        owner.append(np.full(len(points), k))
    return np.concatenate(xy), np.concatenate(owner)


def _grid_parts(grids: gpd.GeoDataFrame, landuse: np.ndarray, pond: Polygon,
                rng: np.random.Generator) -> list[pd.DataFrame]:
    """Parts that stand inside blocks, named after the community (or the park)."""
    geoms = np.asarray(grids.geometry.values, dtype=object)
    community = grids["community_name"].to_numpy(object)
    park = np.flatnonzero(landuse == "公园")
    one_per_community = grids.groupby("community").sample(n=1, random_state=rng).index.to_numpy()
    two_per_community = grids.groupby("community").sample(n=2, random_state=rng).index.to_numpy()
    shops_or_public = np.flatnonzero(np.isin(landuse, ["商业", "公共"]) & (rng.random(len(grids)) < 0.35))
    shelters = one_per_community[rng.random(one_per_community.size) < 0.5]
    old_trees = rng.permutation(np.flatnonzero(np.isin(landuse, ["公园", "村庄"])))[:8]
    industry = rng.permutation(np.flatnonzero(landuse == "工业"))[:3]
    street_greens = one_per_community[rng.random(one_per_community.size) < 0.5]
    green_xy, _ = _lattice(geoms[park], 30.0, 8.0, rng)
    green_xy = green_xy[~shapely.contains(pond.buffer(2.0), shapely.points(green_xy))]

    def at(cls: str, pick: np.ndarray, inset: float, label=None, **keep) -> pd.DataFrame:
        return _batch(cls, _inside(geoms[pick], inset, rng),
                      community[pick] if label is None else label, **keep)

    seats = np.repeat(park, 4)
    return [
        at("0202", shops_or_public, 15.0),                    # 停车场
        at("0301", park[:2], 15.0, PARK_NAME),                # 公共厕所 in the park
        at("0303", one_per_community, 9.0),                   # 垃圾收集站
        at("0401", old_trees, 12.0, limit=8),                 # 古树名木, rare
        _batch("0404", green_xy, PARK_NAME),                  # 绿地 of the park
        at("0404", street_greens, 14.0),                      # 街头绿地
        at("0406", park[:2], 20.0, PARK_NAME),                # 城市雕塑
        at("0407", seats, 8.0, PARK_NAME),                    # 街头座椅
        at("0501", two_per_community, 10.0),                  # 宣传栏
        at("0502", shelters, 20.0),                           # 人防工事
        at("0503", np.flatnonzero(landuse == "空置"), 20.0),   # 空置地块
        at("0601", industry, 20.0, limit=2),                  # 重大危险源 in the industrial park
        at("0602", np.flatnonzero(landuse == "工地"), 20.0),   # 工地
    ]


def _river_parts(banks: np.ndarray, rng: np.random.Generator) -> list[pd.DataFrame]:
    """水域护栏 every 20 m along both banks, 3 m inland (the water side is dropped later)."""
    bank, d, _ = _stations(shapely.length(banks), 20.0, rng)
    bank, d = np.concatenate([bank, bank]), np.concatenate([d, d])
    side = np.repeat([3.0, -3.0], len(bank) // 2)
    return [_batch("0603", _beside(banks, bank, d, side), RIVER_NAME)]


def _settle(candidates: pd.DataFrame, st: _Streets, grids: gpd.GeoDataFrame, landuse: np.ndarray,
            river: Polygon, pond: Polygon) -> pd.DataFrame:
    """Keep candidates that are clear of other roads' carriageways, out of the water and at
    least PART_EDGE_CLEARANCE m inside exactly one grid; then apply each batch's limits."""
    points = shapely.points(candidates["x"].to_numpy(), candidates["y"].to_numpy())
    p, r = STRtree(st.lines).query(points, predicate="dwithin", distance=float(st.half.max()))
    on_road = shapely.distance(points[p], st.lines[r]) < st.half[r]     # inside the red line
    own = candidates["road"].to_numpy()
    clear = np.ones(len(points), bool)
    clear[p[on_road & (r != own[p])]] = False
    clear &= ~shapely.contains(shapely.union(river, pond), points)
    grid = _locate(points, np.asarray(grids.geometry.values, dtype=object))
    keep = clear & (grid >= 0)
    placed = candidates.assign(grid=grid)[keep]
    use, street = landuse[placed["grid"]], grids["street"].to_numpy()[placed["grid"]]
    placed = placed[((placed["landuse"] == "") | (placed["landuse"] == use))
                    & ((placed["street"] == "") | (placed["street"] == street))]
    rank = placed.groupby("batch").cumcount()
    return placed[(placed["limit"] == 0) | (rank < placed["limit"])].reset_index(drop=True)


def _locate(points: np.ndarray, grids: np.ndarray) -> np.ndarray:
    """Index of the one grid each point lies in, PART_EDGE_CLEARANCE m from its edge; else -1."""
    p, g = STRtree(grids).query(points, predicate="within")
    hits = np.bincount(p, minlength=len(points))
    grid = np.full(len(points), -1)
    grid[p] = g
    grid[hits != 1] = -1
    ok = np.flatnonzero(grid >= 0)
    near_edge = shapely.distance(points[ok], shapely.boundary(grids[grid[ok]])) < PART_EDGE_CLEARANCE
    grid[ok[near_edge]] = -1
    return grid


def _describe(placed: pd.DataFrame, grids: gpd.GeoDataFrame, rng: np.random.Generator) -> gpd.GeoDataFrame:
    """Names (人民路路灯0032), status, survey source and the three departments."""
    classes = part_classes()
    short = {c: name.split("/")[-1] for c, name in classes.items()}    # 变压器/配电箱 → 配电箱
    sequence = placed.groupby(["label", "class_code"], sort=False).cumcount() + 1
    names = [f"{label}{short[c]}{n:04d}" for label, c, n in zip(placed["label"], placed["class_code"], sequence)]
    street = grids["street"].to_numpy()[placed["grid"]]
    office = np.array([_office(s) for s in street], dtype=object)
    depts = np.array([_DEPARTMENTS[c] for c in placed["class_code"]], dtype=object)
    columns = {}
    for k, field in enumerate(("dept_owner", "dept_rights", "dept_maintainer")):
        columns[field] = np.where(depts[:, k] == "{office}", office, depts[:, k])
    frame = pd.DataFrame({
        "class_code": placed["class_code"].to_numpy(),
        "name": names,
        "status": rng.choice(list(_STATUS_WEIGHTS), size=len(placed), p=list(_STATUS_WEIGHTS.values())),
        **columns,
        "source": rng.choice(list(_SOURCE_WEIGHTS), size=len(placed), p=list(_SOURCE_WEIGHTS.values())),
    })
    geometry = shapely.points(placed["x"].to_numpy(), placed["y"].to_numpy())
    parts = gpd.GeoDataFrame(frame, geometry=geometry, crs=METRIC_CRS)
    return parts.sort_values("class_code", kind="stable").reset_index(drop=True)


def _office(street: str) -> str:
    """The street's government: 街道办事处 or 镇人民政府."""
    name = STREETS[street]
    return f"{name}办事处" if street_kind(street) == "街道" else f"{name}人民政府"


if __name__ == "__main__":     # python -m gis.demo_city: a quick look at the generated town
    import time

    began = time.perf_counter()
    city = generate_city()
    print(f"{city.county_name} {city.county_code}: generated in {time.perf_counter() - began:.2f} s")
    for layer in ("roads", "buildings", "water", "grids", "parts"):
        print(f"  {layer:9s} {len(getattr(city, layer)):6d}")
