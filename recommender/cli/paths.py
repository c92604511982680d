"""CLI commands of the 'paths' group: ``sansetu paths`` and ``sansetu explain`` (registered on the shared app).

``sansetu paths ENTERPRISE_ID [--node NODE_ID]`` computes the approach routes from the current
snapshots. ``sansetu explain ENTERPRISE_ID --node NODE_ID`` shows the pick as the published run
listed it (score, rank, reasons, routes); when the pair is not in the published run it is scored
live (the champion model if one exists, else the heuristic) and explained from the snapshots.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from recommender.cli.common import ConfigOpt, FormatOpt, WorkspaceOpt, app, check_format, parse_as_of, settings_from

if TYPE_CHECKING:
    from recommender.ranking.detail import DetailInputError

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
    from recommender.ranking.detail import DetailInputError, enterprise_routes

    check_format(fmt, ("table", "json"))
    settings = settings_from(workspace, config)
    try:
        name, routes = enterprise_routes(settings, enterprise_id, node, top, parse_as_of(as_of))
    except DetailInputError as exc:
        _fail(exc)
    if fmt == "json":
        _print_json([{"enterprise_id": enterprise_id, "node_id": node, **r} for r in routes])
        return
    if not routes:
        typer.echo(f"〈{name}〉暂无可用的对接路径（{settings.paths.max_hops}跳以内）。")
        return
    typer.echo(f"〈{name}〉对接路径（{len(routes)}条）：")
    _echo_routes(routes)


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
    from recommender.ranking.detail import DetailInputError, pick_detail

    check_format(fmt, ("table", "json"))
    settings = settings_from(workspace, config)
    try:
        detail = pick_detail(settings, enterprise_id, node, parse_as_of(as_of))
    except DetailInputError as exc:
        _fail(exc)
    if fmt == "json":
        _print_json(detail)
        return
    _print_detail(detail)


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


def _fail(exc: DetailInputError) -> NoReturn:
    """Exit 2 with the message: as a bad option when one is named, else as a plain error."""
    if exc.param is not None:
        raise typer.BadParameter(str(exc), param_hint=exc.param)
    typer.echo(str(exc), err=True)
    raise typer.Exit(code=2)
