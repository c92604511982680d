"""CLI commands of the nightly job: ``sansetu refresh``, ``diff``, ``runs`` and ``schedule``.

Exit codes (for cron, systemd and schedulers): 0 ok (published, or nothing changed), 1 a step failed
(the published run is untouched; rerun to resume), 2 bad input or config, 3 another refresh holds
the lock. See docs/operations.md.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from recommender.cli.common import (
    ConfigOpt,
    FormatOpt,
    WorkspaceOpt,
    app,
    check_format,
    emit_records,
    parse_as_of,
    settings_from,
)

if TYPE_CHECKING:
    from recommender.settings import Settings

AsOfOpt = Annotated[
    str | None, typer.Option("--as-of", help="As-of date YYYY-MM-DD (the run id); default today.", show_default=False)
]
InputsOpt = Annotated[
    Path | None,
    typer.Option(
        "--inputs",
        help="Folder of raw files to ingest first (enterprises.csv, presence.xlsx, ...).",
        show_default=False,
    ),
]
ExecutorOpt = Annotated[
    str | None, typer.Option("--executor", help="local or dask (default: refresh.executor).", show_default=False)
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option("--scheduler", help="Dask scheduler address; none starts a LocalCluster.", show_default=False),
]
LogJsonOpt = Annotated[bool, typer.Option("--log-json", help="Structured JSON logs (also SANSETU_LOG_FORMAT=json).")]


def _as_of(value: str | None) -> date:
    """The run's as-of date: the option's, else today."""
    return parse_as_of(value) or date.today()


def _executor(value: str | None) -> Any:
    if value is not None and value not in ("local", "dask"):
        raise typer.BadParameter(f"must be one of ['local', 'dask']; got {value!r}", param_hint="--executor")
    return value


def _logging(settings: Settings, log_json: bool) -> Path:
    from recommender.refresh.logs import configure_logging
    from recommender.workspace import Workspace

    env = os.environ.get("SANSETU_LOG_FORMAT", "").lower()
    json_format = log_json or env == "json" or (env == "" and settings.refresh.log_format == "json")
    return configure_logging(Workspace(Path(settings.workspace)).logs, json_format)


@app.command("refresh")
def refresh(
    as_of: AsOfOpt = None,
    inputs: InputsOpt = None,
    executor: ExecutorOpt = None,
    scheduler: SchedulerOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Re-run every step even if nothing changed.")] = False,
    log_json: LogJsonOpt = False,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run the nightly refresh for one as-of date and publish it atomically (resumes after a crash)."""
    from recommender.refresh.pipeline import KILL_ENV
    from recommender.refresh.schedule import refresh_once

    day, kind = _as_of(as_of), _executor(executor)
    settings = settings_from(workspace, config)
    _logging(settings, log_json)
    out = refresh_once(
        settings, day, inputs=inputs, executor_kind=kind, scheduler=scheduler, force=force,
        progress=sys.stderr.isatty(), kill_at=os.environ.get(KILL_ENV),
    )  # fmt: skip
    _print_outcome(out)
    raise typer.Exit(code=out.code)


def _print_outcome(out: Any) -> None:
    if out.code != 0:
        typer.echo(f"refresh failed (exit {out.code}): {out.message}", err=True)
        return
    res = out.result
    typer.echo(out.message)
    if res is None:
        return
    m = res.manifest
    typer.echo(f"run directory: {res.run_dir}")
    typer.echo(
        f"model: {m.get('model_version')} · encoder calls: {m.get('encoder_calls')} · "
        f"targets: {m.get('counts', {}).get('targets', '?')} · seconds: {m.get('seconds')}"
    )
    lists = m.get("lists") or {}
    if lists.get("n_places"):
        typer.echo(
            f"lists: {lists['n_places']} places, {lists.get('n_firms')} distinct firms "
            f"({lists.get('firms_per_100_places')} per 100 places), a firm in at most "
            f"{lists.get('max_lists_per_firm')} lists, mean top-20 Jaccard {lists.get('mean_jaccard_top20')}"
        )
    counts = m.get("counts") or {}
    if counts.get("near_fit"):
        typer.echo(
            f"to check: {counts['near_fit']} outside firms just below the fit threshold, the best "
            f"{counts.get('near_fit_shown')} in the workbook's 待核实 sheet (near_fit.parquet)"
        )
    marks = m.get("fit_marks") or {}
    if marks.get("applied") or marks.get("not_candidates"):
        typer.echo(
            f"analysts' checks (fit_marks): {marks.get('applied')} pairs decided, "
            f"{marks.get('not_candidates')} checks of firms that are no candidate of their node"
        )
    fm = m.get("fit_model") or {}
    if fm:
        typer.echo(f"fit model: {m.get('fit')} ({fm.get('why')})")
    if m.get("scorer") == "heuristic":
        typer.echo("note: no champion model in the registry; targets are scored with the day-one heuristic")
    d = m.get("diff") or {}
    if d:
        typer.echo(
            f"since {m.get('previous_run') or 'nothing'}: {d.get('new', 0)} new, {d.get('dropped', 0)} dropped, "
            f"{d.get('moved', 0)} moved, {d.get('colour_changes', 0)} colour changes"
        )


@app.command("diff")
def diff(
    since: Annotated[
        str | None, typer.Option("--since", help="Compare the published run with this run (default: its previous run).")
    ] = None,
    fmt: FormatOpt = "table",
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Targets new / dropped / moved per node and nodes that changed colour, since a run."""
    fmt = check_format(fmt, ("table", "json"))
    settings = settings_from(workspace, config)
    try:
        d = diff_since(settings, since)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None
    if fmt == "json":
        sys.stdout.write(_json(d) + "\n")
        return
    from recommender.runs.export import diff_sheet_frame

    t = d["totals"]
    title = (
        f"{d.get('run_id')} 相比 {d.get('since') or '（无）'}：新增 {t['new']}，移出 {t['dropped']}，"
        f"排名变化 {t['moved']}，颜色变化 {t['colour_changes']}"
    )
    frame = diff_sheet_frame(d).astype(object).fillna("")
    records = [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]
    emit_records(records, "table", title=title, columns=[str(c) for c in frame.columns])


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False, indent=2, default=str)


def diff_since(settings: Settings, since: str | None) -> dict[str, Any]:
    """The published run's diff (``diff.json``), or a fresh diff against run ``since``."""
    import pandas as pd

    from recommender.runs import directory as runs
    from recommender.workspace import Workspace

    ws = Workspace(Path(settings.workspace))
    pub = runs.published_dir(ws.root)
    if pub is None:
        raise FileNotFoundError(f"no published run in {ws.root}; run 'sansetu refresh' first")
    if since is None:
        return dict(runs.read_json(pub / "diff.json"))
    base = ws.runs / since
    if not (base / runs.MANIFEST).is_file():
        names = [r.name for r in runs.complete_runs(ws.runs, ws.root)]
        raise FileNotFoundError(f"--since {since!r} is not a complete run; runs are {names}")
    return runs.diff_runs(
        pd.read_parquet(base / "targets.parquet"),
        pd.read_parquet(pub / "targets.parquet"),
        pd.read_parquet(base / "map.parquet"),
        pd.read_parquet(pub / "map.parquet"),
        since=since,
        run_id=pub.name,
    )


@app.command("runs")
def runs_cmd(fmt: FormatOpt = "table", workspace: WorkspaceOpt = None, config: ConfigOpt = None) -> None:
    """List refresh runs (published, complete, staging), newest first."""
    from recommender.runs import directory as runs
    from recommender.workspace import Workspace

    fmt = check_format(fmt)
    settings = settings_from(workspace, config)
    ws = Workspace(Path(settings.workspace))
    records = [r.record() for r in runs.list_runs(ws.runs, ws.root)]
    cols = ["run", "as_of", "state", "finished", "model", "n_targets", "encoder_calls", "seconds"]
    emit_records(records, fmt, title="refresh runs", columns=cols)


@app.command("schedule")
def schedule(
    once: Annotated[bool, typer.Option("--once", help="Run one refresh now with the retry policy, then exit.")] = False,
    inputs: InputsOpt = None,
    executor: ExecutorOpt = None,
    scheduler: SchedulerOpt = None,
    log_json: LogJsonOpt = False,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run refresh on the cron expression refresh.schedule, with retries and logs (Ctrl-C stops)."""
    from recommender.refresh.schedule import next_fire, refresh_once, run_schedule
    from recommender.settings import ConfigError

    kind = _executor(executor)
    settings = settings_from(workspace, config)
    log_path = _logging(settings, log_json)
    try:
        next_fire(settings.refresh.schedule, datetime.now())
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None
    typer.echo(f"schedule '{settings.refresh.schedule}', logs in {log_path}", err=True)

    def attempt(day: date) -> Any:
        return refresh_once(settings, day, inputs=inputs, executor_kind=kind, scheduler=scheduler)

    try:
        out = run_schedule(settings, attempt, now=datetime.now, sleep=time.sleep, once=once)
    except KeyboardInterrupt:
        typer.echo(f"schedule stopped at {datetime.now(UTC).isoformat(timespec='seconds')}", err=True)
        raise typer.Exit(code=0) from None
    _print_outcome(out)
    raise typer.Exit(code=out.code)
