"""The gate: fit-gated lists, expected signings off-policy, the better family wins (constructed case)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.scorer import Calibration, LinearMargin, SigningScorer
from training.config import TrainingConfig
from training.train import beats, best_family, fit_lists, gate_table, list_metrics


def _linear(family: str, coef: tuple[float, float]) -> SigningScorer:
    lin = LinearMargin(names=("good", "noise"), median=(0.0, 0.0), gaps=(False, False), mean=(0.0, 0.0),
                       scale=(1.0, 1.0), coef=coef, intercept=-3.0)  # fmt: skip
    return SigningScorer(family, ["good", "noise"], Calibration("sigmoid"), linear=lin)


def _world(seed: int = 0, n_units: int = 480, per_unit: int = 80) -> tuple[pd.DataFrame, np.ndarray]:
    """Units of candidates; the team approaches ~15 % at random-ish (π known); P(sign) rises with ``good``."""
    rng = np.random.default_rng(seed)
    n = n_units * per_unit
    unit = np.repeat(np.arange(n_units), per_unit)
    good, noise = rng.normal(size=n), rng.normal(size=n)
    truth = 1 / (1 + np.exp(-(-2.0 + 1.5 * good)))
    propensity = np.clip(0.15 + 0.05 * noise, 0.02, 0.5)
    approached = rng.random(n) < propensity
    signed = np.where(approached, (rng.random(n) < truth).astype(float), np.nan)
    frame = pd.DataFrame({
        "node_id": [f"n{u % 6}" for u in unit], "enterprise_id": [f"e{i:05d}" for i in range(n)],
        "as_of": pd.to_datetime("2024-01-01") + pd.to_timedelta(91 * (unit // 6), unit="D"),
        "good": good, "noise": noise, "fit": np.where(rng.random(n) < 0.8, 0.9, 0.1),
        "approached": approached, "signed": signed, "propensity": propensity,
    })  # fmt: skip
    return frame, truth


def test_fit_lists_never_list_a_firm_below_the_threshold_whatever_its_score() -> None:
    frame, _ = _world()
    score = np.where(frame["fit"] < 0.5, 1e9, frame["good"])  # the unfit firms score highest
    lists = fit_lists(frame, score, k=20, fit_threshold=0.5)
    assert len(lists) and (frame["fit"].to_numpy()[lists["row"]] >= 0.5).all()
    assert lists.groupby(["node_id", "as_of"]).size().max() == 20


def test_the_gate_promotes_the_family_whose_lists_sign_more() -> None:
    frame, truth = _world()
    better, worse = _linear("better", (1.5, 0.0)), _linear("worse", (0.0, 1.5))
    cfg = TrainingConfig(families=["binary_ipw", "logistic"], promotion_metric="ope_signings@10")
    table = gate_table(frame, {"binary_ipw": worse, "logistic": better}, cfg, 0.5,
                       truth=lambda rows: truth, judge=better)  # fmt: skip
    assert best_family(table, 10, cfg.families) == "logistic"
    ope, real = table["logistic"]["ope_signings@10"], table["logistic"]["signings@10"]
    assert real > 1.5 * table["binary_ipw"]["signings@10"]  # the constructed case is not close
    assert ope == pytest.approx(real, rel=0.2)  # the estimate lands near the truth
    assert table["binary_ipw"]["ope_signings@10"] == pytest.approx(table["binary_ipw"]["signings@10"], rel=0.2)


def test_best_family_breaks_ties_at_smaller_k_then_by_order_and_never_picks_nan() -> None:
    def row(a: float, b: float, c: float) -> dict[str, float]:
        return {"ope_signings@20": a, "ope_signings@10": b, "ope_signings@5": c}

    # the same firms in every top 20 (lists shorter than 20): the one with the likelier signers first wins
    table = {"a": row(1.0, 0.9, 0.5), "b": row(1.0, 0.9, 0.6), "c": row(float("nan"), 2.0, 2.0)}
    assert best_family(table, 20, ["a", "b", "c"]) == "b"
    assert best_family({"a": row(1.0, 0.9, 0.5), "b": row(1.0 + 1e-12, 0.9, 0.5)}, 20, ["b", "a"]) == "b"
    assert best_family({"a": row(0.9, 2.0, 2.0), "b": row(1.0, 0.1, 0.1)}, 20, ["a", "b"]) == "b"
    assert not beats((1.0, 0.9), (1.0, 0.9)) and beats((1.0, 0.95), (1.0, 0.9))
    assert not beats((1.05, 0.0), (1.0, 0.9), margin=0.1)  # the margin applies to the first cut-off


def test_list_metrics_count_empty_lists_as_no_signings() -> None:
    frame, truth = _world(n_units=12)
    frame["fit"] = 0.0
    frame.loc[frame.index[:5], "fit"] = 1.0  # only the first unit has firms that fit
    m = list_metrics(frame, frame["good"].to_numpy(), np.full(len(frame), 0.1), k=20, fit_threshold=0.5,
                     max_weight=50.0, truth=truth)  # fmt: skip
    assert m["places@20"] == pytest.approx(5 / 12)
    assert m["signings@20"] == pytest.approx(truth[:5].sum() / 12)
