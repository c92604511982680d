"""Read-only view of the published run, shared by the API, the web page and the CLI.

A reader resolves the ``published`` pointer once per request and reads only that run's files, so a
refresh publishing meanwhile never shows it a half-written run. Loaded frames are cached by the
resolved run directory, so a new publish is picked up on the next request; a run directory that a
refresh prunes while it is cached stays readable because its frames are already in memory.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from recommender.runs import directory as runs
from recommender.workspace import Workspace

if TYPE_CHECKING:
    from recommender.settings import Settings


@dataclass
class RunView:
    """The frames of one published run, with the targets indexed by node."""

    run_dir: Path
    manifest: dict[str, Any]
    map: pd.DataFrame
    targets: pd.DataFrame
    diff: dict[str, Any]
    by_node: dict[str, pd.DataFrame] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.by_node and not self.targets.empty and "node_id" in self.targets:
            order = ["node_id", "rank"] if "rank" in self.targets else ["node_id"]
            ordered = self.targets.sort_values(order, kind="stable")
            self.by_node = {str(k): g for k, g in ordered.groupby("node_id", sort=False)}

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id", self.run_dir.name))

    def node_targets(self, node_id: str) -> pd.DataFrame:
        """The targets of one node, best rank first (empty with the run's columns when none)."""
        got = self.by_node.get(node_id)
        return got if got is not None else self.targets.iloc[0:0]


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


def read_diff(run_dir: Path) -> dict[str, Any]:
    """A run's ``diff.json`` (empty dict when the run has none)."""
    return _read_json(run_dir / "diff.json")


@dataclass
class PublishedCache:
    """Caches the last loaded run; reloads when the pointer moves."""

    ws: Workspace
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _view: RunView | None = None

    def get(self) -> RunView | None:
        """The published run; a run pruned while being read is retried on the new pointer."""
        for attempt in range(3):
            current = runs.published_dir(self.ws.root)
            if current is None:
                return None
            with self._lock:
                if self._view is not None and self._view.run_dir == current:
                    return self._view
                try:
                    self._view = load_run(current)
                except FileNotFoundError:
                    if attempt == 2:
                        raise
                    continue
                return self._view
        return None  # pragma: no cover (the loop returns or raises)


def published_node_targets(settings: Settings, node_id: str, top_n: int) -> tuple[list[dict[str, Any]], str] | None:
    """The node's list from the published run (ranked, with reasons and routes), or None if it has none."""
    run_dir = runs.published_dir(Workspace(settings.workspace).root)
    if run_dir is None or not (run_dir / "targets.parquet").exists():
        return None
    run = load_run(run_dir)
    rows = run.targets[run.targets["node_id"] == node_id].sort_values("rank").head(top_n)
    if rows.empty:
        return None
    records = []
    for r in rows.to_dict(orient="records"):
        reasons = _json_list(r.get("reasons"))
        routes = _json_list(r.get("routes"))
        records.append(
            {
                "rank": int(r["rank"]),
                "enterprise_id": r["enterprise_id"],
                "name": r.get("name", ""),
                "score": float(r["score"]),
                "sources": r.get("sources", ""),
                "theme": r.get("theme") or "",
                "reasons": reasons,
                "routes": routes,
                "reason": "；".join(str(x.get("text", x)) if isinstance(x, dict) else str(x) for x in reasons[:2]),
                "route": (routes[0].get("theme", "") + "：" + routes[0].get("sentence", ""))
                if routes
                else "暂无现成路径",
            }
        )
    node = run.map[run.map["node_id"] == node_id] if not run.map.empty else run.map
    label = f"{node.iloc[0]['name']} ({node_id}, {node.iloc[0]['colour']})" if not node.empty else node_id
    return records, f"{label} — 已发布名单 {run.run_id}，top {top_n}"


def _json_list(value: Any) -> list[Any]:
    if isinstance(value, str) and value:
        parsed = json.loads(value)
        return parsed if isinstance(parsed, list) else [parsed]
    return list(value) if isinstance(value, (list, tuple)) else []
