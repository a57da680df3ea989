"""Dispatch orders (调度指令): resources sent to an incident, acknowledged by the unit or team
(or escalated to the commander when nobody answers in time), and released when done.

A team, vehicle or piece of equipment is `assigned` while out; a supply is drawn from its
warehouse's stock (消耗) and not given back unless the release says how much returned. A
resource bound to a tracked unit also gets the order on MQTT `citygrid/units/{id}/cmd`
(through the unit_command outbox the ingest workers publish)."""
from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from gis.db import audit
from workflows.actors import utc_now, who
from gis.errors import Conflict, Forbidden, Invalid, NotFound
from workflows import incidents
from workflows.incidents import timeline
from workflows.notify import live, notify
from workflows.plans import resource_types
from workflows.resources import nearest_available
from workflows.response import each_incident_locked, lock_incident_of

ACK_MINUTES = 10                 # an order not acknowledged within this is escalated
STATUS_NAMES = {"sent": "已下达", "acknowledged": "已确认", "arrived": "已到场", "released": "已归队", "refused": "已拒绝"}
DISPATCH_ROLES = frozenset({"leader", "commander", "shift_lead", "dispatcher"})




def _consumed(type_code: str) -> bool:
    return resource_types()[type_code]["kind"] == "supply"


def suggest(conn: psycopg.Connection, incident_id: int, task_id: int | None = None, limit: int = 5) -> list[dict]:
    """For each resource type the task needs (or every open task of the incident), the nearest
    available ones: what the dispatcher picks from."""
    inc = conn.execute("SELECT id, ST_X(location) AS lon, ST_Y(location) AS lat FROM incident WHERE id = %s",
                       (incident_id,)).fetchone()
    if inc is None:
        raise NotFound(f"incident {incident_id} does not exist")
    where = "id = %(task)s" if task_id else "status IN ('blocked', 'open', 'in_progress')"
    needs = conn.execute(f"SELECT id, title, resources FROM incident_task WHERE incident_id = %(inc)s AND {where}"
                         " ORDER BY due_at", {"inc": incident_id, "task": task_id}).fetchall()
    if task_id and not needs:
        raise NotFound(f"task {task_id} is not a task of incident {incident_id}")
    sent = {(r["task_id"], r["type_code"]): r["n"] for r in conn.execute(
        "SELECT d.task_id, r.type_code, sum(d.quantity) AS n FROM dispatch_order d JOIN resource r ON r.id = d.resource_id"
        " WHERE d.incident_id = %s AND d.status <> 'refused' GROUP BY 1, 2", (incident_id,))}
    out = []
    for task in needs:
        for need in task["resources"]:
            kind = resource_types()[need["type"]]
            out.append({"task_id": task["id"], "task": task["title"], "type": need["type"], "type_name": kind["name"],
                        "unit": kind["unit"], "count": need["count"], "sent": sent.get((task["id"], need["type"]), 0),
                        "nearest": nearest_available(conn, need["type"], inc["lon"], inc["lat"], limit)})
    return out


def dispatch(conn: psycopg.Connection, incident_id: int, resource_id: int, actor: Any, *, quantity: int = 1,
             task_id: int | None = None, note: str | None = None, ack_minutes: float = ACK_MINUTES,
             now: dt.datetime | None = None) -> dict:
    """Send a resource (or `quantity` of a supply) to an incident."""
    if getattr(actor, "role", None) not in DISPATCH_ROLES:
        raise Forbidden("only a commander, leader, shift lead or dispatcher may dispatch resources")
    if not isinstance(quantity, int) or quantity < 1:
        raise Invalid("quantity is a whole number from 1")
    now = now or utc_now()
    name, actor_id = who(actor)
    with conn.transaction():
        inc = incidents.locked(conn, incident_id)
        if inc["status"] == "closed":
            raise Conflict(f"incident {inc['incident_no']} is closed")
        res = conn.execute("SELECT r.*, d.name AS dept_name FROM resource r LEFT JOIN department d ON d.id = r.dept_id"
                           " WHERE r.id = %s FOR UPDATE OF r", (resource_id,)).fetchone()
        if res is None:
            raise NotFound(f"resource {resource_id} does not exist")
        if task_id is not None and conn.execute("SELECT 1 FROM incident_task WHERE id = %s AND incident_id = %s",
                                                (task_id, incident_id)).fetchone() is None:
            raise Invalid(f"task {task_id} is not a task of incident {inc['incident_no']}")
        if res["status"] != "available":
            raise Conflict(f"{res['name']} is {res['status']}, not available; choose another")
        consumed = _consumed(res["type_code"])
        if quantity > res["quantity"]:
            raise Conflict(f"{res['name']} has {res['quantity']} {resource_types()[res['type_code']]['unit']};"
                           f" {quantity} asked")
        if consumed:
            conn.execute("UPDATE resource SET quantity = quantity - %s, updated_at = now() WHERE id = %s",
                         (quantity, resource_id))
        else:
            conn.execute("UPDATE resource SET status = 'assigned', updated_at = now() WHERE id = %s", (resource_id,))
        command_id = None
        if res["unit_id"]:
            command_id = conn.execute(
                "INSERT INTO unit_command (unit_id, kind, payload) VALUES (%s, 'dispatch', %s) RETURNING id",
                (res["unit_id"], Jsonb({"cmd": "dispatch", "incident": inc["incident_no"], "drill": inc["drill"],
                                        "message": f"{'【演练】' if inc['drill'] else ''}调度：前往 {inc['title']}",
                                        "lon": inc["lon"], "lat": inc["lat"], "note": note,
                                        "at": now.isoformat()}))).fetchone()["id"]
        order = conn.execute(
            "INSERT INTO dispatch_order (incident_id, task_id, resource_id, quantity, ordered_by, ordered_at, ack_due_at,"
            " note, command_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (incident_id, task_id, resource_id, quantity, name, now, now + dt.timedelta(minutes=ack_minutes), note,
             command_id)).fetchone()
        if command_id:
            conn.execute("UPDATE unit_command SET payload = payload || jsonb_build_object('order', %s::bigint)"
                         " WHERE id = %s", (order["id"], command_id))
        unit = resource_types()[res["type_code"]]["unit"]
        what = f"{res['name']}" + (f" {quantity}{unit}" if consumed or quantity > 1 else "")
        drill = "【演练】" if inc["drill"] else ""
        if res["dept_id"]:
            notify(conn, kind="incident.dispatch", dept_id=res["dept_id"], incident_id=incident_id,
                   message=f"{drill}调度指令：{what} 前往 {inc['incident_no']} {inc['title']}，请确认")
        timeline(conn, incident_id, actor, "dispatch", f"调派 {what}" + (f"：{note}" if note else "")
                 + (f"；已通知 {res['dept_name']}" if res["dept_id"] else ""),
                 {"order": order["id"], "resource": resource_id, "quantity": quantity, "task": task_id,
                  "notified_dept": res["dept_name"]}, at=now)
        audit(conn, actor=name, actor_id=actor_id, action="dispatch.order", entity="dispatch_order",
              entity_id=str(order["id"]), detail={"incident": incident_id, "resource": resource_id,
                                                  "quantity": quantity, "stock_drawn": consumed})
        incidents._bump(conn, incident_id)
    return {"id": order["id"], "command_id": command_id}


_NEXT = {"acknowledge": ("sent",), "arrive": ("sent", "acknowledged"), "release": ("sent", "acknowledged", "arrived"),
         "refuse": ("sent",)}
_STAMP = {"acknowledge": ("acknowledged", "acked_at"), "arrive": ("arrived", "arrived_at"),
          "release": ("released", "released_at"), "refuse": ("refused", "released_at")}
_SAID = {"acknowledge": "确认接收调度", "arrive": "到达现场", "release": "归队", "refuse": "拒绝调度"}


def update_order(conn: psycopg.Connection, order_id: int, action: str, actor: Any, *, note: str = "",
                 returned: int = 0, now: dt.datetime | None = None) -> dict:
    """Acknowledge (确认), arrive (到场), release (归队) or refuse (拒绝) an order. The resource's
    department, its unit's user, and the dispatching roles may; releasing or refusing makes the
    resource available again (a refused supply goes back to stock; a released one as much as
    `returned`)."""
    if action not in _NEXT:
        raise Invalid(f"action is one of {', '.join(_NEXT)}")
    now = now or utc_now()
    name, actor_id = who(actor)
    with conn.transaction():
        lock_incident_of(conn, "dispatch_order", order_id)          # the incident first, then order and resource
        order = conn.execute(
            "SELECT d.*, r.name, r.type_code, r.dept_id, r.unit_id, u.user_id AS unit_user_id FROM dispatch_order d"
            " JOIN resource r ON r.id = d.resource_id LEFT JOIN unit u ON u.id = r.unit_id"
            " WHERE d.id = %s FOR UPDATE OF d, r", (order_id,)).fetchone()
        role = getattr(actor, "role", None)
        if not (role in DISPATCH_ROLES or (order["dept_id"] and getattr(actor, "dept_id", None) == order["dept_id"])
                or (order["unit_user_id"] and order["unit_user_id"] == actor_id)):
            raise Forbidden("only the resource's department or unit, or a dispatcher, may answer this order")
        if order["status"] not in _NEXT[action]:
            raise Conflict(f"order {order_id} is {STATUS_NAMES[order['status']]}; it cannot be {action}d")
        if action == "refuse" and len(note.strip()) < 2:
            raise Invalid("say why the order is refused")
        status, stamp = _STAMP[action]
        conn.execute(f"UPDATE dispatch_order SET status = %s, {stamp} = %s, note = coalesce(%s, note) WHERE id = %s",
                     (status, now, note or None, order_id))
        if action in ("release", "refuse"):
            if _consumed(order["type_code"]):
                back = order["quantity"] if action == "refuse" else min(max(int(returned), 0), order["quantity"])
                conn.execute("UPDATE resource SET quantity = quantity + %s, updated_at = now() WHERE id = %s",
                             (back, order["resource_id"]))
            else:
                conn.execute("UPDATE resource SET status = 'available', updated_at = now() WHERE id = %s"
                             " AND status = 'assigned'", (order["resource_id"],))
        if action == "refuse":
            notify(conn, kind="incident.dispatch", role="commander", incident_id=order["incident_id"],
                   message=f"调度被拒绝：{order['name']}（{note.strip()}），请另行调派")
        timeline(conn, order["incident_id"], actor, f"dispatch.{action}",
                 f"{order['name']} {_SAID[action]}" + (f"：{note}" if note else ""),
                 {"order": order_id, "returned": returned}, at=now)
        audit(conn, actor=name, actor_id=actor_id, action=f"dispatch.{action}", entity="dispatch_order",
              entity_id=str(order_id), detail={"note": note, "returned": returned})
        incidents._bump(conn, order["incident_id"])
    return {"id": order_id, "status": status}


def orders(conn: psycopg.Connection, incident_id: int) -> list[dict]:
    rows = conn.execute(
        "SELECT d.id, d.task_id, d.resource_id, r.name, r.type_code, ST_X(r.location) AS lon, ST_Y(r.location) AS lat,"
        " r.contact, d.quantity, d.status, d.ordered_by, d.ordered_at, d.ack_due_at, d.acked_at, d.arrived_at,"
        " d.released_at, d.escalated_at, d.note, d.command_id, c.sent_at AS command_sent_at"
        " FROM dispatch_order d JOIN resource r ON r.id = d.resource_id"
        " LEFT JOIN unit_command c ON c.id = d.command_id WHERE d.incident_id = %s ORDER BY d.id",
        (incident_id,)).fetchall()
    kinds = resource_types()
    for r in rows:
        r["status_name"] = STATUS_NAMES[r["status"]]
        r["type_name"] = kinds[r["type_code"]]["name"]
        r["unit"] = kinds[r["type_code"]]["unit"]
    return rows


def release_all(conn: psycopg.Connection, incident_id: int, actor: Any, now: dt.datetime | None = None) -> int:
    """At close: every resource still out goes back (supplies stay consumed)."""
    out = conn.execute("SELECT id FROM dispatch_order WHERE incident_id = %s AND status IN ('sent', 'acknowledged',"
                       " 'arrived') ORDER BY id", (incident_id,)).fetchall()
    for o in out:
        update_order(conn, o["id"], "release", actor, note="事件关闭，自动归队", now=now)
    return len(out)


def fire_due(conn: psycopg.Connection, now: dt.datetime | None = None, batch: int = 500) -> int:
    """Escalate orders nobody acknowledged in time, to the commanders, once each; incident by
    incident, the incident locked before its orders (each_incident_locked)."""
    now = now or utc_now()
    return each_incident_locked(
        conn, "SELECT incident_id FROM dispatch_order WHERE status = 'sent' AND escalated_at IS NULL"
              " AND ack_due_at <= %s GROUP BY incident_id ORDER BY min(ack_due_at) LIMIT %s", (now, batch),
        lambda inc: _escalate_orders(conn, inc, now, batch))


def _escalate_orders(conn: psycopg.Connection, inc: dict, now: dt.datetime, batch: int) -> int:
    """Under the incident's lock: its unacknowledged orders, checked again and escalated."""
    due = conn.execute(
        "SELECT d.id, r.name FROM dispatch_order d JOIN resource r ON r.id = d.resource_id WHERE d.incident_id = %s"
        " AND d.status = 'sent' AND d.escalated_at IS NULL AND d.ack_due_at <= %s ORDER BY d.ack_due_at LIMIT %s"
        " FOR UPDATE OF d", (inc["id"], now, batch)).fetchall()
    if not due:
        return 0
    conn.execute("UPDATE dispatch_order SET escalated_at = %s WHERE id = ANY(%s)", (now, [d["id"] for d in due]))
    for d in due:
        message = f"{'【演练】' if inc['drill'] else ''}{inc['incident_no']} 调度未确认：{d['name']}，请督促或改派"
        notify(conn, kind="incident.escalation", role="commander", incident_id=inc["id"], message=message)
        timeline(conn, inc["id"], "system", "dispatch.escalated", message, {"order": d["id"]}, at=now)
    audit(conn, actor="system", action="dispatch.escalate", entity="dispatch_order",
          detail={"incident": inc["id"], "orders": [d["id"] for d in due]})
    live(conn, "incident", inc["id"])
    return len(due)
