"""Retrieval: which enterprises of the universe are candidates for each red and blue chain node.

Candidates of a node are the union of five sources, each tagged in ``sources``:

``dense``         the dense top-K (``top_k_dense``) of the node's text against the FAISS profile index
``words``         the word top-K (``top_k_words``): BM25F over the jieba words of each text field, the
                  node's name, products, keywords and description as weighted terms (``models.bm25``,
                  optionally with RM3 feedback and co-occurrence expansion, ``recommender.retrieval.fusion``)
``lexical``       the lexical top-K (``top_k_lexical``): character 1-3-gram TF-IDF over the profile texts
``chain_leader``  suppliers and customers (``supplier`` relations) of the zone's chain leaders
                  (``presence.is_chain_leader``) at the nodes adjacent to this one in the chain
``signal``        enterprises with a recent expansion signal (new branch, land purchase, capacity
                  expansion, financing; within ``signal_window_days`` before ``as_of``) whose
                  ``industry_code`` is one of the node's ``industry_codes``

then filtered: enterprises already in the zone at that node, not operating, listed in
``exclude_ids``, unknown to the enterprises table, or (with ``as_of``) founded after ``as_of``.

:func:`heuristic_score` is the retrieval-time score: it orders ``sansetu query --live`` and
``sansetu search`` from retrieval ranks and a few facts, before any pair features are built
(documented in ``docs/retrieval.md``; a refresh without a champion scores with the pair-feature
baseline ``training.baselines.baseline_heuristic_score`` instead)::

    heuristic = 0.60·similarity + 0.15·size + 0.15·signals + 0.10·ties

    similarity  the fused retrieval score in [0, 1] (``recommender.retrieval.fusion.fused_similarity``:
                weighted mean of each retriever's min–max normalised score, ``retrieval.fusion_weights``);
                for candidate frames without the ``similarity`` column, reciprocal-rank fusion of the
                dense and lexical ranks: mean of (k0 + 1) / (k0 + rank), 0 where not retrieved (k0 = 60)
    size        mean of the universe percentiles of registered capital and employees (0 when missing)
    signals     1 - exp(-Σ exp(-age_days / 180)) over expansion signals in the window before as_of
    ties        1 when the candidate supplies or buys from a zone chain leader at an adjacent node

This module is pure (the indexes are built and loaded in :mod:`recommender.retrieval.index`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

from features.embeddings import TextEncoder
from features.profiles import node_texts
from features.schema import (
    COL_CAPITAL_CNY,
    COL_DATE,
    COL_DST_ID,
    COL_DST_TYPE,
    COL_EMPLOYEES,
    COL_ENTERPRISE_ID,
    COL_FOUNDED,
    COL_INDUSTRY_CODE,
    COL_IS_CHAIN_LEADER,
    COL_IS_OPERATING,
    COL_NAME,
    COL_NODE_ID,
    COL_RELATION_TYPE,
    COL_SIGNAL_TYPE,
    COL_SRC_ID,
    COL_SRC_TYPE,
    COL_YEAR,
    check_columns,
)
from features.words import WordSegmenter, as_list, node_query_terms
from recommender.retrieval.fusion import cooccurrence_queries, fused_similarity, rm3_queries
from recommender.retrieval.index import ProfileIndexBundle, SearchIndex

if TYPE_CHECKING:
    from recommender.settings import RetrievalConfig

CANDIDATE_COLUMNS: Final = [
    COL_NODE_ID,
    COL_ENTERPRISE_ID,
    "dense_score",
    "dense_rank",
    "lexical_score",
    "lexical_rank",
    "words_score",
    "words_rank",
    "similarity",
    "sources",
    "heuristic_score",
]
SOURCE_ORDER: Final = ("dense", "words", "lexical", "chain_leader", "signal")
SCORED_SOURCES: Final = ("dense", "words", "lexical")
EXPANSION_SIGNALS: Final = ("new_branch", "land_purchase", "capacity_expansion", "financing")
HEURISTIC_WEIGHTS: Final = {"similarity": 0.60, "size": 0.15, "signals": 0.15, "ties": 0.10}
RRF_K: Final = 60
SIGNAL_HALF_LIFE_DAYS: Final = 180.0


# ----------------------------------------------------------------------------------- candidates
def target_nodes(
    nodes: pd.DataFrame, map_df: pd.DataFrame | None, node_ids: Sequence[str] | None = None
) -> pd.DataFrame:
    """The nodes to retrieve for: ``node_ids`` when given (any colour), else red and blue nodes of the map.

    Without a map and without ``node_ids`` every node is a target (nothing says which are gaps).
    """
    if node_ids is not None:
        unknown = sorted(set(node_ids) - set(nodes[COL_NODE_ID]))
        if unknown:
            raise ValueError(f"unknown node ids {unknown}; known node ids are {sorted(nodes[COL_NODE_ID])}")
        return nodes[nodes[COL_NODE_ID].isin(list(node_ids))].reset_index(drop=True)
    if map_df is None or map_df.empty:
        return nodes.reset_index(drop=True)
    gaps = set(map_df.loc[map_df["colour"].isin(["red", "blue"]), COL_NODE_ID])
    return nodes[nodes[COL_NODE_ID].isin(gaps)].reset_index(drop=True)


def retrieve_candidates(
    nodes: pd.DataFrame,
    map_df: pd.DataFrame | None,
    tables: dict[str, pd.DataFrame],
    encoder: TextEncoder | None,
    dense_index: SearchIndex | None,
    lexical_index: SearchIndex | None,
    config: RetrievalConfig,
    as_of: pd.Timestamp | None = None,
    node_ids: Sequence[str] | None = None,
    words: WordRetriever | None = None,
) -> pd.DataFrame:
    """Candidates for each red and blue node (or for ``node_ids``), with sources and day-one score.

    Args:
        nodes: ``features.chains.nodes_frame`` of all chains (adjacency comes from ``downstream``).
        map_df: the colour map (``node_id``, ``colour``), or None.
        tables: ``features.io.load_tables`` output; uses enterprises, presence, relations, signals.
        encoder: the dense embedder (for the node texts), None with ``dense_index`` None.
        dense_index: FAISS profile index, or None (lexical retrieval only).
        lexical_index: TF-IDF index over the same profile texts, or None.
        config: ``retrieval`` settings (top-K, exclusions, signal window, text length).
        as_of: point in time: relations, signals and presence after it are ignored and enterprises
            founded after it are dropped. None: everything in the tables.
        node_ids: retrieve for these nodes instead of the map's red and blue nodes.
        words: the word index and its segmenter (``ProfileIndexBundle.words`` / ``.segmenter``), or
            None (no word retriever).

    Returns:
        ``CANDIDATE_COLUMNS`` rows, one per (node, enterprise), sorted by node then heuristic score
        (descending) then enterprise id.
    """
    targets = target_nodes(nodes, map_df, node_ids)
    if targets.empty:
        return _empty_candidates()
    queries = node_texts(targets, map_df, max_chars=config.profile_max_chars)
    parts = [
        dense_hits(queries, encoder, dense_index, config.top_k_dense),
        word_hits(targets[COL_NODE_ID].astype(str).tolist(), node_word_queries(targets, words, config), words, config),
        lexical_hits(queries, lexical_index, config.top_k_lexical),
        chain_leader_candidates(targets, nodes, tables, as_of),
        signal_candidates(targets, tables, config.signal_window_days, as_of),
    ]
    merged = union_hits(parts)
    merged = merged.assign(similarity=fused_similarity(merged, config.fusion_weights).to_numpy())
    kept = filter_candidates(merged, tables, config.exclude_ids, as_of)
    scored = kept.assign(heuristic_score=heuristic_score(kept, tables, as_of, config.signal_window_days))
    order = scored.sort_values([COL_NODE_ID, "heuristic_score", COL_ENTERPRISE_ID], ascending=[True, False, True])
    return order.reset_index(drop=True)[CANDIDATE_COLUMNS]


def _empty_candidates() -> pd.DataFrame:
    return pd.DataFrame(
        {
            c: pd.Series(dtype=float if c.endswith(("score", "rank", "similarity")) else object)
            for c in CANDIDATE_COLUMNS
        }
    )


def dense_hits(queries: pd.Series, encoder: TextEncoder | None, index: SearchIndex | None, top_k: int) -> pd.DataFrame:
    if encoder is None or index is None:
        return _hits_frame([], np.empty((0, 0)), np.empty((0, 0)), "dense")
    q = encoder.encode(queries.tolist(), kind="query", batch_size=32, show_progress=False)
    ids, scores = index.search(np.asarray(q, dtype=np.float32), top_k)
    return _hits_frame(queries.index.tolist(), ids, scores, "dense")


@dataclass(frozen=True)
class WordRetriever:
    """The word index (``models.bm25.BM25Index``) with the segmenter its words came from."""

    index: Any
    segmenter: WordSegmenter


def word_retriever(bundle: ProfileIndexBundle) -> WordRetriever | None:
    """The bundle's word index with its segmenter, or None when it has none."""
    if bundle.words is None or bundle.segmenter is None:
        return None
    return WordRetriever(bundle.words, bundle.segmenter)


def node_word_queries(
    targets: pd.DataFrame, words: WordRetriever | None, config: RetrievalConfig
) -> list[dict[str, float]]:
    """Each node's weighted BM25 query: its parts' words, then co-occurrence expansion and RM3 when enabled."""
    if words is None or targets.empty:
        return []
    queries = node_query_terms(targets, words.segmenter, config.query_part_weights)
    if config.expansion_terms > 0:
        seeds = [
            [w for p in as_list(v) for w in words.segmenter.tokens(p)]
            for v in targets.get("products", pd.Series([[]] * len(targets))).tolist()
        ]
        queries = cooccurrence_queries(words.index, queries, seeds, config.expansion_terms, config.expansion_weight)
    return rm3_queries(words.index, queries, config.prf_docs, config.prf_terms, config.prf_weight)


def word_hits(
    query_ids: list[str], queries: list[dict[str, float]], words: WordRetriever | None, config: RetrievalConfig
) -> pd.DataFrame:
    if words is None or not queries:
        return _hits_frame([], np.empty((0, 0)), np.empty((0, 0)), "words")
    ids, scores = words.index.search(queries, config.top_k_words)
    return _hits_frame(query_ids, ids, scores, "words")


def lexical_hits(queries: pd.Series, index: SearchIndex | None, top_k: int) -> pd.DataFrame:
    if index is None:
        return _hits_frame([], np.empty((0, 0)), np.empty((0, 0)), "lexical")
    ids, scores = index.search(queries.tolist(), top_k)
    return _hits_frame(queries.index.tolist(), ids, scores, "lexical")


def is_hit(eid: Any, score: float) -> bool:
    """False for search padding: a None, '' or -1 id or a non-finite score (FAISS returns those for k > n)."""
    return eid is not None and str(eid) not in ("", "-1") and bool(np.isfinite(score))


def _hits_frame(query_ids: list[str], ids: Any, scores: Any, source: str) -> pd.DataFrame:
    """Search output (n_queries rows of ids and scores) as long rows with 1-based ranks.

    Padding (None, '', -1 ids or non-finite scores, as FAISS returns for k > n) is dropped.
    """
    rows: list[tuple[str, str, float, int]] = []
    for qid, row_ids, row_scores in zip(query_ids, ids, scores, strict=True):
        rank = 0
        for eid, score in zip(row_ids, row_scores, strict=True):
            if not is_hit(eid, score):
                continue
            rank += 1
            rows.append((qid, str(eid), float(score), rank))
    frame = pd.DataFrame(rows, columns=[COL_NODE_ID, COL_ENTERPRISE_ID, f"{source}_score", f"{source}_rank"])
    frame[f"{source}_rank"] = frame[f"{source}_rank"].astype(float)
    return frame.assign(sources=source).drop_duplicates([COL_NODE_ID, COL_ENTERPRISE_ID])


def adjacent_nodes(nodes: pd.DataFrame) -> dict[str, set[str]]:
    """Each node's neighbours in its chain: its downstream nodes and the nodes that feed it."""
    neighbours: dict[str, set[str]] = {str(n): set() for n in nodes[COL_NODE_ID]}
    for node, downstream in zip(nodes[COL_NODE_ID], nodes["downstream"], strict=True):
        for d in list(downstream) if downstream is not None else []:
            neighbours.setdefault(str(node), set()).add(str(d))
            neighbours.setdefault(str(d), set()).add(str(node))
    return neighbours


def chain_leader_candidates(
    targets: pd.DataFrame, nodes: pd.DataFrame, tables: dict[str, pd.DataFrame], as_of: pd.Timestamp | None
) -> pd.DataFrame:
    """Suppliers and customers of the zone's chain leaders at each target's adjacent nodes."""
    presence = _table(tables, "presence", [COL_ENTERPRISE_ID, COL_NODE_ID, COL_YEAR, COL_IS_CHAIN_LEADER])
    relations = _table(
        tables, "relations", [COL_SRC_ID, COL_SRC_TYPE, COL_DST_ID, COL_DST_TYPE, COL_RELATION_TYPE, COL_DATE]
    )
    if as_of is not None:
        presence = presence[presence[COL_YEAR] <= as_of.year]
        relations = relations[pd.to_datetime(relations[COL_DATE]) <= as_of]
    leaders = presence[presence[COL_IS_CHAIN_LEADER].fillna(False).astype(bool)]
    leaders_at: dict[str, set[str]] = {}
    for node, eid in zip(leaders[COL_NODE_ID].astype(str), leaders[COL_ENTERPRISE_ID].astype(str), strict=True):
        leaders_at.setdefault(node, set()).add(eid)
    supply = relations[
        (relations[COL_RELATION_TYPE] == "supplier")
        & (relations[COL_SRC_TYPE] == "enterprise")
        & (relations[COL_DST_TYPE] == "enterprise")
    ]
    partners: dict[str, set[str]] = {}
    for src, dst in zip(supply[COL_SRC_ID].astype(str), supply[COL_DST_ID].astype(str), strict=True):
        partners.setdefault(dst, set()).add(src)  # src supplies the leader dst
        partners.setdefault(src, set()).add(dst)  # dst buys from the leader src
    neighbours = adjacent_nodes(nodes)
    rows: list[tuple[str, str]] = []
    for node in targets[COL_NODE_ID].astype(str):
        node_leaders: set[str] = set()
        for n in neighbours.get(node, set()):
            node_leaders |= leaders_at.get(n, set())
        found: set[str] = set()
        for leader in node_leaders:
            found |= partners.get(leader, set())
        found -= node_leaders
        rows.extend((node, eid) for eid in sorted(found))
    return pd.DataFrame(rows, columns=[COL_NODE_ID, COL_ENTERPRISE_ID]).assign(sources="chain_leader")


def signal_candidates(
    targets: pd.DataFrame, tables: dict[str, pd.DataFrame], window_days: int, as_of: pd.Timestamp | None
) -> pd.DataFrame:
    """Enterprises with an expansion signal in the window whose industry code is one of the node's."""
    recent = recent_signals(tables, window_days, as_of)
    enterprises = _table(tables, "enterprises", [COL_ENTERPRISE_ID, COL_INDUSTRY_CODE])
    active = set(recent[COL_ENTERPRISE_ID].astype(str))
    ents = enterprises[enterprises[COL_ENTERPRISE_ID].astype(str).isin(active)]
    by_code = ents.groupby(ents[COL_INDUSTRY_CODE].astype(str))[COL_ENTERPRISE_ID].agg(lambda s: sorted(map(str, s)))
    rows: list[tuple[str, str]] = []
    for node, codes in zip(targets[COL_NODE_ID].astype(str), targets["industry_codes"], strict=True):
        found = sorted({eid for code in (list(codes) if codes is not None else []) for eid in by_code.get(code, [])})
        rows.extend((node, eid) for eid in found)
    return pd.DataFrame(rows, columns=[COL_NODE_ID, COL_ENTERPRISE_ID]).assign(sources="signal")


def recent_signals(tables: dict[str, pd.DataFrame], window_days: int, as_of: pd.Timestamp | None) -> pd.DataFrame:
    """Expansion signals dated in (ref - window_days, ref], ref = as_of or the newest signal date."""
    signals = _table(tables, "signals", [COL_ENTERPRISE_ID, COL_SIGNAL_TYPE, COL_DATE])
    signals = signals[signals[COL_SIGNAL_TYPE].isin(EXPANSION_SIGNALS)]
    dates = pd.to_datetime(signals[COL_DATE])
    if dates.empty or dates.isna().all():
        return signals.iloc[0:0].assign(**{COL_DATE: pd.Series(dtype="datetime64[ns]")})
    ref = as_of if as_of is not None else dates.max()
    keep = (dates <= ref) & (dates > ref - pd.Timedelta(days=window_days))
    return signals[keep].assign(**{COL_DATE: dates[keep]})


def union_hits(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Outer-join the source frames on (node, enterprise); ``sources`` joined in ``SOURCE_ORDER``."""
    keys = [COL_NODE_ID, COL_ENTERPRISE_ID]
    tags = pd.concat([p[keys + ["sources"]] for p in parts], ignore_index=True)
    order = {s: i for i, s in enumerate(SOURCE_ORDER)}
    joined = (
        tags.drop_duplicates()
        .assign(_o=tags["sources"].map(order))
        .sort_values(keys + ["_o"])
        .groupby(keys, sort=True)["sources"]
        .agg("|".join)
        .reset_index()
    )
    for p in parts:
        cols = [c for c in p.columns if c.endswith(("_score", "_rank")) and c.split("_")[0] in SCORED_SOURCES]
        if cols:
            joined = joined.merge(p[keys + cols], on=keys, how="left")
    for source in SCORED_SOURCES:  # every score / rank column present, NaN when that source is not in use
        for suffix in ("_score", "_rank"):
            if source + suffix not in joined.columns:
                joined[source + suffix] = np.nan
    return joined


def filter_candidates(
    candidates: pd.DataFrame, tables: dict[str, pd.DataFrame], exclude_ids: Sequence[str], as_of: pd.Timestamp | None
) -> pd.DataFrame:
    """Drop candidates that are in the zone at that node, not operating, excluded, unknown, or too new."""
    enterprises = _table(tables, "enterprises", [COL_ENTERPRISE_ID, COL_IS_OPERATING, COL_FOUNDED])
    presence = _table(tables, "presence", [COL_ENTERPRISE_ID, COL_NODE_ID, COL_YEAR])
    if as_of is not None:
        presence = presence[presence[COL_YEAR] <= as_of.year]
    ok = enterprises[COL_IS_OPERATING].astype("boolean").fillna(True).astype(bool)
    if as_of is not None:
        ok &= ~(pd.to_datetime(enterprises[COL_FOUNDED]) > as_of).fillna(False).astype(bool)
    allowed = set(enterprises.loc[ok, COL_ENTERPRISE_ID].astype(str)) - set(map(str, exclude_ids))
    in_zone = set(zip(presence[COL_NODE_ID].astype(str), presence[COL_ENTERPRISE_ID].astype(str), strict=True))
    pairs = zip(candidates[COL_NODE_ID].astype(str), candidates[COL_ENTERPRISE_ID].astype(str), strict=True)
    keep = [eid in allowed and (node, eid) not in in_zone for node, eid in pairs]
    return candidates[np.asarray(keep, dtype=bool)].reset_index(drop=True)


# ------------------------------------------------------------------------------------ heuristic
def heuristic_score(
    candidates: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    as_of: pd.Timestamp | None,
    window_days: int = 365,
) -> pd.Series:
    """The day-one score in [0, 1] (see the module docstring); deterministic, same index as ``candidates``.

    Args:
        candidates: rows with ``enterprise_id``, ``sources`` and (optional) ``dense_rank``, ``lexical_rank``.
        tables: uses ``enterprises`` (size) and ``signals`` (expansion signals).
        as_of: signals dated after it are ignored; None: the newest signal date is the reference.
        window_days: signals older than this before the reference do not count.
    """
    check_columns(list(candidates.columns), [COL_ENTERPRISE_ID, "sources"], "candidates")
    eids = candidates[COL_ENTERPRISE_ID].astype(str)
    parts = {
        "similarity": candidates["similarity"].astype(float).fillna(0.0)
        if "similarity" in candidates.columns
        else similarity_component(candidates),
        "size": eids.map(size_percentiles(tables)).fillna(0.0),
        "signals": eids.map(signal_strength(tables, as_of, window_days)).fillna(0.0),
        "ties": candidates["sources"].astype(str).str.split("|").map(lambda s: float("chain_leader" in s)),
    }
    total = sum(HEURISTIC_WEIGHTS[k] * v.astype(float).to_numpy() for k, v in parts.items())
    return pd.Series(np.round(np.asarray(total, dtype=float), 12), index=candidates.index, name="heuristic_score")


def similarity_component(candidates: pd.DataFrame) -> pd.Series:
    """Reciprocal-rank fusion of dense and lexical ranks, scaled so rank 1 in every retriever in use is 1."""
    used = [c for c in ("dense_rank", "lexical_rank") if c in candidates.columns and candidates[c].notna().any()]
    if not used:
        return pd.Series(0.0, index=candidates.index)
    parts = [((RRF_K + 1) / (RRF_K + candidates[c].astype(float))).fillna(0.0) for c in used]
    return sum(parts, pd.Series(0.0, index=candidates.index)) / len(used)


def size_percentiles(tables: dict[str, pd.DataFrame]) -> pd.Series:
    """Per enterprise id: mean universe percentile of registered capital and employees (missing = 0)."""
    ents = _table(tables, "enterprises", [COL_ENTERPRISE_ID, COL_CAPITAL_CNY, COL_EMPLOYEES])
    ranks = [
        pd.to_numeric(ents[c], errors="coerce").rank(pct=True, method="average").fillna(0.0)
        for c in (COL_CAPITAL_CNY, COL_EMPLOYEES)
    ]
    values = (ranks[0] + ranks[1]) / 2
    return pd.Series(values.to_numpy(), index=ents[COL_ENTERPRISE_ID].astype(str)).groupby(level=0).max()


def signal_strength(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp | None, window_days: int = 365) -> pd.Series:
    """Per enterprise id: 1 - exp(-Σ exp(-age_days / 180)) over its recent expansion signals."""
    recent = recent_signals(tables, window_days, as_of)
    if recent.empty:
        return pd.Series(dtype=float)
    ref = as_of if as_of is not None else recent[COL_DATE].max()
    age = (ref - recent[COL_DATE]).dt.days.astype(float)
    weight = np.exp(-age / SIGNAL_HALF_LIFE_DAYS)
    total = weight.groupby(recent[COL_ENTERPRISE_ID].astype(str)).sum()
    return 1.0 - np.exp(-total)


# ---------------------------------------------------------------------------------- live targets
LIVE_TARGET_COLUMNS: Final = [
    "chain_id",
    COL_NODE_ID,
    "rank",
    COL_ENTERPRISE_ID,
    COL_NAME,
    "score",
    "sources",
    "dense_score",
    "lexical_score",
    "industry_name",
    "province",
    "city",
]


def rank_live_targets(
    candidates: pd.DataFrame, enterprises: pd.DataFrame, nodes: pd.DataFrame, top_n: int
) -> pd.DataFrame:
    """Live targets of each node (``sansetu query --live``): the ``top_n`` candidates by ``heuristic_score``.

    Returns:
        ``LIVE_TARGET_COLUMNS`` rows sorted by chain, node and rank (1-based); ``score`` is the
        heuristic score (the ranking model replaces it once a champion exists).
    """
    check_columns(
        list(candidates.columns), [COL_NODE_ID, COL_ENTERPRISE_ID, "heuristic_score", "sources"], "candidates"
    )
    order = candidates.sort_values([COL_NODE_ID, "heuristic_score", COL_ENTERPRISE_ID], ascending=[True, False, True])
    top = order.groupby(COL_NODE_ID, sort=False).head(top_n).copy()
    top["rank"] = top.groupby(COL_NODE_ID, sort=False).cumcount() + 1
    info_cols = [c for c in (COL_NAME, "industry_name", "province", "city") if c in enterprises.columns]
    info = (
        enterprises[[COL_ENTERPRISE_ID, *info_cols]].drop_duplicates(COL_ENTERPRISE_ID).astype({COL_ENTERPRISE_ID: str})
    )
    out = top.merge(info, on=COL_ENTERPRISE_ID, how="left").rename(columns={"heuristic_score": "score"})
    out = out.merge(nodes[["chain_id", COL_NODE_ID]], on=COL_NODE_ID, how="left")
    for c in LIVE_TARGET_COLUMNS:
        if c not in out.columns:
            out[c] = pd.Series(pd.NA, index=out.index, dtype=object)
    return out.sort_values(["chain_id", COL_NODE_ID, "rank"]).reset_index(drop=True)[LIVE_TARGET_COLUMNS]


def _table(tables: dict[str, pd.DataFrame], name: str, columns: list[str]) -> pd.DataFrame:
    """A table from ``tables`` with at least ``columns`` (missing table: empty; missing columns: NA)."""
    df = tables.get(name)
    if df is None:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    missing = [c for c in columns if c not in df.columns]
    if not missing:
        return df
    out = df.copy()
    for c in missing:
        out[c] = pd.Series(pd.NA, index=df.index, dtype=object)
    return out
