"""Screenshots of the running demo for the README:
`python scripts/screenshot.py [URL] [OUT]` (the map), `… [URL] [OUT] UNIT_ID` (that unit's replay)
or `… [URL] [OUT] /PATH [USER]` (another page, e.g. /devices#device/SIM-MANHOLE-COVER-001, as
USER, by default admin: `/incidents?id=1 commander` for the emergency console)."""
from __future__ import annotations

import sys

from playwright.sync_api import sync_playwright

ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main(base: str = "http://127.0.0.1:8000", out: str = "docs/screenshot-map.png", unit: str | None = None,
         user: str = "admin") -> None:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 860}, locale="zh-CN")
        page.goto(f"{base}{unit}" if unit and unit.startswith("/") else
                  f"{base}/units/{unit}/replay" if unit else f"{base}/map")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", "citygrid-demo")
        page.click("form#login button[type=submit]")
        if unit and unit.startswith("/"):
            page.wait_for_timeout(5000)
            page.screenshot(path=out)
            browser.close()
            print(out)
            return
        page.wait_for_selector("body[data-ready=true]", timeout=30000)
        if unit:
            page.wait_for_timeout(3000)
            page.screenshot(path=out)
            browser.close()
            print(out)
            return
        page.evaluate("map.setZoom(15.5), undefined")
        page.wait_for_timeout(1500)
        page.evaluate("map.fire('click', {latlng: L.latLng(map.getCenter().lat + 0.004, map.getCenter().lng)}), undefined")
        page.wait_for_timeout(1500)
        page.screenshot(path=out)
        browser.close()
    print(out)


if __name__ == "__main__":
    main(*sys.argv[1:])
