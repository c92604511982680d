"""End-to-end in a real browser: Playwright drives Debian's headless Chromium against `sansetu serve`.

The analyst's path: log in, open a chain's map, click a red node, see its targets with routes,
submit feedback, download the Excel file, see the feedback in the enterprise's history. A
screenshot of the map page is saved to ``test-artifacts/map.png``.
"""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_web_analyst_journey_in_chromium(
    server: tuple[str, str], chromium: tuple[str, list[str]], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, token = server
    executable, args = chromium
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=args)
        page = browser.new_page(accept_downloads=True, viewport={"width": 1400, "height": 900})
        requested: list[str] = []
        page.on("request", lambda req: requested.append(req.url))
        console_errors: list[str] = []  # a CSP violation is reported here ("Refused to apply inline style ...")
        page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
        page.goto(base + "/")
        expect(page).to_have_url(base + "/login")
        page.fill("#token", token)
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_have_text("重点产业链三色图")

        page.click("text=光通信")
        expect(page.locator("h1")).to_contain_text("光通信")
        page.screenshot(path=str(ARTIFACTS / "map.png"), full_page=True)

        expect(page.locator("#chain-map svg")).to_be_visible()
        assert page.locator("#chain-nodes a.node-link[data-colour=red]").count() == 1
        page.locator("#chain-map svg a.node[data-node-id='optical_comm.optical_chip']").click()  # the map picture
        expect(page.locator("h1")).to_contain_text("光芯片")
        expect(page.locator("#targets")).to_contain_text("经光谷基金对接")
        expect(page.locator("#targets")).to_contain_text("近180天完成B轮融资")

        with page.expect_download() as dl:
            page.click("#download-xlsx")
        xlsx = tmp_path / "targets.xlsx"
        dl.value.save_as(xlsx)
        names = [c.value for ws in openpyxl.load_workbook(xlsx).worksheets for row in ws.iter_rows() for c in row]
        assert any(isinstance(v, str) and "光芯科技有限公司" in v for v in names)

        page.click("#targets a.enterprise-link")
        page.select_option("#feedback-form select[name=stage]", "考察")
        page.fill("#feedback-form input[name=note]", "已约定下月来汉考察")
        page.click("#feedback-form button[type=submit]")
        expect(page.locator("#history")).to_contain_text("已约定下月来汉考察")
        expect(page.locator("#history")).to_contain_text("反馈 · 分析员小王")
        expect(page.locator("#history")).to_contain_text("光通信 · 光芯片")  # the node the analyst came from
        page.screenshot(path=str(ARTIFACTS / "enterprise.png"), full_page=True)

        page.click("text=本期新增")
        expect(page.locator("#diff-totals")).to_contain_text("新增目标 1")
        expect(page.locator("#diff-nodes")).to_contain_text("光芯科技有限公司")
        browser.close()
    assert console_errors == []  # nothing blocked by the Content-Security-Policy, no script errors
    outside = [u for u in requested if not u.startswith(base)]
    assert outside == []  # offline: no CDN, fonts or scripts from anywhere else
    assert (ARTIFACTS / "map.png").stat().st_size > 10_000
