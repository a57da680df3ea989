"""IoT device telemetry, end to end: MQTT QoS 1 through Mosquitto → `citygrid ingest` workers
(decode, check against the device type, COPY into the day partition, every rule of the
type, device state and alarms) → committed in PostGIS.

Prints, each beside a baseline measured in the same run:
- telemetry messages committed per second with the rules on, lost and duplicated
  (baseline: a raw COPY of the same rows into the same table); the clock runs from the
  publisher's first message to the last commit, after every worker has stored a warm-up
  reading;
- alarm latency, from a lifted manhole cover's message handed to the broker to its alarm on
  the live bus, at 5,000 messages/s of background (baseline: the same probes when idle);
- the worker's memory with 100,000 registered devices.

    .venv/bin/python bench/bench_telemetry.py [--devices 100000] [--active 10000] [--rounds 30]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import pickle
import random
import subprocess
import tempfile
import time
from pathlib import Path

from _stack import throwaway_postgres
from bench_ingest import (AlarmClock, count, pct, probe_latency, publish_process, rss_mb, start_worker, stop_all,
                          track_commit_times, wait_until, warm_up, warnings_in)

import psycopg

from command.services import MosquittoBroker, free_port
from devices import partitions
from devices.device_types import load_types, read_types
from gis import migrate
from gis.db import connect

GAUGES = "SELECT count(*) AS n FROM telemetry WHERE device_id LIKE 'WL-%%'"


def seed_devices(conn: psycopg.Connection, n: int) -> None:
    """n devices: mostly waterlogging gauges (WL-…), a tenth manhole covers (MC-…) for the probes."""
    with conn.transaction():
        load_types(conn, read_types(), actor="bench")
        conn.execute(
            "INSERT INTO device (id, type_code, location, username)"
            " SELECT id, type_code, ST_SetSRID(ST_MakePoint(113.30 + (i %% 300) * 0.0005, 27.00 + (i / 300) * 0.0005),"
            " 4326), id FROM (SELECT i, CASE WHEN i %% 10 = 0 THEN 'MC-' ELSE 'WL-' END || i AS id,"
            " CASE WHEN i %% 10 = 0 THEN 'manhole_cover' ELSE 'waterlogging_gauge' END AS type_code"
            " FROM generate_series(1, %s) i) d", (n,))


def gauges(n_active: int) -> list[str]:
    return [f"WL-{i}" for i in range(1, 10 * n_active) if i % 10][:n_active]


def readings(devices: list[str], rounds: int, base: dt.datetime) -> list[tuple[str, dt.datetime, dict]]:
    """Every device reports once a second: a little water wavering by a few millimetres; at
    one gauge in a hundred the water stands deep enough for the rules to raise an alarm."""
    rng = random.Random(7)
    level = {d: (20.0 if rng.random() < 0.01 else rng.uniform(0, 6)) for d in devices}
    rows = []
    for r in range(rounds):
        t = base + dt.timedelta(seconds=r)
        second = [(d, t, {"depth_cm": round(max(0.0, level[d] + rng.uniform(-0.3, 0.3)), 1), "battery_pct": 80.0})
                  for d in devices]
        rng.shuffle(second)
        rows += second
    return rows


def message(device: str, t: dt.datetime, values: dict) -> tuple[str, bytes]:
    return (f"citygrid/devices/{device}/telemetry",
            json.dumps({"ts": int(t.timestamp() * 1000), "values": values}).encode())


def raw_copy(url: str, rows: list) -> float:
    """Baseline: the same rows COPYed straight into telemetry, one transaction. Rows/s."""
    with connect(url) as conn:
        t = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy("COPY telemetry (device_id, ts, received_at, values) FROM STDIN") as cp:
                now = dt.datetime.now(dt.timezone.utc)
                for d, ts, values in rows:
                    cp.write_row((d, ts, now, json.dumps(values)))
        seconds = time.perf_counter() - t
        conn.execute("TRUNCATE telemetry")
    return len(rows) / seconds


def cover_alarm(msg: dict) -> str | None:
    return msg["device_id"] if msg.get("kind") == "device_alarm" and msg.get("state") == "raised" else None


def cover_lifted(device: str) -> tuple[str, bytes]:
    return message(device, dt.datetime.now(dt.timezone.utc), {"open": True})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--active", type=int, default=10_000, help="devices reporting in the burst")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--probes", type=int, default=100)
    args = ap.parse_args()
    with throwaway_postgres("citygrid-bench-telemetry-", durable=True) as stack:
        track_commit_times(stack)
        broker = MosquittoBroker(Path(tempfile.mkdtemp(prefix="citygrid-bench-mqtt-")), free_port())
        broker.start()
        workers: list[subprocess.Popen] = []
        try:
            with connect(stack.url) as conn:
                migrate.migrate(conn)
                seed_devices(conn, args.devices)
                now = dt.datetime.now(dt.timezone.utc)
                partitions.ensure(conn, partitions.local_day(now), "telemetry")
            base = now - dt.timedelta(seconds=args.rounds + 60)
            rows = readings(gauges(args.active), args.rounds, base)
            print(f"{len(rows):,} telemetry messages from {args.active:,} of {args.devices:,} registered devices;"
                  f" {stack.settings_note()}; {args.workers} worker(s); 2 cores shared by broker, database,"
                  " workers and publisher")
            baseline = raw_copy(stack.url, rows)
            logs = [stack.home / f"bench-{i}.log" for i in range(args.workers)]
            workers = [start_worker(stack.url, broker.port, f"bench-{i}", log) for i, log in enumerate(logs)]
            with connect(stack.url) as watch:
                warm_up(watch, broker.port, args.workers,
                        lambda k: message("MC-10", dt.datetime.now(dt.timezone.utc), {"open": False}))
                path = stack.home / "burst.pickle"
                path.write_bytes(pickle.dumps([message(*r) for r in rows]))
                pub = publish_process(broker.port, path, 0)
                started = float(pub.stdout.readline())
                stored = wait_until(watch, len(rows), 300, GAUGES)
                finished = pub.stdout.readline().split()
                pub.wait()
                last_commit = watch.execute("SELECT extract(epoch FROM max(pg_xact_commit_timestamp(xmin))) AS t"
                                            " FROM telemetry WHERE device_id LIKE 'WL-%%'").fetchone()["t"]
                seconds = float(last_commit) - started
                alarms = count(watch, "SELECT count(*) AS n FROM device_alarm")
                print(f"end to end, rules on: {stored / seconds:,.0f} messages/s committed ({stored:,} of {len(rows):,}"
                      f" in {seconds:.1f} s; publisher done after {float(finished[0]) - started:.1f} s; {alarms} alarms"
                      f" raised)  | baseline raw COPY: {baseline:,.0f} rows/s  | target ≥ 20,000/s")
                print(f"  lost: {len(rows) - stored}   duplicated rows: "
                      f"{count(watch, 'SELECT count(*) - count(DISTINCT (device_id, ts)) AS n FROM telemetry')}"
                      f"   redeliveries absorbed: "
                      f"{count(watch, 'SELECT coalesce(sum(duplicates), 0)::bigint AS n FROM ingest_worker')}")
                letters = watch.execute("SELECT reason, count(*) AS n FROM dead_letter GROUP BY reason").fetchall()
                print("  dead letters: " + (", ".join(f"{r['reason']} {r['n']}" for r in letters) or "0"))
                trouble = warnings_in(logs)
                print(f"  worker warnings and errors during the burst: {len(trouble)}"
                      + "".join(f"\n    {line[:300]}" for line in trouble[:5]))
                rss, peak = rss_mb(workers[0].pid)
                print(f"worker memory with {args.devices:,} registered devices: RSS {rss:.0f} MB (peak {peak:.0f} MB)"
                      f"  | target ≤ 500 MB")

                clock = AlarmClock(stack.url, cover_alarm)
                covers = [f"MC-{10 * i}" for i in range(2, 2 + 2 * args.probes)]
                idle = probe_latency(broker.port, covers[:args.probes // 4], cover_lifted, clock, 0.05)
                later = base + dt.timedelta(seconds=args.rounds)
                path.write_bytes(pickle.dumps([message(d, t + (later - base), v) for d, t, v in rows]))
                bg = publish_process(broker.port, path, 5000)
                bg.stdout.readline()
                time.sleep(2)
                loaded = probe_latency(broker.port, covers[args.probes:], cover_lifted, clock,
                                       min(0.1, len(rows) / 5000 / args.probes / 2))
                bg.terminate()
                bg.wait()
                clock.stop = True
                print(f"alarm latency at 5,000 messages/s: p50 {pct(loaded, 50):.0f} ms, p99 {pct(loaded, 99):.0f} ms,"
                      f" max {max(loaded):.0f} ms ({len(loaded)}/{args.probes} alarms)  | baseline idle: p50"
                      f" {pct(idle, 50):.0f} ms, p99 {pct(idle, 99):.0f} ms  | target p99 ≤ 500 ms")
        finally:
            stop_all(workers, broker)


if __name__ == "__main__":
    main()
