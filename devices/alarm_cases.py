"""When the case a device alarm opened is finished (结案, or dismissed/voided), the alarm
follows — if the device agrees.

- The alarm already cleared by the device (cleared_unack): closing the case acknowledges it.
- The alarm still active, and the device's latest reading no longer meets the rule's raising
  condition (e.g. water at 12 cm: below the 15 cm alarm level, above the 10 cm clearing level):
  the alarm is cleared by the case and acknowledged by whoever finished it, the part's status
  restored, and the rule starts afresh.
- The device still reports the fault, or has said nothing that bears on it: the alarm stays
  active, a comment says why, and the operators are told — a closed case does not silence a
  manhole the sensor still sees open.

Registered on the case desk (`CaseDesk.on_finished`) by the app, so it runs inside the
transaction that finishes the case."""
from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from devices import device_alarms
from devices.rules import holds_now
from devices.telemetry_store import DEVICE_JUDGE_LOCK, DeviceRegistry
from gis.db import audit
from workflows.notify import notify

_FINISHED = {"closed": "已结案", "not_filed": "核实不属实（不予立案）", "void": "已作废"}


def case_finished(conn: psycopg.Connection, case: dict, actor: Any, final_state: str) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (DEVICE_JUDGE_LOCK,))     # no reading judged meanwhile
    alarm = conn.execute(
        "SELECT a.id, a.device_id, a.rule_id, a.rule_name, a.severity, a.status, s.values FROM device_alarm a"
        " LEFT JOIN device_state s ON s.device_id = a.device_id WHERE a.case_id = %s FOR UPDATE OF a",
        (case["id"],)).fetchone()
    if alarm is None:
        return
    said = f"案卷 {case['case_no']} {_FINISHED[final_state]}"
    if alarm["status"] == "cleared_unack":
        conn.execute("UPDATE device_alarm SET status = 'cleared', acked_at = now(), acked_by = %s WHERE id = %s",
                     (actor.username, alarm["id"]))
        _record(conn, alarm, actor, f"{said}，告警已由设备恢复，随案卷确认", "device_alarm.ack")
        device_alarms.announce(conn, alarm["id"], alarm["device_id"], alarm["severity"], "acknowledged")
        return
    if alarm["status"] not in ("active_unack", "active_ack"):
        return
    device = DeviceRegistry().get(conn, alarm["device_id"])
    rule = next((r for r in device.rules if r.id == alarm["rule_id"]), None) if device else None
    verdict = holds_now(rule, alarm["values"] or {}) if rule else None
    if verdict is False:
        device_alarms.clear_alarm(conn, device_id=alarm["device_id"], rule=rule, at=dt.datetime.now(dt.timezone.utc),
                                  by=f"case:{case['case_no']}")
        conn.execute("UPDATE device_alarm SET status = 'cleared', acked_at = coalesce(acked_at, now()),"
                     " acked_by = coalesce(acked_by, %s) WHERE id = %s", (actor.username, alarm["id"]))
        conn.execute("UPDATE device_state SET rules = rules #- ARRAY['rules', %s], version = version + 1"
                     " WHERE device_id = %s",
                     (rule.id, alarm["device_id"]))                 # raised afresh if the fault comes back
        _record(conn, alarm, actor, f"{said}，设备最新读数已不满足告警条件，告警解除", "device_alarm.case_cleared")
        return
    why = "设备仍报告该故障" if verdict else "设备尚无可判断的新读数"
    _record(conn, alarm, actor, f"{said}，但{why}，告警保持，请现场复核", "device_alarm.case_kept")
    notify(conn, kind="device_alarm.still_active", role="operator",
           message=f"{said}，但设备 {alarm['device_id']} 的告警“{alarm['rule_name']}”仍在（{why}）")


def _record(conn, alarm: dict, actor: Any, text: str, action: str) -> None:
    device_alarms.add_comment(conn, alarm["id"], author=actor.username, body=text)
    audit(conn, actor=actor.username, actor_id=actor.id, action=action, entity="device_alarm",
          entity_id=str(alarm["id"]), detail={"note": text})
