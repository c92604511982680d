"""Shared test setup: offline, quiet, deterministic."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from features import schema as S

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def random_seed() -> int:
    """Seed for seeded tests; SANSETU_TEST_SEED overrides (sklearn's global_random_seed idea)."""
    return int(os.environ.get("SANSETU_TEST_SEED", "42"))


E1 = "91420100MA4K0000XJ"  # valid check character (see features.validate)
NODE = "optical_comm.optical_chip"


def _write_snapshot(ws: Path, table: str, df: pd.DataFrame) -> None:
    d = ws / "snapshots" / table
    d.mkdir(parents=True, exist_ok=True)
    df.to_parquet(d / "20260101T000000000000.parquet", index=False)


@pytest.fixture
def published_workspace(tmp_path: Path) -> Path:
    """A workspace with ingested snapshots and one published run, built by hand (no pipeline)."""
    ws = tmp_path / "ws"
    ent = pd.DataFrame(
        {
            S.COL_ENTERPRISE_ID: [E1],
            S.COL_NAME: ['=HYPERLINK("http://x","y")光芯科技有限公司'],
            S.COL_PROVINCE: ["广东省"],
            S.COL_CITY: ["深圳市"],
            S.COL_CAPITAL_CNY: [5e7],
            S.COL_LISTED: [False],
            S.COL_FOUNDED: [pd.Timestamp("2018-03-01")],
        }
    )
    _write_snapshot(ws, "enterprises", ent)
    _write_snapshot(
        ws,
        "signals",
        pd.DataFrame(
            {
                S.COL_SIGNAL_ID: ["s1"],
                S.COL_ENTERPRISE_ID: [E1],
                S.COL_SIGNAL_TYPE: ["financing"],
                S.COL_DATE: [pd.Timestamp("2026-03-01")],
            }
        ),
    )
    run = ws / "runs" / "2026-06-30"
    run.mkdir(parents=True)
    pd.DataFrame(
        {
            "chain_id": ["optical_comm"],
            "node_id": [NODE],
            "name": ["光芯片"],
            "stage": ["upstream"],
            "colour": ["red"],
            "reason": ["本地无企业布局"],
            "priority": [0.8],
        }
    ).to_parquet(run / "map.parquet", index=False)
    pd.DataFrame(
        {
            "chain_id": ["optical_comm"],
            "node_id": [NODE],
            "rank": [1],
            "enterprise_id": [E1],
            "name": ['=HYPERLINK("http://x","y")光芯科技有限公司'],
            "score": [0.9],
            "reasons": [json.dumps([{"text": "近180天完成B轮融资"}], ensure_ascii=False)],
            "routes": [
                json.dumps(
                    [
                        {"theme": "资本招商", "score": 0.5, "sentence": "经光谷基金对接"},
                        {"theme": "生态圈招商", "score": 0.2, "sentence": "经校友会对接"},
                    ],
                    ensure_ascii=False,
                )
            ],
            "theme": ["资本招商"],
            "sources": ["dense|lexical"],
            "listed": [0.0],
            "contrib_listed": [-0.1],
        }
    ).to_parquet(run / "targets.parquet", index=False)
    (run / "manifest.json").write_text(json.dumps({"run_id": "2026-06-30", "as_of": "2026-06-30"}), encoding="utf-8")
    from recommender.runs.directory import diff_runs

    diff = diff_runs(None, pd.read_parquet(run / "targets.parquet"), None, pd.read_parquet(run / "map.parquet"),
                     since=None, run_id="2026-06-30")  # fmt: skip
    (run / "diff.json").write_text(json.dumps(diff, ensure_ascii=False), encoding="utf-8")
    (ws / "published").symlink_to(run)
    return ws
