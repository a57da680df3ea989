"""The after-action report over HTTP: a waterlogging drill run through the API to its close
gives the report as JSON, as a printable page with the map and the tasks, and as a PDF
printed by the machine's real Chromium; an open incident is 409, one out of the user's area
404; a server that cannot print answers 503 with a message. command.pdf itself: a missing
browser, one that never finishes and one that writes nothing are each a clear error, and the
temporary folder is always gone."""
from __future__ import annotations

import html
import os
import re
import stat
import tempfile
import threading
import time

import pytest

from command.pdf import PdfUnavailable, html_to_pdf
from workflows.resources import NewResource, add_resource

AT = {"lon": 113.3405, "lat": 27.0005}


def _run_drill(client, cmdr, db) -> int:
    """A waterlogging drill: verify done, pumps done with a truck dispatched, traffic control
    waived, closed (the optional task is cancelled)."""
    r = client.post("/api/drills", headers=cmdr, json={"plan_id": "waterlogging", "title": "建设路积水演练", **AT})
    assert r.status_code == 201, r.text
    inc = r.json()["id"]
    tasks = {t["step_id"]: t for t in client.get(f"/api/incidents/{inc}/tasks", headers=cmdr).json()}
    truck = add_resource(db, NewResource("泵车1号", "pump_truck", 113.3412, 27.0005), actor="test")["id"]
    r = client.post(f"/api/incidents/{inc}/dispatch", headers=cmdr,
                    json={"resource_id": truck, "task_id": tasks["pumps"]["id"]})
    assert r.status_code == 201, r.text
    assert client.post(f"/api/dispatch-orders/{r.json()['id']}/acknowledge", headers=cmdr, json={}).status_code == 200
    for step, action, note in (("verify", "done", "照片已回传"), ("pumps", "done", ""),
                               ("traffic_control", "waive", "积水路段已封闭")):
        r = client.post(f"/api/incident-tasks/{tasks[step]['id']}/{action}", headers=cmdr, json={"note": note})
        assert r.status_code == 200, r.text
    return inc


def test_the_report_as_json_html_and_pdf(client, login, db):
    cmdr = login("commander")
    inc = _run_drill(client, cmdr, db)
    # Still open: refused, saying why, for every format.
    for suffix in ("", ".html", ".pdf"):
        r = client.get(f"/api/incidents/{inc}/report{suffix}", headers=cmdr)
        assert r.status_code == 409 and "closed" in r.json()["message"], (suffix, r.text)
    r = client.post(f"/api/incidents/{inc}/status", headers=cmdr, json={"status": "closed", "note": "演练结束"})
    assert r.status_code == 200, r.text

    report = client.get(f"/api/incidents/{inc}/report", headers=cmdr).json()
    assert report["incident"]["drill"] is True and report["durations"]["closed"] >= 0
    assert report["tasks"]["counts"]["on_time"] == 2 and report["tasks"]["counts"]["waived"] == 1
    assert report["tasks"]["counts"]["cancelled"] == 1
    assert [t["type_code"] for t in report["resources"]["by_type"]] == ["pump_truck"]
    score = report["score"]
    assert score["total"] == round(sum(p["points"] for p in score["parts"]), 1)
    assert {p["key"]: p["points"] for p in score["parts"]}["public_warning"] == 0      # no alert issued

    r = client.get(f"/api/incidents/{inc}/report.html", headers=cmdr)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "【演练】" in page and report["incident"]["incident_no"] in page and "演练评分" in page
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in page and 'class="incident-point"' in page
    for t in report["tasks"]["items"]:
        assert t["title"] in page
    assert 'class="waived"' in page and "积水路段已封闭" in page
    # Self-contained: nothing to fetch from anywhere.
    assert "src=" not in page and "<link" not in page and "https://" not in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")

    # In English: every label is English; only the incident's own words stay Chinese.
    english = _english(client, cmdr, inc, report)
    assert "[DRILL]" in english and "Drill score" in english and "Drainage pump truck" in english
    assert "General (level Ⅳ)" in english
    assert "waived" in english and "Tasks done on time" in english
    assert client.get(f"/api/incidents/{inc}/report.html", headers=cmdr, params={"lang": "fr"}).status_code == 422

    r = client.get(f"/api/incidents/{inc}/report.pdf", headers=cmdr)      # real Chromium, once
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf" and r.content.startswith(b"%PDF")
    assert r.headers["content-disposition"] == f'attachment; filename="{report["incident"]["incident_no"]}.pdf"'


def _english(client, headers, inc: int, report: dict) -> str:
    """The report page in English, checked: its labels are English, and the only Chinese left
    is the incident's own words (titles, places, plans, tasks, names, alerts, the timeline)."""
    r = client.get(f"/api/incidents/{inc}/report.html", headers=headers, params={"lang": "en"})
    assert r.status_code == 200, r.text
    page = r.text
    assert '<html lang="en">' in page and "After-action report" in page and "UTC+08 (Asia/Shanghai)" in page
    assert "Flood and drought" in page and "the level reported" in page
    own_words = [report["incident"][k] or "" for k in ("title", "street", "community", "grid_name", "description")]
    own_words += [p["plan_name"] for p in report["plans"]] + [o["name"] for o in report["resources"]["orders"]]
    own_words += [a["headline"] for a in report["alerts"]] + [h["reason"] or "" for h in report["level_history"]]
    own_words += [e["message"] for e in report["timeline"]] + [e["actor"] for e in report["timeline"]]
    for t in report["tasks"]["items"]:
        own_words += [t["title"], t["post"] or "", t["role"] or "", t["owner"] or "", t["waived_reason"] or "",
                      t["waived_by"] or "", t["note"] or ""]
    left = page
    for text in sorted(own_words, key=len, reverse=True):
        left = left.replace(html.escape(text), "") if text else left
    assert re.findall(r"[\u3000-\u30ff\u4e00-\u9fff\uff00-\uffef]+", left) == []
    return page


def test_a_real_incident_with_warnings_reads_in_english(client, login, db):
    """Not a drill: assessed, not scored; its level raised, a warning issued and one rejected."""
    cmdr = login("commander")
    r = client.post("/api/incidents", headers=cmdr, json={"category": "自然灾害", "subtype": "水旱灾害", "level": "Ⅳ",
                                                          "title": "建设路积水", "details": {"depth": "40"}, **AT})
    assert r.status_code == 201, r.text
    inc = r.json()["id"]
    r = client.post(f"/api/incidents/{inc}/level", headers=cmdr, json={"level": "Ⅲ", "reason": "积水扩大到三条路"})
    assert r.status_code == 200, r.text
    issued = client.post(f"/api/incidents/{inc}/alerts", headers=cmdr, json={}).json()
    assert client.post(f"/api/alerts/{issued['id']}/approve", headers=cmdr).status_code == 200
    rejected = client.post(f"/api/incidents/{inc}/alerts", headers=cmdr,
                           json={"msg_type": "Update", "references_id": issued["id"], "values": {"depth": "60"}}).json()
    r = client.post(f"/api/alerts/{rejected['id']}/reject", headers=cmdr, json={"reason": "深度待核实"})
    assert r.status_code == 200, r.text
    for t in client.get(f"/api/incidents/{inc}/tasks", headers=cmdr).json():
        if t["mandatory"]:
            r = client.post(f"/api/incident-tasks/{t['id']}/waive", headers=cmdr, json={"note": "已由现场处置"})
            assert r.status_code == 200, r.text
    r = client.post(f"/api/incidents/{inc}/status", headers=cmdr, json={"status": "closed", "note": "积水退去"})
    assert r.status_code == 200, r.text
    report = client.get(f"/api/incidents/{inc}/report", headers=cmdr).json()
    assert report["score"] is None and [h["level"] for h in report["level_history"]] == ["Ⅳ", "Ⅲ"]
    english = _english(client, cmdr, inc, report)
    assert "Assessment" in english and "A real incident is not scored" in english and "Drill score" not in english
    assert "General (level Ⅳ)" not in english and "Large (level Ⅲ)" in english
    assert "no orders" in english and "1 sent" in english and "No resources were dispatched." in english
    assert "Actual / exercise" in english and ">Alert<" in english and ">Update<" in english
    assert ">issued<" in english and ">rejected<" in english and "积水扩大到三条路" in english


def test_out_of_sight_is_404_and_no_printer_is_503(client, login, db, monkeypatch, tmp_path):
    cmdr = login("commander")
    far = login("inspector", areas=["430223001002"])                     # the other community
    inc = client.post("/api/incidents", headers=cmdr,
                      json={"category": "自然灾害", "subtype": "水旱灾害", "level": "Ⅳ", "title": "积水", "activate": False,
                            **AT}).json()["id"]
    assert client.post(f"/api/incidents/{inc}/status", headers=cmdr, json={"status": "closed"}).status_code == 200
    for suffix in ("", ".html", ".pdf"):
        r = client.get(f"/api/incidents/{inc}/report{suffix}", headers=far)
        assert r.status_code == 404 and "not yours to see" in r.json()["message"]
    assert client.get(f"/api/incidents/{inc}/report.html").status_code == 401
    assert client.get("/api/incidents/999999/report", headers=cmdr).status_code == 404
    monkeypatch.setenv("CITYGRID_CHROMIUM", str(tmp_path / "no-such-browser"))
    r = client.get(f"/api/incidents/{inc}/report.pdf", headers=cmdr)
    assert r.status_code == 503 and "no-such-browser" in r.json()["message"] and "HTML" in r.json()["message"]
    assert client.get(f"/api/incidents/{inc}/report.html", headers=cmdr).status_code == 200


def _browser(tmp_path, name: str, script: str) -> str:
    """A stand-in 'browser' program: lets the failure paths be real processes."""
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def _left_behind(where) -> list[str]:
    return [p for p in os.listdir(where) if p.startswith("citygrid-pdf-")]


def test_html_to_pdf_errors_are_clear_and_leave_nothing(monkeypatch, tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("CITYGRID_CHROMIUM", str(tmp_path / "missing"))
    with pytest.raises(PdfUnavailable, match="no Chromium at .*missing"):
        html_to_pdf("<p>x</p>")
    monkeypatch.setenv("CITYGRID_CHROMIUM", _browser(tmp_path, "silent", "exit 0"))
    with pytest.raises(PdfUnavailable, match="wrote no PDF"):
        html_to_pdf("<p>x</p>")
    monkeypatch.setenv("CITYGRID_CHROMIUM", _browser(tmp_path, "stuck", "exec sleep 60"))
    with pytest.raises(PdfUnavailable, match="did not finish"):
        html_to_pdf("<p>x</p>", timeout_s=0.5)
    assert _left_behind(scratch) == []


def test_reports_print_a_few_at_a_time(tmp_path, monkeypatch):
    """With the one printer busy, another request waits, then is told to try again; once it is
    free the next one prints (here: a stand-in browser that never finishes)."""
    printers = threading.BoundedSemaphore(1)
    monkeypatch.setenv("CITYGRID_CHROMIUM", _browser(tmp_path, "slow", "exec sleep 60"))
    first_error: list[Exception] = []

    def first():
        try:
            html_to_pdf("<p>1</p>", printers=printers, timeout_s=1.5)
        except PdfUnavailable as e:
            first_error.append(e)

    worker = threading.Thread(target=first)
    worker.start()
    deadline = time.monotonic() + 10
    while printers.acquire(blocking=False):          # wait until the first one holds the printer
        printers.release()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pytest.raises(PdfUnavailable, match="busy for 0.2 s; try again"):
        html_to_pdf("<p>2</p>", printers=printers, wait_s=0.2)
    worker.join()
    assert len(first_error) == 1 and "did not finish" in str(first_error[0])
    with pytest.raises(PdfUnavailable, match="did not finish"):      # free again: this one gets to print
        html_to_pdf("<p>3</p>", printers=printers, timeout_s=0.3, wait_s=0.1)
