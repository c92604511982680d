"""Ranking metrics (pure): NDCG@k, recall@k, average precision and MAP.

Conventions (the same in the per-query functions and the vectorised ``evaluate_ranking``):

* Ranking: by score descending; ties keep the given row order (stable sort), so results are exact
  and reproducible.
* NDCG@k: gain ``2**label - 1`` (LightGBM's default ``label_gain``), discount ``log2(rank + 1)``;
  queries without any positive label have no ideal ranking and are left out of the mean.
* recall@k: of the relevant items (``label >= relevant_min``), the share ranked in the top k,
  micro-averaged over queries (all later signings of the period together).
* AP: binary relevance ``label >= 1``; mean precision at the rank of each relevant item over the full
  ranking; MAP is the mean over queries with at least one relevant item.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd

NDCG_CUTOFFS: Final = (10, 20, 50)
RECALL_CUTOFF: Final = 50
SIGNED_LABEL: Final = 3  # gain of 签约/落地 under the default stage_gains


def _order(y_score: np.ndarray) -> np.ndarray:
    return np.argsort(-np.asarray(y_score, dtype=np.float64), kind="stable")


def dcg_at_k(labels_in_rank_order: np.ndarray, k: int) -> float:
    rel = np.asarray(labels_in_rank_order, dtype=np.float64)[:k]
    return float(np.sum((2.0**rel - 1.0) / np.log2(np.arange(2, len(rel) + 2))))


def ndcg_at_k(y_true: Sequence[float] | np.ndarray, y_score: Sequence[float] | np.ndarray, k: int) -> float:
    """NDCG@k of one query; NaN when it has no positive label."""
    _check_k(k)
    y = np.asarray(y_true, dtype=np.float64)
    ideal = dcg_at_k(np.sort(y)[::-1], k)
    if ideal == 0:
        return float("nan")
    return dcg_at_k(y[_order(np.asarray(y_score))], k) / ideal


def recall_at_k(
    y_true: Sequence[float] | np.ndarray, y_score: Sequence[float] | np.ndarray, k: int, relevant_min: float = 1
) -> float:
    """Share of relevant items (label >= relevant_min) in the top k of one query; NaN without any."""
    _check_k(k)
    rel = np.asarray(y_true, dtype=np.float64) >= relevant_min
    if not rel.any():
        return float("nan")
    return float(rel[_order(np.asarray(y_score))][:k].sum() / rel.sum())


def average_precision(y_true: Sequence[float] | np.ndarray, y_score: Sequence[float] | np.ndarray) -> float:
    """Average precision of one query (binary relevance label >= 1); NaN without relevant items."""
    rel = (np.asarray(y_true, dtype=np.float64) >= 1)[_order(np.asarray(y_score))]
    if not rel.any():
        return float("nan")
    hits = np.cumsum(rel)
    return float(np.mean(hits[rel] / (np.flatnonzero(rel) + 1)))


def mean_average_precision(
    y_true: Sequence[float] | np.ndarray, y_score: Sequence[float] | np.ndarray, query: Sequence[object] | np.ndarray
) -> float:
    """MAP over queries with at least one relevant item."""
    frame = pd.DataFrame({"y": np.asarray(y_true, dtype=np.float64), "s": np.asarray(y_score), "q": np.asarray(query)})
    aps = [average_precision(g["y"].to_numpy(), g["s"].to_numpy()) for _, g in frame.groupby("q", sort=False)]
    return float(np.nanmean(aps)) if np.isfinite(aps).any() else float("nan")


def _check_k(k: int) -> None:
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"The 'k' parameter must be an int in the range [1, inf). Got {k!r} instead.")


def evaluate_ranking(
    query: Sequence[object] | np.ndarray,
    y_true: Sequence[float] | np.ndarray,
    y_score: Sequence[float] | np.ndarray,
    *,
    ndcg_cutoffs: Sequence[int] = NDCG_CUTOFFS,
    recall_cutoff: int = RECALL_CUTOFF,
    recall_min_label: float = SIGNED_LABEL,
) -> dict[str, float]:
    """All metrics over many queries at once (vectorised, no loop per query).

    Args:
        query: (n_rows,) query ids; rows of a query need not be contiguous.
        y_true: (n_rows,) graded labels.
        y_score: (n_rows,) scores; NaN scores rank last.
        ndcg_cutoffs: k of each ``ndcg@k``.
        recall_cutoff: k of ``recall@k`` (micro-averaged over the relevant items of all queries).
        recall_min_label: labels counted as relevant for recall (default: signed, 3).

    Returns:
        ``{"ndcg@10": ..., "ndcg@20": ..., "ndcg@50": ..., "recall@50": ..., "map": ..., "n_queries": ...,
        "n_queries_with_positives": ...}``
    """
    for k in [*ndcg_cutoffs, recall_cutoff]:
        _check_k(k)
    q_codes, _ = pd.factorize(pd.Series(np.asarray(query, dtype=object)), sort=False)
    y = np.asarray(y_true, dtype=np.float64)
    s = np.asarray(y_score, dtype=np.float64)
    if not (len(q_codes) == len(y) == len(s)):
        raise ValueError(f"query, y_true and y_score must have equal lengths; got {len(q_codes)}, {len(y)}, {len(s)}.")
    s = np.where(np.isnan(s), -np.inf, s)
    n_q = int(q_codes.max()) + 1 if len(q_codes) else 0
    # rank within query by score desc, ties in row order: lexsort keys are (row, -score, query)
    order = np.lexsort((np.arange(len(s)), -s, q_codes))
    rank = _rank_within(q_codes[order])
    ideal_order = np.lexsort((-y, q_codes))
    ideal_rank = _rank_within(q_codes[ideal_order])
    out: dict[str, float] = {}
    has_pos = np.bincount(q_codes, weights=(y > 0).astype(float), minlength=n_q) > 0
    for k in ndcg_cutoffs:
        dcg = _dcg_by_query(q_codes[order], y[order], rank, k, n_q)
        idcg = _dcg_by_query(q_codes[ideal_order], y[ideal_order], ideal_rank, k, n_q)
        out[f"ndcg@{k}"] = float(np.mean(dcg[has_pos] / idcg[has_pos])) if has_pos.any() else float("nan")
    relevant = y[order] >= recall_min_label
    n_rel = relevant.sum()
    out[f"recall@{recall_cutoff}"] = float((relevant & (rank < recall_cutoff)).sum() / n_rel) if n_rel else float("nan")
    out["map"] = _map(q_codes[order], y[order] >= 1, rank, n_q)
    out["n_queries"] = float(n_q)
    out["n_queries_with_positives"] = float(has_pos.sum())
    return out


def _rank_within(sorted_codes: np.ndarray) -> np.ndarray:
    """0-based position of each row within its (contiguous) query."""
    if len(sorted_codes) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
    lengths = np.diff(np.r_[starts, len(sorted_codes)])
    return np.arange(len(sorted_codes)) - np.repeat(starts, lengths)


def _dcg_by_query(codes: np.ndarray, labels: np.ndarray, rank: np.ndarray, k: int, n_q: int) -> np.ndarray:
    top = rank < k
    gains = (2.0 ** labels[top] - 1.0) / np.log2(rank[top] + 2.0)
    return np.bincount(codes[top], weights=gains, minlength=n_q)


def _map(codes: np.ndarray, relevant: np.ndarray, rank: np.ndarray, n_q: int) -> float:
    # cumulative hits within each query: global cumsum minus the cumsum at the query's start
    cum = np.cumsum(relevant)
    start_cum = (cum - relevant)[rank == 0]
    hits = cum - np.repeat(start_cum, np.bincount(codes, minlength=n_q))  # every code 0..n_q-1 occurs
    precision = np.where(relevant, hits / (rank + 1.0), 0.0)
    n_rel = np.bincount(codes, weights=relevant.astype(float), minlength=n_q)
    ap_sum = np.bincount(codes, weights=precision, minlength=n_q)
    ok = n_rel > 0
    return float(np.mean(ap_sum[ok] / n_rel[ok])) if ok.any() else float("nan")


# ---------------------------------------------------------------- published lists (node_id, enterprise_id, rank)

LIST_COLUMNS: Final = ("node_id", "enterprise_id", "rank")


def _top_places(lists: pd.DataFrame, k: int | None) -> pd.DataFrame:
    """The top ``k`` rows of each node's list by ``rank`` (ties in row order); all rows when k is None."""
    missing = [c for c in LIST_COLUMNS if c not in lists.columns]
    if missing:
        raise ValueError(f"lists is missing columns {missing}; it has {list(lists.columns)}.")
    if k is not None:
        _check_k(k)
    ordered = lists.astype({"node_id": str, "enterprise_id": str}).sort_values(["node_id", "rank"], kind="stable")
    return ordered if k is None else ordered[ordered.groupby("node_id").cumcount().to_numpy() < k]


def _pair_keys(frame: pd.DataFrame) -> pd.Index:
    return pd.Index(frame["node_id"].astype(str) + "\x1f" + frame["enterprise_id"].astype(str))


def fit_precision_at_k(lists: pd.DataFrame, fits: pd.DataFrame, k: int) -> float:
    """Mean over nodes of the share of a node's top-k places (fewer when its list is shorter) whose
    (node, firm) is in ``fits`` (``node_id, enterprise_id``: the pairs that fit); NaN without lists."""
    top = _top_places(lists, k)
    if len(top) == 0:
        return float("nan")
    hit = _pair_keys(top).isin(_pair_keys(fits))
    return float(pd.Series(hit, index=top.index).groupby(top["node_id"].to_numpy()).mean().mean())


def fit_recall(lists: pd.DataFrame, fits: pd.DataFrame, k: int | None = None) -> float:
    """Share of the fitting pairs of the listed nodes that are listed (in the top ``k``; None = anywhere)."""
    top = _top_places(lists, k)
    nodes = set(lists["node_id"].astype(str))
    relevant = _pair_keys(fits[fits["node_id"].astype(str).isin(nodes)]).unique()
    if len(relevant) == 0:
        return float("nan")
    return float(pd.Index(relevant).isin(_pair_keys(top)).mean())


def distinct_per_100_places(lists: pd.DataFrame, k: int | None = None) -> float:
    """Distinct firms per 100 list places over all nodes' top ``k`` (100 = no firm listed twice)."""
    top = _top_places(lists, k)
    return float(100.0 * top["enterprise_id"].nunique() / len(top)) if len(top) else float("nan")


def mean_topk_jaccard(lists: pd.DataFrame, k: int = 20) -> float:
    """Mean Jaccard similarity of the top-``k`` firm sets over all pairs of nodes; NaN with fewer than 2 nodes.

    Vectorised: one sparse node × firm incidence matrix, the intersections are its Gram matrix.
    """
    import scipy.sparse as sp

    top = _top_places(lists, k)
    node_codes, nodes = pd.factorize(top["node_id"])
    if len(nodes) < 2:
        return float("nan")
    firm_codes, firms = pd.factorize(top["enterprise_id"])
    m = sp.csr_matrix((np.ones(len(top)), (node_codes, firm_codes)), shape=(len(nodes), len(firms)))
    inter = (m @ m.T).toarray()
    size = np.diag(inter)
    union = size[:, None] + size[None, :] - inter
    iu = np.triu_indices(len(nodes), 1)
    return float(np.mean(inter[iu] / union[iu]))
