"""The replay page in a real Chromium: a unit's morning on the offline base map, with the
timeline, play/pause, the stop and the alarm on the way, in Chinese and English."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright

from command.auth import create_user
from tests.command.test_browser_map import CHROMIUM, CHROMIUM_ARGS, live_server  # noqa: F401 (fixture)
from tests.command.test_track_api import patrol  # noqa: F401 (fixture)
from tests.conftest import PASSWORD
from tests.devices.test_tracks import T0

pytestmark = pytest.mark.browser


@pytest.fixture
def page():
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="zh-CN", timezone_id="Europe/Berlin")
        yield page
        browser.close()


@pytest.fixture
def unit_id(db, patrol):
    """test_track_api's unit with a morning's track and an alarm, and a shift lead to watch it."""
    create_user(db, username="duty", password=PASSWORD, role="shift_lead", display_name="李值班", actor="test")
    return patrol


def _log_in(page, url: str, username: str = "duty") -> None:
    page.goto(url)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form#login button[type=submit]")


def test_replay_a_morning(live_server, page, unit_id):
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    # The browser's clock is in Berlin: the page still speaks China time.
    _log_in(page, f"{live_server}/units/{unit_id}/replay?date=2026-05-04")
    page.wait_for_selector("body[data-ready=true]", timeout=20000)
    assert page.inner_text("#unit-name") == "监督员张三"
    assert page.inner_text("[data-fact=replay_stops]") == "1"
    assert page.inner_text("[data-fact=replay_bad]") == "3"
    assert page.inner_text("[data-fact=replay_distance]").startswith("1.2")
    assert page.inner_text("[data-fact=replay_period]") == "09:00:00–09:39:09"
    assert "09:19:09–09:34:10" in page.inner_text("[data-fact=replay_gaps]")
    assert "停留超时" in page.inner_text("#alarm-list") and page.inner_text("#clock") == "09:00:00"

    # The stop in the list: the marker goes to where the unit stood.
    page.click("#stop-list a")
    assert page.get_attribute("#now", "data-state") == "stopped"
    at_stop = page.evaluate("(() => { const m = replay.marker.getLatLng(), s = replay.stops[0];"
                            " return [m.lat - s.lat, m.lng - s.lon]; })()")
    assert max(abs(v) for v in at_stop) < 1e-9
    # The alarm in the list: the timeline jumps to when it was raised.
    page.click("#alarm-list a")
    assert page.inner_text("#clock") == "09:12:00"

    # Play fast, then pause: time has moved on and stays put.
    page.select_option("#rate", "1200")
    page.click("#play")
    assert page.inner_text("#play") == "暂停"
    page.wait_for_function("document.querySelector('#clock').textContent > '09:13:00'")
    page.click("#play")
    assert page.inner_text("#play") == "播放"
    paused_at = page.evaluate("replay.now")
    two_frames_later = ("new Promise((done) => requestAnimationFrame(() =>"
                        " requestAnimationFrame(() => done(replay.now))))")
    assert page.evaluate(two_frames_later) == paused_at and paused_at > T0.timestamp() * 1000 + 13 * 60_000

    # Drag the timeline into the silence: the marker waits, greyed, at the last fix.
    page.evaluate("(() => { const s = document.querySelector('#timeline');"
                  " s.value = String(9 * 3600 + 25 * 60); s.dispatchEvent(new Event('input')); })()")
    assert page.inner_text("#clock") == "09:25:00"
    assert page.get_attribute("#now", "data-state") == "silent" and "信号中断" in page.inner_text("#now")

    page.click("#lang")
    assert page.inner_text("#play") == "Play" and page.inner_text("#replay-panel h3") == "Stops"
    assert "No signal" in page.inner_text("#now") and "Stationary too long" in page.inner_text("#alarm-list")

    hosts = {urlsplit(u).netloc for u in requested if u.startswith("http")}
    assert hosts == {urlsplit(live_server).netloc}, hosts


def test_a_unit_out_of_sight_says_so(live_server, page, db, unit_id, tiny_city):
    create_user(db, username="roads", password=PASSWORD, role="department", dept=tiny_city["city_dept"],
                actor="test")
    _log_in(page, f"{live_server}/units/{unit_id}/replay?date=2026-05-04", "roads")
    page.wait_for_function("document.querySelector('#replay-msg').textContent.includes('无权查看')", timeout=20000)
    assert page.is_disabled("#play")
