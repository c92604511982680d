"""One pick in detail — what ``sansetu explain`` shows: an enterprise for a node with its score,
rank, reasons and routes, as the published run lists it, or scored and explained now when the pair
is not published (the champion model when one exists, else the heuristic)."""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path
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

_log = logging.getLogger(__name__)


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
    """The pair as the published run lists it (in the targets or the 本地延链 list), or None (no
    run, or the pair is in neither)."""
    run_dir = published_dir(Workspace(settings.workspace).root)
    if run_dir is None:
        return None
    found = _published_row(run_dir, load_run(run_dir).targets, enterprise_id, node)
    if found is None:
        return None
    row, which = found
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
        "list": which,
        **list_facts(row),
    }


def _published_row(run_dir: Path, targets: pd.DataFrame, enterprise_id: str, node: str) -> tuple[pd.Series, str] | None:
    """The pair's row in the run's targets (``"targets"``) or 本地延链 list (``"local_extension"``)."""
    local = run_dir / "local_extension.parquet"
    for which, frame in (
        ("targets", targets),
        ("local_extension", pd.read_parquet(local) if local.is_file() else None),
    ):
        if frame is None or frame.empty:
            continue
        hit = frame[(frame["enterprise_id"].astype(str) == enterprise_id) & (frame["node_id"].astype(str) == node)]
        if not hit.empty:
            return hit.iloc[0], which
    return None


def list_facts(row: pd.Series) -> dict[str, Any]:
    """What the lists say of a listed pair: ``fit``, ``n_fit`` (the node's fitting firms) and
    ``also_fits`` (the nodes it fits but was capped out of); None / [] for a run from before them."""
    fit, n_fit = row.get("fit"), row.get("n_fit", row.get("n_local_fit"))
    return {
        "fit": None if fit is None or pd.isna(fit) else float(fit),
        "n_fit": None if n_fit is None or pd.isna(n_fit) else int(n_fit),
        "also_fits": [n for n in str(row.get("also_fits") or "").split("|") if n],
    }


def excluded_reason(settings: Settings, enterprise_id: str, node: str) -> str | None:
    """Why the published run left the pair out (``excluded.parquet``), or None."""
    run_dir = published_dir(Workspace(settings.workspace).root)
    path = None if run_dir is None else run_dir / "excluded.parquet"
    if path is None or not path.is_file():
        return None
    ex = pd.read_parquet(path)
    hit = ex[(ex["enterprise_id"].astype(str) == enterprise_id) & (ex["node_id"].astype(str) == node)]
    return None if hit.empty else str(hit.iloc[0]["reason"])


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
        "fit": float(scored["fit"].iloc[0]) if "fit" in scored and pd.notna(scored["fit"].iloc[0]) else None,
        "rank": None,
        "theme": str(row["theme"]),
        "source": "live",
        "mode": mode,
        "reasons": json.loads(row["reasons"]),
        "routes": json.loads(row["routes"]),
        "list": None,
        "excluded": excluded_reason(settings, enterprise_id, node),
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
    """One-row candidates scored by the champion (mode ``"model"``) or the heuristic (``"heuristic"``),
    with the pair's ``fit`` (:func:`live_fit`) so that a champion reading the fit features sees it."""
    candidates = _checked_pair(settings, enterprise_id, node, tables, nodes)  # fit_mark: the reasons say who checked
    bundle = scoring.load_champion(settings)
    scored = scoring.score_candidates(
        candidates, tables, nodes, map_df, as_of, bundle, zone_province=settings.zone_province
    )
    return scored, "model" if bundle is not None else "heuristic"


def live_fit(
    settings: Settings, enterprise_id: str, node: str, tables: dict[str, pd.DataFrame], nodes: pd.DataFrame
) -> float:
    """``recommender.retrieval.fit.fit`` of the pair against the node's candidate list of the published
    run (its ranks are relative to that list; a firm it does not hold was returned by no retriever),
    or the analyst's check of the pair when there is one (1 or 0)."""
    return float(_checked_pair(settings, enterprise_id, node, tables, nodes)["fit"].iloc[0])


def _checked_pair(
    settings: Settings, enterprise_id: str, node: str, tables: dict[str, pd.DataFrame], nodes: pd.DataFrame
) -> pd.DataFrame:
    """The pair as one candidate row with its live fit, the analysts' check applied
    (``recommender.retrieval.fit.apply_fit_marks``: ``fit``, ``fit_mark``, ``fit_mark_note``)."""
    from recommender.retrieval.fit import FIT_MODEL_FILE, FitModel, apply_fit_marks, fit
    from recommender.settings import load_fit_model

    run_dir = published_dir(Workspace(settings.workspace).root)
    model = None if run_dir is None else _run_fit_model(run_dir / FIT_MODEL_FILE, FitModel)
    path = None if run_dir is None else run_dir / "scored.parquet"
    cands = (
        pd.read_parquet(path)
        if path is not None and path.is_file()
        else pd.DataFrame(columns=["node_id", "enterprise_id"])
    )
    cols = [
        c for c in cands.columns if c in ("node_id", "enterprise_id", "similarity") or c.endswith(("_rank", "_score"))
    ]
    value = fit(node, enterprise_id, cands[cols], nodes, tables["enterprises"], model or load_fit_model(settings))
    pair = pd.DataFrame({"node_id": [node], "enterprise_id": [enterprise_id], "fit": [value]})
    return apply_fit_marks(pair, tables.get("fit_marks"))[0]  # an analyst's check decides


def _run_fit_model(path: Path, model_cls: Any) -> Any:
    """The fit model a run used (refitted or not), or None when the run has none or it cannot be read:
    the page then scores with the configured model and the log names the file and why."""
    if not path.is_file():
        return None
    try:
        return model_cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError) as exc:  # JSONDecodeError is a ValueError
        _log.warning("live fit: %s is not a fit model (%s); using ranking.fit_model", path, exc)
        return None


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
