"""BM25Index: exact BM25F scores, field weights, saturation, updates, persistence, errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from models.bm25 import BM25Index, top_positive

DOCS = {
    "name": [["光", "模块"], ["激光", "设备"], ["光纤"], []],
    "description": [["光", "模块", "封装", "模块"], ["激光", "切割"], ["光纤", "光缆", "光纤"], ["模块"]],
}
IDS = ["a", "b", "c", "d"]


def bm25f_reference(index: BM25Index, query: dict[str, float], doc: int) -> float:
    """BM25F written out term by term from the module docstring's formula."""
    n = len(IDS)
    score = 0.0
    for term, qw in query.items():
        df = sum(any(term in DOCS[f][d] for f in DOCS) for d in range(n))
        if df == 0:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        tf = 0.0
        for f, w in (index.field_weights or {}).items():
            avg = float(np.mean([len(x) for x in DOCS[f]]))
            tf += w * DOCS[f][doc].count(term) / (1 - index.b + index.b * len(DOCS[f][doc]) / avg)
        score += qw * idf * tf * (index.k1 + 1) / (tf + index.k1)
    return score


def test_scores_are_exactly_bm25f() -> None:
    index = BM25Index(k1=1.2, b=0.75, field_weights={"name": 2.0, "description": 1.0}).fit(DOCS, IDS)
    query = {"模块": 1.0, "光": 0.5, "不存在": 3.0}
    got = index.scores(query)
    want = [bm25f_reference(index, query, d) for d in range(4)]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    ids, scores = index.search([query], top_k=3)
    assert ids[0].tolist() == ["a", "d", None]  # only documents sharing a term, best first
    assert scores[0][2] == -np.inf


def test_field_weight_zero_ignores_that_field() -> None:
    index = BM25Index(field_weights={"name": 1.0, "description": 0.0}).fit(DOCS, IDS)
    assert index.scores({"封装": 1.0}).max() == 0.0  # 封装 only occurs in descriptions
    assert index.scores({"激光": 1.0}).argmax() == 1


def test_update_and_remove_keep_frozen_statistics(tmp_path: Path) -> None:
    fw = {"name": 1.0, "description": 1.0}
    index = BM25Index(field_weights=fw, max_drift=0.5).fit(DOCS, IDS)
    idf = index.idf_.copy()
    index.update({"name": [["光纤"]], "description": [["光纤", "新词"]]}, ["e"])
    index.update({"name": [["激光"]], "description": [["激光"]]}, ["a"])  # replaces a
    assert index.remove(["c", "zz"]) == 1
    assert index.ids_.tolist() == ["b", "d", "e", "a"]
    np.testing.assert_array_equal(index.idf_, idf)
    assert "新词" not in index.vocabulary_  # unknown until the next fit
    assert index.search([{"光纤": 1.0}], 5)[0][0].tolist()[:1] == ["e"]
    assert index.drift_ == pytest.approx(3 / 4) and index.needs_refit
    index.save(tmp_path / "w")
    loaded = BM25Index.load(tmp_path / "w")
    np.testing.assert_array_equal(loaded.scores({"激光": 1.0, "光纤": 2.0}), index.scores({"激光": 1.0, "光纤": 2.0}))
    assert loaded.ids_.tolist() == index.ids_.tolist() and loaded.drift_ == index.drift_


def test_document_terms_is_a_distribution() -> None:
    index = BM25Index(field_weights={"name": 1.0, "description": 1.0}).fit(DOCS, IDS)
    model = index.document_terms(np.array([0, 2]), np.array([3.0, 1.0]))
    assert sum(model.values()) == pytest.approx(1.0)
    assert set(model) == {"光", "模块", "封装", "光纤", "光缆"}


def test_top_positive_orders_ties_by_position() -> None:
    s = np.array([0.0, 2.0, 1.0, 2.0, -1.0, 1.0])
    assert top_positive(s, 3).tolist() == [1, 3, 2]
    assert top_positive(s, 10).tolist() == [1, 3, 2, 5]


def test_errors_name_what_was_expected() -> None:
    with pytest.raises(ValueError, match="'k1' parameter of BM25Index must be a float in the range"):
        BM25Index(k1=0).fit(DOCS, IDS)
    with pytest.raises(ValueError, match="field 'name' has 1 documents; expected 4"):
        BM25Index(field_weights={"name": 1.0}).fit({"name": [["x"]]}, IDS)
    with pytest.raises(ValueError, match="unique ids"):
        BM25Index().fit({"name": [[], []]}, ["a", "a"])
    with pytest.raises(RuntimeError, match="not fitted"):
        BM25Index().scores({"x": 1.0})
