"""The IoT device page (/devices) and the device alarm page (/alarms) in a real Chromium:
devices registered in the tiny city, telemetry written through the real writer (an open
manhole cover raises a real critical alarm with its case), then the list, the map, the
chart, a command, acknowledging and commenting, the live bus and the English switch."""
from __future__ import annotations

import datetime as dt
import json
import re
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from command.auth import create_user
from devices.decoders.telemetry import decode
from devices.device_registry import NewDevice, add_device
from devices.store import Received
from devices.telemetry_store import TelemetryWriter, write_telemetry
from tests.command.test_browser_map import live_server, page  # noqa: F401 (fixtures)
from tests.command.test_device_api import _many_devices
from tests.conftest import PASSWORD
from tests.devices.conftest import app_conn  # noqa: F401 (fixture)
from workflows.cases import CaseDesk

pytestmark = pytest.mark.browser
WAIT_MS = 20000
COVER_PART = "4302230101000001"
LAMP_PART = "4302230114000001"
TILTS = [1.0, 2.5, 3.0, 4.5, 6.0]          # one reading every ten minutes, below the 15° alarm


def _ms(at: dt.datetime) -> int:
    return int(at.timestamp() * 1000)


def _send(conn, writer, *messages: tuple[str, str, object]):
    """(device id, topic kind, payload) → one batch through the real decoder and writer."""
    now = dt.datetime.now(dt.timezone.utc)
    readings, statuses = [], []
    for device_id, kind, payload in messages:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        topic = f"citygrid/devices/{device_id}/{kind}"
        message = Received("telemetry", topic, body, now)
        for item in decode(topic, body, now):
            if kind == "status":
                statuses.append(item)
            else:
                readings.append((item, message))
    written = write_telemetry(conn, readings, statuses, writer, [])
    assert written.dead_letters == 0
    return written


@pytest.fixture
def city_devices(db, tiny_city, app_conn):  # noqa: F811 (fixture)
    add_device(db, NewDevice("MC-1", "manhole_cover", part_id=COVER_PART, dept=tiny_city["water_dept"],
                             meta={"model": "JG-200"}), actor="test")
    add_device(db, NewDevice("SL-1", "street_light", part_id=LAMP_PART), actor="test")
    add_device(db, NewDevice("NM-1", "noise", 113.3435, 27.0008), actor="test")       # never heard from
    writer = TelemetryWriter(desk=CaseDesk.default())
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    start = now - dt.timedelta(minutes=50)
    _send(app_conn, writer, ("MC-1", "telemetry", [
        {"ts": _ms(start + dt.timedelta(minutes=10 * i)), "values": {"open": False, "tilt_deg": tilt, "battery_pct": 80}}
        for i, tilt in enumerate(TILTS)]))
    written = _send(app_conn, writer, ("MC-1", "telemetry", {"ts": _ms(now - dt.timedelta(minutes=1)),
                                                             "values": {"open": True}}),
                    ("SL-1", "status", b"online"),
                    ("SL-1", "telemetry", {"ts": _ms(now - dt.timedelta(minutes=2)),
                                           "values": {"on": True, "current_a": 0.8, "fault": False}}))
    assert [t.kind for _, t in written.transitions] == ["raise"]
    alarm = db.execute("SELECT id, case_id FROM device_alarm WHERE device_id = 'MC-1'").fetchone()
    assert alarm["case_id"] is not None                  # the rule files a case (井盖缺失)
    create_user(db, username="boss", password=PASSWORD, role="admin", display_name="赵主任", actor="test")
    return {"writer": writer, "alarm": alarm["id"], "case": alarm["case_id"]}


def _log_in(page, url: str, username: str) -> None:  # noqa: F811
    page.goto(url)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form#login button[type=submit]")
    page.wait_for_selector("body[data-ready=true][data-live=live]", timeout=WAIT_MS)


def _token(base: str, username: str) -> dict:
    r = httpx.post(f"{base}/api/auth/token", data={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_devices_list_map_chart_and_a_command(live_server, page, db, app_conn, city_devices):  # noqa: F811
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    _log_in(page, f"{live_server}/devices", "boss")

    # The list: every device with its type, state and latest values (units from the type).
    rows = page.locator("#device-table tbody tr")
    expect(rows).to_have_count(3)
    cover = page.locator('#device-table tr[data-device="MC-1"]')
    expect(cover).to_contain_text("井盖监测")
    expect(cover.locator(".dv-latest")).to_contain_text("倾角 6°")
    expect(cover.locator(".dv-latest")).to_contain_text("开启 是")
    expect(cover.locator(".dv-alarm-count")).to_have_text("1")
    expect(page.locator('#device-table tr[data-device="SL-1"] .dv-online')).to_have_text("在线")
    expect(page.locator('#device-table tr[data-device="NM-1"] .dv-online')).to_have_text("尚未上报")
    expect(page.locator("#device-count")).to_have_text("3 台设备")

    # The map: a marker each, coloured by state.
    for device, state in (("MC-1", "alarm"), ("SL-1", "normal"), ("NM-1", "offline")):
        expect(page.locator(f'.device-marker.dev-{state} [data-device="{device}"]')).to_have_count(1)
    # The state filter: with alarms only.
    page.select_option("#device-filters select[name=state]", "alarm")
    expect(rows).to_have_count(1)
    expect(page.locator(".device-marker")).to_have_count(1)
    page.select_option("#device-filters select[name=state]", "")
    expect(rows).to_have_count(3)

    # A marker opens the detail: values with labels and units, place, the active alarm.
    page.click('.device-marker [data-device="MC-1"]')
    detail = page.locator("#device-detail")
    expect(detail.locator("h2")).to_have_text("MC-1")
    expect(detail.locator('.dv-values tr[data-field="tilt_deg"]')).to_contain_text("倾角")
    expect(detail.locator('.dv-values tr[data-field="tilt_deg"] td')).to_have_text("6°")
    expect(detail.locator('.dv-values tr[data-field="battery_pct"] td')).to_have_text("80%")
    expect(detail.locator('.dv-values tr[data-field="open"] td')).to_have_text("是")
    facts = detail.locator(".dv-facts")
    expect(facts).to_contain_text(COVER_PART)
    expect(facts).to_contain_text("攸县自来水公司")
    expect(facts).to_contain_text("430223001001001")
    expect(facts).to_contain_text("JG-200")
    alarm = detail.locator(f'#dv-alarms li[data-alarm="{city_devices["alarm"]}"]')
    expect(alarm).to_contain_text("井盖开启")
    expect(alarm).to_contain_text("紧急")
    expect(alarm).to_contain_text("未确认")
    assert page.url.endswith("#device/MC-1")

    # The chart: the tilt readings of the last 24 h, drawn, counted, the last one named.
    chart = detail.locator("#dv-chart")
    expect(chart).to_have_attribute("data-points", str(len(TILTS)), timeout=WAIT_MS)
    expect(chart).to_have_attribute("data-resolution", "raw")
    expect(chart.locator("canvas")).to_have_count(1)
    assert page.evaluate("deviceChart.plot.data[1]") == TILTS
    expect(detail.locator(".dv-chart-count")).to_have_text(str(len(TILTS)))
    expect(detail.locator(".dv-chart-last")).to_have_text("6°")
    # Another field (booleans as 0/1: five closed, then open) and another window.
    page.select_option("#dv-chart-field", "open")
    expect(chart).to_have_attribute("data-points", str(len(TILTS) + 1), timeout=WAIT_MS)
    expect(detail.locator(".dv-chart-last")).to_have_text("是")
    assert page.evaluate("deviceChart.plot.data[1]") == [0] * len(TILTS) + [1]
    page.click(".dv-windows button[data-window='7d']")
    expect(detail.locator(".dv-windows button.active")).to_have_text("7 天")
    expect(chart).to_have_attribute("data-points", str(len(TILTS) + 1), timeout=WAIT_MS)

    # A command from the form: the street light's switch, off. Logged as queued (no worker runs).
    page.click('#device-table tr[data-device="SL-1"]')
    expect(detail.locator("h2")).to_have_text("SL-1")
    expect(detail.locator("#dv-commands")).to_contain_text("暂无指令")
    page.select_option("#dv-command-form select[name=command]", "switch")
    page.select_option("#dv-command-form select[name='p:on']", "false")
    page.click("#dv-command-form button[type=submit]")
    logged = detail.locator(".dv-command-log tbody tr")
    expect(logged).to_have_count(1, timeout=WAIT_MS)
    expect(logged.first).to_contain_text("开关灯")
    expect(logged.first).to_contain_text("开灯 否")
    expect(logged.first.locator(".cmd-status")).to_have_text(re.compile("待发送|已发送"))
    expect(logged.first).to_contain_text("boss")
    [command] = db.execute("SELECT name, params, status, created_by FROM device_command").fetchall()
    assert command == {"name": "switch", "params": {"on": False}, "status": "queued", "created_by": "boss"}
    expect(detail.locator("#dv-command-form .ok")).to_contain_text("指令已排队")

    # An alarm raised meanwhile comes over the live bus: the lamp turns red, its alarm is listed.
    loads = page.evaluate("deviceList.loads")
    _send(app_conn, city_devices["writer"], ("SL-1", "telemetry", {"ts": _ms(dt.datetime.now(dt.timezone.utc)),
                                                                   "values": {"fault": True}}))
    expect(page.locator('.device-marker.dev-alarm [data-device="SL-1"]')).to_have_count(1, timeout=WAIT_MS)
    expect(page.locator('#device-table tr[data-device="SL-1"] .dv-alarm-count')).to_have_text("1")
    expect(detail.locator("#dv-alarms")).to_contain_text("路灯故障", timeout=WAIT_MS)
    expect(detail.locator("#dv-state")).to_have_text("有告警")
    assert page.evaluate("deviceList.loads") > loads

    # English: labels, the type's English name, the catalog's fields and commands.
    page.click("#lang")
    expect(page.locator("#device-table th").first).to_have_text("Device")
    expect(cover).to_contain_text("Manhole cover sensor")
    expect(cover.locator(".dv-latest")).to_contain_text("Tilt 6°")
    expect(logged.first).to_contain_text("Switch lamp")
    expect(logged.first.locator(".cmd-status")).to_have_text(re.compile("Queued|Sent"))
    expect(page.locator(".bar a[href='/alarms']")).to_have_text("Alarms")
    page.click("#lang")
    expect(page.locator("#device-table th").first).to_have_text("设备编号")

    hosts = {urlsplit(u).netloc for u in requested if u.startswith("http")}
    assert hosts == {urlsplit(live_server).netloc}, hosts


def test_the_state_filter_asks_the_server_for_devices_past_the_first_page(live_server, page, db, city_devices):  # noqa: F811
    # 600 never-heard-from meters whose ids come before MC-1, NM-1 and SL-1: the first page (500) is theirs alone.
    _many_devices(db, "AA", 600, "430223001001001")
    asked = []
    page.on("request", lambda r: asked.append(r.url) if "/api/devices?" in r.url else None)
    _log_in(page, f"{live_server}/devices", "boss")
    rows = page.locator("#device-table tbody tr")
    expect(rows).to_have_count(500)
    expect(page.locator('#device-table tr[data-device="MC-1"]')).to_have_count(0)
    expect(page.locator("#device-more")).to_be_visible()

    # With alarms: the server finds MC-1, which was not loaded; list and map show it alone.
    page.select_option("#device-filters select[name=state]", "alarm")
    expect(rows).to_have_count(1)
    expect(page.locator('#device-table tr[data-device="MC-1"] .dv-alarm-count')).to_have_text("1")
    expect(page.locator(".device-marker")).to_have_count(1)
    expect(page.locator('.device-marker.dev-alarm [data-device="MC-1"]')).to_have_count(1)
    expect(page.locator("#device-count")).to_have_text("1 台设备")
    expect(page.locator("#device-more")).to_be_hidden()
    query = dict(parse_qsl(urlsplit(asked[-1]).query))
    assert query == {"state": "alarm", "limit": "500"}, asked[-1]           # from page one, filtered by the server

    page.select_option("#device-filters select[name=state]", "normal")
    expect(rows).to_have_count(1)
    expect(page.locator('.device-marker.dev-normal [data-device="SL-1"]')).to_have_count(1)
    expect(page.locator(".device-marker")).to_have_count(1)

    # Offline: 601 (the meters and NM-1), paged on under the filter; NM-1 comes with the second page.
    page.select_option("#device-filters select[name=state]", "offline")
    expect(rows).to_have_count(500)
    page.click("#device-more")
    expect(rows).to_have_count(601)
    expect(page.locator('#device-table tr[data-device="NM-1"] .dv-online')).to_have_text("尚未上报")
    expect(page.locator("#device-count")).to_have_text("601 台设备")
    expect(page.locator(".device-marker")).to_have_count(601)
    expect(page.locator(".device-marker:not(.dev-offline)")).to_have_count(0)
    assert dict(parse_qsl(urlsplit(asked[-1]).query)) == {"state": "offline", "limit": "500", "after": "AA-0500"}

    # Any state again: back to the first page of all of them.
    page.select_option("#device-filters select[name=state]", "")
    expect(rows).to_have_count(500)
    expect(page.locator('#device-table tr[data-device="NM-1"]')).to_have_count(0)
    assert dict(parse_qsl(urlsplit(asked[-1]).query)) == {"limit": "500"}


def test_alarms_are_acknowledged_commented_and_arrive_live(live_server, page, db, app_conn, city_devices):  # noqa: F811
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    alarm_id, case_id = city_devices["alarm"], city_devices["case"]
    _log_in(page, f"{live_server}/alarms", "boss")

    row = page.locator(f'#alarm-table tr[data-alarm="{alarm_id}"]')
    expect(row).to_have_count(1)
    expect(row.locator(".badge.sev-critical")).to_have_text("紧急")
    expect(row.locator(".al-status")).to_have_text("未确认")
    expect(row).to_contain_text("井盖开启")
    expect(row).to_contain_text("MC-1")
    expect(row).to_contain_text(COVER_PART)
    assert row.locator("a.al-case").get_attribute("href") == f"/console#case/{case_id}"

    # The detail: acknowledge with a note (the note becomes the first comment).
    row.click()
    detail = page.locator("#alarm-detail")
    expect(detail.locator("h2")).to_have_text("井盖开启")
    expect(detail.locator(".al-value")).to_contain_text("开启 是")
    expect(detail.locator("#alarm-comments")).to_contain_text("暂无评论")
    detail.locator("#alarm-ack textarea[name=note]").fill("已通知自来水公司")
    detail.locator("#alarm-ack button[type=submit]").click()
    expect(row.locator(".al-status")).to_have_text("已确认", timeout=WAIT_MS)
    expect(detail.locator(".al-status")).to_have_text("已确认")
    expect(detail.locator(".al-acked")).to_contain_text("boss")
    expect(detail.locator("#alarm-ack")).to_have_count(0)
    expect(row.locator(".al-quick-ack")).to_have_count(0)
    expect(detail.locator("#alarm-comments li")).to_have_count(1)
    expect(detail.locator("#alarm-comments")).to_contain_text("已通知自来水公司")
    got = httpx.get(f"{live_server}/api/alarms/{alarm_id}", headers=_token(live_server, "boss")).json()
    assert (got["status"], got["acked_by"]) == ("active_ack", "boss")

    # A comment.
    detail.locator("#alarm-comment textarea[name=body]").fill("已派人现场查看")
    detail.locator("#alarm-comment button[type=submit]").click()
    expect(detail.locator("#alarm-comments li")).to_have_count(2, timeout=WAIT_MS)
    expect(detail.locator("#alarm-comments li").nth(1)).to_contain_text("已派人现场查看")
    expect(detail.locator("#alarm-msg")).to_have_text("评论已添加")
    comments = db.execute("SELECT author, body FROM device_alarm_comment WHERE alarm_id = %s ORDER BY id",
                          (alarm_id,)).fetchall()
    assert comments == [{"author": "boss", "body": "已通知自来水公司"}, {"author": "boss", "body": "已派人现场查看"}]

    # A new alarm arrives on the live bus: the list shows it without a reload.
    loads = page.evaluate("alarmList.loads")
    now = dt.datetime.now(dt.timezone.utc)
    _send(app_conn, city_devices["writer"], ("SL-1", "telemetry", {"ts": _ms(now), "values": {"fault": True}}))
    lamp = page.locator('#alarm-table tr:has-text("SL-1")')
    expect(lamp).to_have_count(1, timeout=WAIT_MS)
    expect(lamp.locator(".badge.sev-major")).to_have_text("重要")
    expect(lamp.locator(".al-status")).to_have_text("未确认")
    assert page.evaluate("alarmList.loads") > loads
    # … and is acknowledged from its row.
    lamp.locator(".al-quick-ack").click()
    expect(lamp.locator(".al-status")).to_have_text("已确认", timeout=WAIT_MS)

    # Filters: cleared shows none; the severity filter keeps only the critical one.
    page.select_option("#alarm-filters select[name=severity]", "critical")
    expect(page.locator("#alarm-table tbody tr")).to_have_count(1)
    page.select_option("#alarm-filters select[name=state]", "cleared")
    expect(page.locator("#alarm-table tbody tr")).to_have_count(0)
    expect(page.locator("#alarm-count")).to_have_text("没有符合条件的告警")
    page.select_option("#alarm-filters select[name=state]", "")
    page.select_option("#alarm-filters select[name=severity]", "")
    expect(page.locator("#alarm-table tbody tr")).to_have_count(2)

    # English.
    page.click("#lang")
    expect(row.locator(".badge.sev-critical")).to_have_text("Critical")
    expect(row.locator(".al-status")).to_have_text("Acknowledged")
    expect(row).to_contain_text("Cover open")
    expect(page.locator("#alarm-table th").first).to_have_text("Severity")
    expect(detail.locator("h3")).to_have_text("Comments")
    page.click("#lang")
    expect(row.locator(".al-status")).to_have_text("已确认")

    hosts = {urlsplit(u).netloc for u in requested if u.startswith("http")}
    assert hosts == {urlsplit(live_server).netloc}, hosts


def test_a_leader_reads_but_may_not_act(live_server, page, db, city_devices):  # noqa: F811
    create_user(db, username="chief", password=PASSWORD, role="leader", actor="test")
    _log_in(page, f"{live_server}/devices#device/SL-1", "chief")
    detail = page.locator("#device-detail")
    expect(detail.locator("h2")).to_have_text("SL-1")
    expect(detail.locator("#dv-command-box")).to_have_text("您的岗位不能向设备发送指令")
    expect(detail.locator("#dv-command-form")).to_have_count(0)
    # The server refuses too, and the page says so in the pages' words for a 403.
    said = page.evaluate("postJson('/api/devices/SL-1/commands', {name: 'switch', params: {on: true}})"
                         ".catch((err) => explainError(err))")
    assert said.startswith("无权限：")
    page.goto(f"{live_server}/alarms#alarm/{city_devices['alarm']}")
    page.wait_for_selector("body[data-ready=true]", timeout=WAIT_MS)
    expect(page.locator("#alarm-detail h2")).to_have_text("井盖开启")
    expect(page.locator("#alarm-detail")).to_contain_text("您的岗位只能查看告警")
    expect(page.locator("#alarm-ack")).to_have_count(0)
    expect(page.locator(".al-quick-ack")).to_have_count(0)


def test_the_pages_are_linked_and_served(client):
    for path in ("/devices", "/alarms"):
        r = client.get(path)
        assert r.status_code == 200 and 'href="/map"' in r.text, path
    for path in ("/map", "/console"):
        text = client.get(path).text
        assert 'href="/devices"' in text and 'href="/alarms"' in text, path
    for path in ("/devices", "/alarms", "/static/app/devices.js", "/static/app/devices-common.js",
                 "/static/app/devices-detail.js", "/static/app/devices-chart.js", "/static/app/alarms.js",
                 "/static/app/alarms-detail.js", "/static/app/devices.css"):
        r = client.get(path)
        assert r.status_code == 200, path
        external = re.findall(r"https?://(?!127\.0\.0\.1|localhost)[^\s\"')]+", r.text)
        assert external == [], (path, external)
