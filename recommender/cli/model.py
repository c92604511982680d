"""CLI commands of the 'model' group: ``sansetu train | evaluate | promote | rollback | models``.

Each command loads settings, calls one function of ``recommender.ranking.scoring`` or
``training.registry`` and prints. Exit codes: 0 ok, 1 failure, 2 bad input (no outcome history,
unknown version, nothing to roll back to).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from recommender.cli.common import ConfigOpt, WorkspaceOpt, app, check_format, emit_records, settings_from

OracleOpt = Annotated[
    Path | None,
    typer.Option("--oracle", help="Sample zone only: the generator's oracle.parquet (default: <workspace>/sample/oracle.parquet).",
                 show_default=False),
]  # fmt: skip
EvalFormatOpt = Annotated[str, typer.Option("--format", "-f", help="Output format: table or json.")]
METRIC_COLUMNS = ["system", "ope_signings@20", "signings@20", "signings@5", "coverage@20", "places@20", "ndcg@20",
                  "ope_signings@20 / similarity"]  # fmt: skip
APPROACHED_COLUMNS = ["system", "ndcg@10", "ndcg@20", "ndcg@50", "map"]
GATE_COLUMNS = ["family", "ope_signings@20", "ope_signings@10", "ope_signings@5", "snips_signings@20", "coverage@20",
                "places@20", "signings@20", "chosen"]  # fmt: skip


def progress_logging() -> None:
    """Training's progress lines (steps, rows, elapsed) on stderr, flushed per line (terminal and logs)."""
    import logging

    logger = logging.getLogger("training")
    if not any(getattr(h, "_sansetu", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        handler._sansetu = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def gate_rows(validation: dict[str, dict[str, float]], chosen: str) -> list[dict[str, Any]]:
    """One row per family: the gate's figures on the validation periods, the winner marked."""
    return [
        {"family": f, **{k: round(v, 4) for k, v in m.items()}, "chosen": "✓" if f == chosen else ""}
        for f, m in validation.items()
    ]


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code=code)


def _print_metrics(
    metrics: dict[str, dict[str, float]],
    fmt: str,
    title: str,
    extra: dict[str, Any],
    approached: dict[str, dict[str, float]] | None = None,
) -> None:
    from training.train import metrics_table

    if fmt == "json":
        body = {**extra, "metrics": metrics, "metrics_approached_only": approached or {}}
        sys.stdout.write(json.dumps(body, ensure_ascii=False, indent=2, default=str) + "\n")
        return
    emit_records(metrics_table(metrics), "table", title=title, columns=METRIC_COLUMNS)
    if approached:
        emit_records(
            [{"system": s, **{k: round(v, 4) for k, v in m.items()}} for s, m in approached.items()], "table",
            title="仅已接触企业（每个测试期一个排序）", columns=APPROACHED_COLUMNS,
        )  # fmt: skip
    for k, v in extra.items():
        typer.echo(f"{k}: {v}")


@app.command("train")
def train(
    promote_if_better: Annotated[
        bool, typer.Option("--promote-if-better", help="Make the new version champion if it beats the current one.")
    ] = False,
    oracle: OracleOpt = None,
    fmt: EvalFormatOpt = "table",
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Fit every model family on the outcome history, keep the best on validation, evaluate, register it (challenger)."""
    check_format(fmt, ("table", "json"))
    settings = settings_from(workspace, config)
    from recommender.ranking.jobs import train_from_workspace

    progress_logging()
    try:
        result, decision = train_from_workspace(settings, promote_if_better=promote_if_better, oracle_path=oracle)
    except (ValueError, LookupError) as exc:
        raise _fail(f"cannot train: {exc}", 2) from None
    verdict = (
        "promoted to champion"
        if decision.promoted
        else ("better, not promoted (no --promote-if-better)" if decision.better else "not promoted")
    )
    extra: dict[str, Any] = {
        "version": decision.version,
        "family": result.family,
        "test_periods": result.split.describe()["test"],
        "gate": f"{decision.metric}: {decision.reason} → {verdict}",
        "champion_before": decision.champion_version or "none",
    }
    if fmt == "table":
        emit_records(gate_rows(result.validation, result.family), "table",
                     title="验证期：各模型族的预期签约数（离线策略估计，选优依据）", columns=GATE_COLUMNS)  # fmt: skip
    else:
        extra["validation"] = result.validation
    _print_metrics(result.metrics, fmt, f"测试期评估 (model {decision.version})", extra, result.metrics_approached)


@app.command("evaluate")
def evaluate(
    version: Annotated[
        str | None, typer.Option("--version", help="Version or alias to evaluate (default: champion, else challenger).")
    ] = None,
    oracle: OracleOpt = None,
    fmt: EvalFormatOpt = "table",
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Evaluate a registered ranker on the test periods next to the baselines (and the sample's oracle)."""
    check_format(fmt, ("table", "json"))
    settings = settings_from(workspace, config)
    from recommender.ranking.jobs import evaluate_from_workspace

    try:
        report = evaluate_from_workspace(settings, version=version, oracle_path=oracle)
    except (ValueError, LookupError) as exc:
        raise _fail(f"cannot evaluate: {exc}", 2) from None
    metrics, approached = report.pop("metrics"), report.pop("metrics_approached_only")
    _print_metrics(metrics, fmt, f"测试期评估 (model {report['version']})", report, approached)


@app.command("promote")
def promote(
    version: Annotated[str, typer.Argument(help="Model version to make champion.")],
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Make VERSION the champion (the current champion becomes previous-champion)."""
    settings = settings_from(workspace, config)
    from recommender.ranking.scoring import model_registry
    from training.registry import RegistryError

    try:
        moved = model_registry(settings).promote(version)
    except RegistryError as exc:
        raise _fail(str(exc), 2) from None
    typer.echo(f"champion: {moved['champion']} (previous champion: {moved['previous-champion'] or 'none'})")


@app.command("rollback")
def rollback(workspace: WorkspaceOpt = None, config: ConfigOpt = None) -> None:
    """Restore the previous champion."""
    settings = settings_from(workspace, config)
    from recommender.ranking.scoring import model_registry
    from training.registry import RegistryError

    try:
        moved = model_registry(settings).rollback()
    except RegistryError as exc:
        raise _fail(str(exc), 2) from None
    typer.echo(f"champion: {moved['champion']} (previous champion: {moved['previous-champion'] or 'none'})")


@app.command("models")
def models(
    fmt: Annotated[str, typer.Option("--format", "-f", help="Output format: table, json or csv.")] = "table",
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List registered ranker versions with their aliases and test metrics."""
    check_format(fmt)
    settings = settings_from(workspace, config)
    from recommender.ranking.scoring import model_registry

    rows = model_registry(settings).list_versions()
    if not rows and fmt == "table":
        typer.echo("no model registered yet; run `sansetu train`.")
        return
    cols = ["version", "aliases", "created", "ndcg@20", "recall@50", "map"]  # fits 80 columns
    if fmt != "table":  # json and csv carry everything
        cols = [*cols[:3], "ndcg@10", "ndcg@20", "ndcg@50", "recall@50", "map", "test_periods", "run_id"]
    emit_records(rows, fmt, title=f"模型版本 ({settings.training.registered_model})", columns=cols)
