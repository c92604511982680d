"""One pick in detail — what ``sansetu explain`` shows: an enterprise for a node with its score,
rank, reasons and routes, as the published run lists it, or scored and explained now when the pair
is not published (the champion model when one exists, else the heuristic)."""

from __future__ import annotations

import json
from datetime import date
from typing import TYPE_CHECKING, Any

import pandas as pd

from features.chains import nodes_frame
from features.io import load_tables
from recommender.colour_map.colours import compute_map
from recommender.paths.targets import build_targets
from recommender.ranking import scoring
from recommender.runs.directory import published_dir
from recommender.runs.published import load_run
from recommender.settings import load_chains
from recommender.workspace import Workspace

if TYPE_CHECKING:
    from recommender.settings import Settings


class DetailInputError(ValueError):
    """A pick that cannot be shown: unknown enterprise or node. ``param`` names the CLI option at fault."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def pick_detail(settings: Settings, enterprise_id: str, node: str, as_of: date | None = None) -> dict[str, Any]:
    """The published pick (when ``as_of`` is None and the run lists the pair), else the live one."""
    detail = published_detail(settings, enterprise_id, node) if as_of is None else None
    return detail if detail is not None else live_detail(settings, enterprise_id, node, as_of)


def published_detail(settings: Settings, enterprise_id: str, node: str) -> dict[str, Any] | None:
    """The pair as the published run lists it, or None (no run, or the pair is not in it)."""
    run_dir = published_dir(Workspace(settings.workspace).root)
    if run_dir is None:
        return None
    targets = load_run(run_dir).targets
    if targets is None or targets.empty:
        return None
    hit = targets[(targets["enterprise_id"].astype(str) == enterprise_id) & (targets["node_id"].astype(str) == node)]
    if hit.empty:
        return None
    row = hit.iloc[0]
    return {
        "enterprise_id": enterprise_id,
        "name": str(row.get("name", "")),
        "node_id": node,
        "score": float(row["score"]),
        "rank": int(row["rank"]) if "rank" in row and row["rank"] == row["rank"] else None,
        "theme": str(row.get("theme", "")),
        "source": f"published run {run_dir.name}",
        "mode": "model"
        if any(r.get("contribution") is not None for r in _json_list(row.get("reasons")))
        else "heuristic",
        "reasons": _json_list(row.get("reasons")),
        "routes": _json_list(row.get("routes")),
    }


def live_detail(settings: Settings, enterprise_id: str, node: str, as_of: date | None) -> dict[str, Any]:
    tables = dict(load_tables(Workspace(settings.workspace).snapshots))
    _check_enterprise(tables, enterprise_id)
    nodes = nodes_frame(load_chains(settings))
    if node not in set(nodes["node_id"]):
        raise DetailInputError(f"unknown node {node!r}; known nodes are e.g. {sorted(nodes['node_id'])[:5]}", "--node")
    map_df = live_map(settings, nodes, tables)
    day = pd.Timestamp(as_of or _today())  # one date for scoring and for the facts of the reasons
    scored, mode = score_live(settings, enterprise_id, node, tables, nodes, map_df, day)
    out = build_targets(
        scored, tables, nodes, map_df, settings.paths, day, top_n=1, zone_province=settings.zone_province
    )
    row = out.iloc[0]
    return {
        "enterprise_id": enterprise_id,
        "name": enterprise_name(tables, enterprise_id),
        "node_id": node,
        "score": None if mode == "none" else float(row["score"]),
        "rank": None,
        "theme": str(row["theme"]),
        "source": "live",
        "mode": mode,
        "reasons": json.loads(row["reasons"]),
        "routes": json.loads(row["routes"]),
    }


def score_live(
    settings: Settings,
    enterprise_id: str,
    node: str,
    tables: dict[str, pd.DataFrame],
    nodes: pd.DataFrame,
    map_df: pd.DataFrame | None,
    as_of: pd.Timestamp,
) -> tuple[pd.DataFrame, str]:
    """One-row candidates scored by the champion (mode ``"model"``) or the heuristic (``"heuristic"``)."""
    candidates = pd.DataFrame({"node_id": [node], "enterprise_id": [enterprise_id]})
    bundle = scoring.load_champion(settings)
    scored = scoring.score_candidates(
        candidates, tables, nodes, map_df, as_of, bundle, zone_province=settings.zone_province
    )
    return scored, "model" if bundle is not None else "heuristic"


def _today() -> date:
    """Live explanations are as of today unless an as-of date is given (the clock is read only here)."""
    return date.today()


def live_map(settings: Settings, nodes: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> pd.DataFrame | None:
    return compute_map(nodes, tables["presence"], tables["enterprises"], settings.map)


def _check_enterprise(tables: dict[str, pd.DataFrame], enterprise_id: str) -> None:
    ent = tables["enterprises"]
    if ent.empty or enterprise_id not in set(ent["enterprise_id"].astype(str)):
        raise DetailInputError(
            f"enterprise {enterprise_id!r} is not in the enterprises snapshot ({len(ent)} enterprises); "
            "ingest it first (sansetu ingest)."
        )


def _json_list(v: Any) -> list[dict[str, Any]]:
    if isinstance(v, str) and v:
        return list(json.loads(v))
    return list(v) if isinstance(v, list) else []


def enterprise_name(tables: dict[str, pd.DataFrame], enterprise_id: str) -> str:
    """The enterprise's registered name, or its id when the snapshot does not know it."""
    ent = tables["enterprises"]
    hit = ent.loc[ent["enterprise_id"].astype(str) == enterprise_id, "name"]
    return str(hit.iloc[0]) if len(hit) else enterprise_id


def enterprise_routes(
    settings: Settings, enterprise_id: str, node: str | None, top: int | None, as_of: date | None
) -> tuple[str, list[dict[str, Any]]]:
    """The enterprise's name and its approach routes from the zone's assets (``sansetu paths``)."""
    from recommender.paths.graph import build_graph
    from recommender.paths.routes import RouteFinder

    tables = dict(load_tables(Workspace(settings.workspace).snapshots))
    _check_enterprise(tables, enterprise_id)
    day = None if as_of is None else pd.Timestamp(as_of)
    graph = build_graph(tables["relations"], tables["assets"], tables["presence"], tables["enterprises"], day)
    finder = RouteFinder(settings.paths, settings.zone_province).fit(graph, tables["enterprises"], tables["signals"])
    return enterprise_name(tables, enterprise_id), [r.to_dict() for r in finder.routes(enterprise_id, node, top)]
