"""The after-action report (评估报告) of a closed incident or drill: JSON, a printable HTML
page and its PDF (printed by headless Chromium, command.pdf).

Any role reading incidents may ask (incident.read); an incident out of the user's sight is
404, an open one 409. The /incidents page fetches report.html / report.pdf with its bearer
token and opens the result itself."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from markupsafe import Markup

from command.auth import User, require
from command.deps import db
from command.pdf import PdfUnavailable, html_to_pdf
from command.report_words import Lang, Words
from command.routes.web import templates
from workflows import after_action

router = APIRouter(tags=["after-action"])
Reader = Annotated[User, Depends(require("incident.read"))]
Id = Annotated[int, Path(ge=1, le=2**62)]
ReportLang = Annotated[Lang, Query(description="zh (zh-CN, the default) or en")]


def render_html(report: dict, svg: str, lang: Lang = "zh") -> str:
    """The report as one self-contained page in the reader's language. The map is marked safe
    because map_svg escaped every piece of text it put in."""
    return templates.env.get_template("after_action.html").render(
        r=report, svg=Markup(svg), w=Words(lang), milestones=after_action.MILESTONES)


def _page(conn, incident_id: int, user: User, lang: Lang) -> tuple[dict, str]:
    report = after_action.report(conn, incident_id, user)         # 404 / 409 before anything is drawn
    return report, render_html(report, after_action.map_svg(conn, incident_id), lang)


@router.get("/api/incidents/{incident_id}/report.html", response_class=HTMLResponse)
def report_html(incident_id: Id, user: Reader, conn=Depends(db), lang: ReportLang = "zh"):
    """The printable report (A4): key figures, times, tasks, resources, alerts, the drill
    score, the map and the timeline; `lang=en` for English labels (the incident's own texts
    stay as written)."""
    return HTMLResponse(_page(conn, incident_id, user, lang)[1])


@router.get("/api/incidents/{incident_id}/report.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}, 503: {"description": "no PDF printer"}})
def report_pdf(incident_id: Id, user: Reader, request: Request, lang: ReportLang = "zh"):
    """The same report as a PDF attachment named after the incident number; 503 when the
    server cannot print one (no Chromium, it failed, or every printer stayed busy). Printing
    takes a few seconds of a worker thread (a sync route); the database connection is given
    back before it waits for a printer."""
    with request.app.state.pool.connection() as conn:
        report, page = _page(conn, incident_id, user, lang)
    try:
        pdf = html_to_pdf(page, printers=request.app.state.pdf_printers)
    except PdfUnavailable as e:
        message = Words(lang).tr("PDF 暂时无法生成，请改用 HTML 版打印：") + str(e)
        return JSONResponse({"error": "Unavailable", "message": message}, status_code=503,
                            headers={"Retry-After": "60"})
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
