"""The pages and the API show what the lists say: how many firms fit a node, the 本地延链 list beside
the targets, the excluded counts, and the other nodes a firm fits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from recommender import store

E1 = "91420100MA4K0000XJ"
NODE = "optical_comm.optical_chip"
ALSO = "optical_comm.preform"
HOME = "optical_comm.fiber_cable"


def with_lists(ws: Path) -> Path:
    """The hand-made published run with what ``recommender.ranking.lists`` adds to it."""
    run = ws / "runs" / "2026-06-30"
    t = pd.read_parquet(run / "targets.parquet")
    t.assign(fit=0.93, n_fit=7, also_fits=f"{ALSO}|{HOME}").to_parquet(run / "targets.parquet", index=False)
    pd.DataFrame(
        {
            "chain_id": ["optical_comm"],
            "node_id": [NODE],
            "rank": [1],
            "enterprise_id": ["91420100LOCAL00001"],
            "name": ["光谷本地光纤公司"],
            "score": [0.4],
            "reasons": ['[{"text": "历次接洽：〈光纤光缆〉2024-05-01 签约"}]'],
            "routes": ["[]"],
            "theme": [""],
            "sources": ["dense"],
            "n_local_fit": [1],
            "zone_nodes": [HOME],
        }
    ).to_parquet(run / "local_extension.parquet", index=False)
    pd.DataFrame(
        {
            "node_id": [NODE, NODE, NODE, NODE],
            "enterprise_id": ["S", "T", "U", "V"],
            "reason_code": ["signed", "terminated", "terminated", "marked_not_fit"],
            "reason": [
                "已于2025-01-02签约，不再作为本节点目标",
                "2025-09-01终止（未注明终止原因），24个月内不再推荐",
                "…",
                "经核实不生产本节点产品（核实人 张三，2026-06-01）",
            ],
        }
    ).to_parquet(run / "excluded.parquet", index=False)
    pd.DataFrame({"node_id": [NODE], "n_fit": [7], "n_near_fit": [23]}).to_parquet(run / "lists.parquet", index=False)
    pd.DataFrame(
        {"node_id": [NODE, ALSO], "near_rank": [1, 1], "enterprise_id": ["N", "M"], "fit": [0.39, 0.2],
         "score": [0.1, 0.1], "name": ["待核实光芯片公司", "别的节点公司"]}
    ).to_parquet(run / "near_fit.parquet", index=False)  # fmt: skip
    return ws


@pytest.fixture
def page(
    published_workspace: Path, make_client: Callable[..., TestClient], log_in: Callable[[TestClient, str], str]
) -> TestClient:
    client = make_client(with_lists(published_workspace))
    log_in(client, store.create_token(client.app.state.engine, "v", "viewer"))  # type: ignore[attr-defined]
    return client


def test_node_page_says_how_many_fit_and_shows_the_local_extension_and_exclusions(page: TestClient) -> None:
    html = page.get(f"/nodes/{NODE}").text
    assert '<span id="n-fit">本节点匹配企业 7 家</span> · 共 1 家目标企业' in html
    assert (
        "未列入：已签约或落地 1 家，近24个月内终止接洽 2 家，经核实不生产本节点产品 1 家（原因见 Excel「排除名单」）"
        in html
    )
    near = html[html.index('id="near-fit"') :]
    assert near.startswith(
        'id="near-fit">另有 23 家企业匹配度在 5%–50% 之间，未列入名单；其中最接近阈值的 1 家见 Excel「待核实」'
    )  # 23 in the band; the run's 待核实 holds 1 for this node
    local = html[html.index('id="local-extension"') :]
    assert "本地延链（1家）" in local and "光谷本地光纤公司" in local and "光纤光缆" in local
    assert html.index('id="targets"') < html.index('id="local-extension"')  # not mixed with the targets


def test_the_node_download_holds_the_nodes_local_extension_exclusions_and_firms_to_check(
    page: TestClient, tmp_path: Path
) -> None:
    from recommender.runs.export import read_workbook

    path = tmp_path / "node.xlsx"
    path.write_bytes(page.get(f"/nodes/{NODE}/targets.xlsx").content)  # what the page's 下载Excel gives
    book = read_workbook(path)
    assert book["排除名单"]["排除原因"].tolist()[0] == "已于2025-01-02签约，不再作为本节点目标"  # as the page says
    assert book["本地延链"]["企业名称"].tolist() == ["光谷本地光纤公司"]
    check = book["待核实"]  # only this node's rows
    assert check["企业名称"].tolist() == ["待核实光芯片公司"]
    assert check["说明"].tolist() == [
        "匹配度39%，低于阈值50%，未列入名单：请核实其是否生产本节点产品，在「核实结果」填 是 / 否"
    ]


def test_enterprise_page_shows_the_other_nodes_it_fits(page: TestClient) -> None:
    html = page.get(f"/enterprises/{E1}").text
    also = html[html.index('id="also-fits"') :]
    also = also[: also.index("</p>")]
    assert f'<a href="/nodes/{ALSO}">光通信 · 光纤预制棒</a>、<a href="/nodes/{HOME}">' in also
    assert "每家企业最多列入 3 个节点名单" in also


def test_api_items_carry_fit_n_fit_and_also_fits(page: TestClient) -> None:
    token = store.create_token(page.app.state.engine, "api", "viewer")  # type: ignore[attr-defined]
    h = {"Authorization": f"Bearer {token}"}
    item = page.get(f"/api/nodes/{NODE}/targets", headers=h).json()["items"][0]
    assert (item["fit"], item["n_fit"], item["also_fits"]) == (0.93, 7, f"{ALSO}|{HOME}")
    detail = page.get(f"/api/enterprises/{E1}", headers=h).json()
    assert detail["also_fits"] == [ALSO, HOME]
    assert detail["local_extension"] == []


def test_a_run_from_before_the_lists_shows_no_counts(
    published_workspace: Path, make_client: Callable[..., TestClient], log_in: Callable[[TestClient, str], str]
) -> None:
    client = make_client(published_workspace)
    log_in(client, store.create_token(client.app.state.engine, "v", "viewer"))  # type: ignore[attr-defined]
    html = client.get(f"/nodes/{NODE}").text
    assert "本节点匹配企业" not in html and 'id="local-extension"' not in html and 'id="excluded"' not in html
    assert 'id="near-fit"' not in html
    assert 'id="also-fits"' not in client.get(f"/enterprises/{E1}").text
