"""What the ranker learns from: approached pairs pooled per period, policy-revealing features left out."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.pairs import FEATURE_NAMES
from training.config import TrainingConfig
from training.dataset import COL_APPROACHED, COL_LABEL, COL_QUERY, build_training_set
from training.train import SYSTEMS, fit_ranker, model_features, ranker_rows, train_and_evaluate

EXCLUDED = ["prior_contacts", "terminated_365d", "contacted_node_before", "node_colour", "node_gap", "strategic_weight"]


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            COL_QUERY: ["b@2024-01-01", "b@2024-01-01", "a@2024-04-01", "a@2024-04-01", "b@2024-04-01"],
            "node_id": ["b", "b", "a", "a", "b"],
            "enterprise_id": ["e1", "e2", "e3", "e4", "e5"],
            "as_of": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-04-01", "2024-04-01", "2024-04-01"]),
            COL_LABEL: [3.0, 0.0, 1.0, 0.0, 2.0],
            COL_APPROACHED: [True, False, True, False, True],
        }
    )


def test_model_features_leave_out_the_configured_features_in_order() -> None:
    kept = model_features(list(FEATURE_NAMES), TrainingConfig())
    assert kept == [n for n in FEATURE_NAMES if n not in EXCLUDED]
    assert model_features(["a", "b"], TrainingConfig(excluded_features=[])) == ["a", "b"]


def test_model_features_rejects_unknown_names() -> None:
    with pytest.raises(
        ValueError,
        match=re.escape("training.excluded_features names unknown features ['zz']; known: ['a', 'b']."),
    ):
        model_features(["a", "b"], TrainingConfig(excluded_features=["zz"]))


def test_ranker_rows_pool_approached_pairs_per_period() -> None:
    rows = ranker_rows(_frame(), TrainingConfig())
    assert rows["enterprise_id"].tolist() == ["e1", "e3", "e5"]
    assert rows[COL_QUERY].tolist() == ["period@2024-01-01", "period@2024-04-01", "period@2024-04-01"]
    pd.testing.assert_frame_equal(ranker_rows(_frame(), TrainingConfig(ranker_rows="approached")), rows)
    per_node = ranker_rows(_frame(), TrainingConfig(), pooled=False)
    assert per_node[COL_QUERY].tolist() == ["b@2024-01-01", "a@2024-04-01", "b@2024-04-01"]


def test_ranker_rows_all_keeps_every_candidate() -> None:
    frame = _frame()
    pd.testing.assert_frame_equal(ranker_rows(frame, TrainingConfig(ranker_rows="all")), frame)


def test_fit_ranker_uses_model_features_and_is_deterministic(world: dict[str, Any]) -> None:
    cfg = TrainingConfig(n_estimators=30, early_stopping_rounds=10)
    ts = build_training_set(
        world["tables"], world["nodes"], world["map_df"], world["candidates"], cfg, zone_province="湖北省"
    )
    frame = ts.frame
    dates = np.sort(frame["as_of"].unique())
    train, valid = frame[frame["as_of"] < dates[-3]], frame[frame["as_of"].isin(dates[-3:-1])]
    a = fit_ranker(train, valid, ts.feature_names, cfg)
    b = fit_ranker(train, valid, ts.feature_names, cfg)
    assert a.feature_names_ == [n for n in FEATURE_NAMES if n not in EXCLUDED]
    np.testing.assert_array_equal(a.predict(frame), b.predict(frame))
    conversion = fit_ranker(train, valid, ts.feature_names, cfg.model_copy(update={"ranker_rows": "approached"}))
    approach = fit_ranker(train, valid, ts.feature_names, cfg.model_copy(update={"ranker_rows": "all"}))
    assert a.best_iteration_ == conversion.best_iteration_ + approach.best_iteration_  # two parts in one booster


def test_train_and_evaluate_fits_every_family_and_keeps_the_best(world: dict[str, Any]) -> None:
    cfg = TrainingConfig(n_estimators=30, early_stopping_rounds=10, max_negatives_per_query=50)
    ts = build_training_set(
        world["tables"], world["nodes"], world["map_df"], world["candidates"], cfg, zone_province="湖北省"
    )
    result = train_and_evaluate(ts, cfg, oracle=world["oracle"])
    train = ts.frame[ts.frame["as_of"].isin(set(result.split.train))]
    assert result.counts["approached_train"] == int(train[COL_APPROACHED].sum())
    assert result.counts["signed_train"] == int(np.nansum(train["signed"]))
    assert set(result.scorers) == set(result.validation) == set(cfg.families)
    metric = cfg.promotion_metric
    best = max(result.validation[f][metric] for f in cfg.families)
    assert result.model is result.scorers[result.family] and result.validation[result.family][metric] == best
    assert set(result.metrics) == set(result.metrics_approached) == set(SYSTEMS)
    np.testing.assert_array_equal(result.test["score_ranker"], result.test[f"score_{result.family}"])
    p = result.model.predict(result.test)
    assert result.model.is_probability and np.all((p >= 0) & (p <= 1))
