"""The emergency console (/incidents, 应急指挥台) in a real Chromium: a commander reports a
waterlogging incident on the map, its plan starts with owners from the duty roster, a task
done unblocks the one waiting for it, a suggested pump truck is dispatched and its order
shows; a close with mandatory tasks open is refused with the server's message; a public
warning is drafted, approved and issued with its CAP message; a drill is badged in the list;
English; a dispatcher sees no commander controls nor approve button — and nothing is loaded
from another host."""
from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from command.auth import create_user
from tests.command.test_browser_map import live_server, page  # noqa: F401 (fixtures)
from tests.command.test_incident_api import _alarm
from tests.conftest import PASSWORD
from workflows import incidents, response
from workflows.incidents import NewIncident
from workflows.resources import NewResource, add_resource

pytestmark = pytest.mark.browser
WAIT_MS = 20000
# The waterlogging plan's posts and who holds each now (as tests/workflows/test_response.py).
POSTS = {"县应急指挥长": ("chief", "commander", "李指挥长"), "县城管局带班领导": ("dutylead", "leader", "王带班"),
         "排水抢险队长": ("drainer", "dispatcher", "张排水"), "交警大队值班长": ("traffic", "dispatcher", "赵交警"),
         "县融媒体中心值班员": ("media", "dispatcher", "钱融媒"), "消防救援大队值班长": ("fire", "dispatcher", "孙消防")}


def _crew(db) -> dict:
    now = dt.datetime.now(dt.timezone.utc)
    users = {}
    for post, (username, role, name) in POSTS.items():
        users[username] = create_user(db, username=username, password=PASSWORD, role=role, display_name=name,
                                      actor="test")
        post_id = db.execute("INSERT INTO duty_post (name) VALUES (%s) RETURNING id", (post,)).fetchone()["id"]
        db.execute("INSERT INTO duty_shift (post_id, user_id, starts_at, ends_at) VALUES (%s, %s, %s, %s)",
                   (post_id, users[username].id, now - dt.timedelta(hours=1), now + dt.timedelta(hours=8)))
    db.commit()
    return users


def _log_in(tab, username: str) -> None:
    tab.fill("input[name=username]", username)
    tab.fill("input[name=password]", PASSWORD)
    tab.click("form#login button[type=submit]")
    expect(tab.locator("body")).to_have_attribute("data-ready", "true", timeout=WAIT_MS)


def _task(tab, step: str):
    return tab.locator(f'li.task[data-step="{step}"]')


def test_a_commander_runs_a_waterlogging_incident_from_the_console(live_server, page, db):  # noqa: F811
    crew = _crew(db)
    truck = add_resource(db, NewResource("泵车1号", "pump_truck", 113.3412, 27.0005), actor="test")["id"]
    add_resource(db, NewResource("泵车2号", "pump_truck", 113.3435, 27.0005), actor="test")
    drill = incidents.create(db, NewIncident("城市内涝演练", "自然灾害", "水旱灾害", "Ⅳ", 113.3415, 27.0005,
                                             radius_m=300, drill=True), crew["chief"])["id"]
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{live_server}/incidents")
    _log_in(page, "chief")

    # The drill is in the list, badged.
    drill_row = page.locator(f'#inc-table tr[data-id="{drill}"]')
    expect(drill_row.locator(".drill-badge")).to_have_text("【演练】")
    expect(drill_row.locator(".lv")).to_have_attribute("data-level", "Ⅳ")

    # Report: category and subtype from the catalog, the place by a click on the small map.
    page.click("#inc-new")
    form = page.locator("#report-form")
    form.locator("input[name=title]").fill("建设路积水")
    form.locator("select[name=category]").select_option("自然灾害")
    form.locator("select[name=subtype]").select_option("水旱灾害")
    form.locator("select[name=level]").select_option("Ⅳ")
    page.wait_for_function("incForm.map !== null")
    page.evaluate("incForm.map.fire('click', {latlng: L.latLng(27.0005, 113.3405)})")
    expect(form.locator("input[name=lon]")).to_have_value("113.340500")
    form.locator("input[name=radius_m]").fill("200")
    form.locator(".detail-row input[name=detail_value]").first.fill("35")
    form.locator("button[type=submit]").click()

    detail = page.locator("#inc-detail")
    expect(detail).to_have_attribute("data-status", "responding", timeout=WAIT_MS)
    inc = int(detail.get_attribute("data-id"))
    row = db.execute("SELECT title, details, radius_m, drill FROM incident WHERE id = %s", (inc,)).fetchone()
    assert row == {"title": "建设路积水", "details": {"depth": 35}, "radius_m": 200, "drill": False}
    expect(page.locator("#d-msg")).to_contain_text("攸县城市内涝应急预案（4 项任务）")
    expect(page.locator(f'#inc-table tr[data-id="{inc}"] .open-tasks')).to_have_text("4", timeout=WAIT_MS)

    # The plan's Ⅳ tasks with their owners from the roster; pumps waits for verify.
    verify, pumps = _task(page, "verify"), _task(page, "pumps")
    expect(verify).to_have_attribute("data-status", "open")
    expect(verify.locator(".task-meta")).to_contain_text("张排水")
    expect(verify.locator(".task-meta")).to_contain_text("排水抢险队长")
    expect(pumps).to_have_attribute("data-status", "blocked")
    expect(pumps.locator(".task-deps .dep.unmet")).to_have_attribute("data-step", "verify")
    assert page.locator('li.task[data-step="inform"] .tag').first.inner_text() == "非必办"

    # Closing now is refused: the server names the mandatory tasks still open.
    page.click('#d-command button[data-status="closed"]')
    expect(page.locator("#d-msg")).to_contain_text("mandatory", timeout=WAIT_MS)
    expect(page.locator("#d-msg")).to_contain_text("现场核实")
    expect(detail).to_have_attribute("data-status", "responding")

    # The checklist ticked, one box at a time (each with the version it last saw), then done.
    for i in range(3):
        version = verify.get_attribute("data-version")
        verify.locator(f'input[data-check="{i}"]').check()
        expect(verify).not_to_have_attribute("data-version", version, timeout=WAIT_MS)
        expect(verify.locator(f'input[data-check="{i}"]')).to_be_checked()
    verify.locator('button[data-task-action="done"]').click()
    expect(verify).to_have_attribute("data-status", "done", timeout=WAIT_MS)
    expect(pumps).to_have_attribute("data-status", "open")            # unblocked
    expect(_task(page, "traffic_control")).to_have_attribute("data-status", "open")
    assert db.execute("SELECT checklist FROM incident_task WHERE incident_id = %s AND step_id = 'verify'",
                      (inc,)).fetchone()["checklist"] == [{"item": i, "done": True} for i in ("确认积水点位", "测量积水深度", "拍照回传")]

    # The nearest pump truck is suggested first and dispatched; its order shows.
    pumps.locator("button[data-suggest]").click()
    need = pumps.locator('.need[data-type="pump_truck"]')
    expect(need.locator("li[data-resource]").first).to_contain_text("泵车1号", timeout=WAIT_MS)
    need.locator(f'button[data-dispatch="{truck}"]').click()
    order = page.locator("#d-orders tr[data-order]")
    expect(order).to_have_count(1, timeout=WAIT_MS)
    expect(order).to_contain_text("泵车1号")
    expect(order).to_have_attribute("data-status", "sent")
    assert db.execute("SELECT status FROM resource WHERE id = %s", (truck,)).fetchone()["status"] == "assigned"
    # The dispatched truck is no longer suggested.
    expect(need.locator(f'li[data-resource="{truck}"]')).to_have_count(0, timeout=WAIT_MS)
    order.locator('button[data-order-action="acknowledge"]').click()
    expect(order).to_have_attribute("data-status", "acknowledged", timeout=WAIT_MS)

    # Someone else starts a task while the commander is writing a note on it (the live reload
    # waits until the typing is done): the commander's stale action gets a 409, and the page
    # says so and shows the task as it now is.
    traffic = _task(page, "traffic_control")
    traffic.locator("input[name=task_note]").fill("围挡已就位")
    traffic_id = int(traffic.get_attribute("data-task"))
    response.act_on_task(db, traffic_id, "start", crew["traffic"])
    page.wait_for_function("incPage.pendingDetail === true", timeout=WAIT_MS)
    traffic.locator('button[data-task-action="start"]').dispatch_event("click")     # no blur: still stale
    expect(page.locator("#task-msg")).to_contain_text("有人刚刚修改了这里，已重新加载", timeout=WAIT_MS)
    expect(traffic).to_have_attribute("data-status", "in_progress")

    # The timeline, newest first, has what was done.
    expect(page.locator("#d-timeline li").first).to_contain_text("开始任务「积水路段设置围挡")
    expect(page.locator("#d-timeline li[data-kind=dispatch]")).to_contain_text("调派 泵车1号")
    expect(page.locator("#d-situation")).to_have_attribute("href", f"/incidents/{inc}/situation")

    # A public warning from the plan's template: drafted, previewed, approved (签发), issued
    # with its CAP message; then an update drafted and left for approval.
    page.click("#d-alert-form summary")
    alert_form = page.locator("#alert-form")
    alert_form.locator("button[type=submit]").click()
    expect(page.locator("#alert-preview")).to_contain_text("35厘米", timeout=WAIT_MS)
    first = page.locator("#d-alerts li[data-alert]").first
    expect(first).to_have_attribute("data-state", "draft", timeout=WAIT_MS)
    first.locator("button[data-approve]").click()
    expect(first).to_have_attribute("data-state", "issued", timeout=WAIT_MS)
    cap_link = first.locator("a.cap-link")
    alert_id = first.get_attribute("data-alert")
    expect(cap_link).to_have_attribute("href", f"/api/alerts/{alert_id}.cap")
    cap = page.request.get(f"{live_server}/api/alerts/{alert_id}.cap")
    assert cap.ok and "<status>Actual</status>" in cap.text() and "urn:oasis:names:tc:emergency:cap:1.2" in cap.text()
    alert_form.locator("select[name=msg_type]").select_option("Update")
    alert_form.locator("select[name=references_id]").select_option(alert_id)
    alert_form.locator("textarea[name=values]").fill("depth=50")
    alert_form.locator("button[type=submit]").click()
    expect(page.locator("#alert-preview")).to_contain_text("50厘米", timeout=WAIT_MS)
    update = page.locator('#d-alerts li[data-state="draft"]')
    expect(update).to_have_count(1, timeout=WAIT_MS)
    expect(update.locator("button[data-approve]")).to_be_visible()

    # English.
    page.click("#lang")
    expect(page.locator("#inc-table thead th").nth(1)).to_have_text("Title")
    expect(page.locator("#inc-detail .d-section h3").nth(1)).to_have_text("Tasks", timeout=WAIT_MS)
    expect(drill_row.locator(".drill-badge")).to_have_text("[DRILL]")
    expect(_task(page, "verify").locator(".tag").first).to_have_text("mandatory")
    expect(_task(page, "verify").locator(".task-st")).to_have_text("Done")
    expect(page.locator(f'#inc-table tr[data-id="{inc}"] .lv')).to_have_text("Ⅳ")

    # A dispatcher, deep-linked to the incident: dispatch yes; status, level, waivers and
    # approvals no (the server refuses them too).
    page.click("#logout")
    expect(page.locator("form#login")).to_be_visible(timeout=WAIT_MS)
    page.goto(f"{live_server}/incidents?id={inc}")
    _log_in(page, "traffic")
    expect(page.locator("#inc-detail")).to_have_attribute("data-status", "responding", timeout=WAIT_MS)
    expect(_task(page, "pumps").locator("button[data-suggest]")).to_be_visible()
    expect(_task(page, "traffic_control").locator('button[data-task-action="done"]')).to_be_visible()   # the owner
    expect(page.locator('#d-alerts li[data-state="draft"]')).to_have_count(1)       # sees the draft, cannot approve it
    assert page.locator("#d-command").is_hidden()
    assert page.locator('button[data-task-action="waive"], button[data-approve]').count() == 0

    server = urlsplit(live_server).netloc
    assert all(urlsplit(u).netloc == server for u in requested if u.startswith("http")), \
        [u for u in requested if urlsplit(u).netloc != server]


def test_a_promoted_alarm_is_waived_through_closed_and_reported(live_server, page, db):  # noqa: F811
    _crew(db)
    alarm = _alarm(db)
    # From the alarm's own page: 升级为突发事件 opens the form for it; title and place come from it.
    page.goto(f"{live_server}/alarms#alarm/{alarm}")
    page.fill("input[name=username]", "chief")
    page.fill("input[name=password]", PASSWORD)
    page.click("form#login button[type=submit]")
    page.click("#alarm-promote", timeout=WAIT_MS)
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=WAIT_MS)
    assert page.evaluate("location.pathname + location.search") == f"/incidents?promote=device_alarm:{alarm}"
    expect(page.locator(".promote-note")).to_have_attribute("data-promote", f"device_alarm:{alarm}")
    form = page.locator("#report-form")
    form.locator("select[name=category]").select_option("自然灾害")
    form.locator("select[name=subtype]").select_option("水旱灾害")
    expect(form.locator("select[name=level]")).to_have_value("Ⅳ")          # the usual one by default
    form.locator("button[type=submit]").click()
    detail = page.locator("#inc-detail")
    expect(detail).to_have_attribute("data-status", "responding", timeout=WAIT_MS)
    inc = int(detail.get_attribute("data-id"))
    expect(page.locator("#d-head .d-title")).to_contain_text("道路积水")
    expect(page.locator("#d-facts a")).to_have_attribute("href", f"/alarms#alarm/{alarm}")
    assert page.evaluate("location.search") == ""           # a reload does not promote again

    # A waiver needs a reason: without one the server's message shows; with one it is waived.
    verify = _task(page, "verify")
    verify.locator('button[data-task-action="waive"]').click()
    expect(page.locator("#task-msg")).to_contain_text("written reason", timeout=WAIT_MS)
    expect(verify).to_have_attribute("data-status", "open")
    for step in ("verify", "pumps", "traffic_control"):
        task = _task(page, step)
        task.locator("input[name=task_note]").fill("演练：指挥长确认已处置")
        task.locator('button[data-task-action="waive"]').click()
        expect(task).to_have_attribute("data-status", "waived", timeout=WAIT_MS)
        expect(task.locator(".task-waived")).to_contain_text("演练：指挥长确认已处置")

    # Closed: the optional task is cancelled; the after-action report is fetched with the token.
    page.click('#d-command button[data-status="closed"]')
    expect(detail).to_have_attribute("data-status", "closed", timeout=WAIT_MS)
    expect(_task(page, "inform")).to_have_attribute("data-status", "cancelled")
    assert page.locator("#d-command").is_hidden()
    page.click('button[data-report="html"]')
    link = page.locator("#d-report-link")
    expect(link).to_have_attribute("href", re.compile(r"^blob:"), timeout=WAIT_MS)
    no = db.execute("SELECT incident_no FROM incident WHERE id = %s", (inc,)).fetchone()["incident_no"]
    assert no in page.evaluate("(url) => fetch(url).then((r) => r.text())", link.get_attribute("href"))
    # In English the report comes in English too.
    first = link.get_attribute("href")
    page.click("#lang")
    page.click('button[data-report="html"]')
    expect(link).not_to_have_attribute("href", first, timeout=WAIT_MS)
    english = page.evaluate("(url) => fetch(url).then((r) => r.text())", link.get_attribute("href"))
    assert no in english and "After-action report" in english and "突发事件评估报告" not in english
    page.click("#lang")

    # The list: gone from the open ones, there among the closed.
    expect(page.locator(f'#inc-table tr[data-id="{inc}"]')).to_have_count(0, timeout=WAIT_MS)
    page.select_option("#inc-filters select[name=status]", "closed")
    expect(page.locator(f'#inc-table tr[data-id="{inc}"]')).to_have_attribute("data-status", "closed", timeout=WAIT_MS)

    # A road collapse: two plans cover it, so none starts and the commander is asked to choose.
    page.click("#inc-new")
    form.locator("input[name=title]").fill("建设路路面塌陷")
    form.locator("select[name=category]").select_option("事故灾难")
    form.locator("select[name=subtype]").select_option("公共设施和设备事故")
    page.wait_for_function("incForm.map !== null")
    page.evaluate("incForm.map.fire('click', {latlng: L.latLng(27.0005, 113.3405)})")
    form.locator("button[type=submit]").click()
    expect(page.locator("#d-msg")).to_contain_text("多个预案适用", timeout=WAIT_MS)
    expect(page.locator("#d-msg")).to_contain_text("《攸县城市道路塌陷应急预案》")
    expect(detail).to_have_attribute("data-status", "reported")
