"""A published pick's detail says what the lists say: fit, how many fit the node, the other nodes it
fits; a pair of the 本地延链 list is found there; an excluded pair's reason is read back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from recommender.ranking.detail import excluded_reason, list_facts, published_detail
from recommender.settings import Settings, load_settings

NODE = "optical_comm.optical_chip"


def publish(ws: Path, targets: pd.DataFrame, **frames: pd.DataFrame) -> Settings:
    run = ws / "runs" / "2026-06-30"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"run_id": "2026-06-30"}), encoding="utf-8")
    targets.to_parquet(run / "targets.parquet", index=False)
    for name, df in frames.items():
        df.to_parquet(run / f"{name}.parquet", index=False)
    os.symlink(os.path.relpath(run, ws), ws / "published")
    return load_settings(workspace=ws)


def row(eid: str, **extra: object) -> dict[str, object]:
    return {"node_id": NODE, "enterprise_id": eid, "name": f"{eid}公司", "score": 0.5, "rank": 1,
            "reasons": "[]", "routes": "[]", "theme": "", **extra}  # fmt: skip


def test_published_detail_carries_fit_n_fit_and_also_fits(tmp_path: Path) -> None:
    targets = pd.DataFrame([row("T", fit=0.8, n_fit=7, also_fits="a.b|c.d")])
    local = pd.DataFrame([row("L", fit=0.6, n_local_fit=2, zone_nodes="x.y")])
    excluded = pd.DataFrame(
        {"node_id": [NODE], "enterprise_id": ["S"], "reason": ["已于2025-01-02签约，不再作为本节点目标"]}
    )
    settings = publish(tmp_path, targets, local_extension=local, excluded=excluded)
    got = published_detail(settings, "T", NODE)
    assert got is not None
    assert {k: got[k] for k in ("list", "fit", "n_fit", "also_fits")} == {
        "list": "targets",
        "fit": 0.8,
        "n_fit": 7,
        "also_fits": ["a.b", "c.d"],
    }
    local_pick = published_detail(settings, "L", NODE)
    assert local_pick is not None
    assert {k: local_pick[k] for k in ("list", "n_fit", "also_fits")} == {"list": "local_extension", "n_fit": 2,
                                                                           "also_fits": []}  # fmt: skip
    assert published_detail(settings, "S", NODE) is None
    assert excluded_reason(settings, "S", NODE) == "已于2025-01-02签约，不再作为本节点目标"
    assert excluded_reason(settings, "T", NODE) is None


def test_list_facts_of_a_run_from_before_the_lists_are_empty() -> None:
    assert list_facts(pd.Series(row("T"))) == {"fit": None, "n_fit": None, "also_fits": []}
