"""How the pages write scores: 100 × score with one decimal, per cent unless the heuristic scored the
run, a dash for nothing; which runs the heuristic scored; search relevance relative to the results."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.web.display import heuristic_run, relative_score, score_range, score_text


@pytest.mark.parametrize(
    ("score", "probability", "heuristic"),
    [
        (0.123, "12.3%", "12.3"),
        (0.12349, "12.3%", "12.3"),
        (np.float32(0.5), "50.0%", "50.0"),
        (1, "100.0%", "100.0"),
        (0.0, "0.0%", "0.0"),
        (-0.0001, "0.0%", "0.0"),  # never "-0.0"
        (-0.25, "-25.0%", "-25.0"),  # the heuristic's penalty can take it below 0
    ],
)
def test_score_text_is_100_times_the_score_with_one_decimal(score: object, probability: str, heuristic: str) -> None:
    assert score_text(score, heuristic=False) == probability
    assert score_text(score, heuristic=True) == heuristic


@pytest.mark.parametrize("score", [None, float("nan"), float("inf"), -float("inf"), np.nan, "0.5", True])
def test_score_text_is_a_dash_for_a_missing_or_not_finite_score(score: object) -> None:
    assert score_text(score, heuristic=False) == "—"
    assert score_text(score, heuristic=True) == "—"


@pytest.mark.parametrize(
    ("manifest", "heuristic"),
    [
        ({"scorer": "heuristic", "model_version": "heuristic"}, True),
        ({"scorer": "model", "model_version": "3"}, False),
        ({"model_version": "heuristic"}, True),  # a run from before the manifest named its scorer
        ({"model_version": "3"}, False),
        ({}, False),
    ],
)
def test_heuristic_run_reads_the_manifest(manifest: dict[str, str], heuristic: bool) -> None:
    assert heuristic_run(manifest) is heuristic


def test_search_relevance_is_relative_to_the_results() -> None:
    bounds = score_range([0.2, None, 0.6, float("nan"), 0.4])
    assert bounds == (0.2, 0.6)
    assert [relative_score(s, bounds) for s in (0.6, 0.4, 0.2, None)] == [100, 50, 0, None]
    assert relative_score(0.3, (0.3, 0.3)) == 100 and score_range([None]) is None
