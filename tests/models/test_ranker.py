"""Ranker: determinism, early stopping, contributions, save/load round trip, errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.manifest import ManifestMismatchError
from models.ranker import Ranker


def make_ranking(
    n_queries: int = 40, per_query: int = 25, random_state: int = 0
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Queries of equal size; label grows with x0 + noise (like LightGBM's make_ranking)."""
    rng = np.random.default_rng(random_state)
    n = n_queries * per_query
    X = pd.DataFrame(rng.normal(size=(n, 4)), columns=["x0", "x1", "x2", "x3"])
    latent = 2 * X["x0"].to_numpy() + 0.5 * X["x1"].to_numpy() + rng.normal(scale=0.5, size=n)
    y = np.digitize(latent, [1.0, 2.0, 3.0]).astype(float)
    return X, y, np.full(n_queries, per_query)


def _fit(random_state: int = 42) -> Ranker:
    X, y, g = make_ranking(random_state=0)
    Xv, yv, gv = make_ranking(n_queries=10, random_state=1)
    return Ranker(n_estimators=50, early_stopping_rounds=10, random_state=random_state, min_child_samples=5).fit(
        X, y, g, eval_set=(Xv, yv), eval_group=gv
    )


def test_ranker_is_deterministic_and_learns(random_seed: int) -> None:
    a, b = _fit(random_seed), _fit(random_seed)
    Xt, _, _ = make_ranking(n_queries=5, random_state=2)
    np.testing.assert_array_equal(a.predict(Xt), b.predict(Xt))
    assert a.feature_names_ == ["x0", "x1", "x2", "x3"]
    assert 1 <= a.best_iteration_ <= 50
    assert a.feature_importance().index[0] == "x0"


def test_ranker_contributions_sum_to_the_score() -> None:
    r = _fit()
    Xt, _, _ = make_ranking(n_queries=3, random_state=3)
    contrib = r.contributions(Xt)
    assert list(contrib.columns) == ["x0", "x1", "x2", "x3", "bias"]
    np.testing.assert_allclose(contrib.sum(axis=1).to_numpy(), r.predict(Xt), atol=1e-9)


def test_ranker_selects_columns_by_name() -> None:
    r = _fit()
    Xt, _, _ = make_ranking(n_queries=3, random_state=3)
    np.testing.assert_array_equal(r.predict(Xt[["x3", "x2", "x1", "x0"]]), r.predict(Xt))
    with pytest.raises(ValueError, match=re.escape("X is missing features ['x3'] that the ranker was trained on.")):
        r.predict(Xt[["x0", "x1", "x2"]])


def test_ranker_save_load_round_trip(tmp_path: Path) -> None:
    r = _fit()
    r.save(tmp_path / "ranker", fingerprints={"training_set": "abc"}, config={"zone": "光谷"})
    loaded = Ranker.load(tmp_path / "ranker", expected_features=["x0", "x1", "x2", "x3"])
    Xt, _, _ = make_ranking(n_queries=5, random_state=2)
    np.testing.assert_array_equal(loaded.predict(Xt), r.predict(Xt))
    assert loaded.manifest_["component"] == "Ranker"
    assert loaded.manifest_["data_sha256"] == "abc"
    assert loaded.manifest_["extra"]["feature_names"] == ["x0", "x1", "x2", "x3"]
    assert loaded.manifest_["config"]["zone"] == "光谷"
    with pytest.raises(ManifestMismatchError, match=re.escape("Ranker manifest does not match: feature_names:")):
        Ranker.load(tmp_path / "ranker", expected_features=["x0"])
    (tmp_path / "ranker" / "model.txt").write_text("tree\n", encoding="utf-8")
    with pytest.raises(ManifestMismatchError, match=re.escape("Ranker manifest does not match: model_sha256:")):
        Ranker.load(tmp_path / "ranker")


def test_ranker_rejects_bad_groups_and_unfitted_use() -> None:
    X, y, g = make_ranking(n_queries=4, per_query=5)
    with pytest.raises(ValueError, match=re.escape("Sum of group (19) not equal to the number of rows (20).")):
        Ranker().fit(X, y, np.array([5, 5, 5, 4]))
    with pytest.raises(ValueError, match=re.escape("Length of y (19) not equal to the number of rows of X (20).")):
        Ranker().fit(X, y[:-1], g)
    with pytest.raises(ValueError, match=re.escape("eval_group is required with eval_set; got None.")):
        Ranker().fit(X, y, g, eval_set=(X, y))
    with pytest.raises(ValueError, match=re.escape("This Ranker instance is not fitted yet; call 'fit' first.")):
        Ranker().predict(X)


def _toy(random_state: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, list[int]]:
    rng = np.random.default_rng(random_state)
    X = pd.DataFrame(rng.random((400, 4)), columns=["a", "b", "c", "d"])
    return X, np.floor(X["a"].to_numpy() * 3 + rng.random(400)), np.floor(X["b"].to_numpy() * 3), [100] * 4


def test_ranker_blend_predicts_the_weighted_sum_in_one_model(tmp_path: Path) -> None:
    X, y1, y2, g = _toy(0)
    r1 = Ranker(n_estimators=20, num_leaves=5, min_child_samples=5).fit(X, y1, g)
    r2 = Ranker(n_estimators=7, num_leaves=5, min_child_samples=5).fit(X, y2, g)
    blended = Ranker.blend([(r1, 0.7), (r2, -2.5)])
    expected = 0.7 * r1.predict(X) - 2.5 * r2.predict(X)
    np.testing.assert_allclose(blended.predict(X), expected, rtol=0, atol=1e-12)
    contrib = blended.contributions(X)
    np.testing.assert_allclose(
        contrib.to_numpy(), 0.7 * r1.contributions(X).to_numpy() - 2.5 * r2.contributions(X).to_numpy(), atol=1e-12
    )
    assert blended.best_iteration_ == r1.best_iteration_ + r2.best_iteration_
    blended.save(tmp_path / "m")
    np.testing.assert_allclose(Ranker.load(tmp_path / "m").predict(X), expected, rtol=0, atol=1e-12)


def test_ranker_blend_requires_parts_with_the_same_features() -> None:
    X, y1, _, g = _toy(1)
    r1 = Ranker(n_estimators=3, num_leaves=4, min_child_samples=5).fit(X, y1, g)
    r2 = Ranker(n_estimators=3, num_leaves=4, min_child_samples=5).fit(X[["b", "a", "c", "d"]], y1, g)
    with pytest.raises(ValueError, match=re.escape("Ranker.blend needs at least one (ranker, weight) part; got none.")):
        Ranker.blend([])
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Ranker.blend parts must share features: expected ['a', 'b', 'c', 'd'], found ['b', 'a', 'c', 'd']."
        ),
    ):
        Ranker.blend([(r1, 1.0), (r2, 1.0)])
