"""sansetu train / evaluate / models / promote / rollback through CliRunner on a synthetic zone.

The workspace inputs (tables, nodes, maps, retrieval candidates, oracle) come from the synthetic
zone of tests/training/conftest.py (monkeypatched ``load_training_inputs``); everything after that
is the real path: training set, LightGBM, MLflow SQLite store in tmp_path, registry aliases.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from recommender.cli import app
from recommender.ranking import jobs
from training.config import DEFAULT_FAMILIES
from training.train import SYSTEMS

_spec = importlib.util.spec_from_file_location(
    "ranking_world_cli", Path(__file__).resolve().parents[2] / "training" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
world_module = importlib.util.module_from_spec(_spec)
sys.modules["ranking_world_cli"] = world_module
_spec.loader.exec_module(world_module)

runner = CliRunner()


@pytest.fixture(scope="module")
def inputs() -> jobs.TrainingInputs:
    w: dict[str, Any] = world_module.make_world(n_enterprises=200, random_state=2)
    return jobs.TrainingInputs(w["tables"], w["nodes"], w["map_df"], w["candidates"], w["oracle"])


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inputs: jobs.TrainingInputs) -> tuple[Path, Path]:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(jobs, "load_training_inputs", lambda settings, oracle_path=None: inputs)
    config = tmp_path / "config.yaml"
    config.write_text(
        "training:\n  n_estimators: 20\n  early_stopping_rounds: 10\n  max_negatives_per_query: 60\n", encoding="utf-8"
    )
    return tmp_path / "ws", config


def _run(*args: str) -> Any:
    return runner.invoke(app, list(args))


def test_cli_model_train_evaluate_models_promote_rollback(workspace: tuple[Path, Path]) -> None:
    ws, cfg = str(workspace[0]), str(workspace[1])
    empty = _run("models", "--workspace", ws, "--config", cfg)
    assert empty.exit_code == 0 and "no model registered yet" in empty.output

    first = _run("train", "--promote-if-better", "--format", "json", "--workspace", ws, "--config", cfg)
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)  # MLflow's registration messages go to stderr
    assert report["version"] == "1" and report["champion_before"] == "none"
    assert report["gate"] == "ope_signings@20: no champion yet → promoted to champion"
    assert set(report["metrics"]) == set(SYSTEMS)
    assert report["family"] in report["validation"] and set(report["validation"]) == set(DEFAULT_FAMILIES)
    best = max(m["ope_signings@20"] for m in report["validation"].values())
    assert report["validation"][report["family"]]["ope_signings@20"] == best

    second = _run("train", "--workspace", ws, "--config", cfg)
    assert second.exit_code == 0, second.output
    assert "测试期评估" in second.output and "version: 2" in second.output and "champion_before: 1" in second.output
    assert "验证期：各模型族的预期签约数" in second.output and "family: " in second.output

    listed = json.loads(_run("models", "--format", "json", "--workspace", ws, "--config", cfg).stdout)
    assert [(r["version"], r["aliases"]) for r in listed] == [("2", ["challenger"]), ("1", ["champion"])]
    assert listed[1]["ndcg@20"] == pytest.approx(report["metrics"]["ranker"]["ndcg@20"], abs=1e-6)

    evaluated = _run("evaluate", "--format", "json", "--workspace", ws, "--config", cfg)
    assert evaluated.exit_code == 0, evaluated.output
    ev = json.loads(evaluated.stdout)
    assert ev["version"] == "1" and ev["family"] == report["family"]
    assert ev["metrics"]["ranker"]["ndcg@20"] == pytest.approx(report["metrics"]["ranker"]["ndcg@20"], abs=1e-9)

    promoted = _run("promote", "2", "--workspace", ws, "--config", cfg)
    assert promoted.exit_code == 0 and promoted.output.strip() == "champion: 2 (previous champion: 1)"
    rolled = _run("rollback", "--workspace", ws, "--config", cfg)
    assert rolled.exit_code == 0 and rolled.output.strip() == "champion: 1 (previous champion: 2)"

    unknown = _run("promote", "9", "--workspace", ws, "--config", cfg)
    assert unknown.exit_code == 2
    assert "Model 'sansetu-ranker' has no version '9'; known versions are ['2', '1']." in unknown.output


def test_cli_model_rejects_bad_format_and_missing_history(
    workspace: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, cfg = str(workspace[0]), str(workspace[1])
    bad = _run("evaluate", "--format", "csv", "--workspace", ws, "--config", cfg)
    assert bad.exit_code == 2 and "must be one of ['table', 'json']; got 'csv'" in bad.output

    def no_history(settings: Any, oracle_path: Any = None) -> Any:
        raise ValueError("no outcomes in workspace X: ingest the approach history (outcomes) first.")

    monkeypatch.setattr(jobs, "load_training_inputs", no_history)
    failed = _run("train", "--workspace", ws, "--config", cfg)
    assert failed.exit_code == 2
    assert "cannot train: no outcomes in workspace X: ingest the approach history (outcomes) first." in failed.output
    nothing = _run("evaluate", "--workspace", ws, "--config", cfg)
    assert nothing.exit_code == 2 and "no model registered under 'sansetu-ranker' yet" in nothing.output
