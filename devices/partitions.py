"""Daily partitions of the position and telemetry tables: made ahead, dropped after the
retention period.

Fixes may be up to MAX_AGE old and MAX_FUTURE ahead when they arrive, so the partitions of
that whole window must exist before a batch is written; the worker asks once per new day."""
from __future__ import annotations

import datetime as dt

import psycopg

from devices.fix import MAX_AGE
from workflows.cases import LOCAL_TZ

DAYS_AHEAD = 2
MIN_RETENTION_DAYS = MAX_AGE.days + 2     # never drop a day a fix may still arrive for


def local_day(t: dt.datetime) -> dt.date:
    return t.astimezone(LOCAL_TZ).date()


def ensure(conn: psycopg.Connection, today: dt.date, table: str = "position") -> int:
    """Make the `table`'s partitions from MAX_AGE ago to DAYS_AHEAD ahead; returns how many were new."""
    first = today - dt.timedelta(days=MAX_AGE.days + 1)
    last = today + dt.timedelta(days=DAYS_AHEAD)
    return conn.execute("SELECT ensure_day_partitions(%s, %s, %s) AS made", (table, first, last)).fetchone()["made"]


def drop_expired(conn: psycopg.Connection, today: dt.date, retention_days: int, table: str = "position") -> int:
    """Drop the `table`'s day partitions older than the retention."""
    if retention_days < MIN_RETENTION_DAYS:
        raise ValueError(f"{table} retention must be at least {MIN_RETENTION_DAYS} days"
                         f" (readings up to {MAX_AGE.days} days old are still accepted)")
    return conn.execute("SELECT drop_day_partitions_before(%s, %s) AS dropped",
                        (table, today - dt.timedelta(days=retention_days))).fetchone()["dropped"]


class PartitionKeeper:
    """Remembers which days are known to have partitions, so the database is asked only
    when a batch holds a fix for a day not seen before."""

    def __init__(self, table: str = "position") -> None:
        self._ready: set[dt.date] = set()
        self.table = table

    def cover(self, conn: psycopg.Connection, days: set[dt.date]) -> None:
        """Make sure the days have partitions (inside the caller's transaction)."""
        for day in days - self._ready:
            ensure(conn, day, self.table)

    def committed(self, days: set[dt.date]) -> None:
        """The transaction that covered these days has committed: their partitions exist for
        good (marked only now, since a rolled-back transaction takes its new partitions along)."""
        for day in days - self._ready:
            self._ready.update(day + dt.timedelta(days=k) for k in range(-MAX_AGE.days - 1, DAYS_AHEAD + 1))
