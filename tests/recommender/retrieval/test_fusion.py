"""recommender.retrieval.fusion: normalisation, weighted fusion, RM3 and co-occurrence expansion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.bm25 import BM25Index
from recommender.retrieval.fusion import (
    cooccurrence_queries,
    fused_similarity,
    normalised_scores,
    rm3_queries,
)


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "node_id": ["n1", "n1", "n1", "n2"],
            "enterprise_id": ["a", "b", "c", "a"],
            "dense_score": [0.90, 0.85, 0.80, 0.7],
            "words_score": [4.0, np.nan, 1.0, 2.0],
            "lexical_score": [np.nan, np.nan, np.nan, np.nan],
        }
    )


def test_normalisation_per_node_and_retriever() -> None:
    f = frame()
    np.testing.assert_allclose(normalised_scores(f, "dense"), [1.0, 0.5, 0.0, 1.0])  # min-max: cosines
    np.testing.assert_allclose(normalised_scores(f, "words"), [1.0, 0.0, 0.25, 1.0])  # over the best: BM25
    np.testing.assert_allclose(normalised_scores(f, "lexical"), [0.0] * 4)


def test_fusion_is_the_weighted_mean_of_retrievers_in_use() -> None:
    got = fused_similarity(frame(), {"dense": 1.0, "words": 3.0, "lexical": 5.0})  # lexical not in use
    np.testing.assert_allclose(got, [(1.0 + 3.0) / 4, 0.5 / 4, (0.0 + 0.75) / 4, 1.0])
    only_words = fused_similarity(frame(), {"words": 1.0})
    np.testing.assert_allclose(only_words, [1.0, 0.0, 0.25, 1.0])


def corpus() -> BM25Index:
    fields = {
        "name": [["光模块"], ["光模块"], ["激光器"], ["光纤"], ["光模块"]],
        "description": [["光模块", "光引擎"], ["光引擎", "硅光"], ["激光器", "泵浦"], ["光缆"], ["光引擎", "数通"]],
    }
    return BM25Index(field_weights={"name": 1.0, "description": 1.0}).fit(fields, list("abcde"))


def test_rm3_adds_feedback_terms_and_keeps_zero_feedback_unchanged() -> None:
    index = corpus()
    (q,) = rm3_queries(index, [{"光模块": 1.0}], fb_docs=2, fb_terms=3, weight=0.5)
    assert q["光模块"] > 0.5 and "光引擎" in q  # the feedback documents' shared word
    assert sum(q.values()) == pytest.approx(1.0)
    assert rm3_queries(index, [{"光模块": 1.0}], fb_docs=0, fb_terms=3, weight=0.5) == [{"光模块": 1.0}]


def test_cooccurrence_expansion_uses_the_seed_documents() -> None:
    index = corpus()
    (q,) = cooccurrence_queries(index, [{"光模块": 1.0}], [["光模块"]], n_terms=1, weight=0.5)
    assert set(q) == {"光模块", "光引擎"}  # 光引擎 is in every 光模块 document and in few others
    (same,) = cooccurrence_queries(index, [{"光纤": 1.0}], [["光纤"]], n_terms=2, weight=0.5)
    assert same == {"光纤": 1.0}  # a seed in fewer than min_docs documents adds nothing
