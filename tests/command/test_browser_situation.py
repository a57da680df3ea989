"""The situation map of one incident (态势图) in a real Chromium: the incident, each layer's
count, a layer switched off, a smaller radius, a new case nearby arriving over the live bus,
English — and nothing loaded from another host."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from command.auth import create_user
from tests.command.test_browser_map import live_server, page  # noqa: F401 (fixtures)
from tests.command.test_situation_api import build_scene
from tests.conftest import PASSWORD
from tests.devices.conftest import app_conn  # noqa: F401 (fixture)
from tests.workflows.conftest import desk, new_case, people  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser
WAIT_MS = 20000


def _count(page, section: str):
    return page.locator(f'.sit-count[data-count="{section}"]')


def test_the_situation_page_shows_layers_counts_and_follows_the_live_bus(live_server, page, db, client, login,  # noqa: F811
                                                                        app_conn, settings, new_case, people):  # noqa: F811
    scene = build_scene(client, login, db, app_conn, settings, new_case, people)
    create_user(db, username="chief", password=PASSWORD, role="commander", display_name="李指挥长", actor="test")
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{live_server}/incidents/{scene['incident']}/situation")
    page.fill("input[name=username]", "chief")
    page.fill("input[name=password]", PASSWORD)
    page.click("form#login button[type=submit]")

    expect(page.locator("body")).to_have_attribute("data-situation", "ready", timeout=WAIT_MS)
    expect(page.locator("#sit-incident")).to_contain_text("联星路积水")
    expected = {"cameras": "2", "resources": "2", "units": "1", "parts": "3", "devices": "2", "cases": "2", "grids": "2"}
    for section, n in expected.items():
        expect(_count(page, section)).to_have_text(n)
    expect(page.locator("#sit-people-affected")).to_have_text("1400")
    expect(page.locator('[data-section="parts"] .sit-class').first).to_contain_text("× 2")
    assert page.locator(".sit-marker.sit-devices.sit-state-alarm").count() == 1       # the gauge in alarm
    assert page.evaluate("sit.layers.cameras.getLayers().length") == 2

    # A layer switched off leaves the map, its list stays.
    page.uncheck('input[data-layer="cameras"]')
    assert page.evaluate("map.hasLayer(sit.layers.cameras)") is False
    assert page.locator(".sit-marker.sit-cameras").count() == 0
    page.check('input[data-layer="cameras"]')
    assert page.evaluate("map.hasLayer(sit.layers.cameras)") is True

    # A smaller radius asks again: the sandbag store 300 m off and the case 250 m off drop out.
    page.select_option("#sit-controls select[name=radius]", "200")
    expect(_count(page, "resources")).to_have_text("1", timeout=WAIT_MS)
    expect(_count(page, "cases")).to_have_text("1")

    # A case reported nearby arrives over the live bus.
    expect(page.locator("body")).to_have_attribute("data-live", "live", timeout=WAIT_MS)
    new_case(lon=113.3407, lat=27.0006)
    expect(_count(page, "cases")).to_have_text("2", timeout=WAIT_MS)

    page.click("#lang")
    expect(page.locator('[data-section="cameras"] h3')).to_contain_text("Cameras that see it")
    expect(page.locator("#sit-population h3")).to_have_text("People affected (estimate)")
    server = urlsplit(live_server).netloc
    assert all(urlsplit(u).netloc == server for u in requested if u.startswith("http")), \
        [u for u in requested if urlsplit(u).netloc != server]
