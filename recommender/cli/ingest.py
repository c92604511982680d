"""``sansetu ingest``: load one raw file (CSV / XLSX / Parquet) into a table snapshot of the workspace."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from features.schema import TABLES
from recommender.cli.common import ConfigOpt, WorkspaceOpt, app, check_format, settings_from
from recommender.workspace import Workspace

_LABELS = (
    ("file", "文件 file"),
    ("table", "表 table"),
    ("column_map", "列映射 column map"),
    ("mode", "方式 mode"),
    ("n_read", "读取行数 rows read"),
    ("n_ok", "入库行数 rows stored"),
    ("n_rejected", "拒收行数 rows rejected"),
    ("n_duplicates", "重复行数 duplicates"),
    ("n_cleared", "清空字段数 values cleared"),
    ("n_total", "表中总行数 rows in table"),
    ("snapshot", "快照 snapshot"),
    ("rejects", "问题清单 rejects"),
)


@app.command("ingest")
def ingest(
    file: Annotated[Path, typer.Argument(help="Raw file: .csv (UTF-8 / GBK / GB18030 detected), .xlsx or .parquet.")],
    table: Annotated[str, typer.Option("--table", "-t", help=f"Target table: {', '.join(TABLES)}.")],
    column_map: Annotated[
        str | None,
        typer.Option(
            "--column-map",
            "-m",
            help="Built-in map name or YAML path; default registry-cn (enterprises) or zone-<table>. "
            "Files that already use the schema's column names load with any map or 'identity'.",
            show_default=False,
        ),
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            "--mode",
            help="replace: the file is the whole table; upsert: merge by key. Default: upsert for fit_marks "
            "(checks add up), replace for the others.",
            show_default=False,
        ),
    ] = None,
    sheet: Annotated[
        str | None, typer.Option("--sheet", help="Excel sheet name or 0-based index.", show_default=False)
    ] = None,
    encoding: Annotated[
        str | None, typer.Option("--encoding", help="Force the CSV encoding.", show_default=False)
    ] = None,
    allow_empty: Annotated[
        bool,
        typer.Option(
            "--allow-empty",
            help="Store a file without data rows (header only) as an empty table; without it such a file "
            "changes nothing and the command exits 1.",
        ),
    ] = False,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="Output format: table or json.")] = "table",
) -> None:
    """Validate a raw file and store it as the table's new snapshot; bad rows go to a rejects CSV."""
    from features.io import IngestError, default_mode, ingest_file

    check_format(fmt, ("table", "json"))
    if table not in TABLES:
        raise typer.BadParameter(f"must be one of {list(TABLES)}; got {table!r}", param_hint="--table")
    if mode is not None and mode not in ("replace", "upsert"):
        raise typer.BadParameter(f"must be 'replace' or 'upsert'; got {mode!r}", param_hint="--mode")
    settings = settings_from(workspace, config)
    ws = Workspace(settings.workspace)
    try:
        report = ingest_file(
            file,
            table,
            column_map,
            ws.snapshots,
            ws.rejects,
            mode=default_mode(table) if mode is None else ("upsert" if mode == "upsert" else "replace"),
            sheet=sheet,
            encoding=encoding,
            allow_empty=allow_empty,
            **settings.ingest_options(),
        )
    except IngestError as exc:
        typer.echo(f"ingest failed: {exc}", err=True)
        raise typer.Exit(code=2) from None
    if fmt == "json":
        sys.stdout.write(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        _print_report(report.to_dict())
    if report.snapshot is None:  # no valid row (or no data row without --allow-empty): nothing replaced
        raise typer.Exit(code=1)


def _print_report(report: dict[str, object]) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Table(title="导入结果 ingest", show_header=False)
    out.add_column("item")
    out.add_column("value", overflow="fold")
    for key, label in _LABELS:
        value = report.get(key)
        out.add_row(label, "—" if value is None else str(value))
    console = Console()
    console.print(out)
    for msg in report.get("messages") or []:  # type: ignore[attr-defined]
        console.print(f"  · {msg}", markup=False)
