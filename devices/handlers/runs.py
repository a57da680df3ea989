"""A condition over a unit's fixes in time order (outside its area, standing still) as runs:
each fix either continues the current run (same `since`), starts a new one, or holds no
run (None). A run that has lasted `threshold` raises one alarm; its end clears it."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg

from devices.fix import Fix
from devices.handlers import alarms


@dataclass
class Run:
    since: dt.datetime
    last: Fix                    # the run's latest fix
    shift_id: int | None


@dataclass
class Verdict:
    finished: list[Run]          # runs that lasted long enough and ended inside this batch
    ended: bool                  # some run (maybe from an earlier batch) ended here
    current: Run | None          # the run still going at the batch's last fix
    since: dt.datetime | None    # what to remember for the next batch

    def due(self, threshold: dt.timedelta) -> Run | None:
        c = self.current
        return c if c is not None and c.last.fix_time - c.since >= threshold else None


def judge(steps: list[tuple[dt.datetime | None, Fix, int | None]], since: dt.datetime | None,
          threshold: dt.timedelta) -> Verdict:
    """steps: (since or None, fix, shift id) per fix; `since`: the run carried in from before."""
    finished, ended, current = [], False, None
    for step_since, fix, shift_id in steps:
        if since is not None and step_since != since:
            ended = True
            if current is not None and current.last.fix_time - current.since >= threshold:
                finished.append(current)
            current = None
        if step_since is not None:
            current = Run(step_since, fix, shift_id)
        since = step_since
    return Verdict(finished, ended, current, since)


def settle(conn: psycopg.Connection, verdicts: dict[int, Verdict], threshold: dt.timedelta, raise_run,
           kind: str, clear_reason: str) -> None:
    """Alarms from the verdicts, in the order that keeps "once per run": runs that came and
    went in this batch raised, every ended run cleared, then the runs still going raised."""
    for unit_id, v in verdicts.items():
        for run in v.finished:
            raise_run(conn, unit_id, run)
    alarms.clear_alarms(conn, [u for u, v in verdicts.items() if v.ended], kind, clear_reason)
    due = {u: run for u, v in verdicts.items() if (run := v.due(threshold)) is not None}
    for unit_id in set(due) - alarms.open_of_kind(conn, kind):
        raise_run(conn, unit_id, due[unit_id])


def remember(conn: psycopg.Connection, verdicts: dict[int, Verdict], before: dict, column: str,
             extra: dict[str, dict] | None = None) -> None:
    """Store each unit's carried-over `since` (and extra columns) where it changed."""
    changed = [u for u, v in verdicts.items() if v.since != before.get(u)]
    if not changed:
        return
    extra = extra or {}
    sets = ", ".join([f"{column} = v.since"] + [f"{c} = v.{c}" for c in extra])
    cols = ", ".join(["unit_id", "since", *extra])
    types = ["int[]", "timestamptz[]"] + ["float8[]"] * len(extra)
    arrays = [changed, [verdicts[u].since for u in changed]] + [[vals.get(u) for u in changed] for vals in extra.values()]
    conn.execute(f"UPDATE unit_state s SET {sets} FROM unnest({', '.join(f'%s::{t}' for t in types)})"
                 f" AS v({cols}) WHERE s.unit_id = v.unit_id", arrays)
