"""`sansetu paths` and `sansetu explain` on a small workspace (snapshots written in tmp_path)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.io import write_snapshot
from recommender.cli.common import app
from recommender.paths.targets import build_targets
from recommender.ranking import detail as ranking_detail

NODE = "optical_comm.optical_module"


def tables() -> dict[str, pd.DataFrame]:
    relations = pd.DataFrame(
        [
            ("R1", "T", "enterprise", "LEAD", "enterprise", "supplier", 0.9, "2025-06-30"),
            ("R2", "F1", "asset", "E", "enterprise", "fund_portfolio", 0.8, "2025-06-30"),
            ("R3", "E", "enterprise", "T", "enterprise", "parent", 1.0, "2025-06-30"),
        ],
        columns=["relation_id", "src_id", "src_type", "dst_id", "dst_type", "relation_type", "weight", "date"],
    )
    relations["date"] = pd.to_datetime(relations["date"])
    assets = pd.DataFrame(
        {
            "asset_id": ["F1"],
            "asset_type": ["fund"],
            "name": ["光谷产业基金"],
            "description": [""],
            "node_id": [None],
            "owner": [""],
        }
    )
    presence = pd.DataFrame(
        {"enterprise_id": ["LEAD"], "node_id": ["optical_comm.fiber_cable"], "year": [2025], "is_chain_leader": [True]}
    )
    enterprises = pd.DataFrame(
        {
            "enterprise_id": ["T", "LEAD", "E"],
            "name": ["苏州光芯科技", "长飞光纤", "光芯控股"],
            "province": ["江苏省", "湖北省", "上海市"],
            "products": ["800G光模块", "光纤", ""],
        }
    )
    signals = pd.DataFrame(
        {
            "signal_id": ["S1"],
            "enterprise_id": ["T"],
            "signal_type": ["financing"],
            "date": pd.to_datetime(["2025-05-01"]),
            "amount_cny": [5e7],
            "province": [None],
        }
    )
    outcomes = pd.DataFrame(columns=["outcome_id", "enterprise_id", "node_id", "stage", "date"])
    return {
        "relations": relations,
        "assets": assets,
        "presence": presence,
        "enterprises": enterprises,
        "signals": signals,
        "outcomes": outcomes,
    }


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    for name, df in tables().items():
        write_snapshot(df, tmp_path / "snapshots", name)
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_paths_json_lists_routes(workspace):
    code, out = run("paths", "T", "--node", NODE, "--format", "json", "-w", str(workspace))
    assert code == 0, out
    routes = json.loads(out)
    assert [(r["theme"], r["entry_id"], r["sentence"]) for r in routes] == [
        ("产业链招商", "LEAD", "经本地链主〈长飞光纤〉（〈苏州光芯科技〉为其上游供应商）对接"),
        (
            "资本招商",
            "F1",
            "经园区基金〈光谷产业基金〉（〈光芯控股〉为其投资组合企业，〈苏州光芯科技〉为〈光芯控股〉的子公司）对接",
        ),
    ]
    assert routes[0]["hops"] == [
        {"src": "T", "relation_type": "supplier", "dst": "LEAD", "relation_id": "R1", "date": "2025-06-30"}
    ]
    assert {r["enterprise_id"] for r in routes} == {"T"}


def test_paths_table_and_top(workspace):
    code, out = run("paths", "T", "--top", "1", "-w", str(workspace))
    assert code == 0, out
    assert "产业链招商" in out and "资本招商" not in out


def test_paths_unknown_enterprise_exits_2(workspace):
    code, out = run("paths", "NOPE", "-w", str(workspace))
    assert code == 2
    assert "enterprise 'NOPE' is not in the enterprises snapshot (3 enterprises); ingest it first" in out


def test_paths_rejects_csv_format(workspace):
    code, out = run("paths", "T", "--format", "csv", "-w", str(workspace))
    assert code == 2
    assert "must be one of ['table', 'json']; got 'csv'" in out


def _publish(workspace: Path, targets: pd.DataFrame) -> None:
    run_dir = workspace / "runs" / "20250701"
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps({"run_id": "20250701"}), encoding="utf-8")
    targets.to_parquet(run_dir / "targets.parquet", index=False)
    os.symlink(os.path.relpath(run_dir, workspace), workspace / "published")


def test_explain_reads_the_published_run(workspace):
    scored = pd.DataFrame(
        {
            "node_id": [NODE],
            "enterprise_id": ["T"],
            "score": [0.5],
            "rank": [1],
            "contributions": [{"signals_financing_90d": 0.4, "ties_leader": 0.3, "bias": -0.2}],
        }
    )
    targets = build_targets(scored, tables(), as_of="2025-07-01", zone_province="湖北省").drop(
        columns=["contributions"]
    )
    _publish(workspace, targets)
    code, out = run("explain", "T", "--node", NODE, "--format", "json", "-w", str(workspace))
    assert code == 0, out
    detail = json.loads(out)
    assert detail["source"] == "published run 20250701"
    assert (detail["score"], detail["rank"], detail["theme"], detail["mode"]) == (0.5, 1, "产业链招商", "model")
    assert [(r["text"], r["contribution"], r["evidence"]) for r in detail["reasons"]] == [
        ("近90天完成融资（金额5000万元）", 0.4, {"signal_id": ["S1"]}),
        ("为本地链主〈长飞光纤〉的上游供应商", 0.3, {"relation_id": ["R1"]}),
    ]
    assert [r["entry_id"] for r in detail["routes"]] == ["LEAD", "F1"]
    code, out = run("explain", "T", "--node", NODE, "-w", str(workspace))
    assert code == 0, out
    assert "推荐理由" in out and "对接路径" in out and "signal_id:S1" in out


def test_explain_live_when_not_published(workspace, monkeypatch):
    def fake_score(settings, enterprise_id, node, tables, nodes, map_df, as_of):
        row = {"node_id": node, "enterprise_id": enterprise_id, "score": 0.1, "fit": 0.8, "contrib_ties_leader": 0.3}
        return pd.DataFrame([{**row, "contrib_bias": -0.2}]), "model"

    monkeypatch.setattr(ranking_detail, "score_live", fake_score)
    monkeypatch.setattr(ranking_detail, "live_map", lambda settings, nodes, tables: None)
    code, out = run("explain", "T", "--node", NODE, "--as-of", "2025-07-01", "--format", "json", "-w", str(workspace))
    assert code == 0, out
    detail = json.loads(out)
    assert (detail["source"], detail["score"], detail["mode"], detail["fit"]) == ("live", 0.1, "model", 0.8)
    assert [(r["text"], r["contribution"]) for r in detail["reasons"]] == [("为本地链主〈长飞光纤〉的上游供应商", 0.3)]


def test_explain_unknown_node_is_bad_parameter(workspace):
    code, out = run("explain", "T", "--node", "x.nope", "-w", str(workspace))
    assert code == 2
    assert "unknown node 'x.nope'" in out
