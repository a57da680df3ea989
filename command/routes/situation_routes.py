"""The situation around one incident (事件态势): the API and the page (态势图).

Any role reading incidents may ask (incident.read); which incidents: workflows.incidents.visibility
(an incident out of sight answers 404 like one that does not exist). Units, devices and cases
in the answer are limited as their own lists are (command.situation)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse

from command import situation
from command.auth import User, require
from command.deps import db
from command.routes.web import templates

router = APIRouter(tags=["situation"])
Reader = Annotated[User, Depends(require("incident.read"))]
Id = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/api/incidents/{incident_id}/situation")
def incident_situation(incident_id: Id, user: Reader, conn=Depends(db),
                       radius_m: float | None = Query(default=None, description=(
                           "search radius in metres, above 0 and at most 5000; default the incident's"
                           " radius (at most 5000) or 500"))):
    """Within the radius of the incident, nearest first with `distance_m` (geodesic, from the
    incident point), each list at most 200 long with `count` and `truncated`: `cameras` that
    see it (online state, `snapshot_url`), `resources`, `units` on duty at their last fix
    (`age_s`), `parts` (with `classes`: counts by class and status), `devices` (state, active
    alarms), open `cases`; and the `grids` its affected area touches with the `share` of each
    grid affected and `people_affected` = population × share, with `totals`. Coordinates are
    WGS84 `lon`, `lat`; shapes (`circle`, `affected`, grid `geometry`) are GeoJSON."""
    return situation.situation(conn, incident_id, user, radius_m)


@router.get("/incidents/{incident_id}/situation", response_class=HTMLResponse, include_in_schema=False)
def situation_page(request: Request, incident_id: Id):
    """The incident's situation map (态势图); the page logs in through the API."""
    return templates.TemplateResponse(request, "situation.html",
                                      {"demo": request.app.state.settings.demo, "incident_id": incident_id})
