"""A live explanation scores the pair's fit against the published run's candidate list."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from recommender.ranking import detail
from recommender.settings import load_settings

_spec = importlib.util.spec_from_file_location(
    "live_fit_world", Path(__file__).resolve().parents[2] / "training" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
world_module = importlib.util.module_from_spec(_spec)
sys.modules["live_fit_world"] = world_module
_spec.loader.exec_module(world_module)


def test_live_fit_uses_the_published_candidates_and_scores_an_unlisted_firm_low(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = world_module.make_world(n_enterprises=300, random_state=1)
    settings = load_settings(workspace=tmp_path / "ws")
    tables, nodes, cands = world["tables"], world["nodes"], world["candidates"]
    node = str(cands["node_id"].iloc[0])
    own = cands[cands["node_id"] == node].sort_values("dense_rank")
    top = str(own["enterprise_id"].iloc[0])
    unlisted = next(e for e in tables["enterprises"]["enterprise_id"].astype(str) if e not in set(own["enterprise_id"]))
    run = tmp_path / "run"
    run.mkdir()
    cands.to_parquet(run / "scored.parquet")
    monkeypatch.setattr(detail, "published_dir", lambda root: run)
    listed_fit = detail.live_fit(settings, top, node, tables, nodes)
    unlisted_fit = detail.live_fit(settings, unlisted, node, tables, nodes)
    assert 0.0 <= unlisted_fit <= 1.0 and 0.0 <= listed_fit <= 1.0
    assert listed_fit > unlisted_fit  # ranked first by a retriever beats returned by none
    monkeypatch.setattr(detail, "published_dir", lambda root: None)  # no run yet: still a probability
    assert 0.0 <= detail.live_fit(settings, top, node, tables, nodes) <= 1.0


def published_top_firm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    """A published run holding the toy world's candidates: (settings, tables, nodes, node, its top firm, run dir)."""
    world = world_module.make_world(n_enterprises=300, random_state=1)
    settings = load_settings(workspace=tmp_path / "ws")
    tables, nodes, cands = world["tables"], world["nodes"], world["candidates"]
    node = str(cands["node_id"].iloc[0])
    top = str(cands[cands["node_id"] == node].sort_values("dense_rank")["enterprise_id"].iloc[0])
    run = tmp_path / "run"
    run.mkdir()
    cands.to_parquet(run / "scored.parquet")
    monkeypatch.setattr(detail, "published_dir", lambda root: run)
    return settings, tables, nodes, node, top, run


def test_live_fit_uses_the_fit_model_the_published_run_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recommender.retrieval.fit import FIT_MODEL_FILE
    from recommender.settings import load_fit_model

    settings, tables, nodes, node, top, run = published_top_firm(tmp_path, monkeypatch)
    configured = detail.live_fit(settings, top, node, tables, nodes)
    used = load_fit_model(settings).to_dict()
    used["intercept"] = used["intercept"] - 30.0  # a run whose (refitted) model says nothing fits
    (run / FIT_MODEL_FILE).write_text(json.dumps(used), encoding="utf-8")
    assert detail.live_fit(settings, top, node, tables, nodes) < 0.01 < configured


def test_live_fit_falls_back_to_the_configured_model_when_the_run_file_is_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from recommender.retrieval.fit import FIT_MODEL_FILE

    settings, tables, nodes, node, top, run = published_top_firm(tmp_path, monkeypatch)
    configured = detail.live_fit(settings, top, node, tables, nodes)
    for bad in ('{"version": "1", "feat', json.dumps({"version": "not a fit model"})):
        (run / FIT_MODEL_FILE).write_text(bad, encoding="utf-8")
        with caplog.at_level("WARNING", logger=detail.__name__):
            assert detail.live_fit(settings, top, node, tables, nodes) == configured
        assert FIT_MODEL_FILE in caplog.text and "ranking.fit_model" in caplog.text
        caplog.clear()


def test_live_fit_of_a_pair_an_analyst_checked_is_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, tables, nodes, node, top, _ = published_top_firm(tmp_path, monkeypatch)
    assert detail.live_fit(settings, top, node, tables, nodes) > 0.0
    for verdict, want in ((False, 0.0), (True, 1.0)):
        marks = pd.DataFrame({"node_id": [node], "enterprise_id": [top], "fits": [verdict]})
        assert detail.live_fit(settings, top, node, {**tables, "fit_marks": marks}, nodes) == want
