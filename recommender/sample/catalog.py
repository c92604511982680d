"""Where the sample's outcome processes live, and which there are (light: the CLI's help lists them).

The processes themselves are validated by :mod:`recommender.sample.process`; this module imports
nothing but the standard library so that ``sansetu --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

PROCESSES_DIR: Final = Path(__file__).resolve().parents[2] / "configs" / "processes"
"""The bundled process files, ``<name>.yaml`` (the package root as ``recommender.settings.PACKAGE_ROOT``)."""
DEFAULT_PROCESS: Final = "default"


def available_processes() -> list[str]:
    """Names of the bundled processes, ``default`` first, then alphabetically."""
    names = sorted(p.stem for p in PROCESSES_DIR.glob("*.yaml"))
    return sorted(names, key=lambda n: n != DEFAULT_PROCESS)
