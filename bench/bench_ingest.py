"""Patrol GPS ingest, end to end: MQTT QoS 1 through Mosquitto → `citygrid ingest` worker
(decode, flag, COPY, the whole alarm handler chain, the sweeper) → committed in PostGIS.

Prints, each beside a baseline measured in the same run:
- positions committed per second with all alarm handlers on, lost and duplicated
  (baseline: a raw COPY of the same rows into the same table); the clock runs from the
  publisher's first message to the last commit (PostgreSQL's commit timestamps), after
  every worker has stored a warm-up fix;
- alarm latency, from an SOS fix handed to the broker to its alarm on the live bus, at
  5,000 positions/s of background (baseline: the same probes on an idle system);
- the worker's memory with 10,000 registered units on shift.

    .venv/bin/python bench/bench_ingest.py [--units 10000] [--rounds 30] [--workers 2]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pickle
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from _mqtt_load import LoadPublisher
from _stack import throwaway_postgres

import psycopg

from command.services import MosquittoBroker, free_port
from devices import partitions
from devices.mqtt import Publisher
from gis import migrate
from gis.db import connect

SIDE = 0.002                     # each unit's area: a 0.002° square (~200 m)
LIVE = "citygrid_live"


def seed_units(conn: psycopg.Connection, n: int, now: dt.datetime) -> None:
    """n units on shift since a few minutes ago (not yet offline), unit i patrolling its own
    square on a 100-column lattice."""
    with conn.transaction():
        conn.execute("INSERT INTO unit (name, kind) SELECT '巡查员' || i, 'inspector' FROM generate_series(1, %s) i", (n,))
        conn.execute(
            "INSERT INTO shift (unit_id, starts_at, ends_at, area, created_by)"
            " SELECT id, %s, %s, ST_Multi(ST_MakeEnvelope(113.30 + ((id - 1) %% 100) * %s, 27.00 + ((id - 1) / 100) * %s,"
            " 113.30 + ((id - 1) %% 100) * %s + %s, 27.00 + ((id - 1) / 100) * %s + %s, 4326)), 'bench' FROM unit",
            (now - dt.timedelta(minutes=5), now + dt.timedelta(hours=1), SIDE, SIDE, SIDE, SIDE, SIDE, SIDE))


def walk(unit_id: int, k: int) -> tuple[float, float]:
    """Where unit_id is at step k: a slow loop inside its square (~1.4 m/s)."""
    x0, y0 = 113.30 + ((unit_id - 1) % 100) * SIDE, 27.00 + ((unit_id - 1) // 100) * SIDE
    return round(x0 + SIDE * (0.2 + 0.6 * ((k * 7) % 100) / 100), 6), round(y0 + SIDE * 0.5, 6)


def positions(units: int, rounds: int, base: dt.datetime) -> list[tuple[int, dt.datetime, float, float]]:
    """Every unit once a second, in a different order each second as phones report on their
    own clocks (in a fixed order the broker would deal each worker the same units every
    round, and workers would never meet on a unit as they do in the street)."""
    order = random.Random(2026)
    rows = []
    for k in range(rounds):
        ids = list(range(1, units + 1))
        order.shuffle(ids)
        rows += [(u, base + dt.timedelta(seconds=k), *walk(u, k)) for u in ids]
    return rows


def raw_copy(url: str, rows: list) -> float:
    """Baseline: the same rows COPYed straight into position, one transaction. Rows/s."""
    with connect(url) as conn:
        t = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy("COPY position (device, fix_time, unit_id, received_at, lon, lat, accuracy_m) FROM STDIN") as cp:
                now = dt.datetime.now(dt.timezone.utc)
                for u, ft, lon, lat in rows:
                    cp.write_row((f"unit:{u}", ft, u, now, lon, lat, 8.0))
        seconds = time.perf_counter() - t
        conn.execute("TRUNCATE position")
        conn.commit()
    return len(rows) / seconds


def start_worker(url: str, broker_port: int, name: str, log: Path) -> subprocess.Popen:
    """An ingest worker process logging to `log` (a pipe nobody reads would stall it once full)."""
    env = {**os.environ, "CITYGRID_DATABASE_URL": url, "CITYGRID_MQTT_URL": f"mqtt://127.0.0.1:{broker_port}",
           "CITYGRID_SECRET_KEY": "bench-secret-0123456789abcdef", "CITYGRID_INGEST_SHARE_GROUP": "bench"}
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "command.cli", "ingest", "--name", name], env=env,
                                stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1])


def stop_all(workers: list[subprocess.Popen], broker: MosquittoBroker) -> None:
    """Stop the worker processes and the broker, and remove the broker's folder."""
    for w in workers:
        w.terminate()
        try:
            w.wait(10)
        except subprocess.TimeoutExpired:
            w.kill()
    broker.stop()
    shutil.rmtree(broker.directory, ignore_errors=True)


def warnings_in(logs: list[Path]) -> list[str]:
    return [line for log in logs for line in log.read_text(errors="replace").splitlines()
            if " WARNING " in line or " ERROR " in line]


def count(conn, sql: str = "SELECT count(*) AS n FROM position") -> int:
    return conn.execute(sql).fetchone()["n"]


def wait_until(conn, expected: int, timeout: float, sql: str = "SELECT count(*) AS n FROM position") -> int:
    """Polls twice a second: counting a growing table takes CPU from what is measured (the
    time of the last commit comes from the commit timestamps, not from this poll)."""
    end = time.monotonic() + timeout
    while True:
        n = count(conn, sql)
        if n >= expected or time.monotonic() > end:
            return n
        time.sleep(0.5)


def track_commit_times(stack) -> None:
    """Have PostgreSQL keep each transaction's commit time (pg_xact_commit_timestamp)."""
    with psycopg.connect(stack.url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET track_commit_timestamp = on")
    stack.cluster.stop()
    stack.cluster.start(fast=not stack.durable)


def warm_up(conn, port: int, workers: int, message: Callable[[int], tuple[str, bytes]]) -> None:
    """message(k) until every worker has stored one (each has then loaded what it needs and
    is subscribed), so that the clock measures ingest, not start-up."""
    pub = Publisher("127.0.0.1", port)
    try:
        for k in range(600):
            pub.publish(*message(k))
            pub.flush(5)
            if count(conn, "SELECT count(*) AS n FROM ingest_worker WHERE stored > 0") >= workers:
                return
            time.sleep(0.1)
        raise RuntimeError("the ingest workers did not all store a message within a minute")
    finally:
        pub.close()


def publish_process(port: int, path: Path, rate: float) -> subprocess.Popen:
    """A separate process publishing the pickled (topic, payload) list at `rate` msgs/s (0 = flat out)."""
    return subprocess.Popen([sys.executable, __file__, "--publish", str(path), "--port", str(port), "--rate", str(rate)],
                            stdout=subprocess.PIPE, text=True)


def publish_main(path: str, port: int, rate: float) -> None:
    messages = pickle.loads(Path(path).read_bytes())
    pub = LoadPublisher("127.0.0.1", port, f"bench-load-{os.getpid()}")
    start = time.time()
    print(start, flush=True)
    chunk = 500
    for i in range(0, len(messages), chunk):
        pub.publish_many(messages[i:i + chunk])
        if rate:
            ahead = start + (i + chunk) / rate - time.time()
            if ahead > 0:
                time.sleep(ahead)
    ok = pub.wait_acked(300)
    pub.close()
    print(time.time(), ok, flush=True)


def native(u: int, ft: dt.datetime, lon: float, lat: float, **extra) -> tuple[str, bytes]:
    return f"citygrid/units/{u}/pos", json.dumps({"ts": ft.isoformat(), "lon": lon, "lat": lat, "acc": 8,
                                                   **extra}).encode()


def rss_mb(pid: int) -> tuple[float, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


class AlarmClock:
    """Listens on the live bus and notes when each probe's alarm arrives; key_of(message)
    names the probe an alarm belongs to (None: not a probe's alarm)."""

    def __init__(self, url: str, key_of: Callable[[dict], object]):
        self.arrived: dict = {}
        self.key_of = key_of
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute(f"LISTEN {LIVE}")
        self.stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stop:
            for n in self.conn.notifies(timeout=0.2):
                key = self.key_of(json.loads(n.payload))
                if key is not None:
                    self.arrived.setdefault(key, time.time())


def probe_latency(port: int, probes: list, message: Callable[[object], tuple[str, bytes]], clock: AlarmClock,
                  interval: float) -> list[float]:
    """One alarming message per probe, `interval` apart; ms from handing it to the broker to
    its alarm on the bus."""
    pub = Publisher("127.0.0.1", port)
    sent = {}
    for key in probes:
        topic, payload = message(key)
        sent[key] = time.time()
        pub.publish(topic, payload)
        time.sleep(interval)
    pub.flush(30)
    end = time.monotonic() + 30
    while len(clock.arrived.keys() & sent.keys()) < len(sent) and time.monotonic() < end:
        time.sleep(0.05)
    pub.close()
    return [(clock.arrived[k] - sent[k]) * 1000 for k in sent if k in clock.arrived]


def sos_alarm(msg: dict) -> int | None:
    return msg["unit_id"] if (msg.get("kind") == "unit_alarm" and msg.get("alarm") == "sos"
                              and msg.get("state") == "raised") else None


def sos(unit: int) -> tuple[str, bytes]:
    return native(unit, dt.datetime.now(dt.timezone.utc), *walk(unit, 0), sos=True)


def pct(values: list[float], q: float) -> float:
    # "inclusive": with a few dozen probes the default method extrapolates past the slowest one
    return (statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) >= 2
            else (values[0] if values else float("nan")))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--units", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--workers", type=int, default=2, help="ingest worker processes (shared subscription)")
    ap.add_argument("--probes", type=int, default=200)
    args = ap.parse_args()
    probes = args.probes
    with throwaway_postgres("citygrid-bench-ingest-", durable=True) as stack:
        track_commit_times(stack)
        # Its own folder: the broker drops to the mosquitto user, which cannot enter stack.home.
        broker = MosquittoBroker(Path(tempfile.mkdtemp(prefix="citygrid-bench-mqtt-")), free_port())
        broker.start()
        workers: list[subprocess.Popen] = []
        try:
            with connect(stack.url) as conn:
                migrate.migrate(conn)
                now = dt.datetime.now(dt.timezone.utc)
                seed_units(conn, args.units + 2 * probes, now)
                partitions.ensure(conn, partitions.local_day(now))
            base = now - dt.timedelta(seconds=args.rounds + 60)
            rows = positions(args.units, args.rounds, base)
            print(f"{len(rows):,} positions from {args.units:,} units on shift; {stack.settings_note()};"
                  f" {args.workers} worker(s); 2 cores shared by broker, database, worker and publisher")
            baseline = raw_copy(stack.url, rows)

            logs = [stack.home / f"bench-{i}.log" for i in range(args.workers)]
            workers = [start_worker(stack.url, broker.port, f"bench-{i}", log) for i, log in enumerate(logs)]
            with connect(stack.url) as watch:
                warm_up(watch, broker.port, args.workers, lambda k: native(
                    args.units + 1, base - dt.timedelta(seconds=600 - k), *walk(args.units + 1, k)))
                burst_sql = "SELECT count(*) AS n FROM position WHERE device <> %s" % f"'unit:{args.units + 1}'"
                messages = [native(u, ft, lon, lat) for u, ft, lon, lat in rows]
                path = stack.home / "burst.pickle"
                path.write_bytes(pickle.dumps(messages))
                pub = publish_process(broker.port, path, 0)
                started = float(pub.stdout.readline())
                stored = wait_until(watch, len(rows), 300, burst_sql)
                finished = pub.stdout.readline().split()
                pub.wait()
                last_commit = watch.execute("SELECT extract(epoch FROM max(pg_xact_commit_timestamp(xmin))) AS t"
                                            " FROM position WHERE device <> %s", (f"unit:{args.units + 1}",)).fetchone()["t"]
                seconds = float(last_commit) - started
                dups = count(watch, "SELECT coalesce(sum(duplicates), 0)::bigint AS n FROM ingest_worker")
                rate = stored / seconds
                print(f"end to end, all alarm handlers on: {rate:,.0f} positions/s committed"
                      f" ({stored:,} of {len(rows):,} in {seconds:.1f} s; publisher done after {float(finished[0]) - started:.1f} s)"
                      f"  | baseline raw COPY: {baseline:,.0f} rows/s  | target ≥ 20,000/s")
                print(f"  lost: {len(rows) - stored}   duplicated rows: "
                      f"{count(watch, 'SELECT count(*) - count(DISTINCT (device, fix_time)) AS n FROM position')}"
                      f"   redeliveries absorbed: {dups}")
                trouble = warnings_in(logs)
                print(f"  worker warnings and errors during the burst: {len(trouble)}"
                      + "".join(f"\n    {line[:300]}" for line in trouble[:5]))
                rss, peak = rss_mb(workers[0].pid)
                print(f"worker memory with {args.units + 2 * probes:,} units: RSS {rss:.0f} MB (peak {peak:.0f} MB)"
                      f"  | target ≤ 300 MB")

                clock = AlarmClock(stack.url, sos_alarm)
                idle = probe_latency(broker.port, list(range(args.units + 1, args.units + 1 + probes // 4)), sos,
                                     clock, 0.05)
                background = [native(u, ft + dt.timedelta(seconds=args.rounds), lon, lat) for u, ft, lon, lat in rows]
                path.write_bytes(pickle.dumps(background))
                bg = publish_process(broker.port, path, 5000)
                bg.stdout.readline()
                time.sleep(2)
                loaded = probe_latency(broker.port, list(range(args.units + 1 + probes, args.units + 1 + 2 * probes)),
                                       sos, clock, min(0.1, len(rows) / 5000 / probes / 2))
                bg.terminate()
                bg.wait()
                clock.stop = True
                print(f"alarm latency at 5,000 positions/s: p50 {pct(loaded, 50):.0f} ms, p99 {pct(loaded, 99):.0f} ms,"
                      f" max {max(loaded):.0f} ms ({len(loaded)}/{probes} alarms)  | baseline idle: p50"
                      f" {pct(idle, 50):.0f} ms, p99 {pct(idle, 99):.0f} ms  | target p99 ≤ 1,000 ms")
        finally:
            stop_all(workers, broker)


if __name__ == "__main__":
    if "--publish" in sys.argv:
        ap = argparse.ArgumentParser()
        ap.add_argument("--publish")
        ap.add_argument("--port", type=int)
        ap.add_argument("--rate", type=float)
        a = ap.parse_args()
        publish_main(a.publish, a.port, a.rate)
    else:
        main()
