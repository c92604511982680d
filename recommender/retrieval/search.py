"""Search the universe: free text (:func:`search_text`, :func:`search_universe`) and one node's
candidates retrieved now (:func:`query_node`, what ``sansetu query --live`` shows), as the records
that the CLI prints and the web page lists.

Errors a user can fix (an unknown node, nothing ingested yet, an empty query) raise
:class:`SearchInputError`, whose message says what to do.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

import pandas as pd

from features.embeddings import TextEncoder
from features.schema import COL_ENTERPRISE_ID, COL_NAME, COL_NODE_ID
from features.text import normalize_text
from features.words import text_query_terms
from recommender.retrieval.candidates import (
    WordRetriever,
    dense_hits,
    filter_candidates,
    heuristic_score,
    lexical_hits,
    rank_live_targets,
    retrieve_candidates,
    union_hits,
    word_hits,
    word_retriever,
)
from recommender.retrieval.fusion import fused_similarity, rm3_queries
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

    Returns:
        Up to ``top_n`` rows: ``enterprise_id, name, score, sources, dense_score, dense_rank,
        lexical_score, lexical_rank`` (+ industry and place columns when present), best first;
        ``score`` is :func:`heuristic_score` with only the enterprises table, its similarity the
        fused score of the dense, word (when ``words`` is given) and lexical retrievers.
    """
    query = normalize_text(text).strip()
    if not query:
        raise ValueError(f"search text must contain at least one non-space character; got {text!r}")
    queries = pd.Series([query], index=pd.Index(["query"], name=COL_NODE_ID))
    word_queries = [] if words is None else [text_query_terms(query, words.segmenter)]
    if words is not None:
        word_queries = rm3_queries(words.index, word_queries, config.prf_docs, config.prf_terms, config.prf_weight)
    parts = [
        dense_hits(queries, encoder, dense_index, config.top_k_dense),
        word_hits(["query"], word_queries, words, config),
        lexical_hits(queries, lexical_index, config.top_k_lexical),
    ]
    tables = {"enterprises": enterprises}
    merged = union_hits(parts)
    merged = merged.assign(similarity=fused_similarity(merged, config.fusion_weights).to_numpy())
    kept = filter_candidates(merged, tables, config.exclude_ids, None)
    scored = kept.assign(score=heuristic_score(kept, tables, None))
    info_cols = [c for c in (COL_NAME, "industry_name", "province", "city") if c in enterprises.columns]
    info = enterprises[[COL_ENTERPRISE_ID, *info_cols]].drop_duplicates(COL_ENTERPRISE_ID)
    out = scored.merge(info.astype({COL_ENTERPRISE_ID: str}), on=COL_ENTERPRISE_ID, how="left")
    out = out.sort_values(["score", COL_ENTERPRISE_ID], ascending=[False, True]).head(top_n)
    cols = [
        COL_ENTERPRISE_ID,
        *info_cols[:1],
        "score",
        "sources",
        "dense_score",
        "dense_rank",
        "lexical_score",
        "lexical_rank",
        *info_cols[1:],
    ]
    return out.reset_index(drop=True)[cols]


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

    tables = _load_tables(settings)
    encoder, bundle = load_retrieval(settings, tables["enterprises"])
    try:
        found = search_bundle(text, tables["enterprises"], encoder, bundle, settings.retrieval, top_n=top_n)
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
