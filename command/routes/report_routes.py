"""Attendance reports (考勤日报) of patrol units: a department's day as JSON, CSV or a
printable HTML page, and one shift's attendance. A department user sees its own
department only."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse

from command.auth import User, require
from command.deps import db
from devices import attendance, attendance_report
from gis.db import department_id
from gis.errors import Forbidden, Invalid

router = APIRouter(tags=["reports"])
Reader = Annotated[User, Depends(require("report.read"))]


def _dept_for(conn, user: User, name: str | None, dept_id: int | None) -> int | None:
    """The department the report is about (None: every unit); a department user's own."""
    if name and dept_id is not None:
        raise Invalid("give the department either by name (dept) or by id (dept_id), not both")
    wanted = department_id(conn, name) if name else dept_id
    if user.role == "department":
        if wanted is not None and wanted != user.dept_id:
            raise Forbidden("a department user sees its own department's attendance only; leave out dept")
        return user.dept_id
    return wanted


@router.get("/api/reports/attendance", responses={200: {"content": {"text/csv": {}, "text/html": {}}}})
def attendance_day(request: Request, user: Reader,
                   date: Annotated[dt.date, Query(description="the local day (Asia/Shanghai), YYYY-MM-DD")],
                   conn=Depends(db),
                   dept: Annotated[str | None, Query(description="department name")] = None,
                   dept_id: Annotated[int | None, Query(description="department id")] = None,
                   format: Annotated[Literal["json", "csv", "html"], Query()] = "json",
                   lang: Annotated[Literal["zh", "en"], Query()] = "zh"):
    """One row per shift starting on `date`: status (ok, late, early, late_early, absent,
    pending), minutes inside the area, distance, grids visited, coverage, alarms, time per
    grid. Without a department: every unit (department users: their own department)."""
    rules = attendance.Rules.from_settings(request.app.state.settings)
    report = attendance.day_report(conn, date, rules, dept_id=_dept_for(conn, user, dept, dept_id))
    if format == "csv":
        return Response(attendance_report.to_csv(report, lang), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition":
                                 f'attachment; filename="{attendance_report.file_name(report, "csv")}"'})
    if format == "html":
        return HTMLResponse(attendance_report.to_html(report, lang))
    return report


@router.get("/api/shifts/{shift_id}/attendance")
def shift_attendance(request: Request, shift_id: Annotated[int, Path()], user: Reader, conn=Depends(db)):
    """One shift's attendance and patrol coverage (same fields as a row of the day report)."""
    rules = attendance.Rules.from_settings(request.app.state.settings)
    return attendance.shift_report(conn, shift_id, rules,
                                   dept_limit=user.dept_id if user.role == "department" else None)
