"""The duty roster page (/duty) in a real Chromium: who is on duty now, a shift added through
the form showing up in the week grid, a hand-over written, English, a shift someone else adds
shown live — and nothing loaded from another host."""
from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from command.auth import create_user
from tests.command.test_browser_map import live_server, page  # noqa: F401 (fixtures)
from tests.conftest import PASSWORD
from workflows import duty

pytestmark = pytest.mark.browser
WAIT_MS = 20000
CST = dt.timezone(dt.timedelta(hours=8))


def test_the_roster_page_shows_who_is_on_duty_and_takes_a_shift(live_server, page, db):  # noqa: F811
    lead = create_user(db, username="lead", password=PASSWORD, role="shift_lead", display_name="周值班长", actor="test")
    holder = create_user(db, username="li", password=PASSWORD, role="commander", display_name="李指挥长", actor="test")
    zhao = create_user(db, username="zhao", password=PASSWORD, role="department", display_name="赵队长",
                dept="县城市管理和综合执法局", actor="test")
    chief = duty.add_post(db, "县应急指挥长", actor=lead)["id"]
    drain = duty.add_post(db, "排水抢险队长", actor=lead)["id"]
    now = dt.datetime.now(CST)
    duty.add_shift(db, chief, holder.id, now - dt.timedelta(hours=1), now + dt.timedelta(hours=3), actor=lead)

    requested = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{live_server}/duty")
    page.fill("input[name=username]", "lead")
    page.fill("input[name=password]", PASSWORD)
    page.click("form#login button[type=submit]")
    expect(page.locator("body")).to_have_attribute("data-duty", "ready", timeout=WAIT_MS)
    expect(page.locator(f'#duty-now tr[data-post="{chief}"] .holder')).to_have_text("李指挥长")
    expect(page.locator(f'#duty-now tr[data-post="{drain}"] .holder')).to_have_text("无人值班")
    today = now.date().isoformat()
    expect(page.locator(f'#duty-grid td[data-post="{chief}"][data-day="{today}"]')).to_contain_text("李指挥长")

    # A shift lead adds a shift through the form: it appears in the grid. It is today but not
    # now (the post stays unmanned below), whatever the hour the suite runs at.
    (start, end), (clash_start, clash_end) = ((("14:00", "22:00"), ("16:00", "20:00")) if now.hour < 12 else
                                              (("01:00", "10:00"), ("02:00", "05:00")))
    form = page.locator("#shift-form")
    form.locator("select[name=post]").select_option(str(drain))
    form.locator("input[name=username]").fill("zhao")
    form.locator("input[name=starts_at]").fill(f"{today}T{start}")
    form.locator("input[name=ends_at]").fill(f"{today}T{end}")
    form.locator("button[type=submit]").click()
    cell = page.locator(f'#duty-grid td[data-post="{drain}"][data-day="{today}"]')
    expect(cell).to_contain_text("赵队长", timeout=WAIT_MS)
    expect(cell).to_contain_text(f"{start}–{end}")
    assert db.execute("SELECT count(*) AS n FROM duty_shift WHERE post_id = %s", (drain,)).fetchone()["n"] == 1

    # An overlapping one is refused with the server's message on the page.
    form.locator("input[name=starts_at]").fill(f"{today}T{clash_start}")
    form.locator("input[name=ends_at]").fill(f"{today}T{clash_end}")
    form.locator("button[type=submit]").click()
    expect(page.locator("#shift-msg")).to_contain_text("冲突：", timeout=WAIT_MS)

    # The shift lead writes the holder's hand-over on their behalf.
    page.select_option("#handover-post", str(chief))
    page.fill("#handover-form textarea[name=note]", "建设路积水已退")
    page.click("#handover-form button[type=submit]")
    expect(page.locator("#handover-list li").first).to_contain_text("建设路积水已退", timeout=WAIT_MS)
    expect(page.locator("#handover-list li").first).to_contain_text("李指挥长")

    page.click("#lang")
    expect(page.locator(f'#duty-now tr[data-post="{drain}"] .holder')).to_have_text("Nobody on duty")
    expect(page.locator("#duty-now thead th").first).to_have_text("Post")

    # Someone else puts 赵队长 on duty now: the page shows it without a reload (the live bus).
    expect(page.locator("body")).to_have_attribute("data-live", "live", timeout=WAIT_MS)
    duty.add_shift(db, drain, zhao.id, now - dt.timedelta(minutes=30), now + dt.timedelta(minutes=30), actor=lead)
    expect(page.locator(f'#duty-now tr[data-post="{drain}"] .holder')).to_have_text("赵队长", timeout=WAIT_MS)
    server = urlsplit(live_server).netloc
    assert all(urlsplit(u).netloc == server for u in requested if u.startswith("http")), \
        [u for u in requested if urlsplit(u).netloc != server]
