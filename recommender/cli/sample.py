"""``sansetu sample``: write the bundled sample zone in the raw formats a user would import.

The generator is :mod:`recommender.sample.generate`, the file writer :mod:`recommender.sample.write`
(files, encodings and why the bytes are the same per seed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recommender.cli.common import ConfigOpt, SeedOpt, WorkspaceOpt, app, settings_from
from recommender.workspace import Workspace


@app.command("sample")
def sample(
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output directory (default: <workspace>/sample).", show_default=False),
    ] = None,
    enterprises: Annotated[int, typer.Option("--enterprises", "-n", min=1, help="Enterprises in the universe.")] = 3000,
    seed: SeedOpt = None,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write a deterministic sample zone (raw files for `sansetu ingest`) and its hidden oracle."""
    from recommender.sample.write import write_sample_zone
    from recommender.settings import ConfigError, load_chains

    settings = settings_from(workspace, config)
    try:
        chains = load_chains(settings)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None
    out_dir = out if out is not None else Workspace(settings.workspace).root / "sample"
    random_state = settings.random_state if seed is None else seed
    try:
        written = write_sample_zone(chains, enterprises, random_state, out_dir)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--enterprises") from None
    manifest = written.data.manifest
    counts = manifest["counts"]
    typer.echo(
        f"Sample zone (seed {random_state}, as of {manifest['as_of']}): {counts['enterprises']} enterprise rows, "
        f"{counts['approached_pairs']} approached pairs, {counts['signed_pairs']} signed; {len(manifest['chains'])} chains."
    )
    for name, path in written.paths.items():
        n_rows = written.rows(name)
        rows = f"{n_rows:>9,} rows" if n_rows is not None else " " * 14
        typer.echo(f"  {rows}  {path}")
