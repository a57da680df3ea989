"""The two clocks of a case and the database timers behind them.

- the stage clock (核实/立案/派遣/核查/结案 limits from the catalog's stage_limits), restarted
  whenever the case enters a state that names a stage;
- the handling clock (处置时限, per class), from dispatch until handled; a suspension (挂账)
  stops it and approved extensions (延期) move its deadline.

Deadlines and the yellow point (80 % used) are computed once, in working time, when a clock
starts or moves, and written both on the case and as timers; the timer loop then only
reads due timers, however many cases are open."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from workflows.calendar import LimitKind, TimeLimit, WorkCalendar

WARN_FRACTION = 0.8


@dataclass
class Limits:
    """Time limits as loaded from the database (catalog data, editable there)."""
    stages: dict[str, TimeLimit]
    default_part: TimeLimit

    @classmethod
    def load(cls, conn: psycopg.Connection, default_part: tuple[str, float]) -> "Limits":
        row = conn.execute("SELECT body->'stage_limits' AS stages FROM catalog_document").fetchone()
        stages = {name: TimeLimit.from_stage(spec["kind"], int(spec["minutes"]))
                  for name, spec in ((row and row["stages"]) or {}).items()}
        return cls(stages, TimeLimit.from_catalog(*default_part))

    def handling(self, conn: psycopg.Connection, case: dict) -> TimeLimit:
        table, code = ("event_class", case["event_class"]) if case["kind"] == "event" else ("part_class", case["part_class"])
        row = conn.execute(f"SELECT limit_kind, limit_value FROM {table} WHERE code = %s", (code,)).fetchone()
        if row and row["limit_kind"] and row["limit_value"]:
            return TimeLimit.from_catalog(row["limit_kind"], float(row["limit_value"]))
        return self.default_part


def _cancel(conn: psycopg.Connection, case_id: int, prefix: str) -> None:
    conn.execute("UPDATE case_timer SET cancelled = true WHERE case_id = %s AND fired_at IS NULL"
                 " AND NOT cancelled AND kind LIKE %s", (case_id, prefix + "%"))


def _arm(conn: psycopg.Connection, case_id: int, prefix: str, warn_at: datetime, deadline: datetime,
         now: datetime) -> None:
    # A warning already past needs no timer: the case shows yellow from its columns anyway.
    rows = [(case_id, f"{prefix}_due", deadline)]
    if warn_at > now:
        rows.append((case_id, f"{prefix}_warn", warn_at))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO case_timer (case_id, kind, due_at) VALUES (%s, %s, %s)", rows)


@dataclass
class CaseClock:
    conn: psycopg.Connection
    calendar: WorkCalendar
    limits: Limits

    # ------------------------------------------------------------ stage clock
    def enter_stage(self, case: dict, stage: str | None, now: datetime) -> dict:
        _cancel(self.conn, case["id"], "stage")
        fields = self.plan_stage(stage, now)
        self.arm_stage(case["id"], fields, now)
        return fields

    def plan_stage(self, stage: str | None, now: datetime) -> dict:
        """The stage columns of a case entering `stage` now (no database work: a new case
        gets them in its INSERT)."""
        limit = self.limits.stages.get(stage) if stage else None
        if limit is None:
            return {"stage": stage, "stage_limit_kind": None, "stage_started_at": None,
                    "stage_warn_at": None, "stage_deadline": None}
        return {"stage": stage, "stage_limit_kind": limit.kind.value, "stage_started_at": now,
                "stage_warn_at": self.calendar.warn_at(now, limit, WARN_FRACTION),
                "stage_deadline": self.calendar.add(now, limit)}

    def arm_stage(self, case_id: int, fields: dict, now: datetime) -> None:
        if fields["stage_deadline"] is not None:
            _arm(self.conn, case_id, "stage", fields["stage_warn_at"], fields["stage_deadline"], now)

    # ------------------------------------------------------------ handling clock
    def start_handling(self, case: dict, now: datetime) -> dict:
        limit = self.limits.handling(self.conn, case)
        deadline = self.calendar.add(now, limit)
        warn_at = self.calendar.warn_at(now, limit, WARN_FRACTION)
        _cancel(self.conn, case["id"], "handle")
        _arm(self.conn, case["id"], "handle", warn_at, deadline, now)
        return {"handle_limit_kind": limit.kind.value, "handle_started_at": now,
                "handle_warn_at": warn_at, "handle_deadline": deadline}

    def stop_handling(self, case: dict) -> dict:
        _cancel(self.conn, case["id"], "handle")
        return {}

    def rearm_handling(self, case: dict, now: datetime) -> dict:
        """Rework (返工): the department works again against the deadline it already had."""
        _cancel(self.conn, case["id"], "handle")
        _arm(self.conn, case["id"], "handle", case["handle_warn_at"], case["handle_deadline"], now)
        return {}

    def extend_handling(self, case: dict, kind: str, amount: float, now: datetime) -> dict:
        extra = TimeLimit.from_catalog(kind, amount)
        deadline = self.calendar.add(case["handle_deadline"], extra)
        warn_at = self.calendar.add(case["handle_warn_at"], extra)
        if case["paused_at"] is None:
            _cancel(self.conn, case["id"], "handle")
            _arm(self.conn, case["id"], "handle", warn_at, deadline, now)
        return {"handle_deadline": deadline, "handle_warn_at": warn_at}

    def pause(self, case: dict, now: datetime) -> dict:
        _cancel(self.conn, case["id"], "")
        return {"paused_at": now}

    def resume(self, case: dict, now: datetime) -> dict:
        """The time that was left when the clock stopped is left again from now."""
        kind = LimitKind(case["handle_limit_kind"])
        paused_at = case["paused_at"]
        left = self.calendar.elapsed(paused_at, case["handle_deadline"], kind) if case["handle_deadline"] > paused_at else 0
        left_to_warn = (self.calendar.elapsed(paused_at, case["handle_warn_at"], kind)
                        if case["handle_warn_at"] > paused_at else 0)
        deadline = self.calendar.add(now, TimeLimit(kind, left))
        warn_at = self.calendar.add(now, TimeLimit(kind, left_to_warn))
        _arm(self.conn, case["id"], "handle", warn_at, deadline, now)
        return {"paused_at": None, "handle_deadline": deadline, "handle_warn_at": warn_at}
