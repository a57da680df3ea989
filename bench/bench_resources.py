"""Nearest available emergency resources of a type among 10,000 (workflows.resources):
p50/p99 per query beside the same question answered without the nearest-neighbour index
(every available resource of the type measured and sorted), in the same run.

    .venv/bin/python bench/bench_resources.py [--resources 10000] [--queries 1000]
"""
from __future__ import annotations

import argparse
import random
import statistics
import time

from _stack import throwaway_postgres

from bench_ingest import pct
from gis import migrate
from gis.db import connect
from workflows.plans import resource_types
from workflows.resources import nearest_available

TARGET_MS = 5.0
BOX = (113.30, 26.97, 113.38, 27.03)            # about 8 × 7 km around the demo city


def brute(conn, type_code: str, lon: float, lat: float, limit: int = 10) -> list:
    return conn.execute(
        "SELECT id, ST_Distance(location::geography, ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography) AS d"
        " FROM resource WHERE status = 'available' AND type_code = %s ORDER BY d LIMIT %s",
        (lon, lat, type_code, limit)).fetchall()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resources", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=1_000)
    args = ap.parse_args()
    kinds = sorted(resource_types())
    rng = random.Random(5)
    with throwaway_postgres("citygrid-bench-resources-") as stack, connect(stack.url) as conn:
        migrate.migrate(conn)
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO resource (name, type_code, location, status) VALUES (%s, %s,"
                " ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s)",
                [(f"资源{i}", rng.choice(kinds), rng.uniform(BOX[0], BOX[2]), rng.uniform(BOX[1], BOX[3]),
                  rng.choices(("available", "assigned", "out_of_service"), (7, 2, 1))[0])
                 for i in range(args.resources)])
        conn.execute("ANALYZE resource")
        asks = [(rng.choice(kinds), rng.uniform(BOX[0], BOX[2]), rng.uniform(BOX[1], BOX[3]))
                for _ in range(args.queries)]
        for ask in asks[:50]:                                          # warm the caches and plans
            nearest_available(conn, *ask)
            brute(conn, *ask)
        timed, baseline, mismatches = [], [], 0
        for ask in asks:
            t0 = time.perf_counter()
            got = nearest_available(conn, *ask)
            timed.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            expected = brute(conn, *ask)
            baseline.append((time.perf_counter() - t0) * 1000)
            mismatches += [r["id"] for r in got] != [r["id"] for r in expected]
    print()
    print("=" * 100)
    print(f"SUMMARY ({stack.settings_note()}; {args.resources:,} resources of {len(kinds)} types, 70 % available;"
          f" {args.queries:,} questions at random places, 10 nearest each; 2-core machine shared)")
    print(f"nearest 10 available of a type: p50 {statistics.median(timed):.2f} ms, p99 {pct(timed, 99):.2f} ms"
          f"  | baseline, every one of the type measured and sorted: p50 {statistics.median(baseline):.2f} ms,"
          f" p99 {pct(baseline, 99):.2f} ms  | target p99 <= {TARGET_MS:g} ms:"
          f" {'met' if pct(timed, 99) <= TARGET_MS else 'NOT met'}")
    print(f"answers differing from the baseline's: {mismatches} of {args.queries}")
    return 0 if mismatches == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
