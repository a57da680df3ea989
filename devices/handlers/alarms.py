"""Raising, escalating and clearing unit alarms (巡查告警): each once, each with an audit row,
a live-bus message and the notifications it calls for, all in the caller's transaction."""
from __future__ import annotations

import datetime as dt
import json

import psycopg

from gis.db import audit
from workflows.notify import LIVE_CHANNEL, notify

ACTOR = "system:patrol"
KIND_NAMES = {"out_of_area": "越界", "stationary": "长时间停留", "offline": "离线", "sos": "SOS 求救"}
# Who in the command center hears of each alarm as it is raised.
CENTRE_ROLES = {"out_of_area": ("shift_lead",), "stationary": ("shift_lead",), "offline": ("shift_lead",),
                "sos": ("commander", "shift_lead", "operator", "dispatcher")}


def live_alarm(conn: psycopg.Connection, alarm_id: int, unit_id: int, kind: str, state: str) -> None:
    conn.execute("SELECT pg_notify(%s, %s)", (LIVE_CHANNEL, json.dumps(
        {"kind": "unit_alarm", "id": alarm_id, "unit_id": unit_id, "alarm": kind, "state": state})))


def raise_alarm(conn: psycopg.Connection, *, unit_id: int, kind: str, since: dt.datetime, message: str,
                shift_id: int | None = None, lon: float | None = None, lat: float | None = None,
                detail: dict | None = None) -> int | None:
    """The new alarm's id, or None when one of this kind is already open for the unit."""
    row = conn.execute(
        "INSERT INTO unit_alarm (unit_id, shift_id, kind, since, raised_at, lon, lat, message, detail)"
        " VALUES (%s, %s, %s, %s, now(), %s, %s, %s, %s)"
        " ON CONFLICT (unit_id, kind) WHERE cleared_at IS NULL DO NOTHING RETURNING id",
        (unit_id, shift_id, kind, since, lon, lat, message, json.dumps(detail or {}, ensure_ascii=False))).fetchone()
    if row is None:
        return None
    alarm_id = row["id"]
    audit(conn, actor=ACTOR, action="unit_alarm.raise", entity="unit_alarm", entity_id=str(alarm_id),
          detail={"unit_id": unit_id, "kind": kind, "since": since.isoformat(), "shift_id": shift_id})
    for role in CENTRE_ROLES[kind]:
        notify(conn, kind=f"unit_alarm.{kind}", role=role, message=message)
    live_alarm(conn, alarm_id, unit_id, kind, "raised")
    return alarm_id


def clear_alarms(conn: psycopg.Connection, unit_ids: list[int], kind: str, reason: str) -> list[int]:
    """Clear the open alarms of a kind for these units (the condition ended): one statement
    for the alarms, their audit rows and their live-bus messages, however many there are."""
    if not unit_ids:
        return []
    rows = conn.execute(
        "WITH cleared AS (UPDATE unit_alarm SET cleared_at = now(), cleared_by = %(reason)s"
        "   WHERE unit_id = ANY(%(units)s) AND kind = %(kind)s AND cleared_at IS NULL RETURNING id, unit_id),"
        " audited AS (INSERT INTO audit_log (actor, action, entity, entity_id, detail)"
        "   SELECT %(actor)s, 'unit_alarm.clear', 'unit_alarm', id::text,"
        "   jsonb_build_object('unit_id', unit_id, 'kind', %(kind)s, 'reason', %(reason)s) FROM cleared)"
        " SELECT id, pg_notify(%(channel)s, json_build_object('kind', 'unit_alarm', 'id', id, 'unit_id', unit_id,"
        "   'alarm', %(kind)s, 'state', 'cleared')::text) FROM cleared",
        {"reason": reason, "units": unit_ids, "kind": kind, "actor": ACTOR, "channel": LIVE_CHANNEL}).fetchall()
    return [r["id"] for r in rows]


def escalate(conn: psycopg.Connection, alarm: dict) -> None:
    """Tell the unit's leader (or, with none set, the unit's department and the shift lead)."""
    conn.execute("UPDATE unit_alarm SET escalated_at = now() WHERE id = %s", (alarm["id"],))
    minutes = int((alarm["now"] - alarm["since"]).total_seconds() // 60)
    message = f"【升级】{alarm['unit_name']}{KIND_NAMES[alarm['kind']]}已持续 {minutes} 分钟，请督促处理"
    if alarm["leader_user_id"] is not None:
        notify(conn, kind=f"unit_alarm.{alarm['kind']}.escalated", user_id=alarm["leader_user_id"], message=message)
    else:
        notify(conn, kind=f"unit_alarm.{alarm['kind']}.escalated", role="shift_lead", dept_id=alarm["dept_id"],
               message=message)
    audit(conn, actor=ACTOR, action="unit_alarm.escalate", entity="unit_alarm", entity_id=str(alarm["id"]),
          detail={"unit_id": alarm["unit_id"], "kind": alarm["kind"], "leader_user_id": alarm["leader_user_id"]})
    live_alarm(conn, alarm["id"], alarm["unit_id"], alarm["kind"], "escalated")


def unit_name(conn: psycopg.Connection, unit_id: int) -> str:
    row = conn.execute("SELECT name FROM unit WHERE id = %s", (unit_id,)).fetchone()
    return row["name"] if row else f"单元 {unit_id}"


def open_of_kind(conn: psycopg.Connection, kind: str) -> set[int]:
    """Every unit with an open alarm of this kind (open alarms are few at any moment)."""
    return {r["unit_id"] for r in conn.execute(
        "SELECT unit_id FROM unit_alarm WHERE cleared_at IS NULL AND kind = %s", (kind,))}
