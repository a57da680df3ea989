"""Emergency response figures (workflows.response), on a durable throwaway PostgreSQL:

1. Plan activation creating 50 tasks with their notifications and timeline (target ≤ 200 ms),
   beside a naive activation of the same plan in the same run: one statement per task,
   per notification and per timeline row.
2. 20 incidents with active plans (1,000 tasks, deadlines spread over the next 30 s) under
   the real timer loop of `citygrid serve` (its default interval): how late each overdue task
   is escalated (target: every one within 5 s), beside the same loop with one incident.

    .venv/bin/python bench/bench_emergency.py [--runs 30] [--incidents 20]
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time

from _stack import throwaway_postgres

from bench_ingest import pct
from gis import migrate
from gis.config import Settings
from gis.db import connect
from psycopg.types.json import Jsonb
from workflows import incidents, response
from workflows.incidents import NewIncident
from workflows.plans import parse_plan
from workflows.timers import TimerLoop

STEPS, ROLES = 50, 10
ACTIVATION_TARGET_MS = 200.0
LATENESS_TARGET_S = 5.0
AT = (113.3405, 27.0005)


class Commander:
    username, id, role = "bench", None, "commander"


def big_plan():
    """A plan of 50 steps over 10 roles held by duty posts; steps depend on earlier ones and
    each tells one or two roles."""
    org = "\n".join(f"  r{i}: {{post: 岗位{i}}}" for i in range(ROLES))
    steps = []
    for i in range(STEPS):
        deps = f"[s{i - 1}]" if i % 5 else "[]"
        steps.append(f"""      - id: s{i}
        title: 步骤{i} 现场处置
        role: r{i % ROLES}
        deadline_min: {10 + i}
        depends_on: {deps}
        resources: [{{type: pump_truck, count: 1}}]
        notify: [r0, r{(i + 3) % ROLES}]
        checklist: [到场, 回传]""")
    text = f"""id: bench
version: 1
name: 基准测试预案
scope: {{categories: [自然灾害], subtypes: [水旱灾害]}}
organisation:
  commander: {{post: 岗位0}}
  duty_leader: {{post: 岗位1}}
{org}
levels:
  Ⅳ:
    criteria: 基准
    steps:
{chr(10).join(steps)}
warning: {{event: 基准, headline: 基准, description: 基准, instruction: 基准, urgency: Immediate, certainty: Observed}}
"""
    return parse_plan(text, "bench plan")


def prepare(conn) -> None:
    with conn.transaction():
        conn.execute("INSERT INTO county (code, name) VALUES ('430223', '攸县')")
        conn.execute("INSERT INTO street (code, county_code, name, kind) VALUES ('430223001', '430223', '联星街道', '街道')")
        conn.execute("INSERT INTO community (code, street_code, name) VALUES ('430223001001', '430223001', '东正社区')")
        conn.execute("INSERT INTO grid (code, community_code, name, area_m2, geom) VALUES ('430223001001001',"
                     " '430223001001', '第001网格', 10000, ST_Multi(ST_MakeEnvelope(113.340, 27.000, 113.341, 27.001, 4326)))")
        for i in range(ROLES):
            user = conn.execute("INSERT INTO app_user (username, display_name, role, password_hash)"
                                " VALUES (%s, %s, 'dispatcher', 'x') RETURNING id", (f"u{i}", f"值班员{i}")).fetchone()["id"]
            post = conn.execute("INSERT INTO duty_post (name) VALUES (%s) RETURNING id", (f"岗位{i}",)).fetchone()["id"]
            conn.execute("INSERT INTO duty_shift (post_id, user_id, starts_at, ends_at)"
                         " VALUES (%s, %s, now() - interval '1 hour', now() + interval '12 hours')", (post, user))


def new_incident(conn) -> int:
    return incidents.create(conn, NewIncident("基准积水", "自然灾害", "水旱灾害", "Ⅳ", *AT), Commander())["id"]


def naive_activate(conn, incident_id: int, plan) -> None:
    """The same rows as `response.activate`, one statement each (no batching)."""
    now = dt.datetime.now(dt.timezone.utc)
    with conn.transaction():
        conn.execute("SELECT * FROM incident WHERE id = %s FOR UPDATE", (incident_id,)).fetchone()
        act = conn.execute("INSERT INTO plan_activation (incident_id, plan_id, plan_version, level, automatic,"
                           " activated_at, activated_by, document) VALUES (%s, 'naive', 1, 'Ⅳ', false, %s, 'bench', %s)"
                           " RETURNING id", (incident_id, now, Jsonb(plan.source))).fetchone()["id"]
        for s in plan.steps_for("Ⅳ"):
            holder = conn.execute("SELECT s.user_id, p.id FROM duty_post p JOIN duty_shift s ON s.post_id = p.id"
                                  " WHERE p.name = %s AND now() BETWEEN s.starts_at AND s.ends_at",
                                  (plan.organisation[s.role]["post"],)).fetchone()
            conn.execute("INSERT INTO incident_task (incident_id, activation_id, plan_id, step_id, level, title, role,"
                         " post_id, owner_user_id, mandatory, depends_on, resources, checklist, status, due_at)"
                         " VALUES (%s, %s, 'naive', %s, 'Ⅳ', %s, %s, %s, %s, true, %s, '[]', '[]', 'open', %s)",
                         (incident_id, act, s.id, s.title, s.role, holder["id"], holder["user_id"], list(s.depends_on),
                          now + dt.timedelta(minutes=s.deadline_min)))
            for r in (s.role, *s.notify):
                conn.execute("INSERT INTO notification (kind, message, incident_id, user_id) VALUES"
                             " ('incident.task', %s, %s, %s)", (s.title, incident_id, holder["user_id"]))
            conn.execute("INSERT INTO incident_event (incident_id, actor, kind, message) VALUES (%s, 'bench',"
                         " 'task.created', %s)", (incident_id, s.title))


def bench_activation(conn, plan, runs: int) -> tuple[list[float], list[float]]:
    timed, baseline = [], []
    for i in range(runs + 3):
        a, b = new_incident(conn), new_incident(conn)
        t0 = time.perf_counter()
        made = response.activate(conn, a, Commander(), plan=plan)
        t1 = time.perf_counter()
        naive_activate(conn, b, plan)
        t2 = time.perf_counter()
        assert made["tasks"] == STEPS
        if i >= 3:                                           # the first few warm caches and plans
            timed.append((t1 - t0) * 1000)
            baseline.append((t2 - t1) * 1000)
    notes = conn.execute("SELECT count(*) AS n FROM notification n JOIN incident_task t ON t.incident_id = n.incident_id"
                         " WHERE t.id = (SELECT max(id) FROM incident_task WHERE step_id = 's0' AND activation_id IN"
                         " (SELECT id FROM plan_activation WHERE plan_id = 'bench'))").fetchone()["n"]
    print(f"notifications per activation: {notes // STEPS if notes else 0} × {STEPS} rows")
    return timed, baseline


def bench_timers(url: str, conn, plan, n_incidents: int, spread_s: float, interval: float) -> list[float]:
    """Lateness (s) of every escalation under a real TimerLoop, for n incidents' tasks due in
    the next `spread_s` seconds."""
    ids = []
    for _ in range(n_incidents):
        ids.append(new_incident(conn))
        response.activate(conn, ids[-1], Commander(), plan=plan)
    conn.execute("UPDATE incident_task SET due_at = clock_timestamp() + random() * %s * interval '1 second'"
                 " WHERE incident_id = ANY(%s)", (spread_s, ids))
    conn.commit()
    loop = TimerLoop(lambda: connect(url), interval=interval)
    loop.start()
    try:
        deadline = time.monotonic() + spread_s + 60
        while time.monotonic() < deadline:
            left = conn.execute("SELECT count(*) AS n FROM incident_task WHERE incident_id = ANY(%s)"
                                " AND escalated_at IS NULL", (ids,)).fetchone()["n"]
            if left == 0:
                break
            time.sleep(0.5)
    finally:
        loop.stop()
    rows = conn.execute("SELECT extract(epoch FROM escalated_at - due_at) AS late FROM incident_task"
                        " WHERE incident_id = ANY(%s)", (ids,)).fetchall()
    missing = sum(r["late"] is None for r in rows)
    if missing:
        raise SystemExit(f"{missing} tasks never escalated")
    return [float(r["late"]) for r in rows]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--incidents", type=int, default=20)
    ap.add_argument("--spread", type=float, default=30.0, help="deadlines spread over this many seconds")
    args = ap.parse_args()
    interval = Settings().timer_interval_seconds
    plan = big_plan()
    with throwaway_postgres("citygrid-bench-emergency-", durable=True) as stack, connect(stack.url) as conn:
        migrate.migrate(conn)
        prepare(conn)
        timed, baseline = bench_activation(conn, plan, args.runs)
        one = bench_timers(stack.url, conn, plan, 1, args.spread, interval)
        many = bench_timers(stack.url, conn, plan, args.incidents, args.spread, interval)
    print()
    print("=" * 100)
    print(f"SUMMARY ({stack.settings_note()}; 2-core machine shared)")
    print(f"activation of {STEPS} tasks (owners from the roster, notifications, timeline): p50"
          f" {statistics.median(timed):.1f} ms, p99 {pct(timed, 99):.1f} ms, max {max(timed):.1f} ms"
          f"  | baseline, one statement per row: p50 {statistics.median(baseline):.1f} ms,"
          f" p99 {pct(baseline, 99):.1f} ms  | target <= {ACTIVATION_TARGET_MS:g} ms:"
          f" {'met' if max(timed) <= ACTIVATION_TARGET_MS else 'NOT met'}")
    print(f"timer loop (interval {interval:g} s), {args.incidents} incidents, {len(many)} deadlines in {args.spread:g} s:"
          f" escalated late by p50 {statistics.median(many):.2f} s, p99 {pct(many, 99):.2f} s, max {max(many):.2f} s"
          f"  | baseline, 1 incident ({len(one)} deadlines): p50 {statistics.median(one):.2f} s, max {max(one):.2f} s"
          f"  | target every one <= {LATENESS_TARGET_S:g} s: {'met' if max(many) <= LATENESS_TARGET_S else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
