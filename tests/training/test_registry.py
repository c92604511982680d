"""MLflow round trip against SQLite in tmp_path and the champion/challenger gate."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from training.config import TrainingConfig
from training.dataset import build_training_set
from training.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    ModelRegistry,
    RegistryError,
    gate,
    list_versions,
    metric_key,
    resolve_tracking_uri,
)
from training.train import TrainResult, gate_table, train_and_evaluate

CONFIG = TrainingConfig(n_estimators=60, early_stopping_rounds=20, max_negatives_per_query=80)


@pytest.fixture(scope="module")
def results(_world_cache: dict[str, Any]) -> dict[str, TrainResult]:
    """A good run and a worse one (labels shuffled within the data) judged on the same rows."""
    w = _world_cache
    ts = build_training_set(w["tables"], w["nodes"], w["map_df"], w["candidates"], CONFIG, zone_province="湖北省")
    good = train_and_evaluate(ts, CONFIG, oracle=w["oracle"])
    rng = np.random.default_rng(0)
    frame = ts.frame
    approached = frame["approached"].to_numpy(dtype=bool)
    signed = frame["signed"].to_numpy().copy()
    signed[approached] = rng.permutation(signed[approached])
    shuffled = frame.assign(label=rng.permutation(frame["label"].to_numpy()), signed=signed)
    bad = train_and_evaluate(dataclasses.replace(ts, frame=shuffled), CONFIG)
    # judge the bad run on the good run's rows (the real labels) with the good run's direct model
    validation = gate_table(good.valid, bad.scorers, CONFIG, good.fit_threshold, judge=good.judge)
    bad_on_good = dataclasses.replace(bad, test=good.test, valid=good.valid, judge=good.judge, validation=validation)
    return {"good": good, "bad": bad_on_good}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite store per module (creating its tables takes seconds); each test uses its own model name."""
    return tmp_path_factory.mktemp("mlflow")


def _registry(store: Path, name: str) -> ModelRegistry:
    return ModelRegistry(
        tracking_uri=f"sqlite:///{store / 'mlflow.db'}",
        model_name=name,
        experiment="sansetu-ranker-test",
        artifact_location=(store / "mlartifacts").as_uri(),
    )


def test_gate_needs_more_than_the_margin() -> None:
    assert gate(0.5, None, 0.0) == (True, "no champion yet")
    assert gate(0.5, 0.5, 0.0) == (False, "challenger 0.5000 <= champion 0.5000 + margin 0")
    assert gate(0.52, 0.5, 0.01) == (True, "challenger 0.5200 > champion 0.5000 + margin 0.01")
    assert gate(0.505, 0.5, 0.01)[0] is False


def test_resolve_tracking_uri_prefers_env_then_config() -> None:
    assert resolve_tracking_uri(None, None, "sqlite:///w.db") == "sqlite:///w.db"
    assert resolve_tracking_uri("http://cfg", None, "sqlite:///w.db") == "http://cfg"
    assert resolve_tracking_uri("http://cfg", "http://env", "sqlite:///w.db") == "http://env"
    assert metric_key("ranker", "ndcg@20") == "test.ranker.ndcg_at_20"


def test_registry_round_trip_and_promotion_gate(store: Path, results: dict[str, TrainResult]) -> None:
    reg = _registry(store, "sansetu-ranker-gate")
    good, bad = results["good"], results["bad"]
    metric = CONFIG.promotion_metric
    assert metric == "ope_signings@20"
    good_value = good.validation[good.family][metric]
    assert good_value > bad.validation[bad.family][metric]
    assert reg.load_champion() is None and reg.list_versions() == []

    first = reg.log_training_run(good, CONFIG, promote_if_better=True)
    assert (first.version, first.promoted, first.champion_version) == ("1", True, None)
    # round trip: the registered champion predicts exactly like the trained ranker
    loaded = reg.load_champion()
    assert loaded is not None and loaded[1] == "1"
    X = good.test[good.model.feature_names]
    np.testing.assert_allclose(loaded[0].predict(X), good.model.predict(X), rtol=0, atol=1e-12)
    assert loaded[0].family == good.family and loaded[0].is_probability

    worse = reg.log_training_run(bad, CONFIG, promote_if_better=True)
    assert (worse.version, worse.better, worse.promoted, worse.champion_version) == ("2", False, False, "1")
    assert worse.champion_value == pytest.approx(good_value, abs=1e-9)  # re-judged on the same rows
    assert reg.alias_version(CHAMPION) == "1" and reg.alias_version(CHALLENGER) == "2"

    reg.promote("2")  # force the worse one in, then a better challenger must win the gate
    better = reg.log_training_run(good, CONFIG, promote_if_better=True)
    assert (better.version, better.better, better.promoted, better.champion_version) == ("3", True, True, "2")
    assert (reg.alias_version(CHAMPION), reg.alias_version(PREVIOUS)) == ("3", "2")

    assert reg.rollback() == {"champion": "2", "previous-champion": "3"}
    assert reg.alias_version(CHAMPION) == "2"

    rows = list_versions(reg.tracking_uri, reg.model_name)
    assert [(r["version"], r["aliases"]) for r in rows] == [
        ("3", [CHALLENGER, PREVIOUS]),
        ("2", [CHAMPION]),
        ("1", []),
    ]
    assert rows[0]["ndcg@20"] == pytest.approx(good.metrics["ranker"]["ndcg@20"], abs=1e-6)


def test_registry_errors_name_what_is_missing(store: Path, results: dict[str, TrainResult]) -> None:
    reg = _registry(store, "sansetu-ranker-test")
    with pytest.raises(RegistryError, match=re.escape("Model 'sansetu-ranker-test' has no 'previous-champion' alias")):
        reg.rollback()
    reg.log_training_run(results["good"], CONFIG)
    assert reg.alias_version(CHAMPION) is None  # without --promote-if-better nothing is promoted
    with pytest.raises(
        RegistryError, match=re.escape("Model 'sansetu-ranker-test' has no version '7'; known versions are ['1'].")
    ):
        reg.promote("7")


def test_registry_leaves_the_users_tracking_uri_environment_alone(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mlflow.set_tracking_uri writes MLFLOW_TRACKING_URI; a registry call must not leave it behind,
    or every later workspace in the process (a test, the web service) would resolve to this store."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    reg = _registry(store, "sansetu-ranker-env")
    assert reg.list_versions() == []
    assert "MLFLOW_TRACKING_URI" not in os.environ
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/mlflow.db")
    reg.alias_version("champion")
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:////elsewhere/mlflow.db"
