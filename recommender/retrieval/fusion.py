"""How the retrievers' lists become one: query building, pseudo-relevance feedback, expansion, fusion.

Three retrievers search the same universe (``docs/retrieval.md``):

``dense``    e5-small (int8 ONNX by default) cosine over the profile text
``words``    BM25F over jieba words of the name, industry, products, business scope and description
             (``models.bm25``), the node's name, products, keywords and description as weighted terms
``lexical``  character 1–3-gram TF-IDF over the profile text (``models.lexical``)

**Fusion.** Each retriever's scores are scaled to [0, 1] within its own top-K list for the query
(:func:`normalised_scores`: BM25 and TF-IDF divided by the best score; cosines min–max between the
K-th and the best hit; a firm it did not return is 0), then combined linearly::

    similarity = Σ_r w_r · norm_r / Σ_r w_r        over the retrievers in use

Raw scores are not comparable across retrievers (cosines sit near 0.85 for everything, BM25 is
unbounded), ranks throw away how far ahead a hit is; normalised scores keep both. The weights
``retrieval.fusion_weights`` are learned (:func:`training.fusion.fit_fusion_weights`, logistic
regression of "the firm's registry industry code is one of the node's codes" on the normalised
scores) on the sample zone, never on benchmark labels — see ``benchmarks/fusion_weights.py``.

**Feedback (RM3)** and **co-occurrence expansion** add words to a BM25 query: RM3 from the first
pass's top documents; co-occurrence from the documents that hold each of the node's product words
in their core fields, against the universe's background. Both are options
(``retrieval.prf_docs``, ``retrieval.expansion_terms``; 0 turns them off) measured in
``benchmarks/retrieval_real.py``.

Pure functions over frames and fitted indexes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

import numpy as np
import pandas as pd

from features.schema import COL_ENTERPRISE_ID, COL_NODE_ID

if TYPE_CHECKING:
    from models.bm25 import BM25Index

RETRIEVERS: Final = ("dense", "words", "lexical")
EQUAL_WEIGHTS: Final = {"dense": 1.0, "words": 1.0, "lexical": 1.0}


# ------------------------------------------------------------------------------------------ fusion
def normalised_scores(candidates: pd.DataFrame, retriever: str) -> pd.Series:
    """``<retriever>_score`` scaled to [0, 1] within each node's returned list; 0 where not returned.

    BM25 and TF-IDF scores have a natural zero (no shared term), so they are divided by the node's
    best score. Cosines do not (everything sits near 0.85), so dense scores are min–max scaled
    between the node's K-th (last returned) and best hit. A list whose scores are all equal gives 1.
    Computed on the retrieved lists before any filtering, so dropping a candidate never changes
    another's score.
    """
    col = f"{retriever}_score"
    if col not in candidates.columns:
        return pd.Series(0.0, index=candidates.index)
    s = candidates[col].astype(float)
    by = candidates[COL_NODE_ID]
    hi = s.groupby(by).transform("max")
    lo = s.groupby(by).transform("min") if retriever == "dense" else pd.Series(0.0, index=s.index)
    span = (hi - lo).where(hi > lo)
    norm = ((s - lo) / span).where(span.notna(), 1.0)
    return norm.where(s.notna(), 0.0).fillna(0.0).clip(0.0, 1.0)


def retrievers_in_use(candidates: pd.DataFrame) -> list[str]:
    """The retrievers whose score column has at least one value."""
    return [r for r in RETRIEVERS if f"{r}_score" in candidates.columns and candidates[f"{r}_score"].notna().any()]


def fused_similarity(candidates: pd.DataFrame, weights: Mapping[str, float] | None = None) -> pd.Series:
    """The weighted mean of the normalised scores of the retrievers in use, in [0, 1]."""
    w = dict(EQUAL_WEIGHTS if weights is None else weights)
    used = [r for r in retrievers_in_use(candidates) if w.get(r, 0.0) > 0]
    if not used:
        return pd.Series(0.0, index=candidates.index, name="similarity")
    total = sum(w[r] * normalised_scores(candidates, r) for r in used)
    out = pd.Series(np.asarray(total, dtype=float) / sum(w[r] for r in used), index=candidates.index)
    return out.rename("similarity")


def fusion_matrix(candidates: pd.DataFrame) -> pd.DataFrame:
    """The normalised score of every retriever (columns ``RETRIEVERS``), the inputs of learned fusion."""
    return pd.DataFrame({r: normalised_scores(candidates, r) for r in RETRIEVERS}, index=candidates.index)


# ---------------------------------------------------------------------------------- query building
def rm3_queries(
    index: BM25Index,
    queries: Sequence[Mapping[str, float]],
    fb_docs: int,
    fb_terms: int,
    weight: float,
) -> list[dict[str, float]]:
    """RM3: each query interpolated with the term model of its first-pass top ``fb_docs`` documents.

    ``q' = (1 − weight) · q / |q|₁ + weight · fb``, where ``fb`` is the score-weighted mean of the
    top documents' L1-normalised BM25 term weights, cut to its ``fb_terms`` heaviest terms and
    renormalised. ``fb_docs`` 0 returns the queries unchanged.
    """
    if fb_docs <= 0 or weight <= 0:
        return [dict(q) for q in queries]
    out = []
    for q in queries:
        scores = index.scores(q)
        top = _top_positive(scores, fb_docs)
        if len(top) == 0:
            out.append(dict(q))
            continue
        model = index.document_terms(top, scores[top])
        out.append(_interpolate(q, _heaviest(model, fb_terms), weight))
    return out


def cooccurrence_queries(
    index: BM25Index,
    queries: Sequence[Mapping[str, float]],
    seeds: Sequence[Sequence[str]],
    n_terms: int,
    weight: float,
    min_docs: int = 3,
) -> list[dict[str, float]]:
    """Add, per query, the ``n_terms`` words that co-occur most with its seed words in the universe.

    For each seed word (a node's product, segmented), the documents holding it give a term model
    (mean of their L1-normalised BM25 weights); a word's association is that model divided by the
    universe's mean model (lift), times its share in the seed documents. Seeds found in fewer than
    ``min_docs`` documents are skipped. The added words get ``weight`` × the query's mean term weight.
    """
    if n_terms <= 0 or weight <= 0:
        return [dict(q) for q in queries]
    background = _background(index)
    out = []
    for q, words in zip(queries, seeds, strict=True):
        assoc: dict[str, float] = {}
        for word in dict.fromkeys(words):
            j = index.vocabulary_.get(word)
            if j is None:
                continue
            docs = index.matrix_[:, j].nonzero()[0]
            if len(docs) < min_docs:
                continue
            for term, p in index.document_terms(docs).items():
                if term not in q:
                    assoc[term] = assoc.get(term, 0.0) + p * p / max(background.get(term, 1e-12), 1e-12)
        added = _heaviest(assoc, n_terms)
        mean_w = float(np.mean(list(q.values()))) if q else 1.0
        expanded = dict(q)
        total = sum(added.values()) or 1.0
        for term, v in added.items():
            expanded[term] = expanded.get(term, 0.0) + weight * mean_w * n_terms * v / total
        out.append(expanded)
    return out


def _background(index: BM25Index) -> dict[str, float]:
    cached = getattr(index, "_background_model", None)
    if cached is None:
        cached = index.document_terms(np.arange(index.n_items))
        index._background_model = cached  # type: ignore[attr-defined]
    return cached


def _interpolate(q: Mapping[str, float], fb: Mapping[str, float], weight: float) -> dict[str, float]:
    total_q = sum(q.values()) or 1.0
    total_fb = sum(fb.values()) or 1.0
    out = {t: (1.0 - weight) * v / total_q for t, v in q.items()}
    for t, v in fb.items():
        out[t] = out.get(t, 0.0) + weight * v / total_fb
    return out


def _heaviest(model: Mapping[str, float], k: int) -> dict[str, float]:
    items = sorted(model.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    return dict(items)


def _top_positive(scores: np.ndarray, k: int) -> np.ndarray:
    from models.bm25 import top_positive

    return top_positive(scores, k)


def hits_by_node(candidates: pd.DataFrame, order: str = "similarity") -> dict[str, list[str]]:
    """Each node's enterprise ids best first by ``order`` (ties by id)."""
    ranked = candidates.sort_values([COL_NODE_ID, order, COL_ENTERPRISE_ID], ascending=[True, False, True])
    return {str(k): g[COL_ENTERPRISE_ID].astype(str).tolist() for k, g in ranked.groupby(COL_NODE_ID, sort=False)}
