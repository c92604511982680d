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
