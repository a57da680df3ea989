"""Commands to IoT devices (设备指令): checked against the type's catalog, logged, published by
the ingest workers from the outbox (citygrid/devices/{id}/cmd), answered by the device on
…/cmd/ack, timed out when no answer comes by the deadline. Every change has its audit row
and a live-bus message."""
from __future__ import annotations

import datetime as dt
import json
import math

import psycopg

from devices.fix import CommandAnswer
from gis.db import audit
from gis.errors import Invalid, NotFound
from workflows.notify import LIVE_CHANNEL

# The broker may hold a queued command a little while before a worker publishes it.
PUBLISH_ALLOWANCE = dt.timedelta(seconds=10)


def _live(conn: psycopg.Connection, command_id: int, device_id: str, status: str) -> None:
    conn.execute("SELECT pg_notify(%s, %s)", (LIVE_CHANNEL, json.dumps(
        {"kind": "device_command", "id": command_id, "device_id": device_id, "status": status})))


def check_params(spec: dict, params: dict, where: str) -> None:
    expected = spec.get("params", {})
    unknown = set(params) - set(expected)
    missing = set(expected) - set(params)
    if unknown or missing:
        raise Invalid(f"{where} takes {', '.join(expected) or 'no parameters'}"
                      + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else "")
                      + (f"; missing: {', '.join(sorted(missing))}" if missing else ""))
    for name, value in params.items():
        field = expected[name]
        if field["type"] == "boolean":
            if not isinstance(value, bool):
                raise Invalid(f"{where}: {name} is true or false")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not field["min"] <= value <= field["max"]:
            raise Invalid(f"{where}: {name} is a number from {field['min']:g} to {field['max']:g}"
                          f" {field.get('unit', '')}".rstrip())


def queue_command(conn: psycopg.Connection, device_id: str, name: str, params: dict, *, by: str,
                  by_id: int | None) -> dict:
    """Log a command for the outbox (one transaction with its audit row)."""
    with conn.transaction():
        row = conn.execute("SELECT d.id, d.active, t.code, t.commands FROM device d JOIN device_type t"
                           " ON t.code = d.type_code WHERE d.id = %s", (device_id,)).fetchone()
        if row is None:
            raise NotFound(f"device {device_id} does not exist")
        spec = row["commands"].get(name)
        if spec is None:
            raise Invalid(f"a {row['code']} takes the commands {', '.join(row['commands']) or '(none)'}, not {name!r}")
        if not row["active"]:
            raise Invalid(f"device {device_id} is retired; it takes no commands")
        check_params(spec, params, f"command {name}")
        made = conn.execute(
            "INSERT INTO device_command (device_id, name, params, payload, created_by, deadline)"
            " VALUES (%s, %s, %s, '{}', %s, now() + %s) RETURNING id",
            (device_id, name, json.dumps(params), by, dt.timedelta(seconds=spec["timeout_s"]) + PUBLISH_ALLOWANCE)
        ).fetchone()
        command_id = made["id"]
        conn.execute("UPDATE device_command SET payload = %s WHERE id = %s",
                     (json.dumps({"id": command_id, "name": name, "params": params}), command_id))
        audit(conn, actor=by, actor_id=by_id, action="device_command.queue", entity="device_command",
              entity_id=str(command_id), detail={"device": device_id, "name": name, "params": params})
        _live(conn, command_id, device_id, "queued")
    return command_row(conn, command_id)


def command_row(conn: psycopg.Connection, command_id: int) -> dict:
    return conn.execute("SELECT id, device_id, name, params, status, created_by, created_at, deadline, sent_at,"
                        " answered_at, result FROM device_command WHERE id = %s", (command_id,)).fetchone()


def take_answers(conn: psycopg.Connection, answers: list[CommandAnswer]) -> list[tuple[CommandAnswer, str]]:
    """Record the devices' answers (in the caller's transaction); returns the ones that fit no
    open command of that device, with why (they go to the dead letters)."""
    refused = []
    for a in answers:
        row = conn.execute(
            "UPDATE device_command SET status = %s, answered_at = %s, result = %s"
            " WHERE id = %s AND device_id = %s AND status IN ('queued', 'sent') RETURNING id",
            ("acked" if a.ok else "failed", a.at, json.dumps(a.result), a.command_id, a.device_id)).fetchone()
        if row is None:
            refused.append((a, f"device {a.device_id} has no open command {a.command_id}"
                               " (another device's, already answered, or timed out)"))
            continue
        audit(conn, actor=f"device:{a.device_id}", action="device_command.answer", entity="device_command",
              entity_id=str(a.command_id), detail={"ok": a.ok})
        _live(conn, a.command_id, a.device_id, "acked" if a.ok else "failed")
    return refused


def time_out(conn: psycopg.Connection) -> int:
    """Commands past their deadline without an answer (the device sweeper calls this)."""
    rows = conn.execute("UPDATE device_command SET status = 'timed_out' WHERE status IN ('queued', 'sent')"
                        " AND deadline < now() RETURNING id, device_id").fetchall()
    for r in rows:
        audit(conn, actor="system", action="device_command.timeout", entity="device_command", entity_id=str(r["id"]),
              detail={"device": r["device_id"]})
        _live(conn, r["id"], r["device_id"], "timed_out")
    return len(rows)
