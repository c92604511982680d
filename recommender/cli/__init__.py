"""The ``sansetu`` command line: the Typer ``app`` with every command group registered, and ``main``.

One module per command group (``ingest``, ``sample``, ``colour_map``, ``retrieval``, ``model``,
``paths``, ``refresh``, ``serve``, ``demo``); ``common`` holds the app and the shared options.
Commands parse their arguments, call one library function and print.
"""

from recommender.cli.main import app, main

__all__ = ["app", "main"]
