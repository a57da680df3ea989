"""Guards and effects named by the case transition table (workflows/seed/case_flow.yaml).

A guard returns None when it holds, or the reason it does not (shown to the user).
An effect changes the case inside the transition's transaction."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from workflows import clocks, inspectors, routing
from workflows.notify import notify


@dataclass
class ActionRequest:
    note: str | None = None
    dept_id: int | None = None                   # dispatch: the department
    merge_into: int | None = None                # merge: the surviving case id
    extension_kind: str | None = None            # request_extension: 工作时/工作日/自然时
    extension_amount: float | None = None
    photo_kinds: tuple[str, ...] = ()            # kinds of the photos sent with the action
    expected_version: int | None = None


@dataclass
class Ctx:
    conn: psycopg.Connection
    case: dict[str, Any]                         # the case row, locked FOR UPDATE
    actor: Any                                   # id, username, role, dept_id, areas
    request: ActionRequest
    now: datetime
    clock: clocks.CaseClock
    changes: dict[str, Any] = field(default_factory=dict)   # columns to update on the case
    detail: dict[str, Any] = field(default_factory=dict)    # recorded on the transition


# ---------------------------------------------------------------- guards
def assigned_inspector(ctx: Ctx) -> str | None:
    assignee = ctx.case["assignee_id"]
    if assignee is not None:
        return None if assignee == ctx.actor.id else "this task is assigned to another inspector"
    areas = ctx.actor.areas or ()
    if any(ctx.case["grid_code"].startswith(a) for a in areas):
        return None
    return "this case lies outside your patrol area"


def note_given(ctx: Ctx) -> str | None:
    return None if (ctx.request.note or "").strip() else "write a note saying why (说明原因)"


def merge_target_open(ctx: Ctx) -> str | None:
    target_id = ctx.request.merge_into
    if not target_id:
        return "name the case to merge into (merge_into)"
    if target_id == ctx.case["id"]:
        return "a case cannot be merged into itself"
    target = ctx.conn.execute("SELECT state, coalesce(event_class, part_class) AS cls FROM case_file WHERE id = %s",
                              (target_id,)).fetchone()
    if target is None:
        return f"case {target_id} does not exist"
    if target["state"] in ("closed", "void", "not_filed"):
        return f"case {target_id} is already finished ({target['state']}); merge into an open case"
    if target["cls"] != (ctx.case["event_class"] or ctx.case["part_class"]):
        return f"case {target_id} is of another class; only reports of the same problem can be merged"
    return None


def department_given(ctx: Ctx) -> str | None:
    if ctx.request.dept_id is None:
        return "choose the department to dispatch to (dept_id)"
    if not ctx.conn.execute("SELECT 1 FROM department WHERE id = %s", (ctx.request.dept_id,)).fetchone():
        return f"department {ctx.request.dept_id} does not exist"
    return None


def own_department(ctx: Ctx) -> str | None:
    return None if ctx.case["dept_id"] == ctx.actor.dept_id else "this case is not dispatched to your department"


def extension_given(ctx: Ctx) -> str | None:
    r = ctx.request
    if r.extension_kind not in ("工作时", "工作日", "自然时") or not r.extension_amount or r.extension_amount <= 0:
        return "say how long the extension is: extension_kind (工作时/工作日/自然时) and a positive extension_amount"
    return note_given(ctx)


def _pending_extension(ctx: Ctx) -> dict | None:
    return ctx.conn.execute("SELECT * FROM case_extension WHERE case_id = %s AND status = 'pending'",
                            (ctx.case["id"],)).fetchone()


def no_pending_extension(ctx: Ctx) -> str | None:
    return "an extension request is already waiting for approval" if _pending_extension(ctx) else None


def pending_extension(ctx: Ctx) -> str | None:
    return None if _pending_extension(ctx) else "there is no extension request waiting for approval"


def after_photo(ctx: Ctx) -> str | None:
    return None if "after" in ctx.request.photo_kinds else "attach a photo of the result (处置后照片)"


GUARDS: dict[str, Callable[[Ctx], str | None]] = {f.__name__: f for f in (
    assigned_inspector, note_given, merge_target_open, department_given, own_department, extension_given,
    no_pending_extension, pending_extension, after_photo)}


# ---------------------------------------------------------------- effects
def clear_assignee(ctx: Ctx) -> None:
    ctx.changes["assignee_id"] = None


def merge_into(ctx: Ctx) -> None:
    """Every reporter and photo moves to the surviving case, which records the merge too."""
    target, case_id = ctx.request.merge_into, ctx.case["id"]
    ctx.conn.execute("UPDATE case_reporter SET case_id = %s WHERE case_id = %s", (target, case_id))
    ctx.conn.execute("UPDATE case_photo SET case_id = %s WHERE case_id = %s", (target, case_id))
    ctx.changes["duplicate_of"] = target
    ctx.detail["merged_into"] = target
    survivor = ctx.conn.execute("SELECT state FROM case_file WHERE id = %s FOR UPDATE", (target,)).fetchone()
    ctx.conn.execute(
        "INSERT INTO case_transition (case_id, at, actor_id, actor, role, action, from_state, to_state, note, detail)"
        " VALUES (%s, %s, %s, %s, %s, 'merged_in', %s, %s, %s, %s)",
        (target, ctx.now, ctx.actor.id, ctx.actor.username, ctx.actor.role, survivor["state"], survivor["state"],
         ctx.request.note, psycopg.types.json.Jsonb({"case_no": ctx.case["case_no"], "case_id": case_id})))


def suggest_department(ctx: Ctx) -> None:
    ctx.changes["suggested_dept_id"] = routing.suggest(ctx.conn, ctx.case)


def assign_department(ctx: Ctx) -> None:
    ctx.changes["dept_id"] = ctx.request.dept_id
    ctx.detail["dept_id"] = ctx.request.dept_id
    if ctx.case["suggested_dept_id"] and ctx.case["suggested_dept_id"] != ctx.request.dept_id:
        ctx.detail["overrode_suggestion"] = ctx.case["suggested_dept_id"]


def start_handling(ctx: Ctx) -> None:
    ctx.changes.update(ctx.clock.start_handling(ctx.case, ctx.now))


def stop_handling(ctx: Ctx) -> None:
    deadline = ctx.case["handle_deadline"]
    if deadline is not None:
        ctx.detail["handle_deadline"] = deadline.isoformat()
        ctx.detail["on_time"] = ctx.now <= deadline
    ctx.changes.update(ctx.clock.stop_handling(ctx.case))


def resume_handling(ctx: Ctx) -> None:
    ctx.changes.update(ctx.clock.rearm_handling(ctx.case, ctx.now))


def notify_department(ctx: Ctx) -> None:
    dept = ctx.request.dept_id or ctx.case["dept_id"]
    notify(ctx.conn, kind="case.dispatched", case_id=ctx.case["id"], dept_id=dept,
           message=f"案卷 {ctx.case['case_no']} 已派遣至本部门，请签收处置")


def count_return(ctx: Ctx) -> None:
    ctx.changes["return_count"] = ctx.case["return_count"] + 1


def clear_department(ctx: Ctx) -> None:
    ctx.changes["dept_id"] = None


def record_extension_request(ctx: Ctx) -> None:
    r = ctx.request
    ctx.conn.execute("INSERT INTO case_extension (case_id, limit_kind, amount, reason, requested_by)"
                     " VALUES (%s, %s, %s, %s, %s)",
                     (ctx.case["id"], r.extension_kind, r.extension_amount, r.note, ctx.actor.username))
    ctx.detail["extension"] = {"kind": r.extension_kind, "amount": r.extension_amount}


def notify_shift_lead(ctx: Ctx) -> None:
    notify(ctx.conn, kind="case.extension_requested", case_id=ctx.case["id"], role="shift_lead",
           message=f"案卷 {ctx.case['case_no']} 申请延期，请审批")


def _decide_extension(ctx: Ctx, status: str) -> dict:
    ext = _pending_extension(ctx)
    ctx.conn.execute("UPDATE case_extension SET status = %s, decided_by = %s, decided_at = %s WHERE id = %s",
                     (status, ctx.actor.username, ctx.now, ext["id"]))
    ctx.detail["extension"] = {"id": ext["id"], "kind": ext["limit_kind"], "amount": float(ext["amount"]),
                               "status": status}
    return ext


def approve_extension(ctx: Ctx) -> None:
    ext = _decide_extension(ctx, "approved")
    ctx.changes.update(ctx.clock.extend_handling(ctx.case, ext["limit_kind"], float(ext["amount"]), ctx.now))
    ctx.detail["handle_deadline"] = ctx.changes["handle_deadline"].isoformat()


def reject_extension(ctx: Ctx) -> None:
    _decide_extension(ctx, "rejected")


def pause_clock(ctx: Ctx) -> None:
    ctx.conn.execute("INSERT INTO case_pause (case_id, started_at, reason) VALUES (%s, %s, %s)",
                     (ctx.case["id"], ctx.now, ctx.request.note))
    ctx.changes.update(ctx.clock.pause(ctx.case, ctx.now))


def resume_clock(ctx: Ctx) -> None:
    ctx.conn.execute("UPDATE case_pause SET ended_at = %s WHERE case_id = %s AND ended_at IS NULL",
                     (ctx.now, ctx.case["id"]))
    ctx.changes.update(ctx.clock.resume(ctx.case, ctx.now))
    ctx.detail["handle_deadline"] = ctx.changes["handle_deadline"].isoformat()


def assign_checker(ctx: Ctx) -> None:
    inspector = inspectors.responsible_inspector(ctx.conn, ctx.case["grid_code"], ctx.case["location_wkt"])
    ctx.changes["assignee_id"] = inspector
    ctx.detail["assignee_id"] = inspector
    if inspector is not None:
        notify(ctx.conn, kind="case.check_task", case_id=ctx.case["id"], user_id=inspector,
               message=f"核查任务：案卷 {ctx.case['case_no']}，请到现场核查并拍照")
    else:
        notify(ctx.conn, kind="case.no_inspector", case_id=ctx.case["id"], role="shift_lead",
               message=f"案卷 {ctx.case['case_no']} 找不到在岗监督员核查，请人工指派")


def count_rework(ctx: Ctx) -> None:
    ctx.changes["rework_count"] = ctx.case["rework_count"] + 1


def close_case(ctx: Ctx) -> None:
    ctx.changes["closed_at"] = ctx.now


EFFECTS: dict[str, Callable[[Ctx], None]] = {f.__name__: f for f in (
    clear_assignee, merge_into, suggest_department, assign_department, start_handling, stop_handling,
    resume_handling, notify_department, count_return, clear_department, record_extension_request,
    notify_shift_lead, approve_extension, reject_extension, pause_clock, resume_clock, assign_checker,
    count_rework, close_case)}
