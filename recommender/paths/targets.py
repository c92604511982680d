"""The targets: the top targets of each node with their reasons, routes and theme — what the
refresh publishes as ``targets.parquet`` and analysts open per node."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from features.schema import COL_ENTERPRISE_ID, COL_NODE_ID, check_columns
from recommender.colour_map.priority import order_nodes
from recommender.paths.graph import build_graph
from recommender.paths.reasons import CHECK_GROUP, GROUP_LABELS, Explainer, Reason, contributions_of
from recommender.paths.routes import RouteFinder, routes_for_targets, routes_json
from recommender.settings import PathsConfig

if TYPE_CHECKING:
    import networkx as nx


def build_targets(
    scored: pd.DataFrame,
    tables: Mapping[str, pd.DataFrame],
    nodes: pd.DataFrame | None = None,
    map_df: pd.DataFrame | None = None,
    config: PathsConfig | None = None,
    as_of: pd.Timestamp | None = None,
    top_n: int | None = None,
    graph: nx.MultiDiGraph | None = None,
    features: pd.DataFrame | None = None,
    *,
    zone_province: str,
) -> pd.DataFrame:
    """The targets: the top ``top_n`` targets of each node with reasons, routes and theme.

    Args:
        scored: ``node_id, enterprise_id, score`` (+ ``rank``; + contributions as a ``contributions``
            mapping/JSON or ``contrib_<feature>`` columns incl. ``contrib_bias``; + feature values).
        tables: the tables of ``features.io.load_tables``.
        nodes: node table (names, industry codes, ``chain_id``); map_df: the colour map (colour, gap,
            ``priority`` — nodes are listed by priority when present).
        top_n: targets per node (default ``config.top_targets``).
        graph: a prebuilt :func:`recommender.paths.graph.build_graph` (else built here, as of ``as_of``).
        features: pair features (``node_id, enterprise_id`` + ``features.pairs.FEATURE_NAMES``) for the
            facts of the reasons, when ``scored`` does not carry them.

    Returns:
        One row per kept target: the columns of ``scored`` plus ``chain_id, name, rank`` (when
        missing), ``reasons`` (JSON list of {group, label, text, contribution, features, evidence}),
        ``routes`` (JSON list of {theme, score, sentence, hops, …}), ``theme`` (best route's, "" if
        none) and ``n_routes``.
    """
    check_columns(list(scored.columns), [COL_NODE_ID, COL_ENTERPRISE_ID, "score"], "scored")
    cfg = config or PathsConfig()
    top = _top_per_node(scored, top_n or cfg.top_targets, map_df)
    if features is not None and len(top):
        extra = [c for c in features.columns if c not in top.columns or c in (COL_NODE_ID, COL_ENTERPRISE_ID)]
        top = top.merge(features[extra].drop_duplicates([COL_NODE_ID, COL_ENTERPRISE_ID]), how="left")
    ids = sorted(set(top[COL_ENTERPRISE_ID].astype(str)))
    enterprises = tables.get("enterprises")
    if graph is None:
        graph = build_graph(tables["relations"], tables["assets"], tables["presence"], enterprises, as_of)
    sub = None if enterprises is None else enterprises[enterprises[COL_ENTERPRISE_ID].astype(str).isin(ids)]
    signals = tables.get("signals")
    if signals is not None and not signals.empty:
        signals = signals[signals[COL_ENTERPRISE_ID].astype(str).isin(ids)]
    finder = RouteFinder(cfg, zone_province).fit(graph, sub, signals)
    routes = routes_for_targets(graph, top, finder=finder, zone_province=zone_province)
    explainer = Explainer(cfg, zone_province).fit(tables, nodes, map_df, as_of, ids)
    records: list[dict[str, Any]] = [{str(k): v for k, v in r.items()} for r in top.to_dict("records")]
    top["reasons"] = [json.dumps([r.to_dict() for r in target_reasons(explainer, rec)], ensure_ascii=False)
                      for rec in records]  # fmt: skip
    top["routes"] = [routes_json(rs) for rs in routes]
    top["theme"] = [rs[0].theme if rs else "" for rs in routes]
    top["n_routes"] = [len(rs) for rs in routes]
    return _decorate(top, nodes, enterprises)


def target_reasons(explainer: Explainer, rec: Mapping[str, Any]) -> list[Reason]:
    """A target's reasons: an analyst's check first (when there is one), its past approaches (when it
    has any), then the explainer's.

    The approaches replace the heuristic's one-line 接洽历史 fact (same records, less said); a
    接洽历史 reason that carries a model contribution stays, so the contributions still sum.
    """
    reasons = explainer.explain(rec, contributions_of(rec))
    checked = checked_reason(rec)
    past = explainer.past_approaches(str(rec[COL_ENTERPRISE_ID]), str(rec[COL_NODE_ID]))
    if past is not None:
        reasons = [past] + [r for r in reasons if not (r.group == "history" and r.contribution is None)]
    return ([checked] if checked is not None else []) + reasons


def checked_reason(rec: Mapping[str, Any]) -> Reason | None:
    """经核实生产本节点产品（核实人 张三，2026-06-01） for a pair an analyst checked 是 (the ``fit_mark`` of
    ``recommender.retrieval.fit.apply_fit_marks``), else None."""
    if rec.get("fit_mark") != "fits":
        return None
    note = rec.get("fit_mark_note")
    text = "经核实生产本节点产品" + (f"（{note}）" if isinstance(note, str) and note else "")
    return Reason(CHECK_GROUP, GROUP_LABELS[CHECK_GROUP], text, None)


def _top_per_node(scored: pd.DataFrame, top_n: int, map_df: pd.DataFrame | None) -> pd.DataFrame:
    """Rows with rank ≤ top_n (rank by score within the node when absent), nodes by priority then id."""
    df = scored.copy()
    if "rank" not in df:
        df["rank"] = df.groupby(COL_NODE_ID)["score"].rank(method="first", ascending=False).astype(int)
    df = df[df["rank"] <= top_n]
    order = {n: i for i, n in enumerate(_node_order(map_df))}
    df["_node_order"] = df[COL_NODE_ID].map(order).fillna(len(order))
    df = df.sort_values(["_node_order", COL_NODE_ID, "rank"], kind="stable").drop(columns="_node_order")
    return df.reset_index(drop=True)


def _node_order(map_df: pd.DataFrame | None) -> list[str]:
    if map_df is None or "priority" not in map_df:
        return []
    return list(order_nodes(map_df)[COL_NODE_ID])


def _decorate(top: pd.DataFrame, nodes: pd.DataFrame | None, enterprises: pd.DataFrame | None) -> pd.DataFrame:
    if "chain_id" not in top and nodes is not None and "chain_id" in nodes:
        top.insert(0, "chain_id", top[COL_NODE_ID].map(nodes.set_index(COL_NODE_ID)["chain_id"]))
    if "name" not in top and enterprises is not None:
        names = enterprises.drop_duplicates(COL_ENTERPRISE_ID).set_index(COL_ENTERPRISE_ID)["name"]
        top["name"] = top[COL_ENTERPRISE_ID].map(names)
    return top
