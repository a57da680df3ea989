"""The duty roster (值守): posts (值守岗位), who holds each when, and hand-over notes.
Plans name posts, not people: a task or a notification goes to whoever is on duty at the
post when it is made."""
from __future__ import annotations

import datetime as dt

import psycopg


def holders(conn: psycopg.Connection, post_names: list[str], at: dt.datetime | None = None) -> dict[str, dict]:
    """{post name: {post_id, user_id, display_name}} for the named posts at `at` (now); a post
    nobody holds then maps to user_id None. Where shifts overlap, the one that started last wins."""
    rows = conn.execute(
        "SELECT p.name, p.id AS post_id, s.user_id, u.display_name FROM duty_post p"
        " LEFT JOIN LATERAL (SELECT user_id FROM duty_shift s WHERE s.post_id = p.id"
        "   AND s.starts_at <= coalesce(%(at)s, now()) AND s.ends_at > coalesce(%(at)s, now())"
        "   ORDER BY s.starts_at DESC LIMIT 1) s ON true"
        " LEFT JOIN app_user u ON u.id = s.user_id WHERE p.name = ANY(%(names)s)",
        {"at": at, "names": list(post_names)}).fetchall()
    return {r["name"]: {"post_id": r["post_id"], "user_id": r["user_id"], "display_name": r["display_name"]}
            for r in rows}
