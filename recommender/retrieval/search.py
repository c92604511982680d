"""Search the universe: free text (:func:`search_text`, :func:`search_universe`) and one node's
candidates retrieved now (:func:`query_node`, what ``sansetu query --live`` shows), as the records
that the CLI prints and the web page lists.

Errors a user can fix (an unknown node, nothing ingested yet, an empty query) raise
:class:`SearchInputError`, whose message says what to do.
"""

from __future__ import annotations

import difflib
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.embeddings import TextEncoder
from features.schema import COL_ENTERPRISE_ID, COL_IS_OPERATING, COL_NAME
from features.text import normalize_text
from features.words import text_query_terms
from recommender.retrieval.candidates import (
    HEURISTIC_WEIGHTS,
    SOURCE_ORDER,
    WordRetriever,
    is_hit,
    rank_live_targets,
    retrieve_candidates,
    size_percentiles,
    word_retriever,
)
from recommender.retrieval.fusion import rm3_queries
from recommender.retrieval.index import ProfileIndexBundle, SearchIndex, load_retrieval
from recommender.workspace import Workspace

if TYPE_CHECKING:
    from recommender.settings import RetrievalConfig, Settings

OUTPUT_COLUMNS = ["rank", "enterprise_id", "name", "score", "sources", "industry_name", "province", "city"]


class SearchInputError(ValueError):
    """Input the user can fix (unknown node, nothing ingested, empty query); the CLI exits 2."""


# --------------------------------------------------------------------------------------- search
def search_text(
    text: str,
    enterprises: pd.DataFrame,
    encoder: TextEncoder | None,
    dense_index: SearchIndex | None,
    lexical_index: SearchIndex | None,
    config: RetrievalConfig,
    top_n: int = 20,
    words: WordRetriever | None = None,
) -> pd.DataFrame:
    """Free-text search over the whole universe (needs only the enterprises table).

    The same score as :func:`heuristic_score` over :func:`union_hits` of the retrievers with only
    the enterprises table (fused similarity + size; no signals or ties), computed with numpy on
    the hits alone: the per-universe parts (id positions, operating flags, size percentiles, the
    info columns) are built once per enterprises table (:func:`universe_view`), so a warm server
    pays only the searches.

    Returns:
        Up to ``top_n`` rows: ``enterprise_id, name, score, sources, dense_score, dense_rank,
        lexical_score, lexical_rank`` (+ industry and place columns when present), best first
        (ties by id).
    """
    query = normalize_text(text).strip()
    if not query:
        raise ValueError(f"search text must contain at least one non-space character; got {text!r}")
    hits = _query_hits(query, encoder, dense_index, lexical_index, words, config)
    view = universe_view(enterprises)
    return _rank_hits(hits, view, config, top_n)


@dataclass(frozen=True)
class UniverseView:
    """The per-universe parts of a search: ids, which are listable, size percentiles, display columns."""

    ids: pd.Index
    operating: np.ndarray
    size: np.ndarray
    info: pd.DataFrame


_VIEW_CACHE: dict[int, tuple[Any, UniverseView]] = {}


def universe_view(enterprises: pd.DataFrame) -> UniverseView:
    """:class:`UniverseView` of an enterprises table, cached while that same table object lives."""
    cached = _VIEW_CACHE.get(id(enterprises))
    if cached is not None and cached[0]() is enterprises:
        return cached[1]
    eids = enterprises[COL_ENTERPRISE_ID].astype(str)
    ok = enterprises[COL_IS_OPERATING].astype("boolean").fillna(True).astype(bool) if COL_IS_OPERATING in enterprises \
        else pd.Series(True, index=enterprises.index)  # fmt: skip
    operating = ok.groupby(eids.to_numpy()).any()
    info_cols = [c for c in (COL_NAME, "industry_name", "province", "city") if c in enterprises.columns]
    info = enterprises.assign(**{COL_ENTERPRISE_ID: eids}).drop_duplicates(COL_ENTERPRISE_ID)
    ids = pd.Index(info[COL_ENTERPRISE_ID].to_numpy(dtype=object))
    size = size_percentiles({"enterprises": enterprises}).reindex(ids).fillna(0.0).to_numpy(dtype=float)
    view = UniverseView(
        ids, operating.reindex(ids).fillna(False).to_numpy(dtype=bool), size,
        info[info_cols].reset_index(drop=True).astype(object),
    )  # fmt: skip
    _VIEW_CACHE.clear()  # one universe at a time: the current snapshot's
    _VIEW_CACHE[id(enterprises)] = (weakref.ref(enterprises), view)
    return view


def _query_hits(
    query: str, encoder: TextEncoder | None, dense_index: SearchIndex | None, lexical_index: SearchIndex | None,
    words: WordRetriever | None, config: RetrievalConfig,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """Each retriever's (ids, scores) for the query, padding dropped, best first."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if encoder is not None and dense_index is not None:
        q = encoder.encode([query], kind="query", batch_size=1, show_progress=False)
        out["dense"] = dense_index.search(np.asarray(q, dtype=np.float32), config.top_k_dense)
    if words is not None:
        terms = rm3_queries(words.index, [text_query_terms(query, words.segmenter)], config.prf_docs,
                            config.prf_terms, config.prf_weight)  # fmt: skip
        out["words"] = words.index.search(terms, config.top_k_words)
    if lexical_index is not None:
        out["lexical"] = lexical_index.search([query], config.top_k_lexical)
    cleaned = {}
    for r, (ids, scores) in out.items():
        ids0, s0 = np.asarray(ids, dtype=object)[0], np.asarray(scores, dtype=float)[0]
        keep = np.asarray([is_hit(e, s) for e, s in zip(ids0, s0, strict=True)], dtype=bool)
        cleaned[r] = (np.asarray([str(e) for e in ids0[keep]], dtype=object), s0[keep])
    return cleaned


def _rank_hits(
    hits: dict[str, tuple[np.ndarray, np.ndarray]], view: UniverseView, config: RetrievalConfig, top_n: int
) -> pd.DataFrame:
    """Union of the hits, fused similarity + size, filtered and cut to ``top_n`` (numpy; see ``search_text``)."""
    union = pd.Index(np.concatenate([h[0] for h in hits.values()])).unique() if hits else pd.Index([], dtype=object)
    n = len(union)
    cols: dict[str, np.ndarray] = {}
    weights = config.fusion_weights
    total, weight_sum = np.zeros(n), 0.0
    hit_sources = []
    for r in SOURCE_ORDER:
        if r not in hits:
            continue
        ids, s = hits[r]
        at = union.get_indexer(pd.Index(ids))
        score, rank = np.full(n, np.nan), np.full(n, np.nan)
        score[at], rank[at] = s, np.arange(1, len(ids) + 1, dtype=float)
        cols[f"{r}_score"], cols[f"{r}_rank"] = score, rank
        hit_sources.append((r, ~np.isnan(score)))
        if len(ids) and weights.get(r, 0.0) > 0:
            hi, lo = s.max(), (s.min() if r == "dense" else 0.0)
            norm = np.clip((s - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.ones(len(s))
            total[at] += weights[r] * norm
            weight_sum += weights[r]
    similarity = total / weight_sum if weight_sum > 0 else total
    pos = view.ids.get_indexer(union)
    excluded = np.asarray(union.isin(list(map(str, config.exclude_ids))), dtype=bool)
    keep = (pos >= 0) & ~excluded
    keep[keep] = view.operating[pos[keep]]
    size = np.where(pos >= 0, view.size[np.maximum(pos, 0)], 0.0)
    score = np.round(HEURISTIC_WEIGHTS["similarity"] * similarity + HEURISTIC_WEIGHTS["size"] * size, 12)
    kept = np.flatnonzero(keep)
    order = kept[np.lexsort((np.asarray(union, dtype=object)[kept].astype(str), -score[kept]))][:top_n]
    sources = ["|".join(r for r, hit in hit_sources if hit[i]) for i in order]
    out = pd.DataFrame({COL_ENTERPRISE_ID: np.asarray(union, dtype=object)[order]})
    info = view.info.iloc[pos[order]].reset_index(drop=True)
    info_cols = list(info.columns)
    if info_cols[:1] == [COL_NAME]:
        out[COL_NAME] = info[COL_NAME].to_numpy()
    out["score"], out["sources"] = score[order], sources
    for c in ("dense_score", "dense_rank", "lexical_score", "lexical_rank"):
        out[c] = cols[c][order] if c in cols else np.full(len(order), np.nan)
    for c in info_cols:
        if c != COL_NAME:
            out[c] = info[c].to_numpy()
    return out


def search_bundle(
    text: str,
    enterprises: pd.DataFrame,
    encoder: TextEncoder | None,
    bundle: ProfileIndexBundle,
    config: RetrievalConfig,
    top_n: int = 20,
) -> pd.DataFrame:
    """:func:`search_text` with every retriever of a :class:`ProfileIndexBundle`."""
    return search_text(
        text, enterprises, encoder, bundle.dense, bundle.lexical, config, top_n=top_n, words=word_retriever(bundle)
    )


# ------------------------------------------------------------------------------------ library
def query_node(settings: Settings, node_id: str, top_n: int) -> tuple[list[dict[str, Any]], str]:
    """Candidates of one node as output records and a table title; raises ``SearchInputError`` for user errors."""
    from features.chains import nodes_frame
    from recommender.settings import ConfigError, load_chains

    try:
        nodes = nodes_frame(load_chains(settings))
    except ConfigError as exc:
        raise SearchInputError(str(exc)) from None
    if node_id not in set(nodes["node_id"]):
        raise SearchInputError(unknown_node_message(node_id, nodes))
    tables = _load_tables(settings)
    map_df = _colour_map(settings, nodes, tables)
    encoder, bundle = load_retrieval(settings, tables["enterprises"])
    cands = retrieve_candidates(
        nodes,
        map_df,
        tables,
        encoder,
        bundle.dense,
        bundle.lexical,
        settings.retrieval,
        node_ids=[node_id],
        words=word_retriever(bundle),
    )
    lists = rank_live_targets(cands, tables["enterprises"], nodes, top_n)
    row = nodes.set_index("node_id").loc[node_id]
    colour = "" if map_df is None else str(map_df.set_index("node_id")["colour"].get(node_id, ""))
    title = f"{row['chain_name']} · {row['name']} ({node_id}{', ' + colour if colour else ''}) — top {top_n}"
    return _records(lists), title


def search_universe(settings: Settings, text: str, top_n: int) -> list[dict[str, Any]]:
    """Free-text search results as output records; raises ``SearchInputError`` for user errors."""

    from features.io import load_table

    enterprises = load_table(Workspace(settings.workspace).snapshots, "enterprises")  # a search needs no other table
    if enterprises.empty:
        raise SearchInputError(f"no enterprises in workspace {settings.workspace}; run `sansetu ingest` first.")
    encoder, bundle = load_retrieval(settings, enterprises)
    try:
        found = search_bundle(text, enterprises, encoder, bundle, settings.retrieval, top_n=top_n)
    except ValueError as exc:
        raise SearchInputError(str(exc)) from None
    return _records(found.assign(rank=range(1, len(found) + 1)))


def unknown_node_message(node_id: str, nodes: pd.DataFrame) -> str:
    """'unknown node id' with up to 5 close matches by id or by Chinese name."""
    ids = nodes["node_id"].astype(str).tolist()
    names = dict(zip(nodes["node_id"].astype(str), nodes["name"].astype(str), strict=True))
    close = difflib.get_close_matches(node_id, ids, n=3, cutoff=0.6)
    by_name = [i for i, n in names.items() if node_id and (node_id in n or n in node_id)]
    by_name += difflib.get_close_matches(node_id, list(names.values()), n=5, cutoff=0.5)
    name_ids = [i for i, n in names.items() if n in by_name or i in by_name]
    matches = list(dict.fromkeys(close + name_ids))[:5]
    listed = ", ".join(f"{i} ({names[i]})" for i in matches) if matches else "none"
    return f"unknown node id {node_id!r}; close matches: {listed}. List all nodes with `sansetu map`."


def _load_tables(settings: Settings) -> dict[str, pd.DataFrame]:
    from features.io import load_tables

    tables = load_tables(Workspace(settings.workspace).snapshots)
    if tables["enterprises"].empty:
        raise SearchInputError(f"no enterprises in workspace {settings.workspace}; run `sansetu ingest` first.")
    return tables


def _colour_map(settings: Settings, nodes: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> pd.DataFrame | None:
    """The current colour map (gap phrases in node texts); None when no presence is ingested yet."""
    if tables["presence"].empty:
        return None
    from recommender.colour_map.colours import compute_map

    return compute_map(nodes, tables["presence"], tables["enterprises"], settings.map)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = df.copy()
    for c in OUTPUT_COLUMNS:
        if c not in out.columns:
            out[c] = None
    out["score"] = out["score"].astype(float).round(6)
    extra = [c for c in ("dense_score", "lexical_score", "node_id", "chain_id") if c in out.columns]
    rows = out[OUTPUT_COLUMNS + extra].astype(object).where(out[OUTPUT_COLUMNS + extra].notna(), None)
    return [{str(k): _plain(v) for k, v in r.items()} for r in rows.to_dict(orient="records")]


def _plain(v: Any) -> Any:
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        return v.item()
    return v
