"""Telemetry history (历史数据) for charts, and its downsampling (降采样).

Raw readings live in daily partitions for `telemetry_raw_days`; older days are rolled up into
`telemetry_hourly` (count, and per numeric or boolean field the average, minimum and maximum)
before their partition is dropped, and the hourly rows are kept `telemetry_retention_days`.
Text fields are not rolled up: only the raw readings have them.

A chart asks for a window: short windows with few readings get the readings themselves;
longer ones get buckets (avg/min/max) so a browser never receives more than MAX_POINTS."""
from __future__ import annotations

import datetime as dt
import math

import psycopg

from devices import partitions
from workflows.cases import LOCAL_TZ

MAX_POINTS = 2000
MIN_BUCKET_S = 60

# Readings (`source`) → one row per (device, bucket) with per-field avg/min/max. Booleans count
# as 0/1; text fields are left out. `source` yields device_id, ts, values.
_BUCKETED = """
WITH readings AS ({source}),
     counts AS (SELECT device_id, date_bin(%(bucket)s, ts, %(origin)s) AS at, count(*)::int AS n
                  FROM readings GROUP BY 1, 2),
     numbers AS (SELECT r.device_id, date_bin(%(bucket)s, r.ts, %(origin)s) AS at, f.key,
                        CASE jsonb_typeof(f.value) WHEN 'number' THEN (f.value #>> '{{}}')::float8
                             WHEN 'boolean' THEN (f.value = 'true'::jsonb)::int::float8 END AS x
                   FROM readings r, jsonb_each(r.values) AS f(key, value)),
     per_field AS (SELECT device_id, at, key, avg(x) AS avg, min(x) AS min, max(x) AS max
                     FROM numbers WHERE x IS NOT NULL GROUP BY 1, 2, 3)
SELECT c.device_id, c.at, c.n,
       coalesce(jsonb_object_agg(p.key, round(p.avg::numeric, 4)) FILTER (WHERE p.key IS NOT NULL), '{{}}') AS avg,
       coalesce(jsonb_object_agg(p.key, p.min) FILTER (WHERE p.key IS NOT NULL), '{{}}') AS min,
       coalesce(jsonb_object_agg(p.key, p.max) FILTER (WHERE p.key IS NOT NULL), '{{}}') AS max
  FROM counts c LEFT JOIN per_field p USING (device_id, at)
 GROUP BY c.device_id, c.at, c.n"""
_HOUR = dt.timedelta(hours=1)
_ORIGIN = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)   # whole hours in UTC are whole hours in China too


def roll_up_day(conn: psycopg.Connection, day: dt.date) -> int:
    """Roll the raw readings of one local day up into hourly rows (again, if it was done
    before: the result replaces the old rows). Returns the rows written."""
    start = dt.datetime.combine(day, dt.time(), LOCAL_TZ)
    sql = _BUCKETED.format(source="SELECT device_id, ts, values FROM telemetry WHERE ts >= %(from)s AND ts < %(to)s")
    return conn.execute(
        f"INSERT INTO telemetry_hourly (device_id, hour, n, avg, min, max) {sql}"
        " ON CONFLICT (device_id, hour) DO UPDATE SET n = excluded.n, avg = excluded.avg, min = excluded.min,"
        " max = excluded.max",
        {"from": start, "to": start + dt.timedelta(days=1), "bucket": _HOUR, "origin": _ORIGIN}).rowcount


def raw_days(conn: psycopg.Connection) -> list[dt.date]:
    """The days that have a raw telemetry partition, oldest first."""
    rows = conn.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                        " WHERE i.inhparent = 'telemetry'::regclass ORDER BY 1").fetchall()
    return [dt.datetime.strptime(r["relname"][-8:], "%Y%m%d").date() for r in rows]


def downsample(conn: psycopg.Connection, today: dt.date, *, raw_days_kept: int, hourly_days_kept: int) -> dict:
    """Housekeeping: each day older than `raw_days_kept` is rolled up and its partition dropped,
    one day per transaction (a failure leaves that day's raw readings in place); hourly rows
    older than `hourly_days_kept` are deleted."""
    if raw_days_kept < partitions.MIN_RETENTION_DAYS:
        raise ValueError(f"raw telemetry must be kept at least {partitions.MIN_RETENTION_DAYS} days"
                         " (readings that old are still accepted)")
    if hourly_days_kept < raw_days_kept:
        raise ValueError("hourly telemetry must be kept at least as long as the raw readings")
    keep_from = today - dt.timedelta(days=raw_days_kept)
    rolled = dropped = 0
    for day in raw_days(conn):
        if day >= keep_from:
            break
        with conn.transaction():
            rolled += roll_up_day(conn, day)
            dropped += conn.execute("SELECT drop_day_partitions_before('telemetry', %s) AS n",
                                    (day + dt.timedelta(days=1),)).fetchone()["n"]
    cutoff = dt.datetime.combine(today - dt.timedelta(days=hourly_days_kept), dt.time(), LOCAL_TZ)
    with conn.transaction():
        deleted = conn.execute("DELETE FROM telemetry_hourly WHERE hour < %s", (cutoff,)).rowcount
    return {"hours_rolled_up": rolled, "partitions_dropped": dropped, "hourly_deleted": deleted}


def history(conn: psycopg.Connection, device_id: str, since: dt.datetime, until: dt.datetime, *,
            field: str | None = None, resolution: str = "auto") -> dict:
    """A device's readings between `since` and `until` for a chart: `raw` readings, `hour`ly
    rows (rolled up, and the recent hours worked out from the raw readings), or for `auto`
    the readings when there are at most MAX_POINTS and none of the window was rolled up yet,
    else buckets of them (hours, once part of the window has only hours left)."""
    window = until - since
    answer = {"device_id": device_id, "field": field, "since": since, "until": until}
    if resolution == "auto":
        raw_count = conn.execute("SELECT count(*) AS n FROM (SELECT 1 FROM telemetry WHERE device_id = %s"
                                 " AND ts >= %s AND ts < %s LIMIT %s) s",
                                 (device_id, since, until, MAX_POINTS + 1)).fetchone()["n"]
        rolled_up = conn.execute("SELECT EXISTS (SELECT 1 FROM telemetry_hourly WHERE device_id = %s"
                                 " AND hour >= %s AND hour < %s) AS x", (device_id, since - _HOUR, until)).fetchone()["x"]
        if raw_count <= MAX_POINTS and not rolled_up:
            resolution = "raw"
        elif rolled_up or window / MAX_POINTS > _HOUR:
            resolution = "hour"
        else:
            bucket_s = max(MIN_BUCKET_S, math.ceil(window.total_seconds() / MAX_POINTS / MIN_BUCKET_S) * MIN_BUCKET_S)
            return {**answer, "resolution": f"{bucket_s}s",
                    "points": _buckets(conn, device_id, since, until, dt.timedelta(seconds=bucket_s), field)}
    if resolution == "raw":
        rows = conn.execute("SELECT ts, values FROM telemetry WHERE device_id = %s AND ts >= %s AND ts < %s"
                            " ORDER BY ts DESC LIMIT %s", (device_id, since, until, MAX_POINTS)).fetchall()
        points = [{"ts": r["ts"], "values": _only(r["values"], field)} for r in reversed(rows)]
        if field:
            points = [p for p in points if p["values"]]
        return {**answer, "resolution": "raw", "points": points}
    return {**answer, "resolution": "hour", "points": _hours(conn, device_id, since, until, field)}


def _only(values: dict, field: str | None) -> dict:
    return values if field is None else ({field: values[field]} if field in values else {})


def _point(row: dict, field: str | None) -> dict:
    return {"ts": row["at"], "n": row["n"], "values": _only(row["avg"], field), "min": _only(row["min"], field),
            "max": _only(row["max"], field)}


def _buckets(conn, device_id: str, since, until, bucket: dt.timedelta, field: str | None) -> list[dict]:
    source = "SELECT device_id, ts, values FROM telemetry WHERE device_id = %(device)s AND ts >= %(since)s AND ts < %(until)s"
    rows = conn.execute(_BUCKETED.format(source=source) + " ORDER BY c.at",
                        {"device": device_id, "since": since, "until": until, "bucket": bucket,
                         "origin": since}).fetchall()
    return [_point(r, field) for r in rows]


def _hours(conn, device_id: str, since, until, field: str | None) -> list[dict]:
    """Rolled-up hours, and the hours not rolled up yet worked out from the raw readings."""
    source = ("SELECT t.device_id, t.ts, t.values FROM telemetry t WHERE t.device_id = %(device)s"
              " AND t.ts >= %(since)s AND t.ts < %(until)s AND NOT EXISTS (SELECT 1 FROM telemetry_hourly h"
              " WHERE h.device_id = t.device_id AND h.hour = date_bin(%(bucket)s, t.ts, %(origin)s))")
    rows = conn.execute(
        "SELECT hour AS at, n, avg, min, max FROM telemetry_hourly WHERE device_id = %(device)s"
        " AND hour >= date_bin(%(bucket)s, %(since)s, %(origin)s) AND hour < %(until)s"
        f" UNION ALL SELECT at, n, avg, min, max FROM ({_BUCKETED.format(source=source)}) live ORDER BY at",
        {"device": device_id, "since": since, "until": until, "bucket": _HOUR, "origin": _ORIGIN}).fetchall()
    return [_point(r, field) for r in rows]
