"""Public warnings (公众预警): CAP 1.2 alerts drafted for an incident and issued only when a
commander or leader approves them (签发), with the public CAP messages and Atom feed.

Who may do what: command.auth PERMISSIONS (incident.read, alert.draft, alert.approve); which
incidents a user sees: workflows.incidents.visibility. The CAP messages and the feed are
public: only issued messages are ever served."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from command.auth import User, require
from command.deps import db
from workflows import alerts, incidents
from workflows.plans import WARNING_MAX_EXPIRES_MIN

router = APIRouter(tags=["alerts"])
Reader = Annotated[User, Depends(require("incident.read"))]
Drafter = Annotated[User, Depends(require("alert.draft"))]
Approver = Annotated[User, Depends(require("alert.approve"))]
Id = Annotated[int, Path(ge=1, le=2**62)]
CAP_TYPE = "application/cap+xml"
ATOM_TYPE = "application/atom+xml"


class AlertIn(BaseModel):
    msg_type: Literal["Alert", "Update", "Cancel"] = Field(
        default="Alert", description="Alert a new warning, Update to change an issued one, Cancel to lift it (解除)")
    references_id: int | None = Field(default=None, ge=1, le=2**62,
                                      description="the issued alert an Update or Cancel replaces (same incident)")
    values: dict[str, str | int | float] = Field(
        default_factory=dict, description="the template's fields on top of the incident's details, e.g. {depth: 45}")
    area_description: str | None = Field(default=None, max_length=200,
                                         description="the area in words; defaults to street and road or grid")
    expires_in_min: int | None = Field(default=None, ge=1, le=WARNING_MAX_EXPIRES_MIN,
                                       description="minutes from issue until it expires; default the plan's expires_min")
    note: str | None = Field(default=None, max_length=1000, description="why; required for a Cancel")


class RejectIn(BaseModel):
    reason: str = Field(min_length=2, max_length=1000, description="what the drafter should change (退回理由)")


# ---------------------------------------------------------------- public
@router.get("/api/alerts.atom", response_class=Response)
def alerts_feed(request: Request, conn=Depends(db)):
    """The warnings in force as an Atom 1.0 feed, newest first, each linking to its CAP message."""
    return Response(alerts.atom(conn, str(request.base_url)), media_type=ATOM_TYPE)


# Registered before /api/alerts/{alert_id}, whose {alert_id} would match "7.cap" too.
@router.get("/api/alerts/{alert_id}.cap", response_class=Response)
def alert_cap(alert_id: Id, conn=Depends(db)):
    """One issued CAP 1.2 message exactly as issued (also once updated or cancelled); a draft
    or a rejected message is 404."""
    return Response(alerts.issued_xml(conn, alert_id).encode(), media_type=CAP_TYPE)


# ---------------------------------------------------------------- staff
@router.get("/api/incidents/{incident_id}/alerts")
def incident_alerts(incident_id: Id, user: Reader, conn=Depends(db)):
    """The incident's alerts, newest first, with `cap_url` once issued."""
    incidents.get(conn, incident_id, user)
    return alerts.alerts_of(conn, incident_id)


@router.post("/api/incidents/{incident_id}/alerts", status_code=201)
def draft_alert(incident_id: Id, body: AlertIn, user: Drafter, conn=Depends(db)):
    """Draft an alert from the running plan's warning template (拟稿); the commanders are told
    it waits for their approval. Answers the draft with its `preview`."""
    return alerts.draft(conn, incident_id, user, msg_type=body.msg_type, references_id=body.references_id,
                        values=body.values, area_description=body.area_description,
                        expires_in_min=body.expires_in_min, note=body.note)


@router.get("/api/alerts/{alert_id}")
def get_alert(alert_id: Id, user: Reader, conn=Depends(db)):
    return alerts.get(conn, alert_id, user)


@router.post("/api/alerts/{alert_id}/approve")
def approve_alert(alert_id: Id, user: Approver, conn=Depends(db)):
    """Issue the draft (签发): its CAP message is served from now on; an Update or Cancel
    supersedes or cancels the alert it replaces. Already decided: 409."""
    return alerts.approve(conn, alert_id, user)


@router.post("/api/alerts/{alert_id}/reject")
def reject_alert(alert_id: Id, body: RejectIn, user: Approver, conn=Depends(db)):
    """Send the draft back (退回) with a reason; the drafter is told."""
    return alerts.reject(conn, alert_id, user, reason=body.reason)
