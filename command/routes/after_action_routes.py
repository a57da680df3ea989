"""The after-action report (评估报告) of a closed incident or drill: JSON, a printable HTML
page and its PDF (printed by headless Chromium, command.pdf).

Any role reading incidents may ask (incident.read); an incident out of the user's sight is
404, an open one 409. The /incidents page fetches report.html / report.pdf with its bearer
token and opens the result itself."""
from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import HTMLResponse, JSONResponse, Response
from markupsafe import Markup

from command.auth import User, require
from command.deps import db
from command.pdf import PdfUnavailable, html_to_pdf
from command.routes.web import templates
from workflows import after_action
from workflows.alerts import MSG_NAMES, STATE_NAMES
from workflows.cases import LOCAL_TZ

router = APIRouter(tags=["after-action"])
Reader = Annotated[User, Depends(require("incident.read"))]
Id = Annotated[int, Path(ge=1, le=2**62)]

OUTCOMES = {"on_time": "按时完成", "late": "超时完成", "waived": "已豁免", "not_done": "未完成", "cancelled": "已取消"}
CAP_STATUS = {"Actual": "实际", "Exercise": "演练"}


def _when(at: dt.datetime | None) -> str:
    return "—" if at is None else at.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: int | None) -> str:
    """1小时5分20秒 style; — when it never happened."""
    if seconds is None:
        return "—"
    sign, s = ("-" if seconds < 0 else ""), abs(int(seconds))
    h, m, sec = s // 3600, s % 3600 // 60, s % 60
    text = (f"{h}小时" if h else "") + (f"{m}分" if m or h else "") + (f"{sec}秒" if sec or not (h or m) else "")
    return sign + text


def render_html(report: dict, svg: str) -> str:
    """The report as one self-contained page. The map is marked safe because map_svg escaped
    every piece of text it put in."""
    return templates.env.get_template("after_action.html").render(
        r=report, svg=Markup(svg), when=_when, dur=_duration, milestones=after_action.MILESTONES,
        outcomes=OUTCOMES, msg_types=MSG_NAMES, cap_status=CAP_STATUS, alert_states=STATE_NAMES)


def _page(conn, incident_id: int, user: User) -> tuple[dict, str]:
    report = after_action.report(conn, incident_id, user)         # 404 / 409 before anything is drawn
    return report, render_html(report, after_action.map_svg(conn, incident_id))


@router.get("/api/incidents/{incident_id}/report.html", response_class=HTMLResponse)
def report_html(incident_id: Id, user: Reader, conn=Depends(db)):
    """The printable report (A4): key figures, times, tasks, resources, alerts, the drill
    score, the map and the timeline."""
    return HTMLResponse(_page(conn, incident_id, user)[1])


@router.get("/api/incidents/{incident_id}/report.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}, 503: {"description": "no PDF printer"}})
def report_pdf(incident_id: Id, user: Reader, conn=Depends(db)):
    """The same report as a PDF attachment named after the incident number; 503 when the
    server cannot print one (no Chromium, or it failed). Printing takes a few seconds of a
    worker thread (a sync route)."""
    report, page = _page(conn, incident_id, user)
    try:
        pdf = html_to_pdf(page)
    except PdfUnavailable as e:
        return JSONResponse({"error": "Unavailable", "message": f"PDF 暂时无法生成，请改用 HTML 版打印：{e}"},
                            status_code=503)
    name = report["incident"]["incident_no"]          # YJ + digits: safe in the header as it is
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'})


@router.get("/api/incidents/{incident_id}/report")
def report_json(incident_id: Id, user: Reader, conn=Depends(db)):
    """The after-action report of a closed incident as data: `durations` in seconds from the
    report (None where it never happened), `plans`, `tasks` (counts and rows), `resources`
    (orders and totals by type), `alerts`, `timeline`, `assessment` (the score's parts) and
    `score` (drills only)."""
    return after_action.report(conn, incident_id, user)
