"""Track replay (轨迹回放): one unit's fixes over a time window, reduced to what a map at a
given zoom can show, with the timestamps kept, the stops (停留点), the gaps (信号中断), the
distance covered and the alarms raised along the way.

Sized for a day at 1 Hz (86,400 fixes): one query hands each column over as one binary
array, read straight into numpy; everything after that is vectorised (no object per fix).
Flagged fixes (bad coordinates, speed jumps, poor accuracy) are counted, never drawn.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import struct
from dataclasses import dataclass

import numpy as np
import psycopg
import shapely
from psycopg.adapt import Loader
from psycopg.postgres import types as pg_types
from psycopg.rows import dict_row, tuple_row

from workflows.cases import LOCAL_TZ

EARTH_RADIUS_M = 6_371_008.8
METRES_PER_PIXEL_Z0 = 2 * math.pi * 6_378_137.0 / 256    # 256-px Web Mercator tiles at the equator
PG_EPOCH_S = 946_684_800                                  # 2000-01-01 UTC, where PostgreSQL counts from
SPEED_WINDOW_S = 5.0                                      # speed: over the fixes this long either side


@dataclass(frozen=True)
class TrackRules:
    stop_radius_m: float        # stayed within this of where it stopped …
    stop_seconds: float         # … for at least this long: a stop
    gap_seconds: float          # no fix for longer than this: a gap

    @classmethod
    def from_settings(cls, settings) -> TrackRules:
        return cls(settings.stationary_radius_m, settings.stop_minutes * 60, settings.track_gap_seconds)


@dataclass
class Fixes:
    """A unit's good fixes in time order (strictly increasing times), as parallel arrays."""
    t: np.ndarray               # seconds since 1970 (float64)
    lon: np.ndarray
    lat: np.ndarray
    total: int                  # fixes in the window, flagged ones included
    bad: int                    # flagged fixes, left out


# ----------------------------------------------------------------------------- fetching
# Each array costs the server about as much as reading the rows: coordinates travel packed
# two to an int8 (1e-7 degree, about 1 cm), and the devices' own speed field stays behind
# (speeds come from the positions, see _speeds).
_FETCH = """
SELECT array_agg(fix_time) FILTER (WHERE flags = 0),
       array_agg((round(lon * 1e7)::int8 << 32) | (round(lat * 1e7)::int8 & 4294967295)) FILTER (WHERE flags = 0),
       count(*), count(*) FILTER (WHERE flags <> 0)
  FROM (SELECT fix_time, lon, lat, flags FROM position
         WHERE unit_id = %s AND fix_time >= %s AND fix_time < %s ORDER BY fix_time) p
"""


class _Int8ArrayLoader(Loader):
    """Reads a one-dimensional binary array of 8-byte integers without NULLs (int8[], or
    timestamptz[]: microseconds since 2000) into numpy at once, not one Python object each."""
    format = psycopg.pq.Format.BINARY
    _record = np.dtype([("length", ">i4"), ("value", ">i8")])

    def load(self, data) -> np.ndarray:
        ndim, has_null = struct.unpack_from(">ii", data)
        if ndim == 0:
            return np.empty(0, np.int64)
        if ndim != 1 or has_null:
            raise ValueError("expected a one-dimensional array without NULLs")
        (n,) = struct.unpack_from(">i", data, 12)
        return np.frombuffer(data, self._record, count=n, offset=20)["value"].astype(np.int64)


_ARRAY_OIDS = [pg_types[name].array_oid for name in ("timestamptz", "int8")]


def fetch(conn: psycopg.Connection, unit_id: int, start: dt.datetime, end: dt.datetime) -> Fixes:
    cur = conn.cursor(binary=True, row_factory=tuple_row)
    for oid in _ARRAY_OIDS:
        cur.adapters.register_loader(oid, _Int8ArrayLoader)
    # Never a prepared statement: its generic plan cannot see which day partitions the window
    # touches and reads them all (about half again as slow).
    times, packed, total, bad = cur.execute(_FETCH, (unit_id, start, end), prepare=False).fetchone()
    if times is None:
        empty = np.empty(0)
        return Fixes(empty, empty, empty, total, bad)
    t = times / 1e6 + PG_EPOCH_S
    lon = (packed >> 32) / 1e7
    lat = (packed & 0xFFFFFFFF).astype(np.uint32).view(np.int32) / 1e7
    # Two devices of one unit may report the same instant: keep the first.
    first = np.r_[True, np.diff(t) > 0]
    if not first.all():
        t, lon, lat = t[first], lon[first], lat[first]
    return Fixes(t, lon, lat, total, bad)


# ----------------------------------------------------------------------------- geometry
def local_xy(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Metres east and north of the track's middle (equirectangular: within a county the
    error stays far below GPS noise)."""
    lon0, lat0 = (lon.min() + lon.max()) / 2, (lat.min() + lat.max()) / 2
    k = EARTH_RADIUS_M * math.pi / 180
    return (lon - lon0) * k * math.cos(math.radians(lat0)), (lat - lat0) * k


def tolerance_m(zoom: int, lat: float) -> float:
    """Half a pixel of a 256-px tile at this zoom and latitude: what the eye cannot see."""
    return METRES_PER_PIXEL_Z0 * math.cos(math.radians(lat)) / 2 ** zoom / 2


def _first_beyond(x: np.ndarray, y: np.ndarray, i: int, radius_m: float) -> int:
    """The first fix after i farther than radius_m from fix i (len(x) if none)."""
    n, step, lo = len(x), 256, i + 1
    while lo < n:
        hi = min(n, lo + step)
        out = np.flatnonzero((x[lo:hi] - x[i]) ** 2 + (y[lo:hi] - y[i]) ** 2 > radius_m ** 2)
        if out.size:
            return lo + int(out[0])
        lo, step = hi, step * 2
    return n


def find_stops(t: np.ndarray, x: np.ndarray, y: np.ndarray, radius_m: float, min_seconds: float) -> np.ndarray:
    """(first, last) fix index of each stop: from its first fix the unit stayed within
    radius_m of it for at least min_seconds, until its last fix (the next one is farther).
    Found greedily from the start, as trackers do; a stop may span a gap, since phones often
    fall silent while they lie still. Back-to-back stops around one place are merged (the
    first fix of a stop may lie at its edge, so the jitter on the far side starts a new one)."""
    n = len(t)
    if n < 2 or min_seconds <= 0:
        return np.empty((0, 2), np.int64)
    # A stop can only begin at fix i if the unit is still near it at the first fix after each
    # of the next three grid times (a grid every quarter of min_seconds): those fixes lie
    # inside any stop beginning at i. Tested for every fix at once, without a search per fix.
    quarter = min_seconds / 4
    grid = t[0] + quarter * np.arange(int((t[-1] - t[0]) / quarter) + 5)
    at_grid = np.searchsorted(t, grid)                      # the first fix at or after each (n: none)
    after = np.floor((t - t[0]) / quarter).astype(np.int64) + 1
    maybe = np.ones(n, bool)
    for m in range(3):
        j = at_grid[after + m]
        maybe &= j < n
        j = np.minimum(j, n - 1)
        maybe &= (x[j] - x) ** 2 + (y[j] - y) ** 2 <= radius_m ** 2
    candidates = np.flatnonzero(maybe)
    stops, k = [], 0
    while k < len(candidates):
        i = int(candidates[k])
        j = _first_beyond(x, y, i, radius_m)
        if t[j - 1] - t[i] >= min_seconds:
            stops.append([i, j - 1])
            k = int(np.searchsorted(candidates, j))
        else:
            k += 1
    return _merge_adjacent(np.array(stops, dtype=np.int64).reshape(-1, 2), x, y, radius_m)


def _merge_adjacent(stops: np.ndarray, x: np.ndarray, y: np.ndarray, radius_m: float) -> np.ndarray:
    merged: list[list[int]] = []
    for a, b in stops.tolist():
        if merged and a == merged[-1][1] + 1:
            pa, pb = merged[-1]
            apart = math.hypot(x[a:b + 1].mean() - x[pa:pb + 1].mean(), y[a:b + 1].mean() - y[pa:pb + 1].mean())
            if apart <= radius_m:
                merged[-1][1] = b
                continue
        merged.append([a, b])
    return np.array(merged, dtype=np.int64).reshape(-1, 2)


def simplify(t: np.ndarray, x: np.ndarray, y: np.ndarray, tolerance: float, fixed: np.ndarray) -> np.ndarray:
    """Which points to keep (a mask). Douglas-Peucker on the shape (GEOS, at `tolerance`)
    proposes points, `fixed` ones are added, then Douglas-Peucker on the pace at twice that
    tolerance checks every dropped fix against the kept points around it: the replayed
    marker stays within a pixel (2 × half a pixel) of each recorded fix at its time, and so
    does the line (the marker is always on it; Leaflet draws lines to a pixel too). A pause
    on a straight street keeps its two ends."""
    if len(t) <= 2:
        return np.ones(len(t), bool)
    keep = fixed.copy()
    keep[[0, -1]] = True
    keep[_shape_kept(x, y, tolerance)] = True
    return _keep_pace(t, x, y, 2 * tolerance, keep)


def _shape_kept(x: np.ndarray, y: np.ndarray, tolerance: float) -> np.ndarray:
    """Indices of the points GEOS keeps of every other fix (the pace pass checks them all:
    proposing from half the fixes takes half the time and ends with fewer points). The
    index rides along as the Z coordinate."""
    every_other = np.r_[np.arange(0, len(x) - 1, 2), len(x) - 1]
    line = shapely.linestrings(x[every_other], y[every_other], every_other.astype(np.float64))
    kept = shapely.get_coordinates(shapely.simplify(line, tolerance, preserve_topology=False), include_z=True)
    return kept[:, 2].astype(np.int64)


def _keep_pace(t: np.ndarray, x: np.ndarray, y: np.ndarray, tolerance: float, keep: np.ndarray) -> np.ndarray:
    """Douglas-Peucker on the synchronised distance (from each dropped fix to where the unit
    would be at its time, moving evenly between the kept points around it), starting from
    `keep`; all open segments are split at once each round."""
    keep = keep.copy()
    todo = np.flatnonzero(~keep)
    while todo.size:
        kept = np.flatnonzero(keep)
        after = np.searchsorted(kept, todo)                 # segment = (kept[after-1], kept[after])
        a, b = kept[after - 1], kept[after]
        f = (t[todo] - t[a]) / (t[b] - t[a])
        d = (x[a] + f * (x[b] - x[a]) - x[todo]) ** 2 + (y[a] + f * (y[b] - y[a]) - y[todo]) ** 2
        new_segment = np.r_[False, after[1:] != after[:-1]]
        segment = np.cumsum(new_segment)
        worst = np.maximum.reduceat(d, np.flatnonzero(np.r_[True, new_segment[1:]]))
        split = worst > tolerance ** 2
        if not split.any():
            break
        # The worst point of each segment that is split: the first one reaching its maximum.
        at_max = np.flatnonzero((d == worst[segment]) & split[segment])
        first = at_max[np.r_[True, segment[at_max][1:] != segment[at_max][:-1]]]
        keep[todo[first]] = True
        stay = split[segment]
        stay[first] = False
        todo = todo[stay]
    return keep


# ----------------------------------------------------------------------------- the replay
@dataclass
class Track:
    fixes: Fixes
    x: np.ndarray               # metres east of the track's middle (local_xy)
    y: np.ndarray               # metres north
    kept: np.ndarray            # indices into fixes of the points drawn
    stops: np.ndarray           # (first, last) fix indices
    gaps: np.ndarray            # fix index before each gap (the next fix ends it)
    distance_m: float
    tolerance_m: float


def _covered(n: int, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """A mask of n: True from first[k] to last[k] (inclusive) for every k (ranges apart)."""
    mark = np.zeros(n + 1, np.int64)
    mark[first] += 1
    mark[last + 1] -= 1
    return np.cumsum(mark[:n]) > 0


def compute(fixes: Fixes, zoom: int, rules: TrackRules) -> Track:
    """Stops, gaps, distance and the points to draw at this zoom (stop and gap ends always)."""
    n = len(fixes.t)
    tolerance = tolerance_m(zoom, float(fixes.lat.mean()) if n else 0.0)
    if n == 0:
        none = np.empty(0, np.int64)
        return Track(fixes, fixes.lon, fixes.lat, none, none.reshape(0, 2), none, 0.0, tolerance)
    t = fixes.t
    x, y = local_xy(fixes.lon, fixes.lat)
    stops = find_stops(t, x, y, rules.stop_radius_m, rules.stop_seconds)
    gaps = np.flatnonzero(np.diff(t) > rules.gap_seconds)
    # Within a stop only its first and last fix are drawn, and its jitter is no distance: the
    # way through a stop is from its first fix to its middle and on to its last.
    step = np.hypot(np.diff(x), np.diff(y))
    distance = float(step[~_covered(n - 1, stops[:, 0], stops[:, 1] - 1)].sum())
    for a, b in stops.tolist():
        cx, cy = x[a:b + 1].mean(), y[a:b + 1].mean()
        distance += math.hypot(x[a] - cx, y[a] - cy) + math.hypot(x[b] - cx, y[b] - cy)
    drawn = ~_covered(n, stops[:, 0] + 1, stops[:, 1] - 1)
    fixed = np.zeros(n, bool)
    fixed[stops.ravel()] = True
    fixed[gaps] = fixed[gaps + 1] = True
    sub = np.flatnonzero(drawn)
    kept = sub[simplify(t[sub], x[sub], y[sub], tolerance, fixed[sub])]
    return Track(fixes, x, y, kept, stops, gaps, distance, tolerance)


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(round(seconds), LOCAL_TZ).isoformat()


def _deltas(values: np.ndarray) -> np.ndarray:
    """First value as it is, then the difference to the one before."""
    return np.diff(values, prepend=0)


def _speeds(track: Track) -> np.ndarray:
    """m/s at each kept point: the straight line from the fix SPEED_WINDOW_S before it to the
    one as long after (at least the neighbours; never across a gap) over the time between.
    The same for every device, whether it sends a speed (OwnTracks whole km/h, OsmAnd knots)
    or not, and steady where the fixes jitter."""
    f, k = track.fixes, track.kept
    ends = np.searchsorted(track.gaps, k)                   # which stretch between gaps
    first, last = np.r_[0, track.gaps + 1][ends], np.r_[track.gaps, len(f.t) - 1][ends]
    lo = np.maximum(np.minimum(np.searchsorted(f.t, f.t[k] - SPEED_WINDOW_S), k - 1), first)
    hi = np.minimum(np.maximum(np.searchsorted(f.t, f.t[k] + SPEED_WINDOW_S, "right") - 1, k + 1), last)
    span = f.t[hi] - f.t[lo]
    moved = np.hypot(track.x[hi] - track.x[lo], track.y[hi] - track.y[lo])
    return np.divide(moved, span, out=np.zeros(len(k)), where=span > 0)


def encode(track: Track) -> dict[str, np.ndarray]:
    """The compact form sent to the map: parallel arrays over the kept points, times (whole
    seconds since 1970) and coordinates (millionths of a degree) delta-encoded, speeds in
    tenths of m/s (written out in m/s)."""
    f, k = track.fixes, track.kept
    return {
        "t": _deltas(np.round(f.t[k]).astype(np.int64)),
        "lon": _deltas(np.round(f.lon[k] * 1e6).astype(np.int64)),
        "lat": _deltas(np.round(f.lat[k] * 1e6).astype(np.int64)),
        "speed": np.round(_speeds(track) * 10).astype(np.int64),
    }


# Tens of thousands of numbers per answer: written through tables of the common ones instead
# of one Python object per number (json.dumps would spend more than all the geometry).
_TABLE_SPAN = 10_000
_INT_TEXT = np.array([str(v) for v in range(-_TABLE_SPAN, _TABLE_SPAN + 1)], dtype=object)
_TENTHS_TEXT = np.array([f"{v / 10:.1f}".removesuffix(".0") for v in range(-_TABLE_SPAN, _TABLE_SPAN + 1)],
                        dtype=object)


def _numbers(values: np.ndarray, table: np.ndarray, spell) -> str:
    common = np.abs(values) <= _TABLE_SPAN
    text = table[np.where(common, values, 0) + _TABLE_SPAN]
    if not common.all():
        text[~common] = [spell(v) for v in values[~common].tolist()]
    return ",".join(text)


def to_json(reply: dict) -> str:
    """The answer of replay() as JSON text, its track arrays written straight from numpy."""
    head = json.dumps({k: v for k, v in reply.items() if k != "track"}, ensure_ascii=False, separators=(",", ":"))
    track = reply["track"]
    arrays = [f'"{name}":[{_numbers(track[name], _INT_TEXT, str)}]' for name in ("t", "lon", "lat")]
    arrays.append(f'"speed":[{_numbers(track["speed"], _TENTHS_TEXT, lambda v: f"{v / 10:.1f}")}]')
    return f'{head[:-1]},"track":{{{",".join(arrays)}}}}}'


def describe_stops(track: Track) -> list[dict]:
    f = track.fixes
    out = []
    for a, b in track.stops.tolist():
        out.append({"start": _iso(f.t[a]), "end": _iso(f.t[b]), "duration_s": round(f.t[b] - f.t[a]),
                    "lon": round(float(f.lon[a:b + 1].mean()), 6), "lat": round(float(f.lat[a:b + 1].mean()), 6),
                    "fixes": b - a + 1, "index": int(np.searchsorted(track.kept, a))})
    return out


def describe_gaps(track: Track) -> list[dict]:
    t = track.fixes.t
    return [{"start": _iso(t[i]), "end": _iso(t[i + 1]), "duration_s": round(t[i + 1] - t[i]),
             "index": int(np.searchsorted(track.kept, i))} for i in track.gaps.tolist()]


def alarms_along(conn: psycopg.Connection, unit_id: int, start: dt.datetime, end: dt.datetime) -> list[dict]:
    """The unit's alarms whose time overlaps the window (raised in it, or open across it)."""
    rows = conn.cursor(row_factory=dict_row).execute(
        "SELECT id, kind, since, raised_at, escalated_at, cleared_at, cleared_by, lon, lat, message FROM unit_alarm"
        " WHERE unit_id = %s AND since < %s AND coalesce(cleared_at, 'infinity') >= %s ORDER BY raised_at, id",
        (unit_id, end, start)).fetchall()
    return [{k: (v.astimezone(LOCAL_TZ).isoformat() if isinstance(v, dt.datetime) else v) for k, v in r.items()}
            for r in rows]


def replay(conn: psycopg.Connection, unit: dict, start: dt.datetime, end: dt.datetime, zoom: int,
           rules: TrackRules) -> dict:
    """Everything the replay page needs for one unit and window (the API's answer; to_json
    writes it out)."""
    fixes = fetch(conn, unit["id"], start, end)
    track = compute(fixes, zoom, rules)
    t = fixes.t
    return {
        "unit": {"id": unit["id"], "name": unit["name"], "kind": unit["kind"]},
        "from": start.astimezone(LOCAL_TZ).isoformat(), "to": end.astimezone(LOCAL_TZ).isoformat(),
        "zoom": zoom, "tolerance_m": round(track.tolerance_m, 2),
        "fixes": fixes.total, "bad_fixes": fixes.bad, "points": len(track.kept),
        "first_fix": _iso(t[0]) if len(t) else None, "last_fix": _iso(t[-1]) if len(t) else None,
        "distance_m": round(track.distance_m, 1),
        "track": encode(track),
        "stops": describe_stops(track),
        "gaps": describe_gaps(track),
        "alarms": alarms_along(conn, unit["id"], start, end),
    }
