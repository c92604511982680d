"""training.fit: the noisy-code likelihood, Bayes' rule for the code, calibration where the truth is known."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from training.fit import FitModel, code_states, fit_fit_model, reliability

NAMES = ("product_share", "best_logrank")


def make_world(n_firms: int = 1500, random_state: int = 0, code_noise: float = 0.0) -> pd.DataFrame:
    """Code families with a known truth: each chain firm is a candidate at three nodes sharing its code
    class (code agrees at all three) and fits exactly one of them, where its texts match better
    (product share ~ U(0.5, 1), log rank ~ U(0, 0.4)) than at the two siblings (U(0, 0.5), U(0.3, 1)).
    A fifth of the firms are outside industries: three pairs, none fits, code disagrees. A share
    ``code_noise`` of the chain firms registered another class (code disagrees though one pair fits)."""
    rng = np.random.default_rng(random_state)
    rows = []
    for f in range(n_firms):
        chain = rng.random() < 0.8
        true = rng.integers(0, 3) if chain else -1
        coded = chain and rng.random() >= code_noise
        for k in range(3):
            fits = k == true
            rows.append({
                "enterprise_id": f"f{f}",
                "node_id": f"n{(f + k) % 40:02d}",
                "product_share": rng.uniform(0.5, 1.0) if fits else rng.uniform(0.0, 0.5),
                "best_logrank": rng.uniform(0.0, 0.4) if fits else rng.uniform(0.3, 1.0),
                "code": "agree" if coded else "disagree",
                "truth": float(fits),
            })  # fmt: skip
    return pd.DataFrame(rows)


def test_fit_learns_which_sibling_fits_from_code_families_and_is_calibrated(random_seed: int) -> None:
    world = make_world(random_state=random_seed)
    model = fit_fit_model(world, NAMES, random_state=random_seed)
    fit = model.predict(world)
    truth = world["truth"].to_numpy()
    assert np.mean((fit >= 0.5) == (truth == 1)) > 0.95  # agreement alone would call every sibling a fit
    table = reliability(fit, truth, n_bins=5)
    ece = float(np.sum(table["n"] * (table["predicted"] - table["observed"]).abs()) / table["n"].sum())
    assert ece < 0.05
    assert model.coefficients[0] > 0 > model.coefficients[1]  # more overlap, better rank => more fit


def test_fit_is_monotone_in_rank_with_everything_else_equal() -> None:
    model = fit_fit_model(make_world(), NAMES)
    rows = pd.DataFrame({"product_share": 0.5, "best_logrank": np.linspace(0.0, 1.0, 11), "code": "unknown"})
    assert np.all(np.diff(model.predict(rows)) < 0)


def test_unknown_code_is_not_penalised_and_disagreeing_code_is() -> None:
    model = fit_fit_model(make_world(code_noise=0.1), NAMES)
    x = pd.DataFrame({"product_share": np.linspace(0.0, 1.0, 21), "best_logrank": np.linspace(1.0, 0.0, 21)})
    agree, unknown, disagree = (model.predict(x.assign(code=c)) for c in ("agree", "unknown", "disagree"))
    np.testing.assert_allclose(unknown, model.text_probability(x))  # unknown: the text model alone
    np.testing.assert_allclose(agree, unknown)  # agreement is not counted twice (docs/ranking.md)
    assert np.all(disagree <= unknown) and np.any(disagree < unknown - 0.01)
    assert 0.8 < model.alpha < 0.97  # P(agree | fits) = 0.9 here


def test_fit_is_deterministic_and_round_trips() -> None:
    world = make_world(random_state=3)
    first, again = fit_fit_model(world, NAMES), fit_fit_model(world, NAMES)
    assert first.to_dict() == again.to_dict()
    back = FitModel.from_dict(first.to_dict())
    np.testing.assert_array_equal(back.predict(world), first.predict(world))
    assert first.manifest["n_pairs"] == len(world) and first.manifest["n_nodes"] == 40


def test_fit_rejects_missing_columns_and_too_few_labels() -> None:
    world = make_world(n_firms=100)
    with pytest.raises(ValueError, match=re.escape("fit features is missing required columns ['code']")):
        fit_fit_model(world.drop(columns="code"), NAMES)
    message = "needs at least 20 pairs whose code agrees and 20 whose code disagrees; got 0 and 0"
    with pytest.raises(ValueError, match=re.escape(message)):
        fit_fit_model(world.assign(code="unknown"), NAMES)
    model = fit_fit_model(world, NAMES)
    expected = "column 'code' must hold ['agree', 'disagree', 'unknown']; got ['x']"
    with pytest.raises(ValueError, match=re.escape(expected)):
        model.predict(world.assign(code="x"))


def test_from_dict_rejects_another_version_and_unequal_lists() -> None:
    data = fit_fit_model(make_world(n_firms=100), NAMES).to_dict()
    with pytest.raises(ValueError, match=re.escape("fit model version must be 1; got 2")):
        FitModel.from_dict({**data, "version": 2})
    with pytest.raises(ValueError, match=re.escape("fit model has 2 features but 1 coefficients")):
        FitModel.from_dict({**data, "coefficients": [1.0]})
    with pytest.raises(ValueError, match=re.escape("fit model grid, agree and disagree must have equal lengths")):
        FitModel.from_dict({**data, "agree": [0.0]})


def test_code_states_compare_four_digit_classes_and_leave_missing_codes_unknown() -> None:
    cands = pd.DataFrame({"node_id": ["n1", "n1", "n1", "n2"], "enterprise_id": ["a", "b", "c", "a"]})
    ents = pd.DataFrame({"enterprise_id": ["a", "b", "c"], "industry_code": ["397612", "2614", None]})
    nodes = pd.DataFrame({"node_id": ["n1", "n2"], "industry_codes": [["3976"], []]})
    assert code_states(cands, ents, nodes).tolist() == ["agree", "disagree", "unknown", "unknown"]
    no_codes = code_states(cands, ents.drop(columns="industry_code"), nodes)
    assert no_codes.tolist() == ["unknown"] * 4
