"""The attendance report over HTTP (JSON, CSV, HTML) and from the command line, with the
department rule: a department user sees its own department only."""
from __future__ import annotations

import csv
import io

import pytest
from typer.testing import CliRunner

from command.cli import app
from tests.conftest import TEST_SECRET
from tests.devices.test_attendance import DAY, patrol_day

URL = "/api/reports/attendance"


@pytest.fixture
def day(db, tiny_city):
    ids = patrol_day(db, tiny_city)
    ids["city"], ids["water"] = (db.execute("SELECT id FROM department WHERE name = %s", (name,)).fetchone()["id"]
                                 for name in (tiny_city["city_dept"], tiny_city["water_dept"]))
    return ids


def test_json_report_of_a_department_by_name_or_id(client, login, day, tiny_city):
    admin = login("admin")
    r = client.get(URL, params={"date": DAY.isoformat(), "dept": tiny_city["city_dept"]}, headers=admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["date"] == "2026-03-02" and body["dept"] == {"id": day["city"], "name": tiny_city["city_dept"]}
    assert body["rules"] == {"late_grace_minutes": 10, "early_leave_minutes": 10, "presence_gap_minutes": 5}
    assert {s["unit"]["name"]: s["status"] for s in body["shifts"]} == {
        "监督员diligent": "ok", "监督员slack": "late_early", "监督员absent": "absent"}
    assert body["summary"]["shifts"] == 3 and body["summary"]["absent"] == 1
    slack = next(s for s in body["shifts"] if s["unit"]["name"] == "监督员slack")
    assert slack["minutes_inside"] == 95.0 and slack["coverage_pct"] == 50.0 and slack["alarms"]["out_of_area"] == 2
    by_id = client.get(URL, params={"date": DAY.isoformat(), "dept_id": day["city"]}, headers=admin).json()
    assert by_id["shifts"] == body["shifts"]
    everyone = client.get(URL, params={"date": DAY.isoformat()}, headers=admin).json()
    assert everyone["dept"] is None and everyone["summary"]["shifts"] == 4


def test_csv_and_html_formats(client, login, day, tiny_city):
    leader = login("leader")
    params = {"date": DAY.isoformat(), "dept_id": day["city"]}
    r = client.get(URL, params={**params, "format": "csv"}, headers=leader)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert f'filename="attendance-2026-03-02-dept{day["city"]}.csv"' in r.headers["content-disposition"]
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][0] == "部门" and len(rows) == 4 and {row[7] for row in rows[1:]} == {"正常", "迟到早退", "缺勤"}
    en = client.get(URL, params={**params, "format": "csv", "lang": "en"}, headers=leader)
    assert en.content.decode("utf-8-sig").startswith("Department,Unit,Kind")
    page = client.get(URL, params={**params, "format": "html"}, headers=leader)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "考勤与巡查覆盖日报" in page.text and tiny_city["city_dept"] in page.text and "迟到早退" in page.text
    assert "http://" not in page.text and "https://" not in page.text
    en_page = client.get(URL, params={**params, "format": "html", "lang": "en"}, headers=leader)
    assert "Daily attendance and patrol coverage" in en_page.text and "Late and early leave" in en_page.text


def test_a_department_user_sees_its_own_department_only(client, login, day, tiny_city):
    water = login("department", dept=tiny_city["water_dept"])
    own = client.get(URL, params={"date": DAY.isoformat()}, headers=water)
    assert own.status_code == 200 and own.json()["dept"]["id"] == day["water"]
    assert [s["unit"]["name"] for s in own.json()["shifts"]] == ["监督员water"]
    assert client.get(URL, params={"date": DAY.isoformat(), "dept_id": day["water"]}, headers=water).status_code == 200
    other = client.get(URL, params={"date": DAY.isoformat(), "dept": tiny_city["city_dept"]}, headers=water)
    assert other.status_code == 403 and "own department" in other.json()["message"]
    assert client.get(f"/api/shifts/{day['water_shift']}/attendance", headers=water).json()["status"] == "ok"
    refused = client.get(f"/api/shifts/{day['slack_shift']}/attendance", headers=water)
    assert refused.status_code == 403 and "another department" in refused.json()["message"]


def test_one_shift_and_who_may_read(client, login, day):
    r = client.get(f"/api/shifts/{day['slack_shift']}/attendance", headers=login("shift_lead"))
    assert r.status_code == 200 and r.json()["status"] == "late_early" and r.json()["grids_missed"] == [
        "430223001001002"]
    assert client.get("/api/shifts/987654/attendance", headers=login("commander")).status_code == 404
    for role in ("operator", "dispatcher"):
        refused = client.get(URL, params={"date": DAY.isoformat()}, headers=login(role))
        assert refused.status_code == 403 and "report.read" in refused.json()["message"]
    assert client.get(URL, params={"date": DAY.isoformat()}).status_code == 401


@pytest.mark.parametrize("params, expect", [
    ({"date": "2026-13-01"}, "date"),
    ({"date": "yesterday"}, "date"),
    ({}, "date"),
    ({"date": "2026-03-02", "format": "pdf"}, "format"),
    ({"date": "2026-03-02", "lang": "fr"}, "lang"),
    ({"date": "2026-03-02", "dept": "没有这个部门"}, "does not exist"),
    ({"date": "2026-03-02", "dept": "x", "dept_id": 1}, "not both"),
])
def test_bad_requests_are_422_with_a_reason(client, login, params, expect):
    r = client.get(URL, params=params, headers=login("admin"))
    assert r.status_code == 422 and expect in r.json()["message"]


def test_an_unknown_department_id_is_404(client, login):
    r = client.get(URL, params={"date": "2026-03-02", "dept_id": 4242}, headers=login("admin"))
    assert r.status_code == 404 and "department 4242" in r.json()["message"]


def test_the_cli_writes_the_report(db_url, day, tiny_city, tmp_path):
    env = {"CITYGRID_DATABASE_URL": db_url, "CITYGRID_SECRET_KEY": TEST_SECRET, "CITYGRID_DEMO": "0"}
    out = tmp_path / "day.csv"
    r = CliRunner().invoke(app, ["units", "report", "--date", "2026-03-02", "--dept", tiny_city["city_dept"],
                                 "--out", str(out)], env=env)
    assert r.exit_code == 0, r.output
    assert "3 shift(s), 1 absent, 1 late, 1 early leave" in r.output
    assert out.read_bytes().startswith(b"\xef\xbb\xbf") and "监督员slack" in out.read_text("utf-8-sig")
    html = CliRunner().invoke(app, ["units", "report", "--date", "2026-03-02", "--format", "html", "--lang", "en"],
                              env=env)
    assert html.exit_code == 0 and "Daily attendance and patrol coverage" in html.output
    assert "监督员water" in html.output
    bad = CliRunner().invoke(app, ["units", "report", "--date", "2026-3-32"], env=env)
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output
