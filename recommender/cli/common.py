"""Shared pieces of the CLI: the typer app, common options, settings loading and output."""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

if TYPE_CHECKING:
    from recommender.settings import Settings

app = typer.Typer(
    name="sansetu",
    help="招商三色图 engine: chain map, targets, approach paths.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", help="Workspace directory (env SANSETU_WORKSPACE).", show_default=False),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="YAML config file instead of configs/default.yaml.", show_default=False),
]
SeedOpt = Annotated[
    int | None,
    typer.Option("--seed", min=0, help="Random seed (default: random_state of the config).", show_default=False),
]
OutputFormat = Literal["table", "json", "csv"]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="Output format: table, json or csv.")]


def settings_from(workspace: Path | None, config: Path | None = None) -> Settings:
    """Load settings once for a command; a config error exits with code 2 and its message."""
    from recommender.settings import ConfigError, load_settings  # pydantic, the chains' models, pandas

    try:
        return load_settings(config_file=config, workspace=workspace)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None


def check_format(value: str, allowed: tuple[str, ...] = ("table", "json", "csv")) -> str:
    if value not in allowed:
        raise typer.BadParameter(f"must be one of {list(allowed)}; got {value!r}", param_hint="--format")
    return value


def emit_records(records: list[dict[str, Any]], fmt: str, title: str = "", columns: list[str] | None = None) -> None:
    """Print records as a rich table, JSON (a list of objects) or CSV."""
    cols = columns or (list(records[0].keys()) if records else [])
    if fmt == "json":
        sys.stdout.write(json.dumps(records, ensure_ascii=False, indent=2, default=str) + "\n")
        return
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in records:
            w.writerow({k: _plain(v, exact=True) for k, v in r.items()})
        sys.stdout.write(buf.getvalue())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or None, show_lines=False)
    for c in cols:
        table.add_column(c)
    for r in records:
        table.add_row(*[_plain(r.get(c)) for c in cols])
    Console().print(table)


def _plain(v: Any, exact: bool = False) -> str:
    """Text for a cell: rounded for people (tables), exact for files (CSV)."""
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if exact else f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "; ".join(_plain(x, exact) for x in v)
    return str(v)


def parse_as_of(value: str | None, option: str = "--as-of") -> date | None:
    """An as-of option (YYYY-MM-DD) as a date, None when not given; a bad value is a usage error."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"must be a date YYYY-MM-DD; got {value!r}", param_hint=option) from None


@app.callback()
def _root() -> None:
    """招商三色图 engine: chain map, targets, approach paths."""
