"""The response (应急响应): a plan activated for an incident turns its steps into tasks with
owners and deadlines, and then enforces them — a task waits for the tasks it depends on,
an overdue task is escalated (督办) to the commander and the on-duty leader, and the incident
cannot close while a mandatory task is open unless a commander waives it in writing.

Owners come from the duty roster: a plan names posts (值守岗位), and a task goes to whoever
holds the post when it is made. A post nobody holds falls to the shift leads, so nothing is
assigned to nobody."""
from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import psycopg
import yaml
from psycopg.types.json import Jsonb

from gis.db import audit
from workflows.actors import utc_now, who
from gis.errors import Conflict, Forbidden, Invalid, NotFound
from workflows import incidents
from workflows.duty import holders
from workflows.incidents import COMMAND_ROLES, level_name, timeline
from workflows.notify import LIVE_CHANNEL, live
from workflows.plans import LEVELS, Plan, Step, parse_plan, shipped_plans

OPEN = ("blocked", "open", "in_progress")
FINISHED = ("done", "waived", "cancelled")
STATUS_NAMES = {"blocked": "等待前置", "open": "待办", "in_progress": "进行中", "done": "已完成", "waived": "已豁免",
                "cancelled": "已取消"}
# The organisation roles escalations go to: the plan's commander and its on-duty leader.
ESCALATE_TO = ("commander", "duty_leader")


@functools.cache
def _shipped() -> dict[str, Plan]:
    return {p.id: p for p in shipped_plans()}


def plan_by_id(plan_id: str) -> Plan:
    try:
        return _shipped()[plan_id]
    except KeyError:
        raise Invalid(f"no plan {plan_id!r}; the plans are {', '.join(sorted(_shipped()))}") from None


def all_plans() -> list[Plan]:
    return sorted(_shipped().values(), key=lambda p: p.id)


_ran: dict[tuple[str, int], Plan] = {}


def plan_as_run(plan_id: str, version: int, document: dict) -> Plan:
    """The plan an activation ran, from the copy it keeps (a plan revised since, or one loaded
    from outside the shipped set, still escalates by its own organisation)."""
    key = (plan_id, version)
    if key not in _ran:
        shipped = _shipped().get(plan_id)
        _ran[key] = shipped if shipped and shipped.version == version else parse_plan(
            yaml.safe_dump(document, allow_unicode=True, sort_keys=False), f"{plan_id} v{version}")
    return _ran[key]


def _running_plan(conn: psycopg.Connection, incident_id: int, plan_id: str) -> Plan:
    row = conn.execute("SELECT plan_version, document FROM plan_activation WHERE incident_id = %s AND plan_id = %s"
                       " ORDER BY id DESC LIMIT 1", (incident_id, plan_id)).fetchone()
    return plan_as_run(plan_id, row["plan_version"], row["document"])


def matching_plans(category: str, subtype: str) -> list[Plan]:
    """The plans whose scope covers an incident of this category and subtype."""
    return [p for p in _shipped().values() if p.covers(category, subtype)]




# ---------------------------------------------------------------- telling people

def role_holders(conn: psycopg.Connection, plan: Plan, roles: list[str], at: dt.datetime) -> dict[str, dict]:
    """{plan role: {post_id, user_id, label}} — the post's holder at `at`, or the first active
    user the plan names; user_id None when nobody fills the role."""
    posts = {r: plan.organisation[r]["post"] for r in roles if "post" in plan.organisation.get(r, {})}
    held = holders(conn, list(set(posts.values())), at) if posts else {}
    named = {r: plan.organisation[r]["users"] for r in roles if "users" in plan.organisation.get(r, {})}
    users = {}
    if named:
        wanted = sorted({u for names in named.values() for u in names})
        users = {r["username"]: r for r in conn.execute(
            "SELECT id, username, display_name FROM app_user WHERE username = ANY(%s) AND active", (wanted,))}
    out = {}
    for role in roles:
        if role in posts:
            h = held.get(posts[role], {})
            out[role] = {"post_id": h.get("post_id"), "user_id": h.get("user_id"),
                         "label": f"{posts[role]}（{h.get('display_name') or '无人值班'}）"}
        elif role in named:
            u = next((users[n] for n in named[role] if n in users), None)
            out[role] = {"post_id": None, "user_id": u and u["id"], "label": u["display_name"] if u else "、".join(named[role])}
        else:
            out[role] = {"post_id": None, "user_id": None, "label": role}
    return out


def _notify_many(conn: psycopg.Connection, incident_id: int, kind: str, rows: list[tuple[int | None, str]]) -> None:
    """Notifications (user_id, message) in one statement; a role nobody fills goes to the shift
    leads instead, saying so."""
    if not rows:
        return
    users = [u for u, _ in rows]
    messages = [m if u is not None else f"{m}（该岗位当前无人值班，请值班长安排）" for u, m in rows]
    conn.execute(
        "WITH n AS (INSERT INTO notification (kind, message, incident_id, user_id, role)"
        " SELECT %s, m, %s, u, CASE WHEN u IS NULL THEN 'shift_lead' END"
        " FROM unnest(%s::int[], %s::text[]) AS x(u, m) RETURNING id)"
        " SELECT pg_notify(%s, json_build_object('kind', 'notification', 'id', max(id))::text) FROM n",
        (kind, incident_id, users, messages, LIVE_CHANNEL))


# ---------------------------------------------------------------- activation

def activate(conn: psycopg.Connection, incident_id: int, actor: Any, *, plan_id: str | None = None,
             plan: Plan | None = None, automatic: bool = False, expected_version: int | None = None,
             now: dt.datetime | None = None) -> dict:
    """Activate a plan (启动预案) for the incident's level: every level of the plan up to it not
    yet in force becomes an activation, every step of those levels a task. Activating again
    after an upgrade adds only the new levels' tasks."""
    now = now or utc_now()
    if not automatic and getattr(actor, "role", None) not in COMMAND_ROLES:
        raise Forbidden("only a commander (指挥长) or leader (领导) may activate a plan")
    name, actor_id = who(actor)
    with conn.transaction():
        inc = incidents.locked(conn, incident_id, expected_version)
        if inc["status"] == "closed":
            raise Conflict(f"incident {inc['incident_no']} is closed")
        plan = plan or _choose_plan(conn, inc, plan_id)
        done_levels = {r["level"] for r in conn.execute(
            "SELECT level FROM plan_activation WHERE incident_id = %s AND plan_id = %s", (incident_id, plan.id))}
        upto = LEVELS[:LEVELS.index(inc["level"]) + 1]
        new_levels = [lv for lv in upto if lv in plan.levels and lv not in done_levels]
        if not new_levels:
            raise Conflict(f"plan {plan.name} is already in force at {level_name(inc['level'])} for {inc['incident_no']}")
        steps = [s for s in plan.steps_for(new_levels[-1]) if s.level in new_levels]
        how = "自动启动" if automatic else "启动"
        timeline(conn, incident_id, actor, "activated",
                 f"{how}《{plan.name}》（v{plan.version}）{'、'.join(new_levels)}级响应，生成任务 {len(steps)} 项",
                 {"plan": plan.id, "version": plan.version, "levels": new_levels, "tasks": len(steps),
                  "automatic": automatic}, at=now)
        changes = {}
        if inc["status"] in ("reported", "verified"):
            changes = {"status": "responding", "responding_at": now, "verified_at": inc["verified_at"] or now}
            timeline(conn, incident_id, actor, "status.responding", "状态：→ 响应中", {"to": "responding"}, at=now)
        tasks = _start_levels(conn, inc, plan, steps, new_levels, automatic, name, now)
        incidents._bump(conn, incident_id, changes)
        audit(conn, actor=name, actor_id=actor_id, action="plan.activate", entity="incident", entity_id=str(incident_id),
              detail={"plan": plan.id, "version": plan.version, "levels": new_levels, "tasks": len(tasks),
                      "automatic": automatic})
    return {"plan_id": plan.id, "plan_version": plan.version, "levels": new_levels, "tasks": len(tasks)}


def _choose_plan(conn: psycopg.Connection, inc: dict, plan_id: str | None) -> Plan:
    if plan_id is None:
        running = conn.execute("SELECT DISTINCT plan_id FROM plan_activation WHERE incident_id = %s",
                               (inc["id"],)).fetchall()
        if len(running) == 1:
            plan_id = running[0]["plan_id"]
    if plan_id is not None:
        running = conn.execute("SELECT 1 FROM plan_activation WHERE incident_id = %s AND plan_id = %s",
                               (inc["id"], plan_id)).fetchone()
        plan = _running_plan(conn, inc["id"], plan_id) if running else plan_by_id(plan_id)
        if not plan.covers(inc["category"], inc["subtype"]):
            raise Invalid(f"plan {plan.name} does not cover {inc['category']}/{inc['subtype']}")
        return plan
    plans = matching_plans(inc["category"], inc["subtype"])
    if not plans:
        raise Invalid(f"no plan covers {inc['category']}/{inc['subtype']}; run the response by hand")
    if len(plans) > 1:
        raise Invalid("several plans cover this incident; choose one: " + ", ".join(f"{p.id} ({p.name})" for p in plans))
    return plans[0]


def _start_levels(conn: psycopg.Connection, inc: dict, plan: Plan, steps: list[Step], levels: list[str],
                  automatic: bool, by: str, now: dt.datetime) -> list[dict]:
    """The activation rows of `levels` and their steps' tasks, with notifications, in bulk.
    Dependencies are the same plan's steps: another plan on the incident may share step ids."""
    done_steps = {r["step_id"]: r["status"] for r in conn.execute(
        "SELECT step_id, status FROM incident_task WHERE incident_id = %s AND plan_id = %s", (inc["id"], plan.id))}
    activation_ids = {}
    for lv in levels:
        activation_ids[lv] = conn.execute(
            "INSERT INTO plan_activation (incident_id, plan_id, plan_version, level, automatic, activated_at,"
            " activated_by, document) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (inc["id"], plan.id, plan.version, lv, automatic, now, by, Jsonb(plan.source))).fetchone()["id"]
    roles = sorted({s.role for s in steps} | {r for s in steps for r in s.notify})
    who = role_holders(conn, plan, roles, now)
    known = {**done_steps, **{s.id: "new" for s in steps}}
    rows = []
    for s in steps:
        waiting = [d for d in s.depends_on if known.get(d) not in ("done", "waived")]
        rows.append({"incident_id": inc["id"], "activation_id": activation_ids[s.level], "plan_id": plan.id,
                     "step_id": s.id, "level": s.level, "title": s.title, "role": s.role,
                     "post_id": who[s.role]["post_id"], "owner_user_id": who[s.role]["user_id"],
                     "mandatory": s.mandatory, "depends_on": list(s.depends_on),
                     "resources": Jsonb([{"type": t, "count": n} for t, n in s.resources]),
                     "checklist": Jsonb([{"item": c, "done": False} for c in s.checklist]),
                     "status": "blocked" if waiting else "open", "due_at": now + dt.timedelta(minutes=s.deadline_min)})
    columns = list(rows[0]) if rows else []
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO incident_task ({', '.join(columns)})"
                        f" VALUES ({', '.join(f'%({c})s' for c in columns)})", rows)
    drill = "【演练】" if inc["drill"] else ""
    notes, entries = [], []
    for s, row in zip(steps, rows):
        notes.append((who[s.role]["user_id"], f"{drill}{inc['incident_no']} 新任务：{s.title}"
                                              f"（{row['due_at'].astimezone(incidents.LOCAL_TZ):%H:%M} 前完成）"))
        for r in s.notify:
            notes.append((who[r]["user_id"], f"{drill}{inc['incident_no']} 启动{level_name(s.level)}响应：{s.title}"))
        told = [who[r]["label"] for r in s.notify]
        entries.append((inc["id"], now, by, "task.created",
                        f"任务「{s.title}」→ {who[s.role]['label']}，时限 {s.deadline_min:g} 分钟"
                        + ("（等待前置任务）" if row["status"] == "blocked" else "")
                        + (f"；通知 {'、'.join(told)}" if told else ""),
                        Jsonb({"step": s.id, "plan": plan.id, "role": s.role, "notify": told})))
    _notify_many(conn, inc["id"], "incident.task", notes)
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO incident_event (incident_id, at, actor, kind, message, detail)"
                        " VALUES (%s, %s, %s, %s, %s, %s)", entries)
    return rows


def auto_activate(conn: psycopg.Connection, incident_id: int, now: dt.datetime | None = None) -> dict | None:
    """Activate the plan that covers the incident (automatic activation on report). When
    several do, none starts: the commanders are asked to choose, and the answer is
    {"plan_id": None, "choices": [{plan_id, name}]}. None when no plan covers it."""
    inc = conn.execute("SELECT id, incident_no, drill, category, subtype FROM incident WHERE id = %s",
                       (incident_id,)).fetchone()
    if inc is None:
        raise NotFound(f"incident {incident_id} does not exist")
    plans = sorted((p for p in matching_plans(inc["category"], inc["subtype"]) if any(lv in p.levels for lv in LEVELS)),
                   key=lambda p: p.id)
    if not plans:
        return None
    if len(plans) == 1:
        return activate(conn, incident_id, "system", plan_id=plans[0].id, automatic=True, now=now)
    return _ask_to_choose(conn, inc, plans, now or utc_now())


def _ask_to_choose(conn: psycopg.Connection, inc: dict, plans: list[Plan], now: dt.datetime) -> dict:
    """Several plans apply: say so on the timeline and tell each plan's commander (once each)."""
    names = "、".join(f"《{p.name}》" for p in plans)
    commanders = {}
    for p in plans:
        if "commander" in p.organisation:
            held = role_holders(conn, p, ["commander"], now)["commander"]
            commanders.setdefault(held["user_id"] or held["label"], held)
    told = "、".join(h["label"] for h in commanders.values())
    with conn.transaction():
        timeline(conn, inc["id"], "system", "plan.choose",
                 f"多个预案适用：{names}，请指挥长选择启动" + (f"；已通知 {told}" if told else ""),
                 {"plans": [p.id for p in plans], "notified": [h["label"] for h in commanders.values()]}, at=now)
        message = f"{'【演练】' if inc['drill'] else ''}{inc['incident_no']} 多个预案适用：{names}，请指挥长选择启动"
        _notify_many(conn, inc["id"], "incident.plan", [(h["user_id"], message) for h in commanders.values()])
        audit(conn, actor="system", action="plan.choose", entity="incident", entity_id=str(inc["id"]),
              detail={"plans": [p.id for p in plans]})
        live(conn, "incident", inc["id"])
    return {"plan_id": None, "choices": [{"plan_id": p.id, "name": p.name} for p in plans]}


def change_level(conn: psycopg.Connection, incident_id: int, level: str, reason: str, actor: Any, *,
                 expected_version: int | None = None, now: dt.datetime | None = None) -> dict:
    """A level change, and with an upgrade the plan's response at the new level (升级响应)."""
    now = now or utc_now()
    with conn.transaction():
        changed = incidents.set_level(conn, incident_id, level, reason, actor, expected_version=expected_version,
                                      now=now)
        plans = [r["plan_id"] for r in conn.execute(
            "SELECT DISTINCT plan_id FROM plan_activation WHERE incident_id = %s ORDER BY plan_id", (incident_id,))]
        added = []
        if changed["upgraded"]:
            for plan_id in plans:
                upto = LEVELS[:LEVELS.index(level) + 1]
                have = {r["level"] for r in conn.execute(
                    "SELECT level FROM plan_activation WHERE incident_id = %s AND plan_id = %s", (incident_id, plan_id))}
                plan = _running_plan(conn, incident_id, plan_id)
                if any(lv in plan.levels and lv not in have for lv in upto):
                    added.append(activate(conn, incident_id, actor, plan=plan, automatic=True, now=now))
    return {**changed, "activations": added}


# ---------------------------------------------------------------- tasks

ACTIONS = ("start", "done", "reopen", "waive", "reassign", "check")


_ROW_NAMES = {"incident_task": "task", "dispatch_order": "dispatch order"}


def lock_incident_of(conn: psycopg.Connection, table: str, row_id: int) -> dict:
    """Lock the incident a task or dispatch order belongs to, before the row itself. Every
    writer takes the incident's row lock first, then its tasks, orders and resources (closing
    an incident does), so two writers never each hold the lock the other waits for."""
    row = conn.execute(f"SELECT incident_id FROM {table} WHERE id = %s", (row_id,)).fetchone()
    if row is None:
        raise NotFound(f"{_ROW_NAMES[table]} {row_id} does not exist")
    return incidents.locked(conn, row["incident_id"])


def each_incident_locked(conn: psycopg.Connection, due_sql: str, params: tuple, work) -> int:
    """The timer loop's part, incident by incident: for each incident `due_sql` names (its
    one column incident_id), in its own transaction, lock the incident and run
    `work(incident)` (which re-reads and locks its due rows). An incident somebody holds —
    another replica, a commander mid-change — is skipped until the next round rather than
    waited for. Returns the sum of what `work` returns."""
    done = 0
    for row in conn.execute(due_sql, params).fetchall():
        with conn.transaction():
            inc = conn.execute("SELECT id, incident_no, drill FROM incident WHERE id = %s FOR UPDATE SKIP LOCKED",
                               (row["incident_id"],)).fetchone()
            if inc is not None:
                done += work(inc)
    return done


def _locked_task(conn: psycopg.Connection, task_id: int, expected_version: int | None) -> dict:
    """The task, locked after its incident (see lock_incident_of), with the incident's number,
    status and drill flag."""
    inc = lock_incident_of(conn, "incident_task", task_id)
    task = conn.execute("SELECT * FROM incident_task WHERE id = %s FOR UPDATE", (task_id,)).fetchone()
    if expected_version is not None and expected_version != task["version"]:
        raise Conflict(f"task 「{task['title']}」 was changed by someone else since you opened it (version"
                       f" {expected_version}, now {task['version']}); reload it and try again")
    return {**task, "incident_no": inc["incident_no"], "incident_status": inc["status"], "drill": inc["drill"]}


def act_on_task(conn: psycopg.Connection, task_id: int, action: str, actor: Any, *, note: str = "",
                expected_version: int | None = None, checklist: list[bool] | None = None,
                owner_user_id: int | None = None, now: dt.datetime | None = None) -> dict:
    """One action on a task. The owner starts, ticks and finishes it; a commander may do all of
    that and also waive (豁免, with a written reason), reopen and reassign. A stale version, or
    an action the task's status does not allow, is a 409."""
    if action not in ACTIONS:
        raise Invalid(f"action {action!r} is not one of {', '.join(ACTIONS)}")
    now = now or utc_now()
    name, actor_id = who(actor)
    commander = getattr(actor, "role", None) in COMMAND_ROLES
    with conn.transaction():
        task = _locked_task(conn, task_id, expected_version)
        if task["incident_status"] == "closed":
            raise Conflict(f"incident {task['incident_no']} is closed")
        if not commander and (action in ("waive", "reopen", "reassign") or task["owner_user_id"] != actor_id):
            raise Forbidden("only the task's owner or a commander (指挥长) may do this" if action not in
                            ("waive", "reopen", "reassign") else f"only a commander (指挥长) may {action} a task")
        changes, message = _apply(conn, task, action, note, checklist, owner_user_id, now, name)
        sets = ", ".join(f"{k} = %({k})s" for k in changes)
        conn.execute(f"UPDATE incident_task SET {sets}, version = version + 1 WHERE id = %(id)s",
                     {**changes, "id": task_id})
        if action == "reopen":
            message += _reblock(conn, task)
        timeline(conn, task["incident_id"], actor, f"task.{action}", message,
                 {"task": task_id, "step": task["step_id"], "note": note}, at=now)
        audit(conn, actor=name, actor_id=actor_id, action=f"task.{action}", entity="incident_task",
              entity_id=str(task_id), detail={"incident": task["incident_id"], "step": task["step_id"], "note": note})
        if changes.get("status") in ("done", "waived"):
            _unblock(conn, task["incident_id"], now)
        incidents._bump(conn, task["incident_id"])
    return {"id": task_id, "version": task["version"] + 1, **{k: v for k, v in changes.items() if k != "checklist"}}


def _apply(conn: psycopg.Connection, task: dict, action: str, note: str, checklist: list[bool] | None,
           owner_user_id: int | None, now: dt.datetime, by: str) -> tuple[dict, str]:
    status, title = task["status"], task["title"]

    def refuse(why: str):
        raise Conflict(f"task 「{title}」 is {STATUS_NAMES[status]}: {why}")

    if action == "start":
        if status == "blocked":
            refuse(f"it waits for {', '.join(task['depends_on'])}")
        if status != "open":
            refuse("only an open task can be started")
        return {"status": "in_progress", "started_at": now}, f"开始任务「{title}」"
    if action == "check":
        if status in FINISHED:
            refuse("it is finished")
        items = task["checklist"]
        if checklist is None or len(checklist) != len(items):
            raise Invalid(f"send the checklist as {len(items)} true/false values, in order")
        ticked = [{"item": i["item"], "done": bool(d)} for i, d in zip(items, checklist)]
        return {"checklist": Jsonb(ticked)}, f"任务「{title}」清单 {sum(checklist)}/{len(items)}"
    if action == "done":
        if status == "blocked":
            refuse(f"it waits for {', '.join(task['depends_on'])}")
        if status not in ("open", "in_progress"):
            refuse("only an open task can be finished")
        missing = [i["item"] for i in task["checklist"] if not i["done"]]
        if missing and not note.strip():
            raise Invalid(f"the checklist is not complete ({'、'.join(missing)}): tick it or say why in a note")
        late = now > task["due_at"]
        return ({"status": "done", "finished_at": now, "note": note or None, "started_at": task["started_at"] or now},
                f"完成任务「{title}」{'（超时）' if late else ''}" + (f"：{note}" if note else ""))
    if action == "waive":
        if status in FINISHED:
            refuse("it is already finished")
        if len(note.strip()) < 4:
            raise Invalid("a waiver needs a written reason (at least a few words)")
        return ({"status": "waived", "finished_at": now, "waived_reason": note.strip(), "waived_by": by},
                f"豁免任务「{title}」{'（必办）' if task['mandatory'] else ''}；理由：{note.strip()}")
    if action == "reopen":
        if status not in ("done", "waived"):
            refuse("only a finished task can be reopened")
        waiting = conn.execute(f"SELECT EXISTS ({_WAITING}) AS waiting FROM incident_task t WHERE t.id = %s",
                               (task["id"],)).fetchone()["waiting"]
        return ({"status": "blocked" if waiting else "open", "finished_at": None, "waived_reason": None,
                 "waived_by": None},
                f"重新打开任务「{title}」" + ("（前置任务未完成，等待前置）" if waiting else "") + (f"：{note}" if note else ""))
    # reassign
    if status in FINISHED:
        refuse("it is finished")
    user = conn.execute("SELECT id, display_name FROM app_user WHERE id = %s AND active", (owner_user_id,)).fetchone()
    if user is None:
        raise Invalid(f"user {owner_user_id} does not exist or is disabled")
    _notify_many(conn, task["incident_id"], "incident.task",
                 [(user["id"], f"{task['incident_no']} 转派任务：{title}（{task['due_at'].astimezone(incidents.LOCAL_TZ):%H:%M} 前完成）")])
    return {"owner_user_id": user["id"]}, f"任务「{title}」转派给 {user['display_name']}"


# A dependency of task `t` not yet done or waived (its plan's step of that id; missing counts
# as not done).
_WAITING = ("SELECT 1 FROM unnest(t.depends_on) d LEFT JOIN incident_task x ON x.incident_id = t.incident_id"
            " AND x.plan_id = t.plan_id AND x.step_id = d WHERE x.status IS NULL OR x.status NOT IN ('done', 'waived')")


def _unblock(conn: psycopg.Connection, incident_id: int, now: dt.datetime) -> None:
    """Open the tasks whose every dependency (in their own plan) is now done or waived, and
    tell their owners."""
    opened = conn.execute(
        "UPDATE incident_task t SET status = 'open', version = version + 1 WHERE t.incident_id = %(id)s"
        f" AND t.status = 'blocked' AND NOT EXISTS ({_WAITING})"
        " RETURNING t.id, t.title, t.owner_user_id, t.due_at", {"id": incident_id}).fetchall()
    if not opened:
        return
    no = conn.execute("SELECT incident_no FROM incident WHERE id = %s", (incident_id,)).fetchone()["incident_no"]
    _notify_many(conn, incident_id, "incident.task",
                 [(t["owner_user_id"], f"{no} 前置任务已完成，可以开始：{t['title']}") for t in opened])
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO incident_event (incident_id, at, actor, kind, message, detail)"
                        " VALUES (%s, %s, 'system', 'task.unblocked', %s, %s)",
                        [(incident_id, now, f"前置任务完成，任务「{t['title']}」可以开始", Jsonb({"task": t["id"]}))
                         for t in opened])


def _reblock(conn: psycopg.Connection, task: dict) -> str:
    """A reopened task's dependants (same plan): those not started wait again (their owners are
    told); those started or finished stay as they are. What it did, for the timeline."""
    after = conn.execute(
        "SELECT id, title, status, owner_user_id FROM incident_task WHERE incident_id = %s AND plan_id = %s"
        " AND %s = ANY(depends_on) AND status IN ('open', 'in_progress', 'done', 'waived') ORDER BY due_at, id"
        " FOR UPDATE", (task["incident_id"], task["plan_id"], task["step_id"])).fetchall()
    back = [t for t in after if t["status"] == "open"]
    if back:
        conn.execute("UPDATE incident_task SET status = 'blocked', version = version + 1 WHERE id = ANY(%s)",
                     ([t["id"] for t in back],))
        _notify_many(conn, task["incident_id"], "incident.task",
                     [(t["owner_user_id"], f"{task['incident_no']} 前置任务「{task['title']}」重新打开，"
                                           f"请暂缓：{t['title']}") for t in back])
    said = ("；后续任务" + "、".join(f"「{t['title']}」" for t in back) + "退回等待前置") if back else ""
    kept = [t for t in after if t["status"] != "open"]
    if kept:
        said += "；" + "、".join(f"「{t['title']}」（{STATUS_NAMES[t['status']]}）" for t in kept) + "不受影响"
    return said


def tasks(conn: psycopg.Connection, incident_id: int) -> list[dict]:
    rows = conn.execute(
        "SELECT t.id, t.step_id, t.level, t.title, t.role, t.post_id, p.name AS post, t.owner_user_id,"
        " u.display_name AS owner, t.mandatory, t.depends_on, t.resources, t.checklist, t.status, t.due_at,"
        " t.started_at, t.finished_at, t.note, t.waived_reason, t.waived_by, t.escalated_at, t.version,"
        " t.plan_id FROM incident_task t LEFT JOIN duty_post p ON p.id = t.post_id LEFT JOIN app_user u ON u.id = t.owner_user_id"
        " WHERE t.incident_id = %s ORDER BY t.due_at, t.id", (incident_id,)).fetchall()
    for r in rows:
        r["status_name"] = STATUS_NAMES[r["status"]]
    return rows


def activations(conn: psycopg.Connection, incident_id: int) -> list[dict]:
    return conn.execute("SELECT id, plan_id, plan_version, level, automatic, activated_at, activated_by,"
                        " document->>'name' AS plan_name FROM plan_activation WHERE incident_id = %s ORDER BY id",
                        (incident_id,)).fetchall()


# ---------------------------------------------------------------- closing

def close_guard(conn: psycopg.Connection, inc: dict, now: dt.datetime | None = None) -> None:
    """Under the incident's lock, before it closes: refuse while a mandatory task is open;
    cancel the optional ones still open."""
    open_tasks = conn.execute("SELECT id, title, mandatory FROM incident_task WHERE incident_id = %s"
                              " AND status IN ('blocked', 'open', 'in_progress') ORDER BY due_at FOR UPDATE",
                              (inc["id"],)).fetchall()
    mandatory = [t["title"] for t in open_tasks if t["mandatory"]]
    if mandatory:
        raise Conflict(f"incident {inc['incident_no']} cannot close: {len(mandatory)} mandatory task(s) are open"
                       f" ({'、'.join(mandatory)}); finish them, or a commander waives each with a reason")
    optional = [t["id"] for t in open_tasks]
    if optional:
        conn.execute("UPDATE incident_task SET status = 'cancelled', version = version + 1 WHERE id = ANY(%s)",
                     (optional,))
        timeline(conn, inc["id"], "system", "task.cancelled",
                 f"事件关闭，取消未完成的非必办任务 {len(optional)} 项", {"tasks": optional}, at=now)


def close(conn: psycopg.Connection, incident_id: int, actor: Any, *, note: str = "",
          expected_version: int | None = None, now: dt.datetime | None = None) -> dict:
    return incidents.set_status(conn, incident_id, "closed", actor, note=note, expected_version=expected_version,
                                now=now, before_close=lambda c, inc: close_guard(c, inc, now))


# ---------------------------------------------------------------- the timer loop's part

def fire_due(conn: psycopg.Connection, now: dt.datetime | None = None, batch: int = 500) -> int:
    """Escalate (督办) the overdue tasks: each once, to the holders of the plan's commander and
    duty_leader roles, on the timeline. Incident by incident, the incident locked before its
    tasks (each_incident_locked), so replicas share the work and a close never deadlocks with it."""
    now = now or utc_now()
    return each_incident_locked(
        conn, "SELECT incident_id FROM incident_task WHERE escalated_at IS NULL"
              " AND status IN ('blocked', 'open', 'in_progress') AND due_at <= %s"
              " GROUP BY incident_id ORDER BY min(due_at) LIMIT %s", (now, batch),
        lambda inc: _escalate_tasks(conn, inc, now, batch))


def _escalate_tasks(conn: psycopg.Connection, inc: dict, now: dt.datetime, batch: int) -> int:
    """Under the incident's lock: its overdue tasks, checked again and escalated."""
    due = conn.execute(
        "SELECT t.id, t.title, t.due_at, t.owner_user_id, a.plan_id, a.plan_version, a.document"
        " FROM incident_task t JOIN plan_activation a ON a.id = t.activation_id WHERE t.incident_id = %s"
        " AND t.escalated_at IS NULL AND t.status IN ('blocked', 'open', 'in_progress') AND t.due_at <= %s"
        " ORDER BY t.due_at LIMIT %s FOR UPDATE OF t", (inc["id"], now, batch)).fetchall()
    if not due:
        return 0
    conn.execute("UPDATE incident_task SET escalated_at = %s WHERE id = ANY(%s)", (now, [t["id"] for t in due]))
    notes: list[tuple[int | None, str]] = []
    entries, holders_of = [], {}
    for t in due:
        plan = plan_as_run(t["plan_id"], t["plan_version"], t["document"])
        roles = [r for r in ESCALATE_TO if r in plan.organisation]
        if id(plan) not in holders_of:
            holders_of[id(plan)] = role_holders(conn, plan, roles, now)
        who = holders_of[id(plan)]
        late = int((now - t["due_at"]).total_seconds() // 60)
        message = (f"{'【演练】' if inc['drill'] else ''}{inc['incident_no']} 任务超时督办：{t['title']}"
                   f"（应于 {t['due_at'].astimezone(incidents.LOCAL_TZ):%H:%M} 完成）")
        notes += [(who[r]["user_id"], message) for r in roles] + [(t["owner_user_id"], message)]
        entries.append((inc["id"], now, "system", "task.escalated",
                        f"任务「{t['title']}」超时{f' {late} 分钟' if late else ''}，督办："
                        + "、".join(who[r]["label"] for r in roles),
                        Jsonb({"task": t["id"], "due_at": t["due_at"].isoformat()})))
    _notify_many(conn, inc["id"], "incident.escalation", notes)
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO incident_event (incident_id, at, actor, kind, message, detail)"
                        " VALUES (%s, %s, %s, %s, %s, %s)", entries)
    audit(conn, actor="system", action="task.escalate", entity="incident_task",
          detail={"incident": inc["id"], "tasks": [t["id"] for t in due]})
    live(conn, "incident", inc["id"])
    return len(due)
