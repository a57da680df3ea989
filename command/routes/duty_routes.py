"""The duty roster (值守): posts, shifts (排班), who is on duty now, hand-over notes (交接班),
and the /duty page.

Every staff role reads the roster (duty.read); admins and shift leads edit posts and shifts
(duty.manage). Hand-overs are written by the post's holder (or a shift lead on their behalf)
and read by the people on the post's roster and the command centre (workflows.duty)."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, ValidationError, field_validator

from command.auth import User, require
from command.deps import db
from command.routes.web import templates
from gis.errors import Invalid
from workflows import duty
from workflows.cases import LOCAL_TZ

router = APIRouter(tags=["duty"])
Reader = Annotated[User, Depends(require("duty.read"))]
Manager = Annotated[User, Depends(require("duty.manage"))]
ShiftId = Annotated[int, Path(ge=1, le=2**62)]
HandoverId = Annotated[int, Path(ge=1, le=2**62)]
TimeQuery = Annotated[dt.datetime | None, Query(description="ISO 8601 with a time zone, e.g. 2026-03-02T08:00:00+08:00")]
PostRef = Annotated[int | str, Field(description="the post's id (a number) or its name")]
AWARE_HINT = "needs a time zone, e.g. 2026-03-02T08:00:00+08:00"


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError(AWARE_HINT)
    return value


class PostIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, examples=["县应急指挥长"])
    dept: str | None = Field(default=None, max_length=100, description="the department's name")
    phone: str | None = Field(default=None, max_length=50)


class ShiftIn(BaseModel):
    post: PostRef
    user_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    username: str | None = Field(default=None, max_length=64, description="instead of user_id")
    starts_at: dt.datetime
    ends_at: dt.datetime

    _zoned = field_validator("starts_at", "ends_at")(_aware)


class HandoverIn(BaseModel):
    post: PostRef
    note: str = Field(min_length=1, max_length=4000)


def _parse_shifts(body: Any) -> list[ShiftIn]:
    """One shift or a list, each checked on its own so the message names the one at fault
    (FastAPI's union validation would report both readings of the body)."""
    items = body if isinstance(body, list) else [body]
    out = []
    for i, raw in enumerate(items):
        try:
            out.append(ShiftIn.model_validate(raw))
        except ValidationError as e:
            where = f"shift #{i + 1}: " if isinstance(body, list) else ""
            raise Invalid(where + "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'shift'}: {err['msg'].removeprefix('Value error, ')}"
                for err in e.errors())) from None
    return out


def _user_id(conn, s: ShiftIn, position: str) -> int:
    if (s.user_id is None) == (s.username is None):
        raise Invalid(f"{position}give the user on duty as user_id or username (one of them)")
    if s.user_id is not None:
        return s.user_id
    row = conn.execute("SELECT id FROM app_user WHERE username = %s", (s.username,)).fetchone()
    if row is None:
        raise Invalid(f"{position}user {s.username!r} does not exist")
    return row["id"]


def _check_zone(**times: dt.datetime | None) -> None:
    for name, value in times.items():
        if value is not None and value.tzinfo is None:
            raise Invalid(f"{name} {AWARE_HINT}")


def _this_week() -> tuple[dt.datetime, dt.datetime]:
    today = dt.datetime.now(LOCAL_TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    monday = today - dt.timedelta(days=today.weekday())
    return monday, monday + dt.timedelta(days=7)


# ---------------------------------------------------------------------------- posts
@router.get("/api/duty/posts")
def list_posts(user: Reader, conn=Depends(db)):
    """The duty posts (值守岗位) by name, with their department and phone."""
    return duty.list_posts(conn)


@router.post("/api/duty/posts", status_code=201)
def add_post(body: PostIn, user: Manager, conn=Depends(db)):
    """Create a duty post (duty.manage)."""
    return duty.add_post(conn, body.name, body.dept, body.phone, actor=user)


def _post_ref(post: str) -> int | str:
    """A post named by its id (ASCII digits: "²" or "٣" are names, not numbers) or its name."""
    return int(post) if post.isascii() and post.isdigit() else post


# ---------------------------------------------------------------------------- roster
@router.get("/api/duty/roster")
def get_roster(user: Reader, conn=Depends(db), since: TimeQuery = None, until: TimeQuery = None,
               post: str | None = Query(default=None, max_length=100, description="a post's name or id")):
    """The shifts touching [since, until) (default: this week in city time), by post then start."""
    _check_zone(since=since, until=until)
    week = _this_week()
    return duty.roster(conn, since or week[0], until or week[1], None if post is None else _post_ref(post))


@router.post("/api/duty/shifts", status_code=201)
def add_shifts(user: Manager, conn=Depends(db), body: Any = Body(
        description="a shift {post, user_id or username, starts_at, ends_at} or a list of them; times ISO 8601"
                    " with a time zone", examples=[{"post": "县应急指挥长", "username": "commander",
                                                    "starts_at": "2026-03-02T08:00:00+08:00",
                                                    "ends_at": "2026-03-03T08:00:00+08:00"}])):
    """Put people on duty: one shift or a list (all or none). A shift is at most 24 h and may not
    overlap another of the same post; the refusal names the clashing shift."""
    many = isinstance(body, list)
    items = _parse_shifts(body)
    shifts = [duty.NewShift(s.post, _user_id(conn, s, f"shift #{i + 1}: " if many else ""), s.starts_at, s.ends_at)
              for i, s in enumerate(items)]
    made = duty.add_shifts(conn, shifts, actor=user)
    return made if many else made[0]


@router.delete("/api/duty/shifts/{shift_id}")
def remove_shift(shift_id: ShiftId, user: Manager, conn=Depends(db)):
    """Take a coming or current shift off the roster (past ones stay as the record)."""
    return duty.remove_shift(conn, shift_id, actor=user)


@router.get("/api/duty/now")
def on_duty_now(user: Reader, conn=Depends(db), at: TimeQuery = None):
    """Every post with its holder now (or at `at`), until when, and the next holder."""
    _check_zone(at=at)
    return duty.on_duty_now(conn, at)


# ---------------------------------------------------------------------------- hand-over
@router.post("/api/duty/handovers", status_code=201)
def write_handover(body: HandoverIn, user: Reader, conn=Depends(db)):
    """The holder going off duty writes the hand-over note (交接班) for the next holder."""
    return duty.hand_over(conn, body.post, user, body.note)


@router.post("/api/duty/handovers/{handover_id}/ack")
def acknowledge_handover(handover_id: HandoverId, user: Reader, conn=Depends(db)):
    """The one taking over confirms the hand-over (接班确认)."""
    return duty.acknowledge_handover(conn, handover_id, user)


@router.get("/api/duty/handovers")
def list_handovers(user: Reader, conn=Depends(db),
                   post: str = Query(min_length=1, max_length=100, description="a post's name or id"),
                   limit: int = Query(default=20, ge=1, le=200)):
    """The post's recent hand-overs, newest first (for its roster and the command centre)."""
    ref = _post_ref(post)
    duty.can_read_handovers(conn, ref, user)
    return duty.handovers(conn, ref, limit)


# ---------------------------------------------------------------------------- the page
@router.get("/duty", response_class=HTMLResponse, include_in_schema=False)
def duty_page(request: Request):
    """值班表: on duty now, the week's roster, hand-overs (logs in through the API in the browser)."""
    return templates.TemplateResponse(request, "duty.html", {"demo": request.app.state.settings.demo})
