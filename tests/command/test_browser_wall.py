"""The video wall in a real Chromium: the cameras of a group as live MJPEG pictures from a
test camera on this machine, the 1/4/9/16 layouts, one camera alone on a click, a camera
without a picture said so, English — and nothing loaded from another host."""
from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from command.auth import create_user
from tests.command.test_browser_map import live_server, page  # noqa: F401 (fixtures)
from tests.conftest import PASSWORD
from tests.video.conftest import street  # noqa: F401 (fixture)
from video.cameras import NewCamera, add_camera
from video.test_streams import serve_mjpeg

pytestmark = pytest.mark.browser
WAIT_MS = 20000


def _camera(db, name: str, url: str, group: str) -> int:
    return add_camera(db, NewCamera(name, url, 113.3405, 27.0005, bearing_deg=90, fov_deg=60, range_m=80,
                                    group=group), actor="test")["id"]


def test_the_wall_shows_live_pictures_in_layouts(live_server, page, db, street):  # noqa: F811
    path, _ = street
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    create_user(db, username="chief", password=PASSWORD, role="commander", display_name="李指挥长", actor="test")
    with serve_mjpeg(path) as camera:
        east = _camera(db, "建设路东", camera.url, "城东")
        dead = _camera(db, "联星路口", f"http://127.0.0.1:{dead_port}/", "城东")
        west = _camera(db, "人民路", camera.url, "城西")
        requested = []
        page.on("request", lambda r: requested.append(r.url))
        page.goto(f"{live_server}/wall")
        page.fill("input[name=username]", "chief")
        page.fill("input[name=password]", PASSWORD)
        page.click("form#login button[type=submit]")

        tile = page.locator(f'.wall-tile[data-camera="{east}"]')
        expect(tile).to_contain_text("建设路东", timeout=WAIT_MS)
        expect(tile).to_have_attribute("data-playing", "1", timeout=WAIT_MS)        # a picture arrived
        assert page.evaluate(f"document.querySelector('.wall-tile[data-camera=\"{east}\"] img').naturalWidth") == 640   # never scaled up
        expect(page.locator(f'.wall-tile[data-camera="{dead}"] .lost')).to_contain_text("无信号", timeout=WAIT_MS)
        expect(page.locator(".wall-tile")).to_have_count(3)

        page.select_option("#wall-controls select[name=group]", "城西")
        expect(page.locator(".wall-tile")).to_have_count(1)
        expect(page.locator(f'.wall-tile[data-camera="{west}"]')).to_be_visible()
        page.select_option("#wall-controls select[name=group]", "")
        page.click(".wall-layouts button[data-layout='1']")
        expect(page.locator("#wall-grid")).to_have_attribute("data-layout", "1")
        expect(page.locator("#wall-page")).to_have_text("1 / 3")
        page.click(".wall-layouts button[data-layout='9']")
        page.locator(f'.wall-tile[data-camera="{west}"]').click()                   # one camera alone
        expect(page.locator(".wall-tile")).to_have_count(1)
        expect(page.locator("#wall-grid")).to_have_attribute("data-layout", "1")
        page.locator(f'.wall-tile[data-camera="{west}"]').click()                   # and back
        expect(page.locator(".wall-tile")).to_have_count(3)

        page.click("#lang")
        expect(page.locator(f'.wall-tile[data-camera="{east}"] .state')).to_have_text("online")
    server = urlsplit(live_server).netloc
    assert all(urlsplit(u).netloc == server for u in requested if u.startswith("http")), \
        [u for u in requested if urlsplit(u).netloc != server]


def test_the_map_shows_camera_sectors_and_the_blind_spots_with_suggestions(live_server, page, db, tiny_city):  # noqa: F811
    db.execute("INSERT INTO basemap_road (name, kind, width_m, geom) VALUES ('联星路', '支路', 8,"
               " ST_GeomFromText('LINESTRING(113.3400 27.0005, 113.3440 27.0005)', 4326))")
    create_user(db, username="chief", password=PASSWORD, role="commander", display_name="李指挥长", actor="test")
    _camera(db, "联星路西口", "http://127.0.0.1:9/", "城西")            # a port nobody answers on
    page.goto(f"{live_server}/map")
    page.fill("input[name=username]", "chief")
    page.fill("input[name=password]", PASSWORD)
    page.click("form#login button[type=submit]")
    expect(page.locator("body")).to_have_attribute("data-cameras", "1", timeout=WAIT_MS)
    assert page.evaluate("camerasLayer.cameras.getLayers().length") == 2            # its sector and its marker
    page.get_by_label("监控盲区").check()
    expect(page.locator("body")).to_have_attribute("data-coverage", "ready", timeout=WAIT_MS)
    assert page.locator(".cam-suggest").count() >= 1                                 # numbered suggested sites
    assert page.evaluate("camerasLayer.coverage.getLayers().length") == 2           # grids and suggestions


def test_a_case_page_shows_the_cameras_that_see_its_place(live_server, page, db, street):  # noqa: F811
    from workflows.cases import CaseDesk, NewReport, report
    path, _ = street
    create_user(db, username="op", password=PASSWORD, role="operator", display_name="陈受理员", actor="test")
    with serve_mjpeg(path) as camera:
        seeing = _camera(db, "建设路东", camera.url, "城东")          # at 113.3405, looking east 80 m
        _camera(db, "背对现场", camera.url, "城东")                    # same place …
        db.execute("UPDATE camera SET bearing_deg = 270, sector = ST_Rotate(sector, pi(), location) WHERE id = %s",
                   (seeing + 1,))                                    # … looking the other way
        case = report(db, CaseDesk.default(), NewReport(source="public", kind="event", class_code="0102",
                                                        lon=113.3410, lat=27.0005, description="路边垃圾")).case
        page.goto(f"{live_server}/console#case/{case['id']}")
        page.fill("input[name=username]", "op")
        page.fill("input[name=password]", PASSWORD)
        page.click("form#login button[type=submit]")
        figures = page.locator("#case-cameras figure")
        expect(figures).to_have_count(1, timeout=WAIT_MS)
        expect(figures.first).to_have_attribute("data-camera", str(seeing))
        expect(figures.first).to_contain_text("建设路东")
        page.wait_for_function("document.querySelector('#case-cameras img').naturalWidth === 320", timeout=WAIT_MS)
