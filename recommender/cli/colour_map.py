"""``sansetu map``: compute, store and print the three-colour map, and draw each chain."""

from __future__ import annotations

import csv
import sys
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import typer

from recommender.cli.common import ConfigOpt, FormatOpt, WorkspaceOpt, app, check_format, emit_records, settings_from

_RICH_STYLE = {"red": "bold white on red3", "blue": "bold white on dodger_blue3", "green": "bold white on green4"}
_STAGE = {"upstream": "上游", "midstream": "中游", "downstream": "下游"}
_COLOUR = {"red": "红", "blue": "蓝", "green": "绿"}


@app.command("map")
def map_command(
    chain: Annotated[
        str | None, typer.Option("--chain", "-c", help="Only this chain id (e.g. optical_comm).", show_default=False)
    ] = None,
    fmt: FormatOpt = "table",
    year: Annotated[
        int | None, typer.Option("--year", help="Map year; the latest presence year when omitted.", show_default=False)
    ] = None,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Colour every chain node red / blue / green from the ingested data, store the map, draw the chains."""
    from recommender.colour_map.history import NoPresenceDataError, update_map
    from recommender.settings import ConfigError, load_chains
    from recommender.workspace import Workspace

    record_columns = _record_columns()
    check_format(fmt)
    settings = settings_from(workspace, config)
    try:
        chains = load_chains(settings)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None
    ids = [c.id for c in chains]
    if chain is not None and chain not in ids:
        raise typer.BadParameter(f"unknown chain id {chain!r}; known chains are {ids}", param_hint="--chain")
    ws = Workspace(settings.workspace)
    try:
        run = update_map(
            ws, chains, settings.map, as_of_year=year, zone_name=settings.zone_name, paths_config=settings.paths
        )
    except NoPresenceDataError:
        typer.echo(
            f"工作区 {ws.root} 中还没有园区企业分布数据（presence 表），无法计算三色图。\n"
            "请先导入数据：sansetu ingest FILE --table presence（以及 --table enterprises），"
            "或运行 sansetu demo 生成并导入示例园区。",
            err=True,
        )
        raise typer.Exit(code=1) from None
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None
    for warning in run.warnings:
        typer.echo(warning, err=True)
    map_df, diff = run.map, run.diff
    if chain is not None:
        map_df = map_df[map_df["chain_id"] == chain]
        diff = diff[diff["chain_id"] == chain]
    records = [_record(r) for r in map_df[record_columns].to_dict(orient="records")]
    if fmt == "table":
        names = {c.id: c.name for c in chains}
        title = " · ".join(["三色图", *([names[chain]] if chain else []), settings.zone_name])
        _print_table(records, title=title, chain_names=None if chain else names)
    elif fmt == "csv":  # full precision (emit_records rounds floats to 4 digits), leaders joined
        rows = [{**r, "leaders": "、".join(r["leaders"] or [])} for r in records]
        writer = csv.DictWriter(sys.stdout, fieldnames=record_columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        emit_records(records, fmt, columns=record_columns)
    _print_diff(diff.to_dict(orient="records"), has_previous=run.previous_path is not None, to_stderr=fmt != "table")
    pictures = [p for p in run.pictures if p.suffix == ".html"]
    typer.echo(
        f"三色图已保存：{run.path}；产业链图：{ws.maps / 'index.html'}（共{len(pictures) - 1}条链）", err=fmt != "table"
    )


def _record_columns() -> list[str]:
    """What `sansetu map` prints: the stored map less the universe count (a denominator, not news)."""
    from recommender.colour_map.colours import MAP_COLUMNS

    return [c for c in MAP_COLUMNS if c != "n_universe"]


def _record(r: Mapping[Any, Any]) -> dict[str, Any]:
    """JSON-safe values: NaN / NA -> None, numpy scalars -> Python."""
    import numpy as np
    import pandas as pd

    out: dict[str, Any] = {}
    for k, v in r.items():
        if isinstance(v, np.ndarray):  # list columns read back from parquet
            v = v.tolist()
        elif hasattr(v, "item"):  # numpy scalars
            v = v.item()
        if not isinstance(v, list | tuple) and pd.isna(v):
            v = None
        out[k] = v
    return out


def _print_table(records: list[dict[str, Any]], title: str, chain_names: dict[str, str] | None) -> None:
    """A rich table with coloured colour cells; the chain column only when several chains are shown."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, show_lines=False)
    columns: list[tuple[str, dict[str, Any]]] = [("产业链", {})] if chain_names is not None else []
    for col, kw in (
        *columns,
        ("环节", {}),
        ("节点", {}),
        ("颜色", {"justify": "center"}),
        ("企业", {"justify": "right"}),
        ("产值(亿元)", {"justify": "right"}),
        ("区位熵", {"justify": "right"}),
        ("增长", {"justify": "right"}),
        ("优先级", {"justify": "right"}),
        ("原因", {"overflow": "fold", "ratio": 1}),
    ):
        table.add_column(col, **kw)  # type: ignore[arg-type]
    for r in records:
        c = str(r["colour"])
        out = r["output_value_cny"]
        growth = r["growth"]
        lead = [chain_names.get(str(r["chain_id"]), str(r["chain_id"]))] if chain_names is not None else []
        table.add_row(
            *lead,
            _STAGE.get(str(r["stage"]), str(r["stage"])),
            str(r["name"]),
            Text(f" {_COLOUR.get(c, c)} ", style=_RICH_STYLE.get(c, "")),
            str(r["n_local"]),
            "" if out is None else f"{out / 1e8:.2f}",
            f"{r['lq']:.2f}",
            "" if growth is None else f"{growth * 100:+.1f}%",
            "" if r["priority"] is None else f"{r['priority']:.2f}",
            str(r["reason"]),
        )
    Console().print(table)


def _print_diff(rows: Sequence[Mapping[Any, Any]], has_previous: bool, to_stderr: bool) -> None:
    out = sys.stderr if to_stderr else sys.stdout
    if not has_previous:
        print("首次计算三色图，暂无历史可比较。", file=out)
        return
    if not rows:
        print("颜色变化的节点：无（与上次相比没有节点变色）", file=out)
        return
    print(f"颜色变化的节点（{len(rows)}个）：", file=out)
    for r in rows:
        before = _COLOUR.get(str(r["colour_before"]), "—") if r["colour_before"] else "—"
        after = _COLOUR.get(str(r["colour_after"]), "—") if r["colour_after"] else "—"
        note = {"added": "（新增节点）", "removed": "（已移除节点）"}.get(str(r["change"]), "")
        print(f"  {r['chain_id']} · {r['name']}（{r['node_id']}）：{before} → {after}{note}", file=out)
