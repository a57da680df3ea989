"""When the case a dwell event opened is finished, the event follows: a case dismissed at
verification (核实不属实) or voided dismisses the object — the camera's worker stops alarming
on it, also after a restart (camera_dismissal) — and a closed case confirms the event.

Registered on the case desk (`CaseDesk.on_finished`) by the app, so it runs inside the
transaction that finishes the case."""
from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from gis.db import audit


def case_finished(conn: psycopg.Connection, case: dict, actor: Any, final_state: str) -> None:
    event = conn.execute("SELECT id, camera_id, zone_id, boxes FROM camera_event WHERE case_id = %s AND kind = 'dwell'"
                         " AND status = 'open' FOR UPDATE", (case["id"],)).fetchone()
    if event is None:
        return
    if final_state == "closed":
        conn.execute("UPDATE camera_event SET status = 'confirmed', updated_at = now() WHERE id = %s", (event["id"],))
        action = "camera_event.confirm"
    else:
        dismiss(conn, event, by=actor.username)
        action = "camera_event.dismiss"
    audit(conn, actor=actor.username, actor_id=actor.id, action=action, entity="camera_event",
          entity_id=str(event["id"]), detail={"case": case["case_no"], "case_state": final_state})


def dismiss(conn: psycopg.Connection, event: dict, *, by: str) -> None:
    """Mark the event dismissed and remember the object's place for the camera's worker."""
    conn.execute("UPDATE camera_event SET status = 'dismissed', updated_at = now() WHERE id = %s", (event["id"],))
    if event["boxes"]:
        conn.execute("INSERT INTO camera_dismissal (camera_id, zone_id, box, event_id, dismissed_by)"
                     " VALUES (%s, %s, %s, %s, %s)",
                     (event["camera_id"], event["zone_id"], Jsonb(event["boxes"][0]), event["id"], by))
