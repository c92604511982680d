"""score_candidates (model and heuristic fallback), ranks per node, champion loading."""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.pairs import FEATURE_NAMES
from recommender.ranking.scoring import HEURISTIC_NOTICE, ModelBundle, load_champion, rank_within_node, score_candidates
from recommender.settings import load_settings
from training.config import TrainingConfig
from training.dataset import build_training_set
from training.train import train_and_evaluate

_spec = importlib.util.spec_from_file_location(
    "ranking_world", Path(__file__).resolve().parents[2] / "training" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
world_module = importlib.util.module_from_spec(_spec)
sys.modules["ranking_world"] = world_module
_spec.loader.exec_module(world_module)
AS_OF = pd.Timestamp("2025-01-01")


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    return world_module.make_world(n_enterprises=300, random_state=1)


@pytest.fixture(scope="module")
def bundle(world: dict[str, Any]) -> ModelBundle:
    cfg = TrainingConfig(n_estimators=40, early_stopping_rounds=10, max_negatives_per_query=60)
    ts = build_training_set(
        world["tables"], world["nodes"], world["map_df"], world["candidates"], cfg, zone_province="湖北省"
    )
    result = train_and_evaluate(ts, cfg)
    return ModelBundle(result.model, "1", "sansetu-ranker", "sqlite:///unused.db")


def test_score_candidates_with_a_model_adds_score_rank_and_contributions(
    world: dict[str, Any], bundle: ModelBundle
) -> None:
    cands = world["candidates"]
    out = score_candidates(
        cands, world["tables"], world["nodes"], world["map_df"], AS_OF, bundle, zone_province="湖北省"
    )
    assert len(out) == len(cands) and out.index.equals(cands.index)
    assert set(FEATURE_NAMES) <= set(out.columns)
    contrib = out[[f"contrib_{f}" for f in bundle.feature_names] + ["contrib_bias"]]
    X = out[bundle.feature_names]
    # contributions sum to the margin; the published score is its calibrated probability
    np.testing.assert_allclose(contrib.sum(axis=1).to_numpy(), bundle.model.margin(X), atol=1e-9)
    np.testing.assert_allclose(out["score"].to_numpy(), bundle.model.predict(X), atol=1e-9)
    assert bundle.model.is_probability and out["score"].between(0, 1).all()
    for _, g in out.groupby("node_id"):
        ordered = g.sort_values("rank")
        assert ordered["rank"].tolist() == list(range(1, len(g) + 1))
        assert ordered["score"].is_monotonic_decreasing
    again = score_candidates(
        cands, world["tables"], world["nodes"], world["map_df"], AS_OF, bundle, zone_province="湖北省"
    )
    pd.testing.assert_frame_equal(out, again)  # deterministic


def test_score_candidates_without_champion_uses_the_heuristic_and_says_so(
    world: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="recommender.ranking.scoring"):
        out = score_candidates(
            world["candidates"], world["tables"], world["nodes"], world["map_df"], AS_OF, None, zone_province="湖北省"
        )
    assert HEURISTIC_NOTICE == "no champion yet, using the heuristic"
    assert [r.getMessage() for r in caplog.records] == [HEURISTIC_NOTICE]
    assert not any(c.startswith("contrib_") for c in out.columns)
    assert out["score"].between(-0.2, 1.0).all() and out["rank"].min() == 1


def test_score_candidates_requires_as_of(world: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=re.escape("as_of is required: pass the run date")):
        score_candidates(
            world["candidates"], world["tables"], world["nodes"], world["map_df"], None, None, zone_province="湖北省"
        )


def test_rank_within_node_breaks_ties_by_enterprise_id() -> None:
    scored = pd.DataFrame({"node_id": ["a", "a", "a", "b"], "enterprise_id": ["E3", "E1", "E2", "E9"],
                           "score": [0.5, 0.5, 0.9, 0.1]}, index=[10, 11, 12, 13])  # fmt: skip
    assert rank_within_node(scored).tolist() == [3, 2, 1, 1]


def test_load_champion_is_none_for_an_empty_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = load_settings(workspace=tmp_path / "ws")
    assert load_champion(settings) is None


def test_with_feedback_merges_the_service_store_into_outcomes(tmp_path: Path) -> None:
    from features import schema as S
    from recommender import store
    from recommender.ranking.jobs import with_feedback
    from recommender.settings import load_settings

    settings = load_settings(workspace=tmp_path / "ws")
    ingested = pd.DataFrame(
        {
            S.COL_OUTCOME_ID: ["o1"],
            S.COL_ENTERPRISE_ID: ["91420100MA4K0000XJ"],
            S.COL_NODE_ID: ["optical_comm.optical_chip"],
            S.COL_STAGE: ["接洽"],
            S.COL_DATE: [pd.Timestamp("2025-01-02")],
            S.COL_AMOUNT_CNY: [float("nan")],
            S.COL_NOTE: [None],
        }
    )
    assert with_feedback(settings, ingested) is ingested
    assert not (tmp_path / "ws" / "service.db").exists()  # no store is created just to read it
    engine = store.engine_for(settings)
    store.add_feedback(
        engine, enterprise_id="91420100MA4K0000XJ", node_id="optical_comm.optical_chip", stage="签约", author="王"
    )
    merged = with_feedback(settings, ingested)
    assert merged[S.COL_STAGE].tolist() == ["接洽", "签约"]
    assert with_feedback(settings, merged)[S.COL_STAGE].tolist() == ["接洽", "签约"]  # idempotent
