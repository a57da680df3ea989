"""Out of area (越界): outside the shift's assigned area for more than N seconds."""
from __future__ import annotations

import datetime as dt

import psycopg

from devices.handlers import alarms
from devices.handlers.chain import BatchView
from devices.handlers.duty import ShiftBook
from devices.handlers.runs import judge, remember, settle

REASON_BACK = "回到责任区"


class OutOfArea:
    name = "out_of_area"

    def __init__(self, book: ShiftBook, seconds: int):
        self.book, self.threshold = book, dt.timedelta(seconds=seconds)

    def handle(self, conn: psycopg.Connection, view: BatchView) -> None:
        duty, inside = self.book.duty(conn, view), self.book.inside(conn, view)
        before = {u: r["outside_since"] for u, r in view.before.items() if r["outside_since"] is not None}
        verdicts = {}
        for unit_id, fixes in view.fresh.items():
            since, steps = before.get(unit_id), []
            for f, shift, within in zip(fixes, duty[unit_id], inside[unit_id]):
                if shift is None or within:
                    since = None
                elif since is None:
                    since = f.fix_time
                steps.append((since, f, shift.id if shift else None))
            verdicts[unit_id] = judge(steps, before.get(unit_id), self.threshold)
        settle(conn, verdicts, self.threshold, self._raise, "out_of_area", REASON_BACK)
        remember(conn, verdicts, before, "outside_since")

    def _raise(self, conn: psycopg.Connection, unit_id: int, run) -> None:
        minutes = max(1, round((run.last.fix_time - run.since).total_seconds() / 60))
        name = alarms.unit_name(conn, unit_id)
        alarms.raise_alarm(conn, unit_id=unit_id, kind="out_of_area", since=run.since, shift_id=run.shift_id,
                           lon=run.last.lon, lat=run.last.lat,
                           message=f"{name} 离开责任区已约 {minutes} 分钟",
                           detail={"fix_time": run.last.fix_time.isoformat()})
