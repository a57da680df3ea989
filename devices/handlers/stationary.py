"""Stationary (长时间停留): during a shift, moved less than R metres for more than T minutes.
Judged from positions (phones have no ignition): the run starts at an anchor fix and lasts
while every later fix stays within R of it; a fix farther away becomes the new anchor."""
from __future__ import annotations

import datetime as dt

import psycopg

from devices.handlers import alarms
from devices.handlers.chain import BatchView
from devices.handlers.duty import ShiftBook
from devices.handlers.runs import judge, remember, settle
from devices.store import distance_m

REASON_MOVED = "已移动"


class Stationary:
    name = "stationary"

    def __init__(self, book: ShiftBook, radius_m: float, minutes: int):
        self.book, self.radius_m = book, radius_m
        self.threshold = dt.timedelta(minutes=minutes)

    def handle(self, conn: psycopg.Connection, view: BatchView) -> None:
        duty = self.book.duty(conn, view)
        rows = [r for r in view.before.values() if r["anchor_since"] is not None]
        before = {r["unit_id"]: r["anchor_since"] for r in rows}
        anchors = {r["unit_id"]: (r["anchor_lon"], r["anchor_lat"]) for r in rows}
        verdicts, lons, lats = {}, {}, {}
        for unit_id, fixes in view.fresh.items():
            since, anchor, steps = before.get(unit_id), anchors.get(unit_id), []
            for f, shift in zip(fixes, duty[unit_id]):
                if shift is None:
                    since = anchor = None
                elif since is None or distance_m(*anchor, f.lon, f.lat) > self.radius_m:
                    since, anchor = f.fix_time, (f.lon, f.lat)
                steps.append((since, f, shift.id if shift else None))
            verdicts[unit_id] = judge(steps, before.get(unit_id), self.threshold)
            lons[unit_id], lats[unit_id] = anchor if anchor else (None, None)
        settle(conn, verdicts, self.threshold, self._raise, "stationary", REASON_MOVED)
        remember(conn, verdicts, before, "anchor_since", {"anchor_lon": lons, "anchor_lat": lats})

    def _raise(self, conn: psycopg.Connection, unit_id: int, run) -> None:
        minutes = round((run.last.fix_time - run.since).total_seconds() / 60)
        alarms.raise_alarm(conn, unit_id=unit_id, kind="stationary", since=run.since, shift_id=run.shift_id,
                           lon=run.last.lon, lat=run.last.lat,
                           message=f"{alarms.unit_name(conn, unit_id)} 在 {self.radius_m:.0f} 米范围内已停留约"
                                   f" {minutes} 分钟", detail={"radius_m": self.radius_m})
