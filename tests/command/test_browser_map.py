"""The map page in a real Chromium: log in, see the city, look a point up — all offline."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def live_server(server):
    """The app on a real port (tests/command/conftest.py), for the browser."""
    return server


@pytest.fixture
def page():
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="zh-CN")
        yield page
        browser.close()


def test_login_and_see_the_city_offline(live_server, page, db):
    from command.auth import create_user

    create_user(db, username="leader", password=PASSWORD, role="leader", display_name="王县长", actor="test")
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{live_server}/map")
    page.fill("input[name=username]", "leader")
    page.fill("input[name=password]", PASSWORD)
    page.click("form#login button[type=submit]")
    page.wait_for_selector("body[data-ready=true]", timeout=15000)
    assert not page.is_visible("form#login") and page.is_visible("#map")
    stats = page.inner_text("#stats")
    assert "攸县" in stats and re.search(r"4\s*单元网格", stats) and re.search(r"3\s*部件", stats)
    assert "王县长" in page.inner_text("#who")

    # Click inside grid 430223001001002 (113.341–113.342, 27.000–27.001): the look-up answers.
    page.evaluate("map.fire('click', {latlng: L.latLng(27.0005, 113.3415)})")
    page.wait_for_function("document.querySelector('#lookup').innerText.includes('430223001001002')")
    assert "东正社区" in page.inner_text("#lookup")

    # English switch.
    page.click("#lang")
    assert page.inner_text("#lang") == "中文"
    assert page.inner_text("#panel h2") == "Jurisdiction"
    assert page.evaluate("document.documentElement.lang") == "en"

    hosts = {urlsplit(u).netloc for u in requested if u.startswith("http")}
    assert hosts == {urlsplit(live_server).netloc}, hosts


def test_wrong_password_shows_the_message(live_server, page):
    page.goto(f"{live_server}/map")
    page.fill("input[name=username]", "nobody")
    page.fill("input[name=password]", "wrong-password")
    page.click("form#login button[type=submit]")
    page.wait_for_function("document.querySelector('#login-error').innerText.length > 0")
    assert page.inner_text("#login-error") == "wrong user name or password"


def test_api_docs_load_nothing_from_other_hosts(live_server, page):
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{live_server}/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=15000)
    assert "/api/grids" in page.inner_text(".swagger-ui")
    hosts = {urlsplit(u).netloc for u in requested if u.startswith("http")}
    assert hosts == {urlsplit(live_server).netloc}, hosts
    assert page.goto(f"{live_server}/redoc").status == 404     # ReDoc would load from a CDN: not served


def test_served_pages_reference_no_other_host(client):
    """Government networks are isolated: no page or script may load from elsewhere."""
    pages = ["/map", "/docs", "/static/app/map.js", "/static/app/api.js", "/static/app/i18n.js",
             "/static/app/style.css"]
    for path in pages:
        r = client.get(path)
        assert r.status_code == 200, path
        external = re.findall(r"https?://(?!127\.0\.0\.1|localhost)[^\s\"')]+", r.text)
        assert external == [], (path, external)
