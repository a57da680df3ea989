"""The timer loop: fires due case timers — yellow warnings (预警) and overdue escalations
(督办) — and the emergency response's (overdue tasks, unacknowledged dispatch orders),
claimed with FOR UPDATE SKIP LOCKED, so several `citygrid serve` replicas share the work and
a restart loses nothing (a deadline is a row: one unfired at a restart simply fires late)."""
from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

import psycopg
from psycopg.types.json import Jsonb

from workflows import dispatch, response
from workflows.notify import live

log = logging.getLogger("citygrid.timers")

# Whose job each stage is: they are warned; when overdue the shift lead is told too (督办).
STAGE_OWNER = {"核实": "inspector", "立案": "operator", "派遣": "dispatcher", "核查": "inspector", "结案": "shift_lead"}
LABEL = {"stage_warn": "预警", "stage_due": "超时督办", "handle_warn": "处置预警", "handle_due": "处置超时督办"}


def _recipients(kind: str, case: dict) -> list[dict]:
    """(user_id | role | dept_id) targets for one fired timer."""
    if kind.startswith("handle"):
        targets = [{"dept_id": case["dept_id"]}] if case["dept_id"] else []
    else:
        owner = STAGE_OWNER.get(case["stage"] or "", "shift_lead")
        if owner == "inspector":
            targets = [{"user_id": case["assignee_id"]}] if case["assignee_id"] else [{"role": "shift_lead"}]
        else:
            targets = [{"role": owner}]
    if kind.endswith("_due") and {"role": "shift_lead"} not in targets:
        targets.append({"role": "shift_lead"})
    return targets


def fire_due(conn: psycopg.Connection, now: dt.datetime | None = None, batch: int = 2000) -> int:
    """Fire up to `batch` due timers in one transaction; returns how many fired."""
    now = now or dt.datetime.now(dt.timezone.utc)
    with conn.transaction():
        due = conn.execute(
            "SELECT t.id, t.kind, t.due_at, c.id AS case_id, c.case_no, c.state, c.stage, c.dept_id, c.assignee_id"
            " FROM case_timer t JOIN case_file c ON c.id = t.case_id"
            " WHERE t.fired_at IS NULL AND NOT t.cancelled AND t.due_at <= %s"
            " ORDER BY t.due_at LIMIT %s FOR UPDATE OF t SKIP LOCKED", (now, batch)).fetchall()
        if not due:
            return 0
        conn.execute("UPDATE case_timer SET fired_at = %s WHERE id = ANY(%s)", (now, [t["id"] for t in due]))
        notes, history = [], []
        for t in due:
            label = LABEL[t["kind"]]
            what = f"{t['stage']}阶段" if t["kind"].startswith("stage") else "处置"
            message = f"案卷 {t['case_no']} {what}{'即将到期' if t['kind'].endswith('warn') else '已超时'}（{label}）"
            for target in _recipients(t["kind"], t):
                notes.append((now, f"case.{t['kind']}", message, t["case_id"], target.get("user_id"),
                          target.get("role"), target.get("dept_id")))
            history.append((t["case_id"], now, "escalate" if t["kind"].endswith("due") else "warn", t["state"],
                            t["state"], message, Jsonb({"timer": t["kind"], "due_at": t["due_at"].isoformat()})))
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO notification (at, kind, message, case_id, user_id, role, dept_id)"
                            " VALUES (%s, %s, %s, %s, %s, %s, %s)", notes)
            cur.executemany("INSERT INTO case_transition (case_id, at, actor, role, action, from_state, to_state,"
                            " note, detail) VALUES (%s, %s, 'system', 'system', %s, %s, %s, %s, %s)", history)
        for case_id in {t["case_id"] for t in due}:
            live(conn, "case", case_id)
    return len(due)


class TimerLoop:
    """A background thread in `citygrid serve` that fires due timers every few seconds."""

    def __init__(self, connect: Callable[[], AbstractContextManager[psycopg.Connection]], interval: float = 2.0):
        self._connect = connect
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="citygrid-timers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self._connect() as conn:
                    for fire in (fire_due, response.fire_due, dispatch.fire_due):
                        while fire(conn) and not self._stop.is_set():
                            pass
            except Exception:  # noqa: BLE001 - the loop must outlive a database hiccup
                log.exception("timer loop cycle failed; retrying")
            self._stop.wait(self._interval)
