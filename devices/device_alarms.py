"""Device alarms (设备告警): raised once per (device, rule) while active, updated by repeats,
cleared when the device says the condition is over; each change with its audit row and a
live-bus message, in the caller's transaction.

While an alarm whose rule names a part_status is active, the part the device sits on shows
that status (a lifted cover: 丢失); when it clears, the part gets back the status it had,
unless somebody changed it meanwhile."""
from __future__ import annotations

import datetime as dt
import json
import logging

import psycopg

from devices.rules import Rule
from gis.db import audit
from gis.errors import CityGridError, Conflict, Invalid, NotFound
from workflows import cases
from workflows.cases import CaseDesk
from workflows.notify import LIVE_CHANNEL, notify

log = logging.getLogger("citygrid.device_alarms")

# Operators are told at once of these (the rest are on the live bus and the alarm list).
NOTIFY_SEVERITIES = ("critical", "major")


def announce(conn: psycopg.Connection, alarm_id: int, device_id: str, severity: str, state: str) -> None:
    """The alarm on the live bus: raised, cleared or acknowledged."""
    conn.execute("SELECT pg_notify(%s, %s)", (LIVE_CHANNEL, json.dumps(
        {"kind": "device_alarm", "id": alarm_id, "device_id": device_id, "severity": severity, "state": state})))


def raise_alarm(conn: psycopg.Connection, *, device_id: str, rule: Rule, at: dt.datetime, values: dict,
                part_id: str | None, lon: float, lat: float, desk: CaseDesk | None = None) -> int | None:
    """The new alarm's id; None when one was already active (then it counts as a repeat).
    With a `desk`, a rule that says `case:` opens its case (source 'device', to be verified)."""
    row = conn.execute(
        "INSERT INTO device_alarm (device_id, rule_id, rule_name, severity, status, raised_at, last_at, value,"
        " part_id, lon, lat) VALUES (%s, %s, %s, %s, 'active_unack', %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (device_id, rule_id) WHERE status IN ('active_unack', 'active_ack')"
        " DO UPDATE SET last_at = greatest(device_alarm.last_at, excluded.last_at),"
        " repeats = device_alarm.repeats + 1 RETURNING id, xmax = 0 AS new",
        (device_id, rule.id, rule.name, rule.severity, at, at, json.dumps(values), part_id, lon, lat)).fetchone()
    if not row["new"]:
        return None
    alarm_id = row["id"]
    if part_id and rule.part_status:
        _set_part_status(conn, alarm_id, part_id, rule.part_status, device_id)
    case_id = case_problem = None
    if desk and rule.case:
        try:
            with conn.transaction():              # a case that cannot be filed must not cost the alarm
                case_id = _open_case(conn, desk, alarm_id, device_id, rule, values, part_id, lon, lat)
        except CityGridError as e:                # e.g. a device placed outside every grid
            case_problem = str(e)
            log.warning("alarm %s of %s opened no case: %s", alarm_id, device_id, e)
    audit(conn, actor=f"device:{device_id}", action="device_alarm.raise", entity="device_alarm",
          entity_id=str(alarm_id), detail={"rule": rule.id, "severity": rule.severity, "values": values,
                                           "case_id": case_id, "case_problem": case_problem})
    announce(conn, alarm_id, device_id, rule.severity, "raised")
    if rule.severity in NOTIFY_SEVERITIES:
        notify(conn, kind=f"device_alarm.{rule.severity}", role="operator",
               message=f"设备 {device_id} {rule.name}（{_severity_zh(rule.severity)}）")
    return alarm_id


def repeat_alarm(conn: psycopg.Connection, device_id: str, rule_id: str, last_at: dt.datetime, times: int) -> None:
    conn.execute("UPDATE device_alarm SET last_at = greatest(last_at, %s), repeats = repeats + %s"
                 " WHERE device_id = %s AND rule_id = %s AND status IN ('active_unack', 'active_ack')",
                 (last_at, times, device_id, rule_id))


def clear_alarm(conn: psycopg.Connection, *, device_id: str, rule: Rule, at: dt.datetime, by: str = "device") -> int | None:
    row = conn.execute(
        "UPDATE device_alarm SET status = CASE status WHEN 'active_ack' THEN 'cleared' ELSE 'cleared_unack' END,"
        " cleared_at = %s, cleared_by = %s WHERE device_id = %s AND rule_id = %s"
        " AND status IN ('active_unack', 'active_ack') RETURNING id, severity, part_id, part_status_was",
        (at, by, device_id, rule.id)).fetchone()
    if row is None:
        return None
    if row["part_id"] and row["part_status_was"] and rule.part_status:
        restored = conn.execute("UPDATE part SET status = %s, updated_at = now() WHERE id = %s AND status = %s"
                                " RETURNING id", (row["part_status_was"], row["part_id"], rule.part_status)).fetchone()
        if restored:
            audit(conn, actor=f"device:{device_id}", action="part.status", entity="part", entity_id=row["part_id"],
                  detail={"from": rule.part_status, "to": row["part_status_was"], "alarm": row["id"]})
    audit(conn, actor=f"device:{device_id}" if by == "device" else by, action="device_alarm.clear",
          entity="device_alarm", entity_id=str(row["id"]), detail={"rule": rule.id, "by": by})
    announce(conn, row["id"], device_id, row["severity"], "cleared")
    return row["id"]


def _open_case(conn: psycopg.Connection, desk: CaseDesk, alarm_id: int, device_id: str, rule: Rule, values: dict,
               part_id: str | None, lon: float, lat: float) -> int | None:
    """One case per alarm (案卷 from a device, 待核实), linked both ways: the alarm holds the case
    id and the case's client_ref names the alarm, so a retried batch finds the case it made."""
    if "part" in rule.case:
        if part_id is None:
            return None                               # a part case needs the part the device sits on
        kind, code = "part", conn.execute("SELECT class_code FROM part WHERE id = %s", (part_id,)).fetchone()["class_code"]
    else:
        kind, code = "event", rule.case["event"]
    shown = "，".join(f"{k}={v}" for k, v in values.items())
    made = cases.report(conn, desk, cases.NewReport(
        source="device", kind=kind, class_code=code, lon=lon, lat=lat, part_id=part_id if kind == "part" else None,
        description=f"设备 {device_id} 告警：{rule.name}（{shown}）", reporter_name=f"device:{device_id}",
        client_ref=f"device-alarm:{alarm_id}"))
    conn.execute("UPDATE device_alarm SET case_id = %s WHERE id = %s", (made.case["id"], alarm_id))
    return made.case["id"]


def _set_part_status(conn: psycopg.Connection, alarm_id: int, part_id: str, status: str, device_id: str) -> None:
    before = conn.execute("SELECT status FROM part WHERE id = %s FOR UPDATE", (part_id,)).fetchone()
    if before is None or before["status"] == status:
        return
    conn.execute("UPDATE part SET status = %s, updated_at = now() WHERE id = %s", (status, part_id))
    conn.execute("UPDATE device_alarm SET part_status_was = %s WHERE id = %s", (before["status"], alarm_id))
    audit(conn, actor=f"device:{device_id}", action="part.status", entity="part", entity_id=part_id,
          detail={"from": before["status"], "to": status, "alarm": alarm_id})


def _severity_zh(severity: str) -> str:
    return {"critical": "紧急", "major": "重要", "minor": "次要", "warning": "提示"}[severity]


def acknowledge(conn: psycopg.Connection, alarm_id: int, *, by: str, by_id: int | None, note: str | None) -> dict:
    """An operator has seen the alarm (确认): active_unack → active_ack, cleared_unack → cleared.
    The caller has checked the alarm exists and is the user's to see; in one transaction."""
    with conn.transaction():
        row = conn.execute("SELECT id, device_id, severity, status, acked_by, acked_at FROM device_alarm"
                           " WHERE id = %s FOR UPDATE", (alarm_id,)).fetchone()
        if row is None:
            raise NotFound(f"alarm {alarm_id} does not exist")
        if row["status"] in ("active_ack", "cleared"):
            raise Conflict(f"alarm {alarm_id} was already acknowledged by {row['acked_by'] or 'nobody (cleared)'}"
                           + (f" at {row['acked_at']:%Y-%m-%d %H:%M:%S %z}" if row["acked_at"] else ""))
        status = "active_ack" if row["status"] == "active_unack" else "cleared"
        conn.execute("UPDATE device_alarm SET status = %s, acked_at = now(), acked_by = %s WHERE id = %s",
                     (status, by, alarm_id))
        if note:
            add_comment(conn, alarm_id, author=by, body=note)
        audit(conn, actor=by, actor_id=by_id, action="device_alarm.ack", entity="device_alarm",
              entity_id=str(alarm_id), detail={"from": row["status"], "to": status, "note": note})
        announce(conn, alarm_id, row["device_id"], row["severity"], "acknowledged")
    return alarm_detail(conn, alarm_id)


def add_comment(conn: psycopg.Connection, alarm_id: int, *, author: str, body: str) -> None:
    body = body.strip()
    if not 1 <= len(body) <= 2000:
        raise Invalid("a comment has 1-2,000 characters")
    conn.execute("INSERT INTO device_alarm_comment (alarm_id, author, body) VALUES (%s, %s, %s)", (alarm_id, author, body))


def comment(conn: psycopg.Connection, alarm_id: int, *, by: str, by_id: int | None, body: str) -> dict:
    with conn.transaction():
        add_comment(conn, alarm_id, author=by, body=body)
        audit(conn, actor=by, actor_id=by_id, action="device_alarm.comment", entity="device_alarm",
              entity_id=str(alarm_id), detail={"body": body.strip()[:200]})
    return alarm_detail(conn, alarm_id)


def alarm_detail(conn: psycopg.Connection, alarm_id: int) -> dict:
    row = conn.execute(
        "SELECT a.*, d.type_code AS device_type FROM device_alarm a JOIN device d ON d.id = a.device_id"
        " WHERE a.id = %s", (alarm_id,)).fetchone()
    row["comments"] = conn.execute("SELECT at, author, body FROM device_alarm_comment WHERE alarm_id = %s"
                                   " ORDER BY at, id", (alarm_id,)).fetchall()
    return row
