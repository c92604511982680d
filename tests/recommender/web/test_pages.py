"""The pages as analysts use them: the feedback form keeps its node, times are in the service's
zone and say so, errors are Chinese pages, and scores are a rank and a 签约概率 in per cent (启发式分
when the heuristic scored the run)."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from recommender import store

E1 = "91420100MA4K0000XJ"
NODE = "optical_comm.optical_chip"
OTHER_NODE = "optical_comm.optical_device"


def _selected_node(html: str) -> str | None:
    form = html[html.index('id="feedback-form"') :]
    select = form[form.index('<select name="node_id"') : form.index("</select>")]
    chosen = re.search(r'<option value="([^"]+)" selected>', select)
    return chosen.group(1) if chosen else re.search(r'<option value="([^"]+)"', select).group(1)  # type: ignore[union-attr]


def test_feedback_form_keeps_the_node_after_saving(
    client: TestClient, tokens: dict[str, str], log_in: Callable[[TestClient, str], str]
) -> None:
    """The finding: after saving, the form fell back to the enterprise's first list; a second entry went there."""
    csrf = log_in(client, tokens["analyst"])
    page = client.get(f"/enterprises/{E1}", params={"node_id": OTHER_NODE}).text
    assert _selected_node(page) == OTHER_NODE
    r = client.post(
        f"/enterprises/{E1}/feedback", data={"node_id": OTHER_NODE, "stage": "接洽", "csrf_token": csrf},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 303
    after = client.get(r.headers["location"]).text
    assert "已记录" in after and _selected_node(after) == OTHER_NODE


def _feedback_recorded_at(client: TestClient, at: dt.datetime) -> None:
    with client.app.state.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(
            insert(store.feedback).values(
                outcome_id="fb-00000000000000aa", enterprise_id=E1, node_id=NODE, stage="接洽",
                date=dt.datetime(2026, 5, 1), author="analyst-user", created_at=at,
            )
        )  # fmt: skip


@pytest.mark.parametrize(
    ("zone", "shown"),
    [("Asia/Shanghai", "2026-05-01 09:02（北京时间）"), ("Europe/Berlin", "2026-05-01 03:02（UTC+2）"),
     ("Asia/Kolkata", "2026-05-01 06:32（UTC+5:30）")],
)  # fmt: skip
def test_times_are_shown_in_the_service_zone_and_labelled(
    published_workspace: Path,
    make_client: Callable[..., TestClient],
    log_in: Callable[[TestClient, str], str],
    zone: str,
    shown: str,
) -> None:
    client = make_client(published_workspace, timezone=zone)
    _feedback_recorded_at(client, dt.datetime(2026, 5, 1, 1, 2, tzinfo=dt.UTC))
    log_in(client, store.create_token(client.app.state.engine, "v", "viewer"))  # type: ignore[attr-defined]
    page = client.get(f"/enterprises/{E1}").text
    assert shown in page
    assert "01:02" not in page  # not the UTC time, unlabelled


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/nodes/optical_comm.optical_chp", ["未找到", "找不到该节点", "optical_comm.optical_chp", "光通信 · 光芯片"]),
        ("/enterprises/91420100MA4K0000YY", ["未找到", "找不到该企业"]),
        ("/chains/nope", ["未找到", "找不到该产业链"]),
        ("/no/such/page", ["未找到", "页面不存在"]),
        (f"/enterprises/{E1}?saved=abc", ["输入有误"]),
    ],
)
def test_error_pages_are_chinese(
    client: TestClient, tokens: dict[str, str], log_in: Callable[[TestClient, str], str], path: str, words: list[str]
) -> None:
    log_in(client, tokens["viewer"])
    r = client.get(path)
    assert r.status_code in (404, 422) and r.headers["content-type"].startswith("text/html"), r.text
    for w in words:
        assert w in r.text, w
    body = re.sub(r"<[^>]+>", " ", r.text)
    assert not re.search(r"\b(unknown|Not Found|did you mean|Input should)\b", body), body


def test_feedback_form_errors_are_chinese_pages(
    client: TestClient, tokens: dict[str, str], log_in: Callable[[TestClient, str], str]
) -> None:
    csrf = log_in(client, tokens["analyst"])
    url = f"/enterprises/{E1}/feedback"
    r = client.post(url, data={"node_id": NODE, "stage": "签约", "date": "9999-12-31", "csrf_token": csrf})
    assert r.status_code == 422 and "text/html" in r.headers["content-type"]
    assert "日期" in r.text and "1949-10-01" in r.text
    r = client.post(url, data={"stage": "签约", "csrf_token": csrf})  # no node: FastAPI's own 422, JSON before
    assert r.status_code == 422 and "text/html" in r.headers["content-type"] and "节点" in r.text
    assert store.count_feedback(client.app.state.engine) == 0  # type: ignore[attr-defined]


def _three_targets(ws: Path, manifest: dict[str, str] | None = None) -> None:
    """The node's list gets two more targets: scores 0.1234 (E1), 0.5, none; ``manifest`` is merged into the run's."""
    run = ws / "runs" / "2026-06-30"
    t = pd.read_parquet(run / "targets.parquet")
    others = t.iloc[[0, 0]].assign(
        enterprise_id=["91420100MA4K0001XJ", "91420100MA4K0002XJ"], name=["甲公司", "乙公司"]
    )
    t = pd.concat([t, others], ignore_index=True).assign(rank=[2, 1, 3], score=[0.1234, 0.5, float("nan")])
    t.sort_values("rank").to_parquet(run / "targets.parquet", index=False)
    (run / "targets").mkdir(exist_ok=True)
    if manifest:
        m = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
        (run / "manifest.json").write_text(json.dumps({**m, **manifest}), encoding="utf-8")


def _text(html: str) -> str:
    """The page without its tags."""
    return re.sub(r"<[^>]+>", "", html)


SCORE_CELL = re.compile(r'<td class="score">([^<]*)</td>')


def test_scores_are_a_rank_and_a_signing_probability(
    published_workspace: Path, make_client: Callable[..., TestClient], log_in: Callable[[TestClient, str], str]
) -> None:
    _three_targets(published_workspace, {"scorer": "model", "model_version": "7"})
    client = make_client(published_workspace)
    log_in(client, store.create_token(client.app.state.engine, "v", "viewer"))  # type: ignore[attr-defined]
    node = client.get(f"/nodes/{NODE}").text
    assert ">签约概率</th>" in node and "相对分" not in node and "启发式分" not in node
    assert SCORE_CELL.findall(node) == ["50.0%", "12.3%", "—"]  # 100 × score, one decimal; none: a dash
    filtered = client.get(f"/nodes/{NODE}", params={"province": "广东"}).text
    assert SCORE_CELL.findall(filtered) == ["12.3%"]
    ent = client.get(f"/enterprises/{E1}").text
    assert "（第2名，签约概率 12.3%）" in _text(ent) and "0.1234" not in ent
    assert json.loads(client.get(f"/api/nodes/{NODE}/targets", headers={"X-API-Token": _viewer(client)}).text)["items"][
        1
    ]["score"] == pytest.approx(0.1234)  # the API keeps the score itself


@pytest.mark.parametrize(
    "manifest", [{"scorer": "heuristic", "model_version": "heuristic"}, {"model_version": "heuristic"}]
)
def test_a_heuristic_run_shows_a_heuristic_score_and_no_probability(
    published_workspace: Path,
    make_client: Callable[..., TestClient],
    log_in: Callable[[TestClient, str], str],
    manifest: dict[str, str],
) -> None:
    """Scored without a champion (the manifest's ``scorer``, or ``model_version`` in a run from before it)."""
    _three_targets(published_workspace, manifest)
    client = make_client(published_workspace)
    log_in(client, store.create_token(client.app.state.engine, "v", "viewer"))  # type: ignore[attr-defined]
    node = client.get(f"/nodes/{NODE}").text
    assert ">启发式分</th>" in node and "签约概率</th>" not in node
    assert SCORE_CELL.findall(node) == ["50.0", "12.3", "—"]
    ent = _text(client.get(f"/enterprises/{E1}").text)
    assert "（第2名，启发式分 12.3）" in ent and "签约概率" not in ent


def _viewer(client: TestClient) -> str:
    return store.create_token(client.app.state.engine, "api", "viewer")  # type: ignore[attr-defined]


def test_author_withdraws_a_row_on_the_page(
    client: TestClient, tokens: dict[str, str], log_in: Callable[[TestClient, str], str]
) -> None:
    csrf = log_in(client, tokens["analyst"])
    form = {"node_id": NODE, "stage": "接洽", "note": "录重了", "csrf_token": csrf}
    client.post(f"/enterprises/{E1}/feedback", data=form, follow_redirects=False)
    (row,) = store.feedback_rows(client.app.state.engine)  # type: ignore[attr-defined]
    url = f"/enterprises/{E1}/feedback/{row['outcome_id']}/withdraw"
    assert f'action="{url}"' in client.get(f"/enterprises/{E1}").text
    assert client.post(url, data={"reason": "重复"}, follow_redirects=False).status_code == 403  # no CSRF token
    r = client.post(url, data={"reason": "重复", "node_id": NODE, "csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and f"node_id={NODE}" in r.headers["location"]
    page = client.get(r.headers["location"]).text
    assert "已撤回" in page and "录重了" not in page
    assert store.feedback_rows(client.app.state.engine) == []  # type: ignore[attr-defined]


def test_only_the_author_sees_the_withdraw_control(
    client: TestClient, tokens: dict[str, str], log_in: Callable[[TestClient, str], str]
) -> None:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    row = store.add_feedback(engine, enterprise_id=E1, node_id=NODE, stage="接洽", author="someone-else")
    url = f"/enterprises/{E1}/feedback/{row['outcome_id']}/withdraw"
    csrf = log_in(client, tokens["analyst"])
    assert url not in client.get(f"/enterprises/{E1}").text
    r = client.post(url, data={"reason": "不是我的", "csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 403 and "没有权限" in r.text
    log_in(client, tokens["admin"])
    assert url in client.get(f"/enterprises/{E1}").text  # an admin may withdraw any row
