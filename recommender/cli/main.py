"""The ``sansetu`` command line: one module per command group, registered on one app."""

from __future__ import annotations

from recommender.cli import (  # noqa: F401  (importing registers the commands)
    adapt,
    colour_map,
    demo,
    ingest,
    model,
    paths,
    refresh,
    retrieval,
    sample,
    serve,
)
from recommender.cli.common import app


@app.command("version")
def version() -> None:
    """Print sansetu's version."""
    from importlib.metadata import version as _v

    print(_v("sansetu"))


def quiet_libraries() -> None:
    """Offline and quiet: no hub look-ups (a missing model fails fast), no library progress chatter.

    Set at the entry point only (never at import time); explicit environment settings win.
    """
    import logging
    import os

    for key, value in {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "TRANSFORMERS_VERBOSITY": "error",
        "TOKENIZERS_PARALLELISM": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_LOGGING_LEVEL": "WARNING",
    }.items():
        os.environ.setdefault(key, value)
    for name in ("mlflow", "alembic", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main() -> None:
    quiet_libraries()
    app()


if __name__ == "__main__":
    main()
