"""A started app loads search in the background: /health says when it is ready, a search that comes
earlier waits for the load, later searches load nothing until a new snapshot appears."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from features import schema as S
from recommender import store
from recommender.retrieval import index as retrieval_index

E1 = "91420100MA4K0000XJ"  # the published_workspace fixture's enterprise
E2 = "91420100MA4K0001X8"
WAIT_S = 20.0


class Gate:
    """Wraps ``build_profile_index``: counts calls, holds each call until opened, can fail once."""

    def __init__(self, fail_first: bool = False) -> None:
        self.opened = threading.Event()
        self.entered = threading.Event()
        self.calls = 0
        self.fail_first = fail_first
        self._real = retrieval_index.build_profile_index

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        self.entered.set()
        assert self.opened.wait(WAIT_S), "the gate was never opened"
        if self.fail_first and self.calls == 1:
            raise RuntimeError("index folder unreadable")
        return self._real(*args, **kwargs)


class FakeEncoder:
    """A dense encoder without a model: bag of characters hashed into 8 dimensions."""

    model_id, revision, dim = "fake-dense", "r1", 8

    def encode(
        self, texts: Sequence[str], kind: str = "passage", batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for ch in t:
                out[i, ord(ch) % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    g = Gate()
    monkeypatch.setattr(retrieval_index, "build_profile_index", g)
    yield g
    g.opened.set()  # never leave the warm-up thread waiting


def _viewer(c: TestClient) -> dict[str, str]:
    token = store.create_token(c.app.state.engine, "viewer", "viewer")  # type: ignore[attr-defined]
    return {"Authorization": f"Bearer {token}"}


def _wait_ready(c: TestClient) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        search = c.get("/health").json()["search"]
        if search["ready"] or search["error"]:
            return dict(search)
        time.sleep(0.02)
    raise AssertionError("search never became ready")


def _add_enterprise(ws: Path) -> None:
    """A newer enterprises snapshot with a second enterprise."""
    frame = pd.DataFrame({S.COL_ENTERPRISE_ID: [E1, E2], S.COL_NAME: ["光芯科技有限公司", "光模块制造有限公司"]})
    frame.to_parquet(ws / "snapshots" / "enterprises" / "20260201T000000000000.parquet", index=False)


def test_health_says_search_is_loading_then_ready(
    published_workspace: Path, make_client: Callable[..., TestClient], gate: Gate
) -> None:
    with make_client(published_workspace) as c:  # entering runs the start-up: the warm-up thread starts
        assert gate.entered.wait(WAIT_S)
        health = c.get("/health").json()  # answered while the load is held
        assert health["status"] == "ok"
        assert health["search"] == {"ready": False, "loading": True, "error": None, "loaded_s": None, "profiles": None}
        gate.opened.set()
        search = _wait_ready(c)
    assert search["ready"] is True and search["loading"] is False and search["error"] is None
    assert search["profiles"] == 1 and isinstance(search["loaded_s"], float) and search["loaded_s"] >= 0
    assert gate.calls == 1


def test_search_before_ready_waits_for_the_load(
    published_workspace: Path, make_client: Callable[..., TestClient], gate: Gate
) -> None:
    with make_client(published_workspace) as c:
        h = _viewer(c)
        assert gate.entered.wait(WAIT_S)
        answers: list[Any] = []
        asker = threading.Thread(target=lambda: answers.append(c.get("/api/search", params={"q": "光芯"}, headers=h)))
        asker.start()
        asker.join(0.3)
        assert asker.is_alive() and not answers  # waiting for the load, not failing
        gate.opened.set()
        asker.join(WAIT_S)
        assert answers and answers[0].status_code == 200, answers
        assert [item["enterprise_id"] for item in answers[0].json()["items"]] == [E1]
    assert gate.calls == 1  # the waiting search used the warm-up's load


def test_searches_after_ready_load_nothing_until_a_new_snapshot(
    published_workspace: Path, make_client: Callable[..., TestClient], gate: Gate
) -> None:
    gate.opened.set()
    with make_client(published_workspace) as c:
        h = _viewer(c)
        first = _wait_ready(c)
        for q in ("光芯", "科技", "光芯科技"):
            assert c.get("/api/search", params={"q": q}, headers=h).status_code == 200
        assert gate.calls == 1 and c.get("/health").json()["search"] == first
        _add_enterprise(published_workspace)
        found = c.get("/api/search", params={"q": "光模块"}, headers=h).json()
        assert gate.calls == 2  # followed the new snapshot
        assert E2 in [item["enterprise_id"] for item in found["items"]]
        assert c.get("/health").json()["search"]["profiles"] == 2


def test_failed_warm_up_is_reported_and_the_next_search_loads(
    published_workspace: Path, make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(fail_first=True)
    gate.opened.set()
    monkeypatch.setattr(retrieval_index, "build_profile_index", gate)
    with make_client(published_workspace) as c:
        search = _wait_ready(c)
        assert search["ready"] is False and search["loading"] is False
        assert search["error"] == "RuntimeError: index folder unreadable"
        r = c.get("/api/search", params={"q": "光芯"}, headers=_viewer(c))
        assert r.status_code == 200 and r.json()["total"] == 1
        after = c.get("/health").json()["search"]
        assert after["ready"] is True and after["error"] is None and gate.calls == 2


def test_dense_encoder_is_loaded_once_at_start_up(
    published_workspace: Path, make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded: list[tuple[str, Path]] = []

    def load_embedder(name: str, cache_dir: Path) -> FakeEncoder:
        loaded.append((name, cache_dir))
        return FakeEncoder()

    monkeypatch.setattr("models.embedder.load_embedder", load_embedder)
    monkeypatch.setenv("SANSETU_RETRIEVAL__EMBEDDER", "e5-small")  # over make_client's tfidf: read when it builds
    with make_client(published_workspace) as c:
        assert _wait_ready(c)["ready"] is True
        assert len(loaded) == 1 and loaded[0][0] == "e5-small"
        h = _viewer(c)
        _add_enterprise(published_workspace)
        found = c.get("/api/search", params={"q": "光模块"}, headers=h).json()
        assert "dense" in {s for item in found["items"] for s in item["sources"].split("|")}
    assert len(loaded) == 1  # a new snapshot updates the indexes, the encoder stays


def test_started_app_reuses_the_index_a_search_command_built(
    published_workspace: Path, make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    from features.io import load_table
    from recommender.settings import load_settings

    settings = load_settings(workspace=published_workspace)  # what `sansetu search` loads (tfidf, from make_client)
    retrieval_index.load_retrieval(settings, load_table(published_workspace / "snapshots", "enterprises"))
    built: list[Any] = []
    real = retrieval_index.build_profile_index
    monkeypatch.setattr(
        retrieval_index, "build_profile_index", lambda *a, **k: built.append(real(*a, **k)) or built[-1]
    )
    with make_client(published_workspace) as c:
        assert _wait_ready(c)["ready"] is True
    assert [bundle.reused for bundle in built] == [True]  # same texts, words and settings: nothing rebuilt
