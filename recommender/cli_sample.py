"""CLI commands of the 'sample' group (registered on the shared app)."""

from __future__ import annotations

from recommender.cli_common import app  # noqa: F401
