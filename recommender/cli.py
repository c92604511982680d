"""The ``sansetu`` command line: one module per command group, registered on one app."""

from __future__ import annotations

from recommender import (  # noqa: F401  (importing registers the commands)
    cli_batch,
    cli_demo,
    cli_ingest,
    cli_map,
    cli_model,
    cli_paths,
    cli_retrieval,
    cli_sample,
    cli_serve,
)
from recommender.cli_common import app


@app.command("version")
def version() -> None:
    """Print sansetu's version."""
    from importlib.metadata import version as _v

    print(_v("sansetu"))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
