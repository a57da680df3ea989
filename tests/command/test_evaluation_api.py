"""GET /api/evaluation/{subject}: JSON, CSV and XLSX, the default period, and who sees which rows."""
from __future__ import annotations

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from command.auth import create_user
from tests.conftest import PASSWORD
from tests.workflows.conftest import jpeg
from workflows.case_rules import ActionRequest
from workflows.cases import NewReport, act, report
from workflows.photos import store_photo

CST = ZoneInfo("Asia/Shanghai")
MARCH = "start=2026-03-01&end=2026-04-01"


def at(h: int, m: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, 2, h, m, tzinfo=CST)


@pytest.fixture
def city(client, db, tmp_path):
    """Two inspector reports on Monday 2 March 2026: the bureau handles one in 50 minutes
    (on time), the water company never touches the other (overdue by now)."""
    def user(name, role, **extra):
        return create_user(db, username=name, password=PASSWORD, role=role, actor="test", **extra)

    people = {name: user(name, role, **extra) for name, role, extra in (
        ("insp", "inspector", {"areas": ["430223001001"]}), ("insp2", "inspector", {"areas": ["430223001002"]}),
        ("op", "operator", {}), ("disp", "dispatcher", {}), ("lead", "leader", {}), ("boss", "commander", {}),
        ("shift", "shift_lead", {}), ("root", "admin", {}),
        ("bureau", "department", {"dept": "县城市管理和综合执法局"}), ("water", "department", {"dept": "攸县自来水公司"}))}
    desk = client.app.state.desk

    def step(case_id, action, who, when, **request):
        photos = [store_photo(tmp_path / "data", jpeg(), "after")] if action == "handle" else []
        act(db, desk, case_id, action, people[who], ActionRequest(**request), photos=photos, now=when)

    for lon, dept, handled in ((113.3405, people["bureau"].dept_id, True), (113.3415, people["water"].dept_id, False)):
        cid = report(db, desk, NewReport(source="inspector", kind="event", class_code="0102", lon=lon, lat=27.0005),
                     actor=people["insp"], now=at(10)).case["id"]
        step(cid, "file", "op", at(10, 5))
        step(cid, "dispatch", "disp", at(10, 10), dept_id=dept)
        if handled:
            step(cid, "accept", "bureau", at(10, 20))
            step(cid, "handle", "bureau", at(11))
    tokens = {}
    for name in people:
        r = client.post("/api/auth/token", data={"username": name, "password": PASSWORD})
        tokens[name] = {"Authorization": f"Bearer {r.json()['access_token']}"}
    return people, tokens


def test_json_csv_and_xlsx_agree(client, city):
    people, tokens = city
    bureau, water = people["bureau"].dept_id, people["water"].dept_id
    r = client.get(f"/api/evaluation/department?{MARCH}", headers=tokens["lead"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["role"], body["start"], body["end"]) == ("专业部门", "2026-03-01T00:00:00+08:00",
                                                          "2026-04-01T00:00:00+08:00")
    assert body["formulas"]["score"] == "按期处置率*0.6 + 处置率*0.2 + (1-返工率)*0.2"
    assert {"name": "按期处置率", "percent": True} in body["columns"]
    first, second = body["rows"]
    assert (first["id"], first["rank"], first["score"], first["grade"]) == (bureau, 1, 100.0, "A")
    assert first["indicators"] == {"应处置数": 1, "处置数": 1, "按期处置数": 1, "超期处置数": 0, "处置率": 1.0,
                                   "按期处置率": 1.0, "返工数": 0, "返工率": 0.0, "超期未处置数": 0, "应结案数": 1,
                                   "按期结案数": 0, "平均处置时长": 0.83, "按期结案率": 0.0}
    assert (second["id"], second["score"], second["grade"]) == (water, 0.0, "E")
    assert second["indicators"]["超期未处置数"] == 1 and second["indicators"]["返工率"] is None

    r = client.get(f"/api/evaluation/department?{MARCH}&format=csv", headers=tokens["lead"])
    assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == 'attachment; filename="evaluation-department-20260301-20260401.csv"'
    assert r.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [(x["名称"], x["应处置数"], x["按期处置率"], x["返工率"], x["得分"], x["等级"]) for x in rows] == [
        ("县城市管理和综合执法局", "1", "100.00%", "0.00%", "100.0", "A"),
        ("攸县自来水公司", "1", "0.00%", "", "0.0", "E")]

    r = client.get(f"/api/evaluation/department?{MARCH}&format=xlsx", headers=tokens["lead"])
    assert r.status_code == 200 and r.headers["content-disposition"].endswith('.xlsx"')
    ws = openpyxl.load_workbook(io.BytesIO(r.content)).active
    header = [c.value for c in ws[1]]
    assert header[:3] == ["排名", "编号", "名称"] and header[-2:] == ["得分", "等级"]
    line = dict(zip(header, ws[2]))
    assert (line["名称"].value, line["应处置数"].value, line["按期处置率"].value, line["得分"].value) == \
        ("县城市管理和综合执法局", 1, 1.0, 100.0)
    assert line["按期处置率"].number_format == "0.00%" and line["平均处置时长(小时)"].value == 0.83
    assert ws.max_row == 3

    r = client.get(f"/api/evaluation/inspector?{MARCH}", headers=tokens["lead"])
    mine = next(x for x in r.json()["rows"] if x["id"] == people["insp"].id)
    # both reports filed, none missed; no 核实/核查 tasks: those terms are left out of the score
    assert (mine["indicators"]["有效上报率"], mine["indicators"]["按时核实率"], mine["score"]) == (1.0, None, 100.0)


ACCESS = [  # (user, subject, what they get)
    ("lead", "department", "all"), ("root", "department", "all"), ("shift", "inspector", "all"),
    ("boss", "community", "all"),
    ("bureau", "department", "own"), ("insp", "inspector", "own"),
    ("bureau", "inspector", 403), ("insp", "department", 403), ("insp", "grid", 403),
    ("op", "operator", 403), ("disp", "department", 403),
]


def test_who_sees_which_rows(client, city):
    people, tokens = city
    for who, subject, expected in ACCESS:
        for fmt in ("json", "csv"):
            r = client.get(f"/api/evaluation/{subject}?{MARCH}&format={fmt}", headers=tokens[who])
            if expected == 403:
                assert r.status_code == 403 and r.json()["error"] == "Forbidden", (who, subject, r.text)
                continue
            assert r.status_code == 200, (who, subject, r.text)
            if fmt == "json":
                ids = [x["id"] for x in r.json()["rows"]]
            else:                               # the file carries exactly the same rows
                ids = [x["名称"] for x in csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")))]
            if expected == "own":
                me = people[who]
                own = (me.dept_id, "县城市管理和综合执法局") if me.role == "department" else (me.id, me.display_name)
                assert ids == [own[0] if fmt == "json" else own[1]], (who, subject, ids)
            else:
                assert len(ids) >= 2, (who, subject, ids)
    r = client.get(f"/api/evaluation/department?{MARCH}", headers=tokens["insp"])
    assert "sees only their own evaluation: /api/evaluation/inspector" in r.json()["message"]


def test_default_period_and_bad_requests(client, login):
    lead = login("leader")
    today = dt.datetime.now(CST).date()
    r = client.get("/api/evaluation/grid", headers=lead)
    assert r.status_code == 200 and r.json()["start"] == f"{today:%Y-%m}-01T00:00:00+08:00"
    assert len(r.json()["rows"]) == 4 and all(x["score"] is None for x in r.json()["rows"])
    r = client.get("/api/evaluation/grid?start=2026-02-01", headers=lead)
    assert (r.json()["start"][:10], r.json()["end"][:10]) == ("2026-02-01", "2026-03-01")
    assert client.get("/api/evaluation/grid").status_code == 401
    for query, message in (("mayor?", "subject"), ("grid?start=2026-04-01&end=2026-03-01", "must be before end"),
                           ("grid?format=pdf", "format"), ("grid?start=yesterday", "start"),
                           ("grid?start=2000-01-01&end=2030-01-01", "longer than")):
        r = client.get(f"/api/evaluation/{query}", headers=lead)
        assert r.status_code == 422 and message in r.json()["message"], (query, r.text)
