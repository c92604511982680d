"""An analyst records two feedback entries in a row for the same node, in Chromium: both land on that
node. The enterprise is in two lists, the other one first: before the form kept its node, the second
entry silently went to that other list's node."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from recommender import store

pytestmark = pytest.mark.browser
E1 = "91420100MA4K0000XJ"
NODE = "optical_comm.optical_chip"
OTHER_NODE = "optical_comm.optical_device"


@pytest.fixture
def published_workspace(published_workspace: Path) -> Path:
    """The hand-made workspace with E1 also first in another node's list."""
    path = published_workspace / "runs" / "2026-06-30" / "targets.parquet"
    t = pd.read_parquet(path)
    other = t.iloc[[0]].assign(node_id=OTHER_NODE, routes=json.dumps([]), theme=None)
    pd.concat([other, t], ignore_index=True).to_parquet(path, index=False)
    return published_workspace


def test_two_entries_in_a_row_land_on_the_same_node(
    server: tuple[str, str], chromium: tuple[str, list[str]], published_workspace: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, token = server
    executable, args = chromium
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=args)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(base + "/login")
        page.fill("#token", token)
        page.click("button[type=submit]")
        page.goto(base + f"/nodes/{NODE}")
        page.click("#targets a.enterprise-link")
        form = page.locator("#feedback-form")
        expect(form.locator("select[name=node_id]")).to_have_value(NODE)  # the node the analyst came from
        for stage, note in (("接洽", "第一次电话沟通"), ("考察", "第二次：约定来汉考察")):
            form.locator("select[name=stage]").select_option(stage)
            form.locator("input[name=note]").fill(note)
            form.locator("button[type=submit]").click()
            expect(page.locator("#history")).to_contain_text(note)
            expect(page.locator("#history .ok")).to_contain_text("已记录")
        rows = page.locator("#history tr.history-row")
        expect(rows).to_have_count(2)
        for i in range(2):
            expect(rows.nth(i)).to_contain_text("光通信 · 光芯片")
        browser.close()
    engine = store.make_engine(f"sqlite:///{(published_workspace / 'service.db').resolve()}")
    got = [(r["node_id"], r["stage"], r["note"]) for r in store.feedback_rows(engine)]
    assert got == [(NODE, "接洽", "第一次电话沟通"), (NODE, "考察", "第二次：约定来汉考察")]
