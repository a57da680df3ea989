"""综合评价 — evaluation indicators, scores and grades as JSON, CSV or XLSX."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from command.auth import User, require
from command.deps import db
from gis.errors import Forbidden, Invalid
from gis.roles import ROLES
from workflows import evaluation

router = APIRouter(tags=["evaluation"])
Reader = Annotated[User, Depends(require("evaluation.read"))]
LOCAL_TZ = ZoneInfo("Asia/Shanghai")
SEE_ALL = frozenset({"leader", "admin", "shift_lead", "commander"})
# Roles that may see only their own row, and of which subject.
OWN_ROW = {"department": "department", "inspector": "inspector"}
MAX_DAYS = 3660
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SubjectKey = Literal["inspector", "operator", "shift_lead", "dispatcher", "department", "street", "community", "grid"]


def _own_row(user: User, subject: str):
    """None when the user sees every row; else the test picking their own row."""
    if user.role in SEE_ALL:
        return None
    if OWN_ROW.get(user.role) == subject:
        own = user.dept_id if user.role == "department" else user.id
        return lambda row: row["id"] == own
    if user.role in OWN_ROW:
        raise Forbidden(f"a {ROLES[user.role]} ({user.role}) sees only their own evaluation: "
                        f"/api/evaluation/{OWN_ROW[user.role]}")
    raise Forbidden(f"the role {ROLES[user.role]} ({user.role}) may not see evaluations")


def _first_of_month(day: dt.date, months_later: int = 0) -> dt.date:
    month = day.month - 1 + months_later
    return dt.date(day.year + month // 12, month % 12 + 1, 1)


def _period(start: dt.date | None, end: dt.date | None) -> tuple[dt.datetime, dt.datetime]:
    """Dates in local time, end exclusive; by default the current month."""
    start = start or _first_of_month(end - dt.timedelta(days=1) if end else dt.datetime.now(LOCAL_TZ).date())
    end = end or _first_of_month(start, 1)
    if not start < end:
        raise Invalid(f"start {start} must be before end {end} (end is exclusive)")
    if (end - start).days > MAX_DAYS:
        raise Invalid(f"the period is longer than {MAX_DAYS} days; ask for a shorter one")
    midnight = dt.time(0, tzinfo=LOCAL_TZ)
    return dt.datetime.combine(start, midnight), dt.datetime.combine(end, midnight)


def _attachment(body: bytes, media_type: str, ev: evaluation.Evaluation, ext: str) -> Response:
    name = f"evaluation-{ev.subject}-{ev.start:%Y%m%d}-{ev.end:%Y%m%d}.{ext}"
    return Response(body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/api/evaluation/{subject}", responses={200: {"content": {"text/csv": {}, XLSX: {}}}})
def get_evaluation(request: Request, subject: Annotated[SubjectKey, Path()], user: Reader, conn=Depends(db),
                   start: Annotated[dt.date | None, Query(description="first day (ISO date)")] = None,
                   end: Annotated[dt.date | None, Query(description="day after the last (exclusive)")] = None,
                   format: Annotated[Literal["json", "csv", "xlsx"], Query()] = "json"):
    """Indicators, weighted score and grade (A–E) of every inspector, operator, shift lead,
    dispatcher, department, street, community or grid over [start, end); best first.
    Leaders, admins, shift leads and commanders see all rows; a department user its own
    department's row, an inspector their own row."""
    own = _own_row(user, subject)
    begin, finish = _period(start, end)
    ev = evaluation.evaluate(conn, subject, begin, finish, flow=request.app.state.desk.flow)
    if own is not None:
        ev.rows = [r for r in ev.rows if own(r)]
    if format == "csv":
        return _attachment(evaluation.to_csv(ev), "text/csv; charset=utf-8", ev, "csv")
    if format == "xlsx":
        return _attachment(evaluation.to_xlsx(ev), XLSX, ev, "xlsx")
    return ev.as_json()
