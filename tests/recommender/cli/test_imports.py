"""A fresh ``sansetu`` process imports only what its command needs (read from ``python -X importtime``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# never needed by `search` with the lexical embedder, nor by `--help`
HEAVY = {"torch", "sentence_transformers", "transformers", "mlflow", "lightgbm", "sklearn", "fastapi", "starlette",
         "uvicorn", "dask", "distributed", "sqlalchemy", "faiss", "onnxruntime", "openpyxl"}  # fmt: skip


def imported_packages(args: list[str], workspace: Path) -> set[str]:
    """Top-level packages a fresh ``python -m recommender.cli ARGS`` imports."""
    env = {**os.environ, "SANSETU_WORKSPACE": str(workspace), "SANSETU_RETRIEVAL__EMBEDDER": "tfidf"}
    cmd = [sys.executable, "-X", "importtime", "-m", "recommender.cli", *args]
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")]
    return {name.split(".")[0] for name in lines[1:]}  # the first line is the header


def test_help_imports_no_data_or_model_library(tmp_path: Path) -> None:
    found = imported_packages(["--help"], tmp_path / "ws")
    assert found.isdisjoint(HEAVY | {"pandas", "numpy", "pyarrow", "scipy", "pydantic", "training", "models"}), found


def test_search_imports_no_unneeded_library(published_workspace: Path) -> None:
    found = imported_packages(["search", "光芯", "-f", "json"], published_workspace)
    assert {"pandas", "recommender", "features"} <= found
    assert found.isdisjoint(HEAVY), found & HEAVY
