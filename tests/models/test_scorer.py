"""The published scorer: every family round-trips through plain files and predicts the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.scorer import Calibration, SigningScorer
from training.signing import SigningModel


def _data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.normal(size=n)})
    X.loc[rng.random(n) < 0.2, "b"] = np.nan
    logit = 1.5 * X["a"].to_numpy() - np.nan_to_num(X["b"].to_numpy(), nan=1.0) - 1.0
    return X, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)


@pytest.mark.parametrize(
    ("family", "calibration"), [("lightgbm", "isotonic"), ("logistic", "platt"), ("logistic", "none")]
)
def test_scorer_round_trip_predicts_like_the_model(tmp_path: Path, family: str, calibration: str) -> None:
    X, y = _data(1500, 0)
    Xv, yv = _data(600, 1)
    model = SigningModel(family=family, calibration=calibration, n_estimators=40).fit(  # type: ignore[arg-type]
        X, y, X_valid=Xv, y_valid=yv
    )
    scorer = model.scorer(info={"rows": 1500})
    np.testing.assert_allclose(scorer.predict(Xv), model.predict(Xv), rtol=0, atol=1e-12)
    loaded = SigningScorer.load(scorer.save(tmp_path / "s"))
    assert (loaded.family, loaded.kind, loaded.info) == (
        family,
        "linear" if family == "logistic" else "lightgbm",
        {"rows": 1500},
    )
    np.testing.assert_allclose(loaded.predict(Xv), model.predict(Xv), rtol=0, atol=1e-12)
    p = loaded.predict(Xv)
    assert np.all((p >= 0) & (p <= 1))
    contrib = loaded.contributions(Xv)
    assert list(contrib.columns) == ["a", "b", "c", "bias"]
    np.testing.assert_allclose(contrib.sum(axis=1).to_numpy(), loaded.margin(Xv), rtol=0, atol=1e-9)
    assert contrib["a"].corr(Xv["a"]) > 0.5  # the feature that drives signing drives its contribution


def test_scorer_refuses_a_changed_booster_and_missing_features(tmp_path: Path) -> None:
    X, y = _data(800, 2)
    scorer = SigningModel(family="lightgbm", calibration="none", n_estimators=10).fit(X, y).scorer()
    folder = scorer.save(tmp_path / "s")
    with pytest.raises(ValueError, match="missing features \\['c'\\]"):
        scorer.predict(X[["a", "b"]])
    (folder / "model.txt").write_text((folder / "model.txt").read_text() + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="sha256"):
        SigningScorer.load(folder)


def test_isotonic_calibration_is_monotone_and_clipped() -> None:
    cal = Calibration("isotonic", (0.0, 1.0), (0.1, 0.4))
    np.testing.assert_allclose(cal.apply(np.array([-5.0, 0.5, 9.0])), [0.1, 0.25, 0.4])
    with pytest.raises(ValueError, match="non-decreasing"):
        Calibration("isotonic", (1.0, 0.0), (0.1, 0.4))
