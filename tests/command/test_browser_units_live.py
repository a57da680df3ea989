"""The live patrol layer of the city map in a real Chromium: units at their last fix, moved by
the live bus as fixes arrive, an SOS in the alarm list and cleared from there — all offline."""
from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from command.auth import create_user
from devices.fix import Fix
from devices.pipeline import new_writer
from devices.registry import add_unit
from devices.shifts import add_shift
from tests.command.test_browser_map import live_server, page  # noqa: F401 (fixtures)
from tests.conftest import PASSWORD
from tests.devices.conftest import app_conn  # noqa: F401 (fixture)
from tests.devices.test_alarms import INSIDE, INSIDE_2, push

pytestmark = pytest.mark.browser
WAIT_MS = 20000


def _fix(unit_id: int, where: tuple[float, float], *, minutes_ago: float = 0, sos: bool = False,
         battery: float = 80.0) -> Fix:
    """A fix taken `minutes_ago` (fixes ~100 m apart a second apart would be refused as too fast;
    an SOS older than 15 minutes when it arrives is put on record only)."""
    return Fix(device=f"unit:{unit_id}", fix_time=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=minutes_ago),
               lon=where[0], lat=where[1], accuracy_m=5.0, battery_pct=battery, sos=sos)


@pytest.fixture
def units(db, tiny_city, app_conn, settings):  # noqa: F811 (fixture)
    now = dt.datetime.now(dt.timezone.utc)
    inspector = add_unit(db, name="监督员张三", kind="inspector", actor="test")
    add_shift(db, unit_id=inspector, starts_at=now - dt.timedelta(hours=2), ends_at=now + dt.timedelta(hours=2),
              areas=["430223001001"], actor="test")
    truck = add_unit(db, name="湘B·12345", kind="vehicle", actor="test")      # no shift: off duty
    writer = new_writer(settings)
    push(app_conn, writer, [_fix(inspector, INSIDE, minutes_ago=5),
                            _fix(truck, INSIDE_2, minutes_ago=5, battery=55.0)])
    create_user(db, username="boss", password=PASSWORD, role="admin", display_name="赵主任", actor="test")
    return {"inspector": inspector, "truck": truck, "writer": writer}


def _log_in(page, url: str, username: str) -> None:  # noqa: F811
    page.goto(url)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form#login button[type=submit]")


def _wait_until_moved(page, unit_id: int, where: tuple[float, float]) -> None:
    at = f"unitsLive.markers.get({unit_id}).getLatLng()"
    try:
        page.wait_for_function(f"Math.abs({at}.lng - {where[0]}) < 1e-6 && Math.abs({at}.lat - {where[1]}) < 1e-6",
                               timeout=WAIT_MS)
    except Exception as e:      # say what the page had, not just that it timed out
        seen = page.evaluate(f"[{at}.lng, {at}.lat, unitsLive.loads,"
                             " document.querySelector('#units-live-msg').textContent]")
        raise AssertionError(f"unit {unit_id} did not move to {where}: the page has {seen}") from e


def _marker(unit_id: int) -> str:
    return f'.unit-marker:has([data-unit="{unit_id}"])'


def test_units_move_and_an_sos_is_cleared(live_server, page, db, app_conn, units):  # noqa: F811
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    inspector, truck = units["inspector"], units["truck"]
    _log_in(page, f"{live_server}/map", "boss")
    page.wait_for_selector("body[data-units-live=live]", timeout=WAIT_MS)

    # Both units are on the map, each with its look; the panel counts them.
    assert page.is_visible("#units-live") and page.inner_text("#units-live h2") == "巡查力量"
    inspector_classes = page.get_attribute(_marker(inspector), "class").split()
    assert "unit-inspector" in inspector_classes and "unit-off" not in inspector_classes
    assert "unit-alarm" not in inspector_classes
    truck_classes = page.get_attribute(_marker(truck), "class").split()
    assert "unit-vehicle" in truck_classes and "unit-off" in truck_classes         # greyed: no shift now
    assert "2 巡查单元 · 1 在岗 · 2 已定位" in page.inner_text("#units-live-stats")
    assert "暂无告警" in page.inner_text("#unit-alarms")

    # Tooltip: name, time of fix, battery; popup: the replay link.
    page.hover(_marker(truck))
    tip = page.locator(".leaflet-tooltip")
    expect(tip).to_contain_text("湘B·12345")
    expect(tip).to_contain_text("电量: 55%")
    expect(tip).to_contain_text("不在班")
    page.click(_marker(inspector))
    link = page.locator(".leaflet-popup a.unit-replay")
    expect(link).to_have_text("轨迹回放")
    assert link.get_attribute("href") == f"/units/{inspector}/replay"
    page.keyboard.press("Escape")

    at = f"unitsLive.markers.get({inspector}).getLatLng()"
    assert abs(page.evaluate(f"{at}.lng") - INSIDE[0]) < 1e-6
    # A new fix: the live bus moves the marker (the live message goes out at most once a
    # second per unit; forget when the last one went, so this one is sent at once).
    db.execute("UPDATE unit_state SET live_sent_at = NULL WHERE unit_id = %s", (inspector,))
    push(app_conn, units["writer"], [_fix(inspector, INSIDE_2, minutes_ago=2)])
    _wait_until_moved(page, inspector, INSIDE_2)
    assert abs(page.evaluate(f"{at}.lat") - INSIDE_2[1]) < 1e-6

    # An SOS: in the list with its message, and the marker pulses with a red ring.
    push(app_conn, units["writer"], [_fix(inspector, INSIDE_2, sos=True)])
    item = page.locator("#unit-alarms .unit-alarm-item.alarm-sos")
    expect(item).to_be_visible(timeout=WAIT_MS)
    expect(item.locator(".alarm-kind")).to_have_text("SOS")
    expect(item.locator(".alarm-message")).to_contain_text("监督员张三 发出求救")
    expect(item).to_contain_text("开始于")
    expect(page.locator(_marker(inspector))).to_have_class(re.compile(r"\bunit-alarm unit-sos\b"), timeout=WAIT_MS)
    # … and the SOS banner names the caller and sounds (or says how to let it sound) until silenced.
    banner = page.locator("#sos-alert")
    expect(banner).to_be_visible()
    expect(banner.locator(".sos-names")).to_have_text("监督员张三")
    assert page.evaluate("document.body.dataset.sosAlert") in ("sounding", "blocked")
    banner.locator(".sos-silence").click()
    expect(banner).to_be_hidden()
    assert page.evaluate("document.body.dataset.sosAlert") == "silenced"
    expect(item).to_be_visible()                                       # silenced is not cleared

    # English switch, and back.
    page.click("#lang")
    assert page.inner_text("#units-live h2") == "Patrol units"
    assert page.inner_text("#unit-alarms .alarm-clear") == "Clear"
    page.click("#lang")
    assert page.inner_text("#unit-alarms .alarm-clear") == "解除"

    # 解除: gone from the list, cleared in the database by this user, the marker calm again.
    page.click("#unit-alarms .alarm-clear")
    expect(page.locator("#unit-alarms .unit-alarm-item")).to_have_count(0, timeout=WAIT_MS)
    expect(page.locator("#unit-alarms")).to_contain_text("暂无告警")
    [alarm] = db.execute("SELECT kind, cleared_by FROM unit_alarm WHERE unit_id = %s", (inspector,)).fetchall()
    assert alarm == {"kind": "sos", "cleared_by": "boss"}
    expect(page.locator(_marker(inspector))).not_to_have_class(re.compile(r"\bunit-sos\b"), timeout=WAIT_MS)
    assert page.evaluate("document.body.dataset.sosAlert") == ""
    assert page.inner_text("#units-live-msg") == ""

    hosts = {urlsplit(u).netloc for u in requested if u.startswith("http")}
    assert hosts == {urlsplit(live_server).netloc}, hosts


def test_a_leader_sees_alarms_sos_first_but_no_clear_button(live_server, page, db, app_conn, units):  # noqa: F811
    push(app_conn, units["writer"], [_fix(units["inspector"], INSIDE, sos=True)])
    # A later, lesser alarm of the truck: newest first, but the SOS stays on top.
    db.execute("INSERT INTO unit_alarm (unit_id, kind, since, raised_at, message) VALUES (%s, 'stationary',"
               " now() - interval '20 minutes', now() + interval '1 minute', '停留超时：已停留 20 分钟')",
               (units["truck"],))
    create_user(db, username="chief", password=PASSWORD, role="leader", actor="test")
    _log_in(page, f"{live_server}/map", "chief")
    page.wait_for_selector("body[data-units-live=live]", timeout=WAIT_MS)
    kinds = page.locator("#unit-alarms .alarm-kind")
    expect(kinds).to_have_text(["SOS", "长时间停留"])
    expect(page.locator("#sos-alert .sos-names")).to_have_text("监督员张三")      # an SOS open when the page opens
    assert "停留超时" in page.inner_text("#unit-alarms .alarm-stationary")
    assert page.locator("#unit-alarms .alarm-clear").count() == 0
    assert "unit-alarm" in page.get_attribute(_marker(units["truck"]), "class").split()


def test_a_department_sees_only_its_own_units(live_server, page, db, app_conn, units, tiny_city):  # noqa: F811
    # The seeded units belong to no department: out of this user's sight. Its own unit is there,
    # and moves on the bare live message (no position in it for this role: the page refetches).
    own = add_unit(db, name="路灯维修车", kind="vehicle", dept=tiny_city["city_dept"], actor="test")
    push(app_conn, units["writer"], [_fix(own, INSIDE, minutes_ago=5)])
    create_user(db, username="roads", password=PASSWORD, role="department", dept=tiny_city["city_dept"],
                actor="test")
    _log_in(page, f"{live_server}/map", "roads")
    page.wait_for_selector("body[data-units-live=live]", timeout=WAIT_MS)
    assert page.inner_text("#units-live-stats").startswith("1 巡查单元")
    assert page.locator(".unit-marker").count() == 1 and page.is_visible(_marker(own))
    assert "暂无告警" in page.inner_text("#unit-alarms")
    db.execute("UPDATE unit_state SET live_sent_at = NULL WHERE unit_id = %s", (own,))
    push(app_conn, units["writer"], [_fix(own, INSIDE_2)])
    _wait_until_moved(page, own, INSIDE_2)
