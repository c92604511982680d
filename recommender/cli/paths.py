"""CLI commands of the 'paths' group: ``sansetu paths`` and ``sansetu explain`` (registered on the shared app).

``sansetu paths ENTERPRISE_ID [--node NODE_ID]`` computes the approach routes from the current
snapshots. ``sansetu explain ENTERPRISE_ID --node NODE_ID`` shows the pick as the published run
listed it (score, rank, reasons, routes); when the pair is not in the published run it is scored
live (the champion model if one exists, else the heuristic) and explained from the snapshots.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from recommender.cli.common import ConfigOpt, FormatOpt, WorkspaceOpt, app, check_format, settings_from

if TYPE_CHECKING:
    import pandas as pd

    from recommender.settings import Settings

NodeOpt = Annotated[str | None, typer.Option("--node", "-n", help="Chain node id, e.g. optical_comm.optical_chip.")]
AsOfOpt = Annotated[
    str | None, typer.Option("--as-of", help="Point in time (YYYY-MM-DD): relations and records after it are ignored.")
]
TopOpt = Annotated[
    int | None, typer.Option("--top", "-k", min=1, help="Routes to show (default: paths.routes_per_target).")
]


@app.command("paths")
def paths_command(
    enterprise_id: Annotated[str, typer.Argument(help="统一社会信用代码 of the target enterprise.")],
    node: NodeOpt = None,
    top: TopOpt = None,
    as_of: AsOfOpt = None,
    fmt: FormatOpt = "table",
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Approach routes from the zone's assets to one enterprise (产业链/资本/场景/人才科创/生态圈招商)."""
    check_format(fmt, ("table", "json"))
    settings = settings_from(workspace, config)
    tables = _load_tables(settings)
    _check_enterprise(tables, enterprise_id)
    from recommender.paths.graph import build_graph
    from recommender.paths.routes import RouteFinder

    graph = build_graph(tables["relations"], tables["assets"], tables["presence"], tables["enterprises"], as_of)
    finder = RouteFinder(settings.paths, settings.zone_province).fit(graph, tables["enterprises"], tables["signals"])
    routes = finder.routes(enterprise_id, node, top)
    if fmt == "json":
        _print_json([{"enterprise_id": enterprise_id, "node_id": node, **r.to_dict()} for r in routes])
        return
    if not routes:
        typer.echo(f"〈{_name(tables, enterprise_id)}〉暂无可用的对接路径（{settings.paths.max_hops}跳以内）。")
        return
    typer.echo(f"〈{_name(tables, enterprise_id)}〉对接路径（{len(routes)}条）：")
    _echo_routes([r.to_dict() for r in routes])


@app.command("explain")
def explain_command(
    enterprise_id: Annotated[str, typer.Argument(help="统一社会信用代码 of the recommended enterprise.")],
    node: Annotated[str, typer.Option("--node", "-n", help="Chain node id the enterprise is recommended for.")],
    as_of: AsOfOpt = None,
    fmt: FormatOpt = "table",
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Why an enterprise is recommended for a node: score, reasons with evidence ids, and routes."""
    check_format(fmt, ("table", "json"))
    settings = settings_from(workspace, config)
    detail = _published_detail(settings, enterprise_id, node) if as_of is None else None
    if detail is None:
        detail = _live_detail(settings, enterprise_id, node, as_of)
    if fmt == "json":
        _print_json(detail)
        return
    _print_detail(detail)


# ---------------------------------------------------------------- published or live


def _published_detail(settings: Settings, enterprise_id: str, node: str) -> dict[str, Any] | None:
    """The pair as the published run lists it, or None (no run, or the pair is not in it)."""
    from recommender.runs.published import load_run, published_dir
    from recommender.workspace import Workspace

    run_dir = published_dir(Workspace(settings.workspace))
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


def _live_detail(settings: Settings, enterprise_id: str, node: str, as_of: str | None) -> dict[str, Any]:
    from features.chains import nodes_frame
    from recommender.paths.targets import build_path_list
    from recommender.settings import load_chains

    tables = _load_tables(settings)
    _check_enterprise(tables, enterprise_id)
    nodes = nodes_frame(load_chains(settings))
    if node not in set(nodes["node_id"]):
        raise typer.BadParameter(
            f"unknown node {node!r}; known nodes are e.g. {sorted(nodes['node_id'])[:5]}", param_hint="--node"
        )
    map_df = _map(settings, nodes, tables)
    as_of = as_of or _today()  # one date for scoring and for the facts of the reasons
    scored, mode = _score_live(settings, enterprise_id, node, tables, nodes, map_df, as_of)
    out = build_path_list(
        scored, tables, nodes, map_df, settings.paths, as_of, top_n=1, zone_province=settings.zone_province
    )
    row = out.iloc[0]
    return {
        "enterprise_id": enterprise_id,
        "name": _name(tables, enterprise_id),
        "node_id": node,
        "score": None if mode == "none" else float(row["score"]),
        "rank": None,
        "theme": str(row["theme"]),
        "source": "live",
        "mode": mode,
        "reasons": json.loads(row["reasons"]),
        "routes": json.loads(row["routes"]),
    }


def _score_live(
    settings: Settings,
    enterprise_id: str,
    node: str,
    tables: dict[str, pd.DataFrame],
    nodes: pd.DataFrame,
    map_df: pd.DataFrame | None,
    as_of: str,
) -> tuple[pd.DataFrame, str]:
    """One-row candidates scored by the ranking service (model or its heuristic); without the service,
    an unscored row explained in heuristic mode (mode ``"none"``)."""
    import pandas as pd

    candidates = pd.DataFrame({"node_id": [node], "enterprise_id": [enterprise_id]})
    try:
        from recommender.ranking import scoring as service
    except ImportError:
        typer.echo("ranking service not installed; explaining from the records only (heuristic mode)", err=True)
        return candidates.assign(score=float("nan"), rank=1), "none"
    bundle = service.load_champion(settings)
    scored = service.score_candidates(
        candidates, tables, nodes, map_df, as_of, bundle, zone_province=settings.zone_province
    )
    return scored, "model" if bundle is not None else "heuristic"


def _today() -> str:
    """The CLI edge may read the clock: live explanations are as of today unless --as-of is given."""
    from datetime import date

    return date.today().isoformat()


def _map(settings: Settings, nodes: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> pd.DataFrame | None:
    try:
        from recommender.colour_map.colours import compute_map
    except ImportError:
        return None
    return compute_map(nodes, tables["presence"], tables["enterprises"], settings.map)


# ---------------------------------------------------------------- I/O helpers


def _load_tables(settings: Settings) -> dict[str, pd.DataFrame]:
    from features.io import load_tables
    from recommender.workspace import Workspace

    return dict(load_tables(Workspace(settings.workspace).snapshots))


def _check_enterprise(tables: dict[str, pd.DataFrame], enterprise_id: str) -> None:
    ent = tables["enterprises"]
    if ent.empty or enterprise_id not in set(ent["enterprise_id"].astype(str)):
        typer.echo(
            f"enterprise {enterprise_id!r} is not in the enterprises snapshot ({len(ent)} enterprises); "
            "ingest it first (sansetu ingest).",
            err=True,
        )
        raise typer.Exit(code=2)


def _name(tables: dict[str, pd.DataFrame], enterprise_id: str) -> str:
    ent = tables["enterprises"]
    hit = ent.loc[ent["enterprise_id"].astype(str) == enterprise_id, "name"]
    return str(hit.iloc[0]) if len(hit) else enterprise_id


def _json_list(v: Any) -> list[dict[str, Any]]:
    if isinstance(v, str) and v:
        return list(json.loads(v))
    return list(v) if isinstance(v, list) else []


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")


def _echo_routes(routes: list[dict[str, Any]]) -> None:
    """One numbered line per route: long Chinese sentences read better unwrapped than in table cells."""
    for i, r in enumerate(routes, 1):
        typer.echo(f"{i:>3}. 【{r['theme']}】得分{r['score']:.3f}  {r['sentence']}")


def _ids(ids: list[str], shown: int = 5) -> str:
    """At most ``shown`` ids on screen (JSON output keeps them all)."""
    more = f" 等{len(ids)}条" if len(ids) > shown else ""
    return ",".join(ids[:shown]) + more


def _print_detail(d: dict[str, Any]) -> None:
    score = "—" if d["score"] is None else f"{d['score']:.4f}"
    rank = "" if d["rank"] is None else f"，排名第{d['rank']}"
    mode = {"model": "排序模型", "heuristic": "启发式评分", "none": "未评分（仅依据记录）"}[d["mode"]]
    typer.echo(f"〈{d['name']}〉→ 节点 {d['node_id']}：得分 {score}{rank}（{mode}；来源：{d['source']}）")
    typer.echo("推荐理由：")
    for i, r in enumerate(d["reasons"], 1):
        contribution = "" if r.get("contribution") is None else f"{r['contribution']:+.3f}  "
        evidence = " ".join(f"{k}:{_ids(v)}" for k, v in r.get("evidence", {}).items())
        typer.echo(
            f"{i:>3}. 【{r['label']}】{contribution}{r['text']}" + (f"  （证据 {evidence}）" if evidence else "")
        )
    typer.echo("对接路径：" if d["routes"] else "对接路径：暂无可用的对接路径。")
    _echo_routes(d["routes"])
