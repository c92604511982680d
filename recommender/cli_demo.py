"""``sansetu demo``: the newcomer's first run on the bundled sample zone."""

from __future__ import annotations

from recommender.cli_common import app  # noqa: F401
