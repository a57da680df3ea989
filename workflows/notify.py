"""Notifications (to a user, a role or a department) and the live bus, inside the caller's
transaction: nothing is announced for a change that rolls back."""
from __future__ import annotations

import json

import psycopg

LIVE_CHANNEL = "citygrid_live"


def live(conn: psycopg.Connection, kind: str, id: object) -> None:
    """A small JSON on the live bus (delivered on commit); listeners fetch details themselves."""
    conn.execute("SELECT pg_notify(%s, %s)", (LIVE_CHANNEL, json.dumps({"kind": kind, "id": id})))


def notify(conn: psycopg.Connection, *, kind: str, message: str, case_id: int | None = None,
           user_id: int | None = None, role: str | None = None, dept_id: int | None = None,
           incident_id: int | None = None) -> None:
    """Store a notification and announce it on the live bus, in one statement that needs no
    answer (so it can ride in a pipeline with the caller's other writes)."""
    conn.execute(
        "WITH n AS (INSERT INTO notification (kind, message, case_id, user_id, role, dept_id, incident_id)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id)"
        " SELECT pg_notify(%s, json_build_object('kind', 'notification', 'id', n.id)::text) FROM n",
        (kind, message, case_id, user_id, role, dept_id, incident_id, LIVE_CHANNEL))
