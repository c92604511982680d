"""sansetu adapt: adapts on the workspace's enterprises, records the run and prints the folder to configure."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from recommender.cli.main import app
from tests.training.test_adapt import make_enterprises, tiny_bert_dir  # noqa: F401  (fixture)


def test_adapt_prints_a_folder_that_loads_and_records_mlflow(
    tiny_bert_dir: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import training.adapt
    from features.io import write_snapshot
    from models.embedder import load_embedder
    from recommender.workspace import Workspace

    ws = Workspace(tmp_path / "ws").ensure()
    write_snapshot(make_enterprises(24), ws.snapshots, "enterprises")
    monkeypatch.setattr(training.adapt, "e5_small_folder", lambda cache: tiny_bert_dir)  # no real e5 in a unit test
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"retrieval": {"embedder": "tfidf"}}), "utf-8")
    args = [
        "adapt",
        "--max-steps",
        "2",
        "--batch-size",
        "4",
        "--seed",
        "1",
        "-w",
        str(ws.root),
        "--config",
        str(config),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    folder = Path(result.stdout.strip().splitlines()[-1].split("embedder:")[1].strip())
    assert folder.parent == ws.model_cache and folder.name.startswith("e5-small-adapted-")
    assert "MLflow run:" in result.stdout and (ws.logs / "adapt.log").is_file()
    vectors = load_embedder(str(folder), ws.model_cache).encode(["光模块芯片"], kind="query")
    assert vectors.shape[0] == 1
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "reused" in again.stdout and str(folder) in again.stdout


def test_adapt_without_enterprises_says_what_to_do(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"retrieval": {"embedder": "tfidf"}}), "utf-8")
    result = CliRunner().invoke(app, ["adapt", "-w", str(tmp_path / "ws"), "--config", str(config)])
    assert result.exit_code == 2
    assert "sansetu ingest" in result.output
