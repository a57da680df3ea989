"""Track replay (轨迹回放): a unit's track over a time window, and the map page that plays it.

Who may see which unit: `command.unit_access` (a unit out of sight answers 404)."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from command.auth import User, require
from command.deps import db
from command.unit_access import visible_unit
from devices import tracks
from gis.errors import Invalid
from workflows.cases import LOCAL_TZ

router = APIRouter(tags=["units"])
templates = Jinja2Templates(directory=FilePath(__file__).parent.parent / "web" / "templates")
Reader = Annotated[User, Depends(require("unit.read"))]
UnitId = Annotated[int, Path(ge=1, le=2**31 - 1)]
MAX_WINDOW = dt.timedelta(days=7)
# "+08:00" sent unencoded in a query string arrives as " 08:00": read it as meant.
_SPACED_OFFSET = re.compile(r" (\d{2}(:?\d{2})?)$")

_TIME = "ISO 8601 with a time zone, e.g. 2026-05-04T00:00:00+08:00 (by default today, China time)"


def _instant(name: str, text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(_SPACED_OFFSET.sub(r"+\1", text.strip()))
    except ValueError:
        raise Invalid(f"{name}={text!r} is not an ISO 8601 time; write e.g. 2026-05-04T08:00:00+08:00") from None
    if value.tzinfo is None:
        raise Invalid(f"{name}={text!r} has no time zone; add one, e.g. {text.strip()}+08:00")
    return value


def window(start: str | None, end: str | None, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """The window asked for: today (local day) by default; one end alone means a day from it."""
    day = dt.timedelta(days=1)
    if start is None and end is None:
        today = (now or dt.datetime.now(LOCAL_TZ)).astimezone(LOCAL_TZ).date()
        first = dt.datetime.combine(today, dt.time(), LOCAL_TZ)
        return first, first + day
    first = _instant("from", start) if start is not None else None
    last = _instant("to", end) if end is not None else None
    first = first if first is not None else last - day
    last = last if last is not None else first + day
    if last <= first:
        raise Invalid(f"'to' ({last.isoformat()}) must be after 'from' ({first.isoformat()})")
    if last - first > MAX_WINDOW:
        raise Invalid(f"a replay covers at most {MAX_WINDOW.days} days; this asks for {last - first}")
    return first, last


@router.get("/api/units/{unit_id}/track", responses={200: {"description": "the track, stops, gaps and alarms"}})
def unit_track(unit_id: UnitId, request: Request, user: Reader, conn=Depends(db),
               start: Annotated[str | None, Query(alias="from", description=_TIME)] = None,
               end: Annotated[str | None, Query(alias="to", description=_TIME)] = None,
               zoom: Annotated[int, Query(ge=0, le=22, description="the map zoom the track is simplified for")] = 16):
    """A unit's track for replay (轨迹回放): the good fixes (flagged ones counted, not drawn),
    simplified for `zoom` (each dropped fix within a pixel of the line, and of where the
    replay puts the unit at its time), with stops (停留点: within
    `stationary_radius_m` for `stop_minutes`), gaps (no fix for over `track_gap_seconds`),
    the distance covered (stops' jitter left out) and the alarms along the way.

    `track` holds parallel arrays: `t` (seconds since 1970) and `lon`/`lat` (millionths of a
    degree) delta-encoded: the first value as it is, each next one the difference to the one
    before; `speed` in m/s, from the positions over the ten seconds around each point. A
    stop's or gap's `index` points into these arrays (the stop's first fix, the last fix
    before the gap). Answers travel gzipped to clients that accept it."""
    first, last = window(start, end)
    unit = visible_unit(conn, user, unit_id)
    reply = tracks.replay(conn, unit, first, last, zoom, tracks.TrackRules.from_settings(request.app.state.settings))
    return Response(tracks.to_json(reply), media_type="application/json")


@router.get("/units/{unit_id}/replay", response_class=HTMLResponse, include_in_schema=False)
def replay_page(unit_id: UnitId, request: Request):
    """The replay page; it asks the API for the track once the user has logged in."""
    return templates.TemplateResponse(request, "replay.html",
                                      {"demo": request.app.state.settings.demo, "unit_id": unit_id})
