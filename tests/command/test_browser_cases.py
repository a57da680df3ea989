"""The case loop in a real Chromium: an inspector reports from the phone page (/m), the
console (/console) walks the case to 已结案; the phone's outbox survives a dead network
without duplicates; the console offers exactly the allowed actions and shows a 409.
Every request must stay on our own server."""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright

from command.auth import create_user
from tests.command.test_browser_map import CHROMIUM, CHROMIUM_ARGS, live_server  # noqa: F401 (fixture)
from tests.conftest import PASSWORD
from tests.workflows.conftest import jpeg
from workflows.cases import CaseDesk, NewReport, act, report

pytestmark = pytest.mark.browser
HERE = {"latitude": 27.0005, "longitude": 113.3405, "accuracy": 12}       # inside grid 430223001001001
SHOTS = os.environ.get("CITYGRID_SCREENSHOTS")                            # a folder: save screenshots there
WAIT = 15000


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def people(db, tiny_city):
    """One user per role; the inspector patrols community 430223001001 and the city bureau
    is the street's own department (属地), so events there are routed to it."""
    city = db.execute("SELECT id FROM department WHERE name = %s", (tiny_city["city_dept"],)).fetchone()["id"]
    water = db.execute("SELECT id FROM department WHERE name = %s", (tiny_city["water_dept"],)).fetchone()["id"]
    db.execute("INSERT INTO area_department (area_code, dept_id) VALUES ('430223001', %s)", (city,))
    made = {"city_dept_id": city, "water_dept_id": water}
    for role, extra in (("operator", {}), ("shift_lead", {}), ("dispatcher", {}),
                        ("department", {"dept": tiny_city["city_dept"]}), ("inspector", {"areas": ["430223001001"]})):
        made[role] = create_user(db, username=role, password=PASSWORD, role=role, display_name=f"测试{role}",
                                 actor="test", **extra)
    return made


class Web:
    """Browser contexts on the live server, each request recorded to check the hosts."""

    def __init__(self, browser, base: str):
        self.browser, self.base = browser, base
        self.contexts, self.requested = [], []

    def _context(self, **options):
        context = self.browser.new_context(locale="zh-CN", **options)
        context.on("request", lambda r: self.requested.append(r.url))
        self.contexts.append(context)
        return context

    def phone(self):
        return self._context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                             geolocation=HERE, permissions=["geolocation"])

    def desk(self):
        return self._context(viewport={"width": 1400, "height": 900})

    def login(self, context, path: str, username: str):
        page = context.new_page()
        page.goto(self.base + path)
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", PASSWORD)
        page.click("form#login button[type=submit]")
        page.wait_for_selector("body[data-ready=true]", timeout=WAIT)
        return page

    def assert_only_own_host(self):
        hosts = {urlsplit(u).netloc for u in self.requested if u.startswith("http")}
        assert hosts == {urlsplit(self.base).netloc}, hosts


@pytest.fixture
def web(browser, live_server):  # noqa: F811 (live_server is the imported fixture)
    w = Web(browser, live_server)
    yield w
    for context in w.contexts:
        context.close()


def shot(page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / name), full_page=False)


def photo(name: str, colour=(200, 50, 50)) -> dict:
    return {"name": name, "mimeType": "image/jpeg", "buffer": jpeg(colour)}


def fill_report(m, description: str) -> None:
    m.select_option("#report-form select.big", "01")
    m.select_option("#report-form select[name=class_code]", "0102")
    m.fill("#report-form textarea[name=description]", description)


def open_case(page, case_id: int) -> None:
    page.click(f"#case-table tr[data-case='{case_id}']")
    page.wait_for_selector(f".case-head[data-case='{case_id}']", timeout=WAIT)


def take_action(page, case_id: int, action: str, *, note: str | None = None, photos=None) -> None:
    """Click the action, fill what it asks, confirm, and wait for the case to come back changed."""
    version = page.get_attribute(".case-head", "data-version")
    page.click(f"#case-actions button[data-action={action}]")
    form = "#case-actions form.action-form"
    page.wait_for_selector(f"{form}[data-action={action}]")
    if note:
        page.fill(f"{form} textarea[name=note]", note)
    if photos:
        page.set_input_files(f"{form} input[name=photos]", files=photos)
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector(f".case-head[data-case='{case_id}']:not([data-version='{version}'])", timeout=WAIT)


def state_of(db, case_id: int) -> str:
    return db.execute("SELECT state FROM case_file WHERE id = %s", (case_id,)).fetchone()["state"]


def test_report_from_the_phone_and_close_it_in_the_console(web, people, db):
    # The inspector reports from /m: GPS with accuracy, 大类 → 小类, a photo, a description.
    phone = web.phone()
    m = web.login(phone, "/m", "inspector")
    m.wait_for_function("document.querySelector('#position').innerText.includes('±12 m')", timeout=WAIT)
    m.wait_for_selector("#nearby button.chip")                 # the water-main cover 上水井盖0001 is right here
    fill_report(m, "路边暴露垃圾一堆")
    m.set_input_files("#photos", files=[photo("before.jpg")])
    m.wait_for_selector("#previews img")
    shot(m, "m.png")
    m.click("#send")
    m.wait_for_function("document.querySelector('#report-status').innerText.includes('已发送')", timeout=WAIT)
    case = db.execute("SELECT id, case_no, state, source, event_class, ST_X(location) AS lon, ST_Y(location) AS lat"
                      " FROM case_file").fetchone()
    assert (case["state"], case["source"], case["event_class"]) == ("reported", "inspector", "0102")
    assert abs(case["lon"] - HERE["longitude"]) < 1e-6 and abs(case["lat"] - HERE["latitude"]) < 1e-6
    assert case["case_no"] in m.inner_text("#report-status")
    assert db.execute("SELECT count(*) AS n FROM case_photo WHERE case_id = %s", (case["id"],)).fetchone()["n"] == 1
    assert m.is_hidden("#queue-badge")
    cid = case["id"]

    desk = web.desk()
    # The operator files it (立案).
    op = web.login(desk, "/console", "operator")
    open_case(op, cid)
    op.wait_for_selector("#case-photos img[src^='blob:']", timeout=WAIT)     # the thumbnail, fetched with the token
    assert op.locator("#case-photos a.thumb").count() == 1
    take_action(op, cid, "file")
    assert "已立案" in op.inner_text(".case-head")

    # The dispatcher sends it to the suggested department, preselected in the picker.
    dispatcher = web.login(desk, "/console", "dispatcher")
    open_case(dispatcher, cid)
    dispatcher.click("#case-actions button[data-action=dispatch]")
    assert dispatcher.input_value("#case-actions select[name=dept_id]") == str(people["city_dept_id"])
    dispatcher.click("#case-actions form.action-form button[type=submit]")
    dispatcher.wait_for_function("document.querySelector('.case-head').innerText.includes('已派遣')", timeout=WAIT)

    # The department accepts it and reports it handled with a photo of the result.
    dept = web.login(desk, "/console", "department")
    open_case(dept, cid)
    take_action(dept, cid, "accept")
    take_action(dept, cid, "handle", note="已清运", photos=[photo("after.jpg", (50, 160, 60))])
    assert "处置完成" in dept.inner_text(".case-head")

    # The operator sends it to check (核查): the grid's inspector gets the task.
    op.bring_to_front()                        # a background tab gets no animation frames: clicks would crawl
    version = op.get_attribute(".case-head", "data-version")
    op.click("#case-reload")
    op.wait_for_selector(f".case-head:not([data-version='{version}'])", timeout=WAIT)
    take_action(op, cid, "send_check")
    assert state_of(db, cid) == "checking"

    # The inspector passes the check from 我的任务 with an after photo.
    m.bring_to_front()
    m.click("nav.tabs button[data-tab=tasks]")
    m.click(f"#task-list button.card[data-case='{cid}']")
    m.wait_for_selector("#task-actions button[data-action=check_pass]", timeout=WAIT)
    m.wait_for_function("document.querySelector('#task-distance').innerText.includes('m')", timeout=WAIT)
    assert m.locator("#task-actions button.action").all_inner_texts() == ["核查通过", "核查不通过（返工）"]
    m.click("#task-actions button[data-action=check_pass]")
    m.set_input_files("#task-actions input[name=photos]", files=[photo("checked.jpg", (60, 60, 200))])
    m.click("#task-actions form.action-form button[type=submit]")
    m.wait_for_function("document.querySelector('#task-status').innerText.includes('✓')", timeout=WAIT)
    assert state_of(db, cid) == "checked"

    # The shift lead closes it.
    lead = web.login(desk, "/console", "shift_lead")
    open_case(lead, cid)
    take_action(lead, cid, "close")
    assert "已结案" in lead.inner_text(".case-head")
    assert state_of(db, cid) == "closed"
    timeline = lead.inner_text("table.timeline")
    for word in ("上报", "立案", "派遣", "签收", "处置反馈", "派发核查", "核查通过", "结案", "已清运"):
        assert word in timeline, word
    shot(lead, "console.png")
    web.assert_only_own_host()


def test_offline_reports_wait_in_the_outbox_and_land_once(web, people, db):
    phone = web.phone()
    m = web.login(phone, "/m", "inspector")
    m.wait_for_function("document.querySelector('#position').innerText.includes('±12 m')", timeout=WAIT)

    # No network: the report stays on the phone, photo and all.
    phone.set_offline(True)
    fill_report(m, "离线上报")
    m.set_input_files("#photos", files=[photo("offline.jpg")])
    m.click("#send")
    m.wait_for_function("document.querySelector('#report-status').innerText.includes('待发送队列')", timeout=WAIT)
    assert m.inner_text("#queue-badge") == "待发送 1"
    assert db.execute("SELECT count(*) AS n FROM case_file").fetchone()["n"] == 0

    # The network returns: it is sent by itself, once, and the outbox empties.
    phone.set_offline(False)
    m.wait_for_selector("#queue-badge", state="hidden", timeout=WAIT)
    rows = db.execute("SELECT c.id, r.client_ref, c.description FROM case_file c JOIN case_reporter r ON r.case_id = c.id"
                      ).fetchall()
    assert len(rows) == 1 and rows[0]["description"] == "离线上报" and rows[0]["client_ref"]
    assert db.execute("SELECT count(*) AS n FROM case_photo").fetchone()["n"] == 1
    assert m.evaluate("outbox.list('inspector').then((l) => l.length)") == 0

    # The server takes a report but the answer is lost: the phone keeps it, resends the
    # same client_ref, the server answers `replayed`, and there is still one case for it.
    lost = []

    def lose_the_answer(route):
        if route.request.method == "POST" and not lost:
            route.fetch()                      # the server receives and stores it…
            lost.append(route.request.url)
            route.abort("connectionreset")     # …but the phone never hears back
        else:
            route.continue_()

    m.route("**/api/cases", lose_the_answer)
    fill_report(m, "回执丢失")
    m.click("#send")
    m.wait_for_function("document.querySelector('#report-status').innerText.includes('待发送队列')", timeout=WAIT)
    assert lost and m.inner_text("#queue-badge") == "待发送 1"
    assert db.execute("SELECT count(*) AS n FROM case_file").fetchone()["n"] == 2
    m.evaluate("window.dispatchEvent(new Event('online'))")
    m.wait_for_selector("#queue-badge", state="hidden", timeout=WAIT)
    assert db.execute("SELECT count(*) AS n FROM case_file").fetchone()["n"] == 2
    assert db.execute("SELECT count(*) AS n FROM case_file WHERE description = '回执丢失'").fetchone()["n"] == 1

    # A report the server refuses for good is kept and shown as failed, not dropped silently.
    m.unroute("**/api/cases")
    m.route("**/api/cases", lambda route: route.fulfill(
        status=422, content_type="application/json",
        body='{"error": "Invalid", "message": "(1.0, 1.0) lies outside the jurisdiction"}')
        if route.request.method == "POST" else route.continue_())
    fill_report(m, "被拒绝")
    m.click("#send")
    m.wait_for_selector("#outbox-failed .notice.failed", timeout=WAIT)
    assert "outside the jurisdiction" in m.inner_text("#outbox-failed")
    assert m.evaluate("outbox.list('inspector').then((l) => l.map((i) => i.status))") == ["failed"]

    # The English switch relabels the page, the outbox included.
    m.click("#lang")
    assert m.inner_text("nav.tabs button[data-tab=report]") == "Report"
    assert "Not accepted" in m.inner_text("#outbox-failed")
    web.assert_only_own_host()


@pytest.fixture
def filed_case(db, people):
    desk = CaseDesk.default()
    made = report(db, desk, NewReport(source="inspector", kind="event", class_code="0102", lon=113.3405,
                                      lat=27.0005, description="已立案待派遣"), actor=people["inspector"])
    act(db, desk, made.case["id"], "file", people["operator"])
    return made.case["id"]


def test_console_offers_only_allowed_actions_and_shows_the_conflict(web, people, db, filed_case):
    desk = web.desk()
    lead = web.login(desk, "/console", "shift_lead")
    open_case(lead, filed_case)
    assert lead.locator("#case-actions button.action").all_inner_texts() == ["作废"]

    # Two dispatcher tabs on the same case: the first dispatch wins, the second gets 409.
    tab_a = web.login(desk, "/console", "dispatcher")
    tab_b = web.login(desk, "/console", "dispatcher")
    for tab in (tab_a, tab_b):
        open_case(tab, filed_case)
        assert tab.locator("#case-actions button.action").all_inner_texts() == ["派遣"]
        assert tab.locator("#case-actions button[data-action=close]").count() == 0
    tab_a.bring_to_front()
    tab_a.click("#case-actions button[data-action=dispatch]")
    tab_a.select_option("#case-actions select[name=dept_id]", str(people["water_dept_id"]))   # override the suggestion
    tab_a.click("#case-actions form.action-form button[type=submit]")
    tab_a.wait_for_function("document.querySelector('.case-head').innerText.includes('已派遣')", timeout=WAIT)

    tab_b.bring_to_front()
    tab_b.click("#case-actions button[data-action=dispatch]")
    tab_b.click("#case-actions form.action-form button[type=submit]")
    tab_b.wait_for_function("document.querySelector('#case-actions .error').innerText.length > 0", timeout=WAIT)
    message = tab_b.inner_text("#case-actions .error")
    assert message.startswith("冲突：") and "changed since you opened it" in message
    row = db.execute("SELECT state, dept_id FROM case_file WHERE id = %s", (filed_case,)).fetchone()
    assert (row["state"], row["dept_id"]) == ("dispatched", people["water_dept_id"])

    # A second report of the same problem: the operator sees the candidate and merges into it.
    again = report(db, CaseDesk.default(), NewReport(source="inspector", kind="event", class_code="0102",
                                                     lon=113.3406, lat=27.0005, description="同一处垃圾"),
                   actor=people["inspector"]).case["id"]
    op = web.login(desk, "/console", "operator")
    open_case(op, again)
    assert sorted(op.locator("#case-actions button.action").all_inner_texts()) == sorted(["立案", "不予立案", "合并重复"])
    op.click(f"#case-duplicates button.merge-to[data-target='{filed_case}']")
    assert op.input_value("#case-actions select[name=merge_into]") == str(filed_case)
    op.click("#case-actions form.action-form button[type=submit]")
    op.wait_for_function("document.querySelector('.case-head').innerText.includes('作废')", timeout=WAIT)
    assert f"#{filed_case}" in op.inner_text(".facts")
    assert db.execute("SELECT count(*) AS n FROM case_reporter WHERE case_id = %s", (filed_case,)).fetchone()["n"] == 2

    # A hotline call taken on the console: caller, class, a point on the map → 核实中 for the inspector.
    op.click("#hotline-btn")
    op.wait_for_selector("#hotline-form")
    op.fill("#hotline-form input[name=reporter_name]", "张先生")
    op.fill("#hotline-form input[name=reporter_phone]", "13800000000")
    op.select_option("#hotline-form select.big", "01")
    op.select_option("#hotline-form select[name=class_code]", "0102")
    op.evaluate("hotline.map.fire('click', {latlng: L.latLng(27.0006, 113.3416)})")
    op.wait_for_function("document.querySelector('#hotline-point').innerText.includes('东正社区')", timeout=WAIT)
    op.fill("#hotline-form textarea[name=description]", "来电反映路边有垃圾")
    op.click("#hotline-form button[type=submit]")
    op.wait_for_selector("#hotline-result .ok", timeout=WAIT)
    call = db.execute("SELECT c.state, c.source, r.name, r.phone FROM case_file c JOIN case_reporter r"
                      " ON r.case_id = c.id WHERE c.description = '来电反映路边有垃圾'").fetchone()
    assert call == {"state": "verifying", "source": "hotline", "name": "张先生", "phone": "13800000000"}

    # The department sees only its own cases: the city bureau has none now.
    dept = web.login(desk, "/console", "department")
    dept.wait_for_function("document.querySelector('#list-status').innerText.includes('没有')", timeout=WAIT)
    assert dept.locator("#case-table tbody tr").count() == 0
    web.assert_only_own_host()


def test_case_pages_reference_no_other_host(client):
    """The phone page, the console and every script and style they load stay on our server."""
    shells = {"/m": client.get("/m").text, "/console": client.get("/console").text}
    assets = set()
    for body in shells.values():
        assets.update(re.findall(r'(?:src|href)="(/static/[^"]+)"', body))
    assert {"/static/app/mobile.js", "/static/app/offline-queue.js", "/static/app/console.js"} <= assets
    for path in ["/m", "/console", *sorted(assets)]:
        r = client.get(path)
        assert r.status_code == 200, path
        if path.startswith("/static/vendor/"):
            continue                            # vendored libraries: checked by loading them in the browser tests
        text = re.sub(r'xmlns(?::\w+)?="[^"]*"', "", r.text)     # an XML namespace names, it loads nothing
        external = re.findall(r"https?://(?!127\.0\.0\.1|localhost)[^\s\"')]+", text)
        assert external == [], (path, external)
    for body in shells.values():                # shells hold no data: all of it comes from the API
        assert "430223" not in body and "攸县" not in body
