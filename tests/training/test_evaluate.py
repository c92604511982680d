"""Ranking metrics: exact values on tiny hand-made rankings and agreement with naive references."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from training.evaluate import (
    average_precision,
    evaluate_ranking,
    mean_average_precision,
    ndcg_at_k,
    recall_at_k,
)


def naive_ndcg(labels: list[float], scores: list[float], k: int) -> float:
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    dcg = sum((2 ** labels[i] - 1) / math.log2(r + 2) for r, i in enumerate(order[:k]))
    ideal = sorted(labels, reverse=True)
    idcg = sum((2**g - 1) / math.log2(r + 2) for r, g in enumerate(ideal[:k]))
    return dcg / idcg if idcg else float("nan")


def naive_ap(labels: list[float], scores: list[float]) -> float:
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    hits, precisions = 0, []
    for r, i in enumerate(order, start=1):
        if labels[i] >= 1:
            hits += 1
            precisions.append(hits / r)
    return sum(precisions) / len(precisions) if precisions else float("nan")


def test_ndcg_at_k_exact_values() -> None:
    # ranking by score: labels in order 0, 3, 1 ; ideal 3, 1, 0
    labels, scores = [3, 0, 1], [0.5, 0.9, 0.1]
    dcg = 0 + 7 / math.log2(3) + 1 / 2
    idcg = 7 + 1 / math.log2(3)
    assert ndcg_at_k(labels, scores, 3) == pytest.approx(dcg / idcg, abs=1e-15)
    assert ndcg_at_k(labels, scores, 1) == 0.0
    assert ndcg_at_k([2, 0], [1.0, 0.0], 1) == 1.0
    assert math.isnan(ndcg_at_k([0, 0], [1.0, 0.0], 2))
    assert ndcg_at_k([1, 1], [0.5, 0.5], 1) == 1.0  # ties keep row order


def test_recall_and_average_precision_exact_values() -> None:
    labels, scores = [3, 0, 3, 1], [0.1, 0.9, 0.8, 0.7]
    assert recall_at_k(labels, scores, 2, relevant_min=3) == 0.5
    assert recall_at_k(labels, scores, 4, relevant_min=3) == 1.0
    # relevant (label >= 1) at ranks 2, 3, 4 -> (1/2 + 2/3 + 3/4) / 3
    assert average_precision(labels, scores) == pytest.approx((1 / 2 + 2 / 3 + 3 / 4) / 3, abs=1e-15)
    assert math.isnan(average_precision([0, 0], [1, 2]))
    assert mean_average_precision([1, 0, 0, 1], [1, 0, 1, 0], ["a", "a", "b", "b"]) == pytest.approx(0.75)


def test_evaluate_ranking_matches_naive_reference(random_seed: int) -> None:
    rng = np.random.default_rng(random_seed)
    sizes = rng.integers(1, 30, size=25)
    q = np.repeat(np.arange(len(sizes)), sizes)
    y = rng.choice([0, 0, 0, 1, 2, 3], size=len(q)).astype(float)
    s = np.round(rng.normal(size=len(q)), 1)  # rounding makes ties
    perm = rng.permutation(len(q))  # rows of a query need not be contiguous
    q, y, s = q[perm], y[perm], s[perm]
    got = evaluate_ranking(q, y, s)
    groups = [np.flatnonzero(q == i) for i in range(len(sizes))]
    for k in (10, 20, 50):
        ref = [naive_ndcg(list(y[g]), list(s[g]), k) for g in groups]
        assert got[f"ndcg@{k}"] == pytest.approx(np.nanmean(ref), abs=1e-12)
    signed_top = sum(sum(1 for i in sorted(g, key=lambda i: (-s[i], i))[:50] if y[i] >= 3) for g in groups)
    assert got["recall@50"] == pytest.approx(signed_top / (y >= 3).sum(), abs=1e-12)
    aps = [naive_ap(list(y[g]), list(s[g])) for g in groups]
    assert got["map"] == pytest.approx(np.nanmean(aps), abs=1e-12)
    assert got["n_queries"] == 25.0
    assert got["n_queries_with_positives"] == float(sum(1 for g in groups if (y[g] > 0).any()))


def test_evaluate_ranking_ranks_nan_scores_last_and_checks_inputs() -> None:
    got = evaluate_ranking(["a", "a", "a"], [0, 0, 1], [np.nan, 0.2, 0.1], ndcg_cutoffs=(1, 2))
    assert got["ndcg@2"] == pytest.approx(1 / math.log2(3))
    assert got["ndcg@1"] == 0.0
    with pytest.raises(
        ValueError, match=re.escape("The 'k' parameter must be an int in the range [1, inf). Got 0 instead.")
    ):
        ndcg_at_k([1], [1], 0)
    with pytest.raises(ValueError, match=re.escape("query, y_true and y_score must have equal lengths; got 2, 1, 1.")):
        evaluate_ranking(["a", "b"], [1], [1])
