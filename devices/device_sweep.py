"""What time alone decides for IoT devices, run every second by the ingest workers (one at a
time): heartbeat rules (a device silent for longer than its rule's silent_s is alarmed; its
next reading clears the alarm, in telemetry_store) and the escalation of alarms nobody has
acknowledged (shift leads and the owning department are told, once), and commands no device
answered by their deadline (timed out)."""
from __future__ import annotations

import datetime as dt
import time

import psycopg

from devices import device_alarms, device_commands
from devices.telemetry_store import DEVICE_JUDGE_LOCK, DeviceRegistry
from gis.db import audit
from workflows.notify import notify

SWEEP_LOCK = 0x43474453            # one device sweeper at a time


class DeviceSweeper:
    # Heartbeats and escalations are counted in minutes: every few seconds is often enough,
    # and spares the database a scan of every device each second.
    EVERY_S = 5.0

    def __init__(self, escalate_after: dt.timedelta):
        self.escalate_after = escalate_after
        self._next = 0.0

    def sweep(self, conn: psycopg.Connection, registry: DeviceRegistry, *, now: float | None = None
              ) -> tuple[int, int, int] | None:
        """(alarms raised for silence, alarms escalated, commands timed out); None when not due
        or another worker sweeps."""
        now = time.monotonic() if now is None else now
        if now < self._next:
            return None
        self._next = now + self.EVERY_S
        with conn.transaction():
            if not conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS ok", (SWEEP_LOCK,)).fetchone()["ok"]:
                return None
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (DEVICE_JUDGE_LOCK,))
            return self._silent(conn, registry), self._escalate(conn), device_commands.time_out(conn)

    def _silent(self, conn: psycopg.Connection, registry: DeviceRegistry) -> int:
        raised = 0
        for (type_code, rule_id), silent_s in list(registry.heartbeats.items()):
            rows = conn.execute(
                "SELECT d.id, coalesce(s.ts, d.created_at) AS last, now() AS now FROM device d"
                " LEFT JOIN device_state s ON s.device_id = d.id"
                " WHERE d.active AND d.type_code = %(type)s"
                " AND coalesce(s.ts, d.created_at) < now() - make_interval(secs => %(silent)s)"
                " AND NOT EXISTS (SELECT 1 FROM device_alarm a WHERE a.device_id = d.id AND a.rule_id = %(rule)s"
                " AND a.status IN ('active_unack', 'active_ack'))",
                {"type": type_code, "silent": silent_s, "rule": rule_id}).fetchall()
            for r in rows:
                device = registry.get(conn, r["id"])
                own = next((x for x in device.rules if x.id == rule_id), None) if device else None
                if own is None or own.silent_s is None or (r["now"] - r["last"]).total_seconds() < own.silent_s:
                    continue              # switched off or lengthened for this device
                minutes = round((r["now"] - r["last"]).total_seconds() / 60)
                if device_alarms.raise_alarm(conn, device_id=r["id"], rule=own, at=r["now"],
                                             values={"silent_minutes": minutes}, part_id=device.part_id,
                                             lon=device.lon, lat=device.lat):
                    raised += 1
        return raised

    def _escalate(self, conn: psycopg.Connection) -> int:
        rows = conn.execute(
            "UPDATE device_alarm a SET escalated_at = now() FROM device d WHERE d.id = a.device_id"
            " AND a.status = 'active_unack' AND a.escalated_at IS NULL AND a.raised_at <= now() - %s"
            " RETURNING a.id, a.device_id, a.rule_name, a.severity, a.raised_at, d.dept_id",
            (self.escalate_after,)).fetchall()
        for r in rows:
            minutes = round(self.escalate_after.total_seconds() / 60)
            message = f"设备 {r['device_id']} {r['rule_name']} 已 {minutes} 分钟无人确认"
            notify(conn, kind="device_alarm.escalated", role="shift_lead", message=message)
            if r["dept_id"] is not None:
                notify(conn, kind="device_alarm.escalated", role="department", dept_id=r["dept_id"], message=message)
            audit(conn, actor="system", action="device_alarm.escalate", entity="device_alarm", entity_id=str(r["id"]),
                  detail={"after_minutes": minutes})
        return len(rows)
