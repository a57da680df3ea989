"""Track replay (轨迹回放): stops, gaps, distance and simplification on hand-made tracks whose
answers are known, against real PostGIS for the fetch and the alarms."""
from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest
import shapely

from devices import partitions, tracks
from devices.registry import add_unit
from workflows.cases import LOCAL_TZ

DAY = dt.date(2026, 5, 4)
T0 = dt.datetime(2026, 5, 4, 9, 0, tzinfo=LOCAL_TZ)
LON0, LAT0 = 113.3400, 27.0005
M_LON = 111_194.93 * math.cos(math.radians(LAT0))       # metres per degree (the tracks module's sphere)
M_LAT = 111_194.93
RULES = tracks.TrackRules(stop_radius_m=30.0, stop_seconds=300, gap_seconds=300)


def at(east_m, north_m):
    """Lon/lat of points east/north (metres) of the start."""
    return LON0 + np.asarray(east_m, float) / M_LON, LAT0 + np.asarray(north_m, float) / M_LAT


def put_fixes(db, unit_id: int, times, lon, lat, *, device: str = "osmand:t1", flags=None) -> None:
    """Store fixes straight into the position table (as the owner), partitions first."""
    times = list(times)
    for day in {t.astimezone(LOCAL_TZ).date() for t in times}:
        partitions.ensure(db, day)
    flags = [0] * len(times) if flags is None else flags
    with db.cursor() as cur, cur.copy("COPY position (device, fix_time, unit_id, received_at, lon, lat, flags)"
                                      " FROM STDIN") as copy:
        for t, x, y, f in zip(times, lon, lat, flags):
            copy.write_row((device, t, unit_id, t, float(x), float(y), int(f)))


def patrol_morning(rng=None) -> dict:
    """09:00 at 1 Hz: 300 s east at 1.2 m/s (360 m), a 10-minute stop with 3 m jitter, 250 s
    back west (300 m), then 15 minutes without a fix while walking on 200 m, and 300 s more
    west (360 m). Three fixes are flagged jumps 5 km away. Returns the fixes and the truth."""
    rng = rng or np.random.default_rng(7)
    east, north, secs = [], [], []
    s = 0
    for k in range(300):                                   # walk east
        east.append(1.2 * k); north.append(0.0); secs.append(s); s += 1
    stop_from = s
    for k in range(600):                                   # the stop, at 360 m east
        east.append(360 + rng.normal(0, 3)); north.append(rng.normal(0, 3)); secs.append(s); s += 1
    stop_to = s - 1
    for k in range(250):                                   # walk back west
        east.append(360 - 1.2 * (k + 1)); north.append(0.0); secs.append(s); s += 1
    gap_from = s - 1
    s += 900                                               # 15 minutes silent …
    for k in range(300):                                   # … having walked on 200 m
        east.append(60 - 200 - 1.2 * k); north.append(0.0); secs.append(s); s += 1
    lon, lat = at(east, north)
    flags = np.zeros(len(secs), int)
    for i in (100, 600, 1300):                             # jumps: kept for the record, never drawn
        lon[i] += 0.05
        flags[i] = 2
    times = [T0 + dt.timedelta(seconds=x) for x in secs]
    return {"times": times, "lon": lon, "lat": lat, "flags": flags,
            "stop": (T0 + dt.timedelta(seconds=stop_from), T0 + dt.timedelta(seconds=stop_to)),
            "gap": (T0 + dt.timedelta(seconds=gap_from), T0 + dt.timedelta(seconds=gap_from + 901)),
            # 360 m there, 300 back, 200 unseen, 358.8 on
            "distance_m": 360 + 300 + 200 + 1.2 * 299}


@pytest.fixture
def unit(db):
    unit_id = add_unit(db, name="监督员张三", kind="inspector", actor="test", devices=["osmand:t1"])
    return {"id": unit_id, "name": "监督员张三", "kind": "inspector"}


def _window():
    start = dt.datetime.combine(DAY, dt.time(), LOCAL_TZ)
    return start, start + dt.timedelta(days=1)


def replay(db, unit, zoom: int = 16) -> dict:
    """The day's replay as the API sends it (JSON text, read back)."""
    return json.loads(tracks.to_json(tracks.replay(db, unit, *_window(), zoom, RULES)))


# ----------------------------------------------------------------------------- with the database
def test_replay_of_a_morning(db, unit):
    walk = patrol_morning()
    put_fixes(db, unit["id"], walk["times"], walk["lon"], walk["lat"], flags=walk["flags"])
    out = replay(db, unit)

    assert out["fixes"] == len(walk["times"]) and out["bad_fixes"] == 3
    assert out["first_fix"] == walk["times"][0].isoformat() and out["last_fix"] == walk["times"][-1].isoformat()
    # One stop, where and when it happened: from the first fix the unit then stayed within
    # 30 m of (walking in, 25 s before it stood still at most) until the last one (walking out).
    [stop] = out["stops"]
    start, end = (dt.datetime.fromisoformat(stop[k]) for k in ("start", "end"))
    assert dt.timedelta(0) <= walk["stop"][0] - start <= dt.timedelta(seconds=25)
    assert dt.timedelta(0) <= end - walk["stop"][1] <= dt.timedelta(seconds=60)
    assert stop["duration_s"] == (end - start).total_seconds() > 600
    assert stop["fixes"] == stop["duration_s"]                 # 1 Hz, one flagged fix inside left out
    east, north = (stop["lon"] - LON0) * M_LON, (stop["lat"] - LAT0) * M_LAT
    assert abs(east - 360) < 3 and abs(north) < 1
    # One gap, between the last fix before the silence and the first after it.
    [gap] = out["gaps"]
    assert (gap["start"], gap["end"]) == (walk["gap"][0].isoformat(), walk["gap"][1].isoformat())
    assert gap["duration_s"] == 901
    # The jitter of the stop is not distance; the silent 200 m are (a straight line).
    assert out["distance_m"] == pytest.approx(walk["distance_m"], abs=5.0)

    track = out["track"]
    t = np.cumsum(track["t"])
    lon, lat = np.cumsum(track["lon"]) / 1e6, np.cumsum(track["lat"]) / 1e6
    assert len(t) == len(lon) == len(lat) == len(track["speed"]) == out["points"]
    assert 4 <= out["points"] < 40                       # straight walks: their ends, the stop's, the gap's
    assert np.all(np.diff(t) > 0) and t[0] == walk["times"][0].timestamp()
    assert lon.max() < LON0 + 0.01                       # the jumps 5 km away are not drawn
    # The indexes point at the stop's first and last fix and at the two ends of the gap.
    i = stop["index"]
    assert t[i] == start.timestamp() and t[i + 1] == end.timestamp()
    j = gap["index"]
    assert t[j] == walk["gap"][0].timestamp() and t[j + 1] == walk["gap"][1].timestamp()
    # Speeds from the positions: 1.2 m/s walking, nothing across the silence.
    assert track["speed"][0] == track["speed"][-1] == 1.2 and track["speed"][j + 1] == 1.2


def test_only_the_window_and_only_this_unit(db, unit):
    other = add_unit(db, name="监督员李四", kind="inspector", actor="test", devices=["osmand:t2"])
    start, end = _window()
    edge = [start - dt.timedelta(seconds=1), start, start + dt.timedelta(hours=12), end - dt.timedelta(seconds=1), end]
    lon, lat = at([0, 10, 20, 30, 40], [0, 0, 0, 0, 0])
    put_fixes(db, unit["id"], edge, lon, lat)
    put_fixes(db, other, edge, lon + 0.001, lat, device="osmand:t2")
    fixes = tracks.fetch(db, unit["id"], start, end)
    assert fixes.total == 3 and fixes.bad == 0
    assert fixes.t.tolist() == [start.timestamp(), start.timestamp() + 43200, end.timestamp() - 1]
    assert np.allclose(fixes.lon, lon[1:4], atol=1e-7) and np.allclose(fixes.lat, lat[1:4], atol=1e-7)


def test_a_window_across_days_reads_each_partition_in_order(db, unit):
    times = [dt.datetime(2026, 5, 4, 23, 59, 58, tzinfo=LOCAL_TZ) + dt.timedelta(seconds=k) for k in range(5)]
    put_fixes(db, unit["id"], times, *at([0, 1, 2, 3, 4], [0] * 5))
    fixes = tracks.fetch(db, unit["id"], times[0], times[-1] + dt.timedelta(seconds=1))
    assert fixes.t.tolist() == [t.timestamp() for t in times]
    assert np.allclose((fixes.lon - LON0) * M_LON, [0, 1, 2, 3, 4], atol=0.02)


def test_two_devices_at_the_same_instant_count_once(db, unit):
    times = [T0 + dt.timedelta(seconds=k) for k in range(3)]
    lon, lat = at([0, 1, 2], [0, 0, 0])
    put_fixes(db, unit["id"], times, lon, lat)
    db.execute("INSERT INTO unit_device (device, unit_id) VALUES ('osmand:t3', %s)", (unit["id"],))
    put_fixes(db, unit["id"], times[1:2], lon[1:2] + 0.0001, lat[1:2], device="osmand:t3")
    fixes = tracks.fetch(db, unit["id"], *_window())
    assert fixes.total == 4 and len(fixes.t) == 3


def test_no_fixes_is_an_empty_track(db, unit):
    partitions.ensure(db, DAY)
    out = replay(db, unit)
    assert (out["fixes"], out["points"], out["first_fix"], out["distance_m"]) == (0, 0, None, 0.0)
    assert out["track"] == {"t": [], "lon": [], "lat": [], "speed": []} and out["stops"] == out["gaps"] == []


def test_a_single_fix_and_only_flagged_ones(db, unit):
    put_fixes(db, unit["id"], [T0], *at([0], [0]))
    put_fixes(db, unit["id"], [T0 + dt.timedelta(hours=1, seconds=k) for k in range(2)], *at([0, 1], [0, 0]),
              flags=[4, 4])
    out = replay(db, unit, 18)
    assert (out["fixes"], out["bad_fixes"], out["points"], out["distance_m"]) == (3, 2, 1, 0.0)
    assert out["track"]["speed"] == [0] and out["track"]["t"] == [int(T0.timestamp())]
    db.execute("DELETE FROM position WHERE fix_time = %s", (T0,))
    out = replay(db, unit, 18)
    assert (out["fixes"], out["bad_fixes"], out["points"], out["first_fix"]) == (2, 2, 0, None)


def test_the_alarms_along_the_way(db, unit):
    start, end = _window()
    rows = [("stationary", start + dt.timedelta(hours=9), None, "停留超时"),              # in the window, open
            ("sos", start - dt.timedelta(hours=2), start + dt.timedelta(hours=1), "一键求助"),   # across the start
            ("offline", start - dt.timedelta(hours=5), start - dt.timedelta(hours=4), "离线"),  # over before: no
            ("out_of_area", end + dt.timedelta(minutes=1), None, "越界")]                        # after: no
    for kind, since, cleared, message in rows:
        db.execute("INSERT INTO unit_alarm (unit_id, kind, since, raised_at, cleared_at, lon, lat, message)"
                   " VALUES (%s, %s, %s, %s, %s, 113.3405, 27.0005, %s)",
                   (unit["id"], kind, since, since + dt.timedelta(minutes=2), cleared, message))
    alarms = tracks.alarms_along(db, unit["id"], start, end)
    assert [a["kind"] for a in alarms] == ["sos", "stationary"]
    assert alarms[1]["message"] == "停留超时" and alarms[1]["cleared_at"] is None
    assert alarms[1]["raised_at"] == (start + dt.timedelta(hours=9, minutes=2)).isoformat()
    assert alarms[0]["lon"] == 113.3405


# ----------------------------------------------------------------------------- the computations alone
def _line(seconds, east, north=None):
    t = np.asarray(seconds, float)
    x = np.asarray(east, float)
    return t, x, np.zeros_like(x) if north is None else np.asarray(north, float)


def test_stops_need_the_radius_and_the_minutes():
    rng = np.random.default_rng(3)
    t = np.arange(1000.0)
    # still (3 m jitter) for 299 s, then walking off: no stop; still for 301 s: a stop
    for still, expected in ((299, []), (301, [[0, 300]])):
        x = np.where(t < still, rng.normal(0, 3, t.size), 1.2 * (t - still) + 40)
        assert tracks.find_stops(t, x, np.zeros_like(x), 30, 300).tolist() == expected
    # creeping at 0.2 m/s covers 60 m in five minutes: no stop
    assert tracks.find_stops(t, 0.2 * t, np.zeros_like(t), 30, 300).tolist() == []


def _stops_one_by_one(t, x, y, radius, seconds):
    """The definition, fix by fix (slow): from each fix, how long does the unit stay near it?"""
    found, i = [], 0
    while i < len(t):
        j = i + 1
        while j < len(t) and math.hypot(x[j] - x[i], y[j] - y[i]) <= radius:
            j += 1
        if t[j - 1] - t[i] >= seconds:
            found.append([i, j - 1])
            i = j
        else:
            i += 1
    merged = []
    for a, b in found:
        if merged and a == merged[-1][1] + 1:
            pa, pb = merged[-1]
            if math.hypot(x[a:b + 1].mean() - x[pa:pb + 1].mean(), y[a:b + 1].mean() - y[pa:pb + 1].mean()) <= radius:
                merged[-1][1] = b
                continue
        merged.append([a, b])
    return merged


@pytest.mark.parametrize("seed", range(6))
def test_stops_are_those_of_the_definition(seed):
    """The quick search (a vectorised pre-test, then fix by fix) finds what the plain
    definition finds, on walks with pauses of every length and irregular fix times."""
    rng = np.random.default_rng(seed)
    n = 4000
    t = np.cumsum(rng.choice([1.0, 1.0, 2.0, 5.0, 40.0], n, p=[.6, .2, .1, .08, .02]))
    moving = np.repeat(rng.random(n // 100) < 0.6, 100)
    step = np.where(moving, rng.uniform(0.5, 1.8, n), 0.0) * np.r_[0, np.diff(t)]
    heading = np.cumsum(rng.normal(0, 0.3, n))
    x = np.cumsum(step * np.cos(heading)) + rng.normal(0, 4, n)
    y = np.cumsum(step * np.sin(heading)) + rng.normal(0, 4, n)
    stops = tracks.find_stops(t, x, y, 30, 300)
    assert stops.tolist() == _stops_one_by_one(t, x, y, 30, 300)
    assert len(stops) >= 3


def test_a_stop_spans_a_silent_phone_and_halves_of_one_stop_are_merged():
    # two fixes 40 minutes apart at the same place: the phone lay still and said nothing
    t, x, y = _line([0, 1, 2, 2402, 2403, 2404], [0, 1.2, 2.4, 3.0, 40, 80])
    assert tracks.find_stops(t, x, y, 30, 300).tolist() == [[0, 3]]
    # arriving from the west, the first fix of the stop lies at its western edge; jitter to
    # the east past 30 m from it would start a second stop at the same place: one stop
    t = np.arange(1400.0)
    x = np.r_[np.full(600, -14.0), np.full(200, 18.0), np.full(600, 0.0)]
    stops = tracks.find_stops(t, x, np.zeros_like(x), 30, 300)
    assert stops.tolist() == [[0, 1399]]


def test_simplification_keeps_shape_pace_and_fixed_points():
    rng = np.random.default_rng(11)
    n = 5000
    t = np.cumsum(rng.uniform(0.5, 1.5, n))
    heading = np.cumsum(rng.normal(0, 0.05, n))
    speed = np.clip(1.3 + np.cumsum(rng.normal(0, 0.02, n)), 0, 3)
    speed[2000:2120] = 0                                   # a two-minute pause on the way
    step = speed * np.r_[0, np.diff(t)]
    x, y = np.cumsum(step * np.cos(heading)), np.cumsum(step * np.sin(heading))
    fixed = np.zeros(n, bool)
    fixed[[1234, 4321]] = True
    tol = tracks.tolerance_m(16, 27.0)
    keep = tracks.simplify(t, x, y, tol, fixed)
    k = np.flatnonzero(keep)
    assert keep[0] and keep[-1] and keep[1234] and keep[4321]
    assert 20 < len(k) < n // 4
    # every dropped fix lies within a pixel (twice the tolerance) of the drawn line, nearly
    # all within half a pixel (the points kept for the pace bend the line a little) …
    off_line = shapely.distance(shapely.LineString(np.c_[x[k], y[k]]), shapely.points(np.c_[x, y]))
    assert off_line.max() <= 2 * tol + 1e-6 and np.mean(off_line <= tol + 1e-6) > 0.99
    # … and within a pixel of where the replay puts the unit at that fix's time
    rx, ry = np.interp(t, t[k], x[k]), np.interp(t, t[k], y[k])
    assert np.hypot(rx - x, ry - y).max() <= 2 * tol + 1e-6
    # the pause's two ends are kept, so the replay stands still through it
    assert np.any((k >= 1995) & (k <= 2005)) and np.any((k >= 2115) & (k <= 2125))
    # a coarser zoom keeps fewer points
    assert tracks.simplify(t, x, y, tracks.tolerance_m(13, 27.0), fixed).sum() < len(k)


def test_fixed_points_side_by_side_and_tiny_tracks():
    t, x, y = _line(range(8), [0, 1, 2, 3, 4, 5, 6, 7])
    fixed = np.array([False, False, True, True, False, True, True, False])
    assert np.flatnonzero(tracks.simplify(t, x, y, 1.0, fixed)).tolist() == [0, 2, 3, 5, 6, 7]
    for n in (1, 2):
        assert tracks.simplify(*_line(range(n), range(n)), 1.0, np.zeros(n, bool)).all()


def test_numbers_are_written_exactly():
    big = np.array([0, 7, -7, 9999, 10000, -10001, 123456789012, -5])
    reply = {"unit": {"name": "张三"}, "track": {"t": big, "lon": big[:2], "lat": big[:0],
                                                  "speed": np.array([0, 5, 12, 10000, 123456, -3])}}
    out = json.loads(tracks.to_json(reply))
    assert out["unit"]["name"] == "张三" and list(out) == ["unit", "track"]
    assert out["track"] == {"t": big.tolist(), "lon": [0, 7], "lat": [], "speed": [0, 0.5, 1.2, 1000, 12345.6, -0.3]}


def test_tolerance_is_half_a_pixel():
    assert tracks.tolerance_m(16, 0.0) == pytest.approx(156543.034 / 2 ** 16 / 2)
    assert tracks.tolerance_m(16, 27.0) == pytest.approx(1.064, abs=0.001)
    assert tracks.tolerance_m(18, 27.0) == pytest.approx(tracks.tolerance_m(16, 27.0) / 4)
