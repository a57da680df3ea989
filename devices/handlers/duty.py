"""Who is on duty when, and where: every shift from a day ago to a day ahead kept in memory
with its area parsed and prepared, so judging a fix costs no query.

The book looks for new or removed shifts every few seconds (a shift added now counts from
its next fix within REFRESH_S). Shifts are never edited in place — a change is a new shift —
so a shift's id names its area for good. Fixes outside the window (a backlog days old) are
looked up in the database."""
from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import psycopg
import shapely
from shapely import wkb

from devices.handlers.chain import BatchView

REFRESH_S = 5.0
WINDOW = dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Shift:
    id: int
    unit_id: int
    starts_at: dt.datetime
    ends_at: dt.datetime

    def covers(self, t: dt.datetime) -> bool:
        return self.starts_at <= t < self.ends_at


_COLUMNS = "id, unit_id, starts_at, ends_at, ST_AsBinary(area) AS area"


class ShiftBook:
    def __init__(self) -> None:
        self._by_unit: dict[int, list[Shift]] = {}
        self._areas: dict[int, object] = {}
        self._signature: tuple | None = None
        self._window = (dt.datetime.max.replace(tzinfo=dt.timezone.utc), dt.datetime.min.replace(tzinfo=dt.timezone.utc))
        self._checked_at = float("-inf")

    def shifts_for(self, conn: psycopg.Connection, view: BatchView) -> dict[int, list[Shift]]:
        """The shifts of each unit with fresh fixes (worked out once per batch)."""
        if "shifts" not in view.memo:
            self._refresh(conn, view.now)
            start, end = self._window
            found = {u: self._by_unit[u] for u in view.fresh if u in self._by_unit}
            stray = [u for u, fixes in view.fresh.items() if fixes[0].fix_time < start or fixes[-1].fix_time >= end]
            if stray:
                found.update(self._query(conn, stray, view))
            view.memo["shifts"] = found
        return view.memo["shifts"]

    def _refresh(self, conn: psycopg.Connection, now: dt.datetime) -> None:
        if time.monotonic() - self._checked_at < REFRESH_S:
            return
        self._checked_at = time.monotonic()
        row = conn.execute("SELECT count(*) AS n, max(id) AS last FROM shift").fetchone()
        signature = (row["n"], row["last"])
        start, end = self._window
        if signature == self._signature and start + WINDOW / 2 <= now <= end - WINDOW / 2:
            return
        start, end = now - WINDOW, now + WINDOW
        by_unit: dict[int, list[Shift]] = defaultdict(list)
        areas = {}
        for r in conn.execute(f"SELECT {_COLUMNS} FROM shift WHERE ends_at > %s AND starts_at < %s ORDER BY starts_at",
                              (start, end)):
            by_unit[r["unit_id"]].append(Shift(r["id"], r["unit_id"], r["starts_at"], r["ends_at"]))
            areas[r["id"]] = self._areas.get(r["id"]) or _prepared(r["area"])
        self._by_unit, self._areas, self._signature, self._window = dict(by_unit), areas, signature, (start, end)

    def _query(self, conn: psycopg.Connection, units: list[int], view: BatchView) -> dict[int, list[Shift]]:
        first = min(view.fresh[u][0].fix_time for u in units)
        last = max(view.fresh[u][-1].fix_time for u in units)
        found: dict[int, list[Shift]] = defaultdict(list)
        for r in conn.execute(f"SELECT {_COLUMNS} FROM shift WHERE unit_id = ANY(%s) AND starts_at <= %s AND ends_at > %s"
                              " ORDER BY starts_at", (units, last, first)):
            found[r["unit_id"]].append(Shift(r["id"], r["unit_id"], r["starts_at"], r["ends_at"]))
            if r["id"] not in self._areas:
                self._areas[r["id"]] = _prepared(r["area"])
        return found

    def duty(self, conn: psycopg.Connection, view: BatchView) -> dict[int, list[Shift | None]]:
        """Per unit, the shift each of its fresh fixes falls in (None: off duty)."""
        if "duty" not in view.memo:
            shifts, duty = self.shifts_for(conn, view), {}
            for unit_id, fixes in view.fresh.items():
                own = shifts.get(unit_id, ())
                whole = shift_at(own, fixes[0].fix_time)
                if whole is not None and whole.covers(fixes[-1].fix_time):
                    duty[unit_id] = [whole] * len(fixes)          # the usual case: one shift for the batch
                else:
                    duty[unit_id] = [shift_at(own, f.fix_time) for f in fixes]
            view.memo["duty"] = duty
        return view.memo["duty"]

    def inside(self, conn: psycopg.Connection, view: BatchView) -> dict[int, list[bool]]:
        """Per unit, whether each fresh fix lies in the area of its shift (False off duty):
        one vectorised test for the whole batch."""
        if "inside" not in view.memo:
            duty = self.duty(conn, view)
            areas, lons, lats, slots = [], [], [], []
            result = {}
            for unit_id, fixes in view.fresh.items():
                result[unit_id] = [False] * len(fixes)
                for i, (f, shift) in enumerate(zip(fixes, duty[unit_id])):
                    if shift is not None:
                        areas.append(self._areas[shift.id])
                        lons.append(f.lon)
                        lats.append(f.lat)
                        slots.append((unit_id, i))
            if areas:
                hits = shapely.contains_xy(np.array(areas, dtype=object), np.array(lons), np.array(lats))
                for (unit_id, i), hit in zip(slots, hits.tolist()):
                    result[unit_id][i] = hit
            view.memo["inside"] = result
        return view.memo["inside"]


def _prepared(area: bytes):
    geometry = wkb.loads(bytes(area))
    shapely.prepare(geometry)
    return geometry


def shift_at(shifts: list[Shift], t: dt.datetime) -> Shift | None:
    for s in shifts:
        if s.covers(t):
            return s
    return None
