"""Track replay benchmark (issue 4, "Track replay"): one unit's day at 1 Hz (86,400 fixes)
replayed, beside the plain fetch of the same rows, measured in the same run on the same cluster.

    .venv/bin/python bench/bench_replay.py          (about 2 minutes on the 2-core machine)

A throwaway PostGIS cluster (bench/_stack.py, fast settings: commits are not measured),
migrated. One unit's day: a patrol walk along a street grid (blocks of 80-160 m, 1.0-1.7 m/s,
short pauses at corners), six stops of 8-60 minutes, correlated GPS noise (about 2.5 m) and
50 flagged jumps, COPYed into the day's partition. Then, as the app role, RUNS times each
after a warm-up:

- baseline: SELECT lon, lat, fix_time FROM position WHERE unit_id = … AND fix_time in the
  day, fetched with psycopg (tuples);
- devices.tracks.replay() + the JSON text at zooms 14, 16 and 18 (server time: fetch,
  stops, gaps, distance, simplification, alarms, encoding), with its parts at zoom 16;
- GET /api/units/{id}/track through the real app (TestClient): bytes on the wire raw and
  gzipped, and the request's time with gzip.

Then the same again with nine more units reporting at 1 Hz the same day, so that the unit's
rows lie spread over ten times as many heap pages, as they do on a busy server.
Exits 0 whatever the figures; a missed target is printed as MISSED.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import datetime as dt  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from psycopg.rows import tuple_row  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stack import throwaway_postgres  # noqa: E402
from devices import partitions, tracks  # noqa: E402
from devices.registry import add_unit  # noqa: E402
from gis import migrate  # noqa: E402
from gis.config import Settings  # noqa: E402
from gis.db import connect, open_pool, prepare_app_session  # noqa: E402
from workflows.cases import LOCAL_TZ  # noqa: E402

SEED = 2026
DAY = dt.date(2026, 3, 2)
START = dt.datetime.combine(DAY, dt.time(), LOCAL_TZ)
END = START + dt.timedelta(days=1)
SECONDS = 86_400
STOPS = ((2.0, 8), (5.0, 45), (9.0, 12), (13.0, 30), (17.0, 20), (21.0, 60))     # (hour, minutes)
CENTRE_LON, CENTRE_LAT = 113.345, 27.0
M_PER_DEG = 111_320.0
RUNS = int(os.environ.get("CITYGRID_BENCH_RUNS", "40"))
ZOOMS = (14, 16, 18)
OTHER_UNITS = 9
TARGET_MS, TARGET_KB = 50.0, 150.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


# ----------------------------------------------------------------------------- the day
def _ar1(rng: np.random.Generator, n: int, keep: float, sigma: float) -> np.ndarray:
    """Correlated noise: each value keeps `keep` of the one before (stationary sd `sigma`)."""
    shocks = rng.normal(0, sigma * np.sqrt(1 - keep ** 2), n)
    out = np.empty(n)
    level = 0.0
    for i in range(n):
        level = keep * level + shocks[i]
        out[i] = level
    return out


def patrol_day(rng: np.random.Generator, centre_east_m: float = 0.0) -> tuple[np.ndarray, ...]:
    """A day at 1 Hz: (lon, lat, speed_mps, flags) per second from midnight."""
    speed = np.clip(1.35 + _ar1(rng, SECONDS, 0.98, 0.25), 1.0, 1.7)
    for corner in rng.integers(0, SECONDS, 40):           # short pauses (below the stop threshold)
        speed[corner:corner + rng.integers(30, 150)] = 0
    for hour, minutes in STOPS:
        speed[int(hour * 3600):int(hour * 3600) + minutes * 60] = 0
    headings = [np.array(d, float) for d in ((1, 0), (0, 1), (-1, 0), (0, -1))]
    heading, here, walked, block = headings[0], np.zeros(2), 0.0, rng.uniform(80, 160)
    path = np.empty((SECONDS, 2))
    for i in range(SECONDS):                              # along the streets, turning at corners
        here = here + heading * speed[i]
        walked += speed[i]
        if walked >= block:
            walked, block = 0.0, rng.uniform(80, 160)
            turns = [d for d in headings if not np.allclose(d, -heading)]
            pull = np.array([1.0 + max(0.0, -float(np.dot(d, here)) / 800.0) for d in turns])   # home-bound
            heading = turns[rng.choice(len(turns), p=pull / pull.sum())]
        path[i] = here
    noise = np.c_[_ar1(rng, SECONDS, 0.95, 2.5), _ar1(rng, SECONDS, 0.95, 2.5)] + rng.normal(0, 0.4, (SECONDS, 2))
    east, north = (path + noise).T
    lat = CENTRE_LAT + north / M_PER_DEG
    lon = CENTRE_LON + (east + centre_east_m) / (M_PER_DEG * np.cos(np.radians(CENTRE_LAT)))
    flags = np.zeros(SECONDS, np.int16)
    bad = rng.choice(SECONDS, 50, replace=False)
    flags[bad], lon[bad] = 2, lon[bad] + 0.01
    reported = np.clip(speed + rng.normal(0, 0.15, SECONDS), 0, None)
    return lon, lat, reported, flags


def load_units(conn, days: dict[int, tuple[np.ndarray, ...]]) -> None:
    """COPY the units' days into the position table, second by second (units interleaved)."""
    times = [START + dt.timedelta(seconds=s) for s in range(SECONDS)]
    units = sorted(days)
    with conn.cursor() as cur, cur.copy("COPY position (device, fix_time, unit_id, received_at, lon, lat, accuracy_m,"
                                        " speed_mps, flags) FROM STDIN") as copy:
        for s in range(SECONDS):
            for unit_id in units:
                lon, lat, speed, flags = days[unit_id]
                copy.write_row((f"osmand:u{unit_id}", times[s], unit_id, times[s], float(lon[s]), float(lat[s]), 5.0,
                                float(speed[s]), int(flags[s])))
    vacuum_day(conn)


def vacuum_day(conn) -> None:
    """Leave the day as autovacuum leaves any past day: every page all-visible, so the replay
    reads the fixes from the index alone. A VACUUM right after the COPY may find the pages
    still in the view of an autovacuum ANALYZE that started during the load: vacuum again."""
    for _ in range(5):
        conn.execute("VACUUM ANALYZE position")
        pages, visible = conn.execute("SELECT relpages, relallvisible FROM pg_class WHERE relname = %s",
                                      (f"position_{DAY:%Y%m%d}",)).fetchone().values()
        if visible >= pages:
            return
        time.sleep(1)
    raise RuntimeError(f"VACUUM left {pages - visible} of {pages} pages of the day not all-visible")


# ----------------------------------------------------------------------------- measuring
def timed(fn, runs: int = RUNS) -> tuple[np.ndarray, object]:
    result = fn()
    fn()                                                  # warm-ups: caches, plans
    took = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        took.append(time.perf_counter() - t0)
    return np.array(took) * 1e3, result


def p50_p99(ms: np.ndarray) -> str:
    return f"p50 {np.percentile(ms, 50):6.1f} ms  p99 {np.percentile(ms, 99):6.1f} ms  (min {ms.min():5.1f})"


def measure(conn, client, headers: dict, unit: dict, rules: tracks.TrackRules, label: str) -> dict:
    log(f"measuring ({label}), {RUNS} runs each")
    plain = conn.cursor(row_factory=tuple_row)
    base_ms, rows = timed(lambda: plain.execute(
        "SELECT lon, lat, fix_time FROM position WHERE unit_id = %s AND fix_time >= %s AND fix_time < %s",
        (unit["id"], START, END)).fetchall())
    print(f"  baseline: plain fetch of {len(rows):,} rows (lon, lat, fix_time)   {p50_p99(base_ms)}")
    out = {"baseline": base_ms}
    for zoom in ZOOMS:
        ms, body = timed(lambda: tracks.to_json(tracks.replay(conn, unit, START, END, zoom, rules)))
        reply = json.loads(body)
        out[zoom] = ms
        print(f"  replay() + JSON, zoom {zoom}: {reply['points']:6,} points   {p50_p99(ms)}"
              f"   ({np.percentile(ms, 50) / np.percentile(base_ms, 50):.2f} × baseline)")
    # The parts at zoom 16.
    fetch_ms, fixes = timed(lambda: tracks.fetch(conn, unit["id"], START, END))
    compute_ms, track = timed(lambda: tracks.compute(fixes, 16, rules))
    encode_ms, _ = timed(lambda: tracks.to_json({"stops": tracks.describe_stops(track),
                                                 "gaps": tracks.describe_gaps(track), "track": tracks.encode(track)}))
    print(f"  parts at zoom 16 (p50 / min): fetch {np.percentile(fetch_ms, 50):.1f} / {fetch_ms.min():.1f} ms, compute"
          f" {np.percentile(compute_ms, 50):.1f} / {compute_ms.min():.1f} ms, JSON {np.percentile(encode_ms, 50):.1f} /"
          f" {encode_ms.min():.1f} ms; {len(fixes.t):,} good fixes, {fixes.bad} flagged,"
          f" {len(track.stops)} stops, {track.distance_m / 1000:.1f} km")
    # Through the app.
    for zoom in ZOOMS:
        url = f"/api/units/{unit['id']}/track"
        params = {"from": START.isoformat(), "to": END.isoformat(), "zoom": zoom}
        raw = client.get(url, params=params, headers={**headers, "Accept-Encoding": "identity"})
        http_ms, gz = timed(lambda: client.get(url, params=params, headers={**headers, "Accept-Encoding": "gzip"}),
                            runs=max(5, RUNS // 4))
        assert raw.status_code == gz.status_code == 200, raw.text[:300]
        assert gz.headers.get("content-encoding") == "gzip"
        wire = int(gz.headers["content-length"])
        out[f"wire{zoom}"] = wire
        print(f"  GET …/track zoom {zoom}: {len(raw.content) / 1024:7.1f} KB raw, {wire / 1024:6.1f} KB gzipped;"
              f" request with gzip {p50_p99(http_ms)}")
    return out


def main() -> None:
    from fastapi.testclient import TestClient

    from command.app import create_app
    from command.auth import create_user

    with throwaway_postgres("citygrid-bench-replay-") as stack:
        with connect(stack.url) as owner:
            migrate.migrate(owner)
            partitions.ensure(owner, DAY)
            unit_id = add_unit(owner, name="监督员张三", kind="inspector", actor="bench", devices=["osmand:u1"])
            create_user(owner, username="bench", password="bench-password", role="admin", actor="bench")
            log("generating and loading one unit's day at 1 Hz")
            rng = np.random.default_rng(SEED)
            load_units(owner, {unit_id: patrol_day(rng)})
            others = [add_unit(owner, name=f"巡查{k}", kind="inspector", actor="bench") for k in range(OTHER_UNITS)]

        settings = Settings(database_url=stack.url, secret_key="bench-secret-0123456789abcdef-0123456789",
                            timer_interval_seconds=0)
        rules = tracks.TrackRules.from_settings(settings)
        pool = open_pool(settings, max_size=2)
        with TestClient(create_app(settings, pool)) as client, connect(stack.url) as conn:
            prepare_app_session(conn, settings.db_app_role)
            token = client.post("/api/auth/token", data={"username": "bench", "password": "bench-password"})
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            unit = {"id": unit_id, "name": "监督员张三", "kind": "inspector"}
            alone = measure(conn, client, headers, unit, rules, "the unit alone in the partition")
            log(f"loading {OTHER_UNITS} more units' days, interleaved")
            with connect(stack.url) as owner:
                owner.execute("TRUNCATE position")
                load_units(owner, {unit_id: patrol_day(np.random.default_rng(SEED)),
                                   **{u: patrol_day(rng, 3000.0 * (k + 1)) for k, u in enumerate(others)}})
            busy = measure(conn, client, headers, unit, rules, f"among {OTHER_UNITS + 1} units")
        pool.close()

    print()
    print("=" * 100)
    print(f"SUMMARY  ({stack.settings_note()}; one unit's day at 1 Hz, {SECONDS:,} fixes; {RUNS} runs)")
    for name, m in (("alone", alone), (f"among {OTHER_UNITS + 1} units", busy)):
        z16 = np.percentile(m[16], 50)
        base = np.percentile(m["baseline"], 50)
        print(f"{name}: replay zoom 16 p50 {z16:.1f} ms, p99 {np.percentile(m[16], 99):.1f} ms"
              f" (target <= {TARGET_MS:.0f} ms: {verdict(z16 <= TARGET_MS)}); baseline plain fetch p50 {base:.1f} ms;"
              f" zoom 14 / 18 p50 {np.percentile(m[14], 50):.1f} / {np.percentile(m[18], 50):.1f} ms")
        kb = [m[f"wire{z}"] / 1024 for z in ZOOMS]
        print(f"{name}: on the wire gzipped {kb[0]:.0f} / {kb[1]:.0f} / {kb[2]:.0f} KB at zoom 14 / 16 / 18"
              f" (target <= {TARGET_KB:.0f} KB at 16: {verdict(kb[1] <= TARGET_KB)})")
    print("=" * 100)


if __name__ == "__main__":
    main()
