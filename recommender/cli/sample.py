"""``sansetu sample``: write the bundled sample zone in the raw formats a user would import.

The generator is :mod:`recommender.sample.generate`, the file writer :mod:`recommender.sample.write`
(files, encodings and why the bytes are the same per seed); the outcome processes are the files of
``configs/processes`` (:mod:`recommender.sample.process`, docs/sample.md "Outcome processes").
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recommender.cli.common import ConfigOpt, SeedOpt, WorkspaceOpt, app, settings_from
from recommender.sample.catalog import DEFAULT_PROCESS, available_processes
from recommender.workspace import Workspace

ProcessOpt = Annotated[
    str,
    typer.Option(
        "--process",
        "-p",
        help=(
            "Outcome process (who signs, whom the analysts approached, how many firms fit each node): "
            f"one of {', '.join(available_processes())}, or the path of a process .yaml file."
        ),
    ),
]


@app.command("sample")
def sample(
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output directory (default: <workspace>/sample).", show_default=False),
    ] = None,
    enterprises: Annotated[int, typer.Option("--enterprises", "-n", min=1, help="Enterprises in the universe.")] = 3000,
    seed: SeedOpt = None,
    process: ProcessOpt = DEFAULT_PROCESS,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write a deterministic sample zone (raw files for `sansetu ingest`), its hidden oracle and truth."""
    from recommender.sample.process import load_process
    from recommender.sample.write import write_sample_zone
    from recommender.settings import ConfigError, load_chains

    settings = settings_from(workspace, config)
    try:
        chains = load_chains(settings)
        process_cfg = load_process(process)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None
    out_dir = out if out is not None else Workspace(settings.workspace).root / "sample"
    random_state = settings.random_state if seed is None else seed
    try:
        written = write_sample_zone(chains, enterprises, random_state, out_dir, process=process_cfg)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--enterprises") from None
    manifest = written.data.manifest
    counts = manifest["counts"]
    typer.echo(
        f"Sample zone (seed {random_state}, as of {manifest['as_of']}): {counts['enterprises']} enterprise rows, "
        f"{counts['approached_pairs']} approached pairs, {counts['signed_pairs']} signed; "
        f"{len(manifest['chains'])} chains; process {process_cfg.name}."
    )
    for name, path in written.paths.items():
        n_rows = written.rows(name)
        rows = f"{n_rows:>9,} rows" if n_rows is not None else " " * 14
        typer.echo(f"  {rows}  {path}")
