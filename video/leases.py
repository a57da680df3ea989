"""Camera leases (摄像机分配): cameras spread over the `citygrid video` workers through the
database, with no coordinator.

A worker holds a camera while its lease is fresh and renews it every third of the lease
period; a worker that dies stops renewing, and its cameras are claimed by another within one
lease period (`FOR UPDATE SKIP LOCKED`: two workers never claim the same camera). Workers
also keep to a fair share — the active cameras divided by the workers alive (seen within a
lease period), rounded up — so a worker that joins is handed cameras by the others letting
their excess go; only the excess is released (the highest ids), so cameras do not bounce."""
from __future__ import annotations

import datetime as dt
import math

import psycopg


def renew(conn: psycopg.Connection, owner: str, held: list[int], lease: dt.timedelta) -> set[int]:
    """Extend this worker's leases; the cameras it still holds (one taken away — deactivated,
    or its lease lapsed and claimed by another — is missing)."""
    if not held:
        return set()
    rows = conn.execute("UPDATE camera SET lease_until = now() + %s WHERE id = ANY(%s) AND lease_owner = %s"
                        " AND active RETURNING id", (lease, held, owner)).fetchall()
    return {r["id"] for r in rows}


def fair_share(conn: psycopg.Connection, owner: str, lease: dt.timedelta) -> int:
    """Say this worker is alive; active cameras ÷ live workers (seen within a lease period),
    rounded up."""
    conn.execute("INSERT INTO video_worker (name, seen_at) VALUES (%s, now())"
                 " ON CONFLICT (name) DO UPDATE SET seen_at = now()", (owner,))
    row = conn.execute("SELECT (SELECT count(*) FROM camera WHERE active) AS cameras,"
                       " (SELECT count(*) FROM video_worker WHERE seen_at > now() - %s) AS workers",
                       (lease,)).fetchone()
    return math.ceil(row["cameras"] / max(1, row["workers"]))


def claim(conn: psycopg.Connection, owner: str, room: int, lease: dt.timedelta) -> list[dict]:
    """Take up to `room` active cameras nobody holds (or whose holder stopped renewing)."""
    if room <= 0:
        return []
    return conn.execute(
        "UPDATE camera SET lease_owner = %(owner)s, lease_until = now() + %(lease)s"
        " WHERE id IN (SELECT id FROM camera WHERE active AND (lease_until IS NULL OR lease_until < now())"
        "              ORDER BY id LIMIT %(room)s FOR UPDATE SKIP LOCKED)"
        " RETURNING id", {"owner": owner, "lease": lease, "room": room}).fetchall()


def release(conn: psycopg.Connection, owner: str, cameras: list[int], *, leaving: bool = False) -> None:
    """Let cameras go at once (the excess over the fair share, or all of them when stopping,
    when the worker also stops counting as alive)."""
    if leaving:
        conn.execute("DELETE FROM video_worker WHERE name = %s", (owner,))
    if cameras:
        conn.execute("UPDATE camera SET lease_owner = NULL, lease_until = NULL WHERE id = ANY(%s)"
                     " AND lease_owner = %s", (cameras, owner))
