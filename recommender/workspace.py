"""The workspace: the one directory that holds everything the engine writes.

Layout (contract shared by every command)::

    <workspace>/
      snapshots/<table>/<YYYYmmddTHHMMSSffffff>.parquet   validated tables, newest = current
      rejects/<table>-<stamp>.csv                         bad rows with file, row, field, reason
      cache/embeddings/<model_key>/                       embedding cache (memory-mappable)
      cache/models/                                       converted embedding models
      index/<model_key>/                                  FAISS index + manifest
      maps/                                               map history: <stamp>.parquet, chain pictures
      runs/<run_id>/                                      one refresh / pipeline run (staging until published)
      published -> runs/<run_id>                          what every reader sees (atomic switch)
      mlflow.db, mlartifacts/                             MLflow tracking + registry (SQLite)
      service.db                                          tokens, feedback, audit (SQLite WAL)
      logs/
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    """Paths inside a workspace root. Creating the object touches nothing on disk."""

    root: Path

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    @property
    def rejects(self) -> Path:
        return self.root / "rejects"

    @property
    def embedding_cache(self) -> Path:
        return self.root / "cache" / "embeddings"

    @property
    def model_cache(self) -> Path:
        return self.root / "cache" / "models"

    @property
    def index(self) -> Path:
        return self.root / "index"

    @property
    def maps(self) -> Path:
        return self.root / "maps"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def published(self) -> Path:
        return self.root / "published"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def service_db(self) -> Path:
        return self.root / "service.db"

    def mlflow_uri(self) -> str:
        return f"sqlite:///{(self.root / 'mlflow.db').resolve()}"

    def mlflow_artifacts(self) -> Path:
        return (self.root / "mlartifacts").resolve()

    def ensure(self) -> Workspace:
        """Create the top-level folders; returns self."""
        for p in (
            self.snapshots,
            self.rejects,
            self.embedding_cache,
            self.model_cache,
            self.index,
            self.maps,
            self.runs,
            self.logs,
        ):
            p.mkdir(parents=True, exist_ok=True)
        return self
