"""search_text's numpy path gives exactly the pandas candidate path's scores and order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.words import text_query_terms
from recommender.retrieval.candidates import (
    dense_hits,
    filter_candidates,
    heuristic_score,
    lexical_hits,
    union_hits,
    word_hits,
    word_retriever,
)
from recommender.retrieval.fusion import fused_similarity
from recommender.retrieval.index import build_profile_index
from recommender.retrieval.search import search_text
from recommender.settings import RetrievalConfig
from tests.recommender.retrieval.test_candidates import WORDS, HashEncoder, make_universe


def reference(
    text: str, ents: pd.DataFrame, encoder: HashEncoder, bundle: object, config: RetrievalConfig
) -> pd.DataFrame:
    words = word_retriever(bundle)  # type: ignore[arg-type]
    queries = pd.Series([text], index=pd.Index(["query"], name="node_id"))
    parts = [
        dense_hits(queries, encoder, bundle.dense, config.top_k_dense),  # type: ignore[attr-defined]
        word_hits(["query"], [text_query_terms(text, words.segmenter)], words, config),  # type: ignore[union-attr]
        lexical_hits(queries, bundle.lexical, config.top_k_lexical),  # type: ignore[attr-defined]
    ]
    merged = union_hits(parts)
    merged = merged.assign(similarity=fused_similarity(merged, config.fusion_weights).to_numpy())
    tables = {"enterprises": ents}
    kept = filter_candidates(merged, tables, config.exclude_ids, None)
    scored = kept.assign(score=heuristic_score(kept, tables, None))
    return scored.sort_values(["score", "enterprise_id"], ascending=[False, True])


@pytest.mark.parametrize("text", ["光模块 封装", "激光器", "武汉 芯片 探测器"])
def test_search_text_equals_the_candidate_path(tmp_path: Path, text: str) -> None:
    rng = np.random.default_rng(3)
    ents = make_universe(150, 5)
    ents["registered_capital_cny"] = rng.integers(1, 1000, len(ents)).astype(float)
    ents["employees"] = np.where(rng.random(len(ents)) < 0.2, np.nan, rng.integers(5, 500, len(ents)))
    ents["is_operating"] = rng.random(len(ents)) > 0.1
    config = RetrievalConfig(embedder="hash", top_k_dense=40, top_k_lexical=30, top_k_words=25,
                             exclude_ids=["e001", "e002"], fusion_weights={"dense": 0.5, "words": 2.0, "lexical": 1.0})  # fmt: skip
    encoder = HashEncoder()
    bundle = build_profile_index(ents, encoder, tmp_path / "i", tmp_path / "c", config, user_words=WORDS)
    got = search_text(text, ents, encoder, bundle.dense, bundle.lexical, config, top_n=30, words=word_retriever(bundle))
    want = reference(text, ents, encoder, bundle, config).head(30)
    assert got["enterprise_id"].tolist() == want["enterprise_id"].tolist()
    np.testing.assert_allclose(got["score"].to_numpy(), want["score"].to_numpy(), rtol=0, atol=1e-12)
    assert got["sources"].tolist() == want["sources"].tolist()
    for c in ("dense_rank", "lexical_rank", "lexical_score"):
        np.testing.assert_array_equal(got[c].to_numpy(dtype=float), want[c].to_numpy(dtype=float))
    names = dict(zip(ents["enterprise_id"], ents["name"], strict=True))
    assert got["name"].tolist() == [names[e] for e in got["enterprise_id"]]
    assert not {"e001", "e002"} & set(got["enterprise_id"])
