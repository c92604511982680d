"""training.fusion: industry-code labels and learned fusion weights on constructed data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.fusion import fit_fusion_weights, industry_code_labels


def test_industry_code_labels_match_on_four_digits_and_leave_unknown_out() -> None:
    cands = pd.DataFrame({"node_id": ["n1", "n1", "n1", "n2"], "enterprise_id": ["a", "b", "c", "a"]})
    ents = pd.DataFrame({"enterprise_id": ["a", "b", "c"], "industry_code": ["397612", "2614", None]})
    nodes = pd.DataFrame({"node_id": ["n1", "n2"], "industry_codes": [["3976"], []]})
    got = industry_code_labels(cands, ents, nodes)
    assert got.iloc[:2].tolist() == [1.0, 0.0]
    assert got.iloc[2:].isna().all()  # c has no code; n2 lists none


def test_the_informative_retriever_gets_the_weight() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    groups = pd.Series(rng.integers(0, 20, n).astype(str))
    useful, noise = rng.random(n), rng.random(n)
    labels = pd.Series((rng.random(n) < 1 / (1 + np.exp(-(6 * useful - 4)))).astype(float))
    labels[rng.random(n) < 0.1] = np.nan  # unknown codes are dropped, not negatives
    feats = pd.DataFrame({"dense": noise, "words": useful, "lexical": 0.5 * useful + 0.5 * noise})
    fit = fit_fusion_weights(feats, labels, groups)
    assert fit.weights["words"] > 2 * max(fit.weights["dense"], 0.01)
    assert sum(fit.weights.values()) == pytest.approx(3.0, abs=1e-3)
    assert fit.auc_fused >= fit.auc_single["dense"] and fit.n_pairs == int(labels.notna().sum())
    again = fit_fusion_weights(feats, labels, groups)
    assert again.weights == fit.weights  # deterministic


def test_too_few_labels_says_what_is_missing() -> None:
    feats = pd.DataFrame({"words": [0.1, 0.9]})
    with pytest.raises(ValueError, match="at least 20 labelled positive and 20 negative pairs; got 1 and 1"):
        fit_fusion_weights(feats, pd.Series([0.0, 1.0]), pd.Series(["n", "n"]))
