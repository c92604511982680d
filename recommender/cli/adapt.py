"""``sansetu adapt``: e5-small adapted to the workspace's enterprises without labels (:mod:`training.adapt`).

Pairs come from the enterprises' own text (name + industry + products ↔ business scope +
description); the adapted model is written to ``<workspace>/cache/models/e5-small-adapted-<key>/``
and recorded as a run of the MLflow experiment ``sansetu-adapt`` (the workspace's store unless
``MLFLOW_TRACKING_URI`` or ``training.tracking_uri`` says otherwise). The command prints the folder
to put in ``retrieval.embedder``. Exit codes: 0 ok, 2 no usable enterprises or a bad option.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from recommender.cli.common import ConfigOpt, SeedOpt, WorkspaceOpt, app, settings_from

if TYPE_CHECKING:
    from recommender.settings import Settings
    from training.adapt import AdaptTracking


@app.command("adapt")
def adapt(
    max_pairs: Annotated[
        int | None,
        typer.Option("--max-pairs", min=1, help="Train on at most this many pairs (default: all).", show_default=False),
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the pairs.")] = 1,
    max_steps: Annotated[
        int | None,
        typer.Option(
            "--max-steps", min=1, help="Stop after this many steps (default: the full epochs).", show_default=False
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=2, help="Pairs per step; the other pairs of a step are its negatives.")
    ] = 32,
    seed: SeedOpt = None,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Fine-tune e5-small on the enterprises' own text pairs (no labels) and print the folder for retrieval.embedder."""
    from features.io import load_table
    from recommender.workspace import Workspace
    from training.adapt import adapt_encoder, adaptation_pairs, e5_small_folder

    settings = settings_from(workspace, config)
    ws = Workspace(settings.workspace)
    random_state = settings.random_state if seed is None else seed
    try:
        pairs = adaptation_pairs(load_table(ws.snapshots, "enterprises"), max_pairs, random_state)
    except ValueError as exc:
        typer.echo(f"cannot adapt: {exc} Ingest enterprises first (`sansetu ingest`).", err=True)
        raise typer.Exit(code=2) from None
    log_file = _log_to(ws.logs / "adapt.log")
    result = adapt_encoder(
        e5_small_folder(ws.model_cache), pairs, ws.model_cache, epochs=epochs, batch_size=batch_size,
        max_steps=max_steps, random_state=random_state, tracking=_tracking(settings),
        show_progress=sys.stderr.isatty(),
    )  # fmt: skip
    state = "reused (same pairs and parameters)" if result.reused else f"trained in {result.elapsed_s:.0f} s"
    last = f", last loss {result.losses[-1][1]:.4f}" if result.losses else ""
    typer.echo(f"adapted e5-small: {result.n_pairs} pairs, {result.n_steps} steps{last}, {state}; log {log_file}")
    if result.run_id:
        typer.echo(f"MLflow run: {result.run_id} (experiment sansetu-adapt)")
    typer.echo("int8 ONNX: " + (str(result.onnx) if result.onnx else "not exported"))
    typer.echo("Use it for retrieval — in the config:")
    typer.echo(f"  retrieval:\n    embedder: {result.folder}")


def _tracking(settings: Settings) -> AdaptTracking:
    """The run goes to the ranker's store; artifacts in the workspace when that store is the workspace's SQLite."""
    from recommender.ranking.scoring import tracking_uri
    from recommender.workspace import Workspace
    from training.adapt import AdaptTracking

    uri, ws = tracking_uri(settings), Workspace(settings.workspace)
    artifacts = ws.mlflow_artifacts().as_uri() if uri == ws.mlflow_uri() else None
    ws.root.mkdir(parents=True, exist_ok=True)
    return AdaptTracking(uri, artifact_location=artifacts)


def _log_to(path: Path) -> Path:
    """Training progress (steps, loss, elapsed) to stderr and ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("training.adapt")
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    for handler in (logging.FileHandler(path, encoding="utf-8"), logging.StreamHandler(sys.stderr)):
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return path
