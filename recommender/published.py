"""Read-only view of the published run, shared by the API, the web page and the CLI.

A reader resolves the ``published`` pointer once per request and reads only that run's files, so a
refresh publishing meanwhile never shows it a half-written run. Loaded frames are cached by the
resolved run directory, so a new publish is picked up on the next request.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from recommender import runs
from recommender.workspace import Workspace


def published_dir(ws: Workspace) -> Path | None:
    """The directory of the published run (see :func:`recommender.runs.published_dir`)."""
    return runs.published_dir(ws.root)


@dataclass
class RunView:
    """The frames of one published run."""

    run_dir: Path
    manifest: dict[str, Any]
    map: pd.DataFrame
    targets: pd.DataFrame
    diff: dict[str, Any]

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id", self.run_dir.name))


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {"items": data}


def load_run(run_dir: Path) -> RunView:
    """Read a run directory (``manifest.json``, ``map.parquet``, ``targets.parquet``, ``diff.json``)."""
    targets_path = run_dir / "targets.parquet"
    map_path = run_dir / "map.parquet"
    return RunView(
        run_dir=run_dir,
        manifest=_read_json(run_dir / "manifest.json"),
        map=pd.read_parquet(map_path) if map_path.exists() else pd.DataFrame(),
        targets=pd.read_parquet(targets_path) if targets_path.exists() else pd.DataFrame(),
        diff=_read_json(run_dir / "diff.json"),
    )


@dataclass
class PublishedCache:
    """Caches the last loaded run; reloads when the pointer moves."""

    ws: Workspace
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _view: RunView | None = None

    def get(self) -> RunView | None:
        current = published_dir(self.ws)
        if current is None:
            return None
        with self._lock:
            if self._view is None or self._view.run_dir != current:
                self._view = load_run(current)
            return self._view
