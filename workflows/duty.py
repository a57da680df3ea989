"""The duty roster (值守): posts (值守岗位), who holds each when, and hand-over notes.
Plans name posts, not people: a task or a notification goes to whoever is on duty at the
post when it is made.

A post has one holder at a time: shifts of the same post may not overlap (one person may hold
several posts at once, e.g. a leader on call for two bureaus). Writes to a post's roster take
the post's row lock, so two schedulers cannot slip overlapping shifts in side by side."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg

from gis.db import audit, department_id
from gis.errors import Conflict, Forbidden, Invalid, NotFound
from workflows.actors import utc_now, who as actor_name
from workflows.cases import LOCAL_TZ
from workflows.notify import live, notify
from workflows.plans import shipped_plans

MAX_SHIFT = dt.timedelta(hours=24)
MAX_ROSTER_SPAN = dt.timedelta(days=62)
# Who may write a hand-over on the holder's behalf, or read any post's hand-overs.
ON_BEHALF_ROLES = frozenset({"admin", "shift_lead"})
HANDOVER_READERS = ON_BEHALF_ROLES | {"commander", "leader"}


@dataclass(frozen=True)
class NewShift:
    post: str | int                   # the post's name or id
    user_id: int
    starts_at: dt.datetime
    ends_at: dt.datetime




def _local(t: dt.datetime) -> str:
    return t.astimezone(LOCAL_TZ).strftime("%m-%d %H:%M")


def require_aware(name: str, value: dt.datetime | None) -> None:
    """A time without a zone is ambiguous (server or city time?): refuse it."""
    if value is not None and value.tzinfo is None:
        raise Invalid(f"{name} needs a time zone, e.g. 2026-03-02T08:00:00+08:00")


# ---------------------------------------------------------------- posts (值守岗位)

# The shift holding post `p` at %(at)s, for a LATERAL join: where shifts overlap, the one that
# started last (a relief who came early takes over).
_HOLDING = ("SELECT * FROM duty_shift s WHERE s.post_id = p.id AND s.starts_at <= %(at)s AND s.ends_at > %(at)s"
            " ORDER BY s.starts_at DESC LIMIT 1")


def holders(conn: psycopg.Connection, post_names: list[str], at: dt.datetime | None = None) -> dict[str, dict]:
    """{post name: {post_id, user_id, display_name}} for the named posts at `at` (now); a post
    nobody holds then maps to user_id None."""
    rows = conn.execute(
        f"SELECT p.name, p.id AS post_id, s.user_id, u.display_name FROM duty_post p"
        f" LEFT JOIN LATERAL ({_HOLDING}) s ON true"
        f" LEFT JOIN app_user u ON u.id = s.user_id WHERE p.name = ANY(%(names)s)",
        {"at": at or utc_now(), "names": list(post_names)}).fetchall()
    return {r["name"]: {"post_id": r["post_id"], "user_id": r["user_id"], "display_name": r["display_name"]}
            for r in rows}


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not 1 <= len(name) <= 100:
        raise Invalid("a duty post's name is 1 to 100 characters, e.g. 县应急指挥长")
    return name


def add_post(conn: psycopg.Connection, name: str, dept: str | None = None, phone: str | None = None, *,
             actor: Any) -> dict:
    """Create a duty post, optionally belonging to a department (by name)."""
    name = _clean_name(name)
    if phone is not None and len(phone) > 50:
        raise Invalid("the post's phone number is at most 50 characters")
    who, who_id = actor_name(actor)
    with conn.transaction():
        dept_id = department_id(conn, dept)
        row = conn.execute("INSERT INTO duty_post (name, dept_id, phone) VALUES (%s, %s, %s)"
                           " ON CONFLICT (name) DO NOTHING RETURNING id", (name, dept_id, phone or None)).fetchone()
        if row is None:
            raise Conflict(f"duty post {name!r} already exists")
        audit(conn, actor=who, actor_id=who_id, action="duty.post.add", entity="duty_post",
              entity_id=str(row["id"]), detail={"name": name, "dept": dept, "phone": phone})
        live(conn, "duty", row["id"])
    return {"id": row["id"], "name": name, "dept_id": dept_id, "phone": phone or None}


def ensure_posts(conn: psycopg.Connection, names: list[str], *, actor: Any) -> list[str]:
    """Create the named posts that do not exist yet (e.g. every post the shipped plans name);
    the names created, in order."""
    wanted = sorted({_clean_name(n) for n in names})
    made = []
    with conn.transaction():
        for name in wanted:
            if conn.execute("SELECT 1 FROM duty_post WHERE name = %s", (name,)).fetchone() is None:
                add_post(conn, name, actor=actor)
                made.append(name)
    return made


def plan_posts() -> list[str]:
    """Every duty post the shipped plans name in their organisation."""
    return sorted({h["post"] for plan in shipped_plans() for h in plan.organisation.values() if "post" in h})


def list_posts(conn: psycopg.Connection) -> list[dict]:
    return conn.execute("SELECT p.id, p.name, p.dept_id, d.name AS dept, p.phone FROM duty_post p"
                        " LEFT JOIN department d ON d.id = p.dept_id ORDER BY p.name").fetchall()


def _post(conn: psycopg.Connection, post: str | int, *, lock: bool = False) -> dict:
    """A post by id (int) or name (str); locked for the caller's transaction when asked."""
    column = "id" if isinstance(post, int) else "name"
    row = conn.execute(f"SELECT id, name, dept_id FROM duty_post WHERE {column} = %s"
                       + (" FOR UPDATE" if lock else ""), (post,)).fetchone()
    if row is None:
        raise NotFound(f"duty post {post!r} does not exist; the posts are listed at /api/duty/posts")
    return row


# ---------------------------------------------------------------- the roster (排班)

def _check_times(starts_at: dt.datetime, ends_at: dt.datetime) -> None:
    require_aware("starts_at", starts_at)
    require_aware("ends_at", ends_at)
    if ends_at <= starts_at:
        raise Invalid(f"the shift ends ({ends_at.isoformat()}) before it starts ({starts_at.isoformat()})")
    if ends_at - starts_at > MAX_SHIFT:
        raise Invalid(f"a shift is at most 24 hours; split {starts_at.isoformat()} → {ends_at.isoformat()}"
                      " into several shifts")


def _check_user(conn: psycopg.Connection, user_id: int) -> dict:
    user = conn.execute("SELECT id, username, display_name, active FROM app_user WHERE id = %s",
                        (user_id,)).fetchone()
    if user is None:
        raise Invalid(f"user {user_id} does not exist")
    if not user["active"]:
        raise Invalid(f"user {user['username']} ({user['display_name']}) is disabled and cannot be on duty")
    return user


def _insert_shift(conn: psycopg.Connection, s: NewShift, who: str, who_id: int | None) -> dict:
    _check_times(s.starts_at, s.ends_at)
    post = _post(conn, s.post, lock=True)
    user = _check_user(conn, s.user_id)
    clash = conn.execute(
        "SELECT s.id, s.starts_at, s.ends_at, u.display_name FROM duty_shift s JOIN app_user u ON u.id = s.user_id"
        " WHERE s.post_id = %s AND s.starts_at < %s AND s.ends_at > %s ORDER BY s.starts_at LIMIT 1",
        (post["id"], s.ends_at, s.starts_at)).fetchone()
    if clash:
        raise Conflict(f"{post['name']} already has shift {clash['id']} ({clash['display_name']},"
                       f" {_local(clash['starts_at'])}–{_local(clash['ends_at'])}) in that time;"
                       " a post has one holder at a time")
    shift_id = conn.execute("INSERT INTO duty_shift (post_id, user_id, starts_at, ends_at) VALUES (%s, %s, %s, %s)"
                            " RETURNING id", (post["id"], user["id"], s.starts_at, s.ends_at)).fetchone()["id"]
    detail = {"post": post["name"], "user": user["username"], "starts_at": s.starts_at.isoformat(),
              "ends_at": s.ends_at.isoformat()}
    audit(conn, actor=who, actor_id=who_id, action="duty.shift.add", entity="duty_shift", entity_id=str(shift_id),
          detail=detail)
    live(conn, "duty", post["id"])
    return {"id": shift_id, "post_id": post["id"], "user_id": user["id"], "display_name": user["display_name"],
            **detail}


def add_shift(conn: psycopg.Connection, post: str | int, user_id: int, starts_at: dt.datetime,
              ends_at: dt.datetime, *, actor: Any) -> dict:
    """Put a user on duty at a post from starts_at to ends_at (at most 24 h, no overlap with
    another shift of the post)."""
    return add_shifts(conn, [NewShift(post, user_id, starts_at, ends_at)], actor=actor)[0]


def add_shifts(conn: psycopg.Connection, shifts: list[NewShift], *, actor: Any) -> list[dict]:
    """Several shifts, all or none: the first bad one (naming its position) refuses them all."""
    if not shifts:
        raise Invalid("no shifts given")
    who, who_id = actor_name(actor)
    made = []
    with conn.transaction():
        for i, s in enumerate(shifts):
            try:
                made.append(_insert_shift(conn, s, who, who_id))
            except (Invalid, Conflict, NotFound) as e:
                if len(shifts) == 1:
                    raise
                raise type(e)(f"shift #{i + 1} of {len(shifts)}: {e}; none of the shifts was saved") from None
    return made


def remove_shift(conn: psycopg.Connection, shift_id: int, *, actor: Any, at: dt.datetime | None = None) -> dict:
    """Take a shift off the roster. A shift already over stays: it is the record of who was on duty."""
    who, who_id = actor_name(actor)
    at = at or utc_now()
    with conn.transaction():
        shift = conn.execute("SELECT s.*, p.name AS post FROM duty_shift s JOIN duty_post p ON p.id = s.post_id"
                             " WHERE s.id = %s", (shift_id,)).fetchone()
        if shift is None:
            raise NotFound(f"shift {shift_id} does not exist")
        _post(conn, shift["post_id"], lock=True)
        if shift["ends_at"] <= at:
            raise Conflict(f"shift {shift_id} ({shift['post']}) is over; past shifts stay as the duty record")
        conn.execute("DELETE FROM duty_shift WHERE id = %s", (shift_id,))
        audit(conn, actor=who, actor_id=who_id, action="duty.shift.remove", entity="duty_shift",
              entity_id=str(shift_id), detail={"post": shift["post"], "user_id": shift["user_id"],
                                               "starts_at": shift["starts_at"].isoformat(),
                                               "ends_at": shift["ends_at"].isoformat()})
        live(conn, "duty", shift["post_id"])
    return {"id": shift_id, "removed": True}


def roster(conn: psycopg.Connection, since: dt.datetime, until: dt.datetime,
           post: str | int | None = None) -> list[dict]:
    """The shifts touching [since, until), by post name then start."""
    require_aware("since", since)
    require_aware("until", until)
    if until <= since:
        raise Invalid("until must be after since")
    if until - since > MAX_ROSTER_SPAN:
        raise Invalid("ask for at most 62 days of roster at a time")
    post_id = _post(conn, post)["id"] if post is not None else None
    return conn.execute(
        "SELECT s.id, s.post_id, p.name AS post, s.user_id, u.username, u.display_name, s.starts_at, s.ends_at"
        " FROM duty_shift s JOIN duty_post p ON p.id = s.post_id JOIN app_user u ON u.id = s.user_id"
        " WHERE s.starts_at < %(until)s AND s.ends_at > %(since)s"
        " AND (%(post)s::int IS NULL OR s.post_id = %(post)s) ORDER BY p.name, s.starts_at",
        {"since": since, "until": until, "post": post_id}).fetchall()


def on_duty_now(conn: psycopg.Connection, at: dt.datetime | None = None) -> list[dict]:
    """Every post with its holder at `at` (None when nobody), when that shift ends, and the
    next holder (the first shift starting once the current one ends, or after `at`)."""
    require_aware("at", at)
    rows = conn.execute(
        "SELECT p.id AS post_id, p.name AS post, d.name AS dept, p.phone,"
        " cur.id AS shift_id, cur.user_id, cu.display_name, cu.username, cur.starts_at, cur.ends_at AS until,"
        " nxt.user_id AS next_user_id, nu.display_name AS next_display_name, nxt.starts_at AS next_starts_at,"
        " nxt.ends_at AS next_ends_at"
        " FROM duty_post p LEFT JOIN department d ON d.id = p.dept_id"
        f" LEFT JOIN LATERAL ({_HOLDING}) cur ON true"
        " LEFT JOIN app_user cu ON cu.id = cur.user_id"
        " LEFT JOIN LATERAL (SELECT * FROM duty_shift s WHERE s.post_id = p.id"
        "   AND s.starts_at >= coalesce(cur.ends_at, %(at)s) AND s.id IS DISTINCT FROM cur.id"
        "   ORDER BY s.starts_at LIMIT 1) nxt ON true"
        " LEFT JOIN app_user nu ON nu.id = nxt.user_id ORDER BY p.name",
        {"at": at or utc_now()}).fetchall()
    out = []
    for r in rows:
        nxt = ({"user_id": r["next_user_id"], "display_name": r["next_display_name"],
                "starts_at": r["next_starts_at"], "ends_at": r["next_ends_at"]} if r["next_user_id"] else None)
        holder = ({"user_id": r["user_id"], "display_name": r["display_name"], "username": r["username"],
                   "shift_id": r["shift_id"], "starts_at": r["starts_at"]} if r["user_id"] else None)
        out.append({"post_id": r["post_id"], "post": r["post"], "dept": r["dept"], "phone": r["phone"],
                    "holder": holder, "until": r["until"], "next": nxt})
    return out


def _holder_shift(conn: psycopg.Connection, post_id: int, at: dt.datetime) -> dict | None:
    return conn.execute(f"SELECT s.id, s.user_id, s.starts_at, s.ends_at, u.display_name FROM duty_post p"
                        f" CROSS JOIN LATERAL ({_HOLDING}) s JOIN app_user u ON u.id = s.user_id"
                        f" WHERE p.id = %(post)s", {"post": post_id, "at": at}).fetchone()


# ---------------------------------------------------------------- hand-over (交接班)

def hand_over(conn: psycopg.Connection, post: str | int, from_user: Any, note: str, *,
              at: dt.datetime | None = None) -> dict:
    """The holder going off duty leaves a note for the next holder (the shift that starts once
    the current one ends), who is told. A shift lead or admin may write it on the holder's
    behalf. With no next holder rostered the shift leads are told that instead."""
    require_aware("at", at)
    note = (note or "").strip()
    if not 1 <= len(note) <= 4000:
        raise Invalid("a hand-over note is 1 to 4000 characters")
    at = at or utc_now()
    who, who_id = actor_name(from_user)
    with conn.transaction():
        p = _post(conn, post, lock=True)
        cur = _holder_shift(conn, p["id"], at)
        if cur is None:
            raise Conflict(f"nobody holds {p['name']} now; a hand-over is written by the holder going off duty")
        if cur["user_id"] != who_id and getattr(from_user, "role", None) not in ON_BEHALF_ROLES:
            raise Forbidden(f"only {cur['display_name']}, on duty at {p['name']}, or a shift lead on their behalf"
                            " may write its hand-over")
        nxt = conn.execute("SELECT s.user_id, s.starts_at, u.display_name FROM duty_shift s"
                           " JOIN app_user u ON u.id = s.user_id WHERE s.post_id = %s AND s.starts_at >= %s"
                           " ORDER BY s.starts_at LIMIT 1", (p["id"], cur["ends_at"])).fetchone()
        to_id = nxt["user_id"] if nxt else None
        hid = conn.execute("INSERT INTO duty_handover (post_id, from_user_id, to_user_id, at, note)"
                           " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                           (p["id"], cur["user_id"], to_id, at, note)).fetchone()["id"]
        head = f"{p['name']} 交接班（{cur['display_name']}）：{note[:200]}"
        if nxt:
            notify(conn, kind="duty.handover", message=head, user_id=to_id)
        else:                                   # nobody rostered next: the shift leads must arrange it
            notify(conn, kind="duty.handover", message=f"【{p['name']}下一班未排班，请值班长安排】{head}",
                   role="shift_lead")
        audit(conn, actor=who, actor_id=who_id, action="duty.handover", entity="duty_handover", entity_id=str(hid),
              detail={"post": p["name"], "from_user_id": cur["user_id"], "to_user_id": to_id,
                      "on_behalf": cur["user_id"] != who_id})
        live(conn, "duty", p["id"])
    return {"id": hid, "post": p["name"], "from_user_id": cur["user_id"], "from_display_name": cur["display_name"],
            "to_user_id": to_id, "to_display_name": nxt["display_name"] if nxt else None, "at": at}


def acknowledge_handover(conn: psycopg.Connection, handover_id: int, user: Any, *,
                         at: dt.datetime | None = None) -> dict:
    """The addressee confirms reading the hand-over (接班确认). One addressed to nobody (no next
    shift was rostered) is acknowledged by whoever holds the post then, who becomes its addressee."""
    require_aware("at", at)
    at = at or utc_now()
    who, who_id = actor_name(user)
    with conn.transaction():
        h = conn.execute("SELECT h.*, p.name AS post FROM duty_handover h JOIN duty_post p ON p.id = h.post_id"
                         " WHERE h.id = %s FOR UPDATE OF h", (handover_id,)).fetchone()
        if h is None:
            raise NotFound(f"hand-over {handover_id} does not exist")
        if h["acknowledged_at"] is not None:
            raise Conflict(f"hand-over {handover_id} was already acknowledged")
        addressee = h["to_user_id"]
        if addressee is None:
            holder = _holder_shift(conn, h["post_id"], at)
            addressee = holder["user_id"] if holder else None
        if addressee is None or addressee != who_id:
            raise Forbidden(f"only the one taking over {h['post']} may acknowledge its hand-over")
        conn.execute("UPDATE duty_handover SET acknowledged_at = %s, to_user_id = %s WHERE id = %s",
                     (at, addressee, handover_id))
        notify(conn, kind="duty.handover.ack", message=f"{h['post']} 交接班已确认（{who}）", user_id=h["from_user_id"])
        audit(conn, actor=who, actor_id=who_id, action="duty.handover.ack", entity="duty_handover",
              entity_id=str(handover_id), detail={"post": h["post"]})
        live(conn, "duty", h["post_id"])
    return {"id": handover_id, "acknowledged_at": at, "to_user_id": addressee}


def can_read_handovers(conn: psycopg.Connection, post: str | int, user: Any) -> dict:
    """The post, when `user` may read its hand-overs: the command centre's roles, and anyone
    rostered at the post (hand-over notes can hold names and addresses)."""
    p = _post(conn, post)
    if getattr(user, "role", None) in HANDOVER_READERS:
        return p
    if conn.execute("SELECT 1 FROM duty_shift WHERE post_id = %s AND user_id = %s LIMIT 1",
                    (p["id"], user.id)).fetchone() is None:
        raise Forbidden(f"the hand-overs of {p['name']} are for the people on its roster and the shift leads")
    return p


def handovers(conn: psycopg.Connection, post: str | int, limit: int = 20) -> list[dict]:
    """The post's recent hand-overs, newest first."""
    p = _post(conn, post)
    return conn.execute(
        "SELECT h.id, h.post_id, h.at, h.note, h.acknowledged_at, h.from_user_id, f.display_name AS from_display_name,"
        " h.to_user_id, t.display_name AS to_display_name FROM duty_handover h"
        " JOIN app_user f ON f.id = h.from_user_id LEFT JOIN app_user t ON t.id = h.to_user_id"
        " WHERE h.post_id = %s ORDER BY h.at DESC, h.id DESC LIMIT %s", (p["id"], limit)).fetchall()
