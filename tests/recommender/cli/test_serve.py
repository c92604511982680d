"""``sansetu serve`` points at the API contract it really serves (there is no /docs page) and starts loading
search as the app starts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from recommender.cli import app


def test_serve_names_the_openapi_document_not_docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[tuple[str, int]] = []
    monkeypatch.setattr("uvicorn.run", lambda application, host, port, log_level: started.append((host, port)))
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["serve", "--port", "8765", "-w", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    assert started == [("127.0.0.1", 8765)]
    assert "/openapi.json, with a viewer token" in result.output and "/docs" not in result.output


def test_served_app_loads_search_at_start_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANSETU_RETRIEVAL__EMBEDDER", "tfidf")
    served: list[Any] = []
    monkeypatch.setattr("uvicorn.run", lambda application, host, port, log_level: served.append(application))
    result = CliRunner().invoke(app, ["serve", "-w", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    with TestClient(served[0]) as client:  # what uvicorn does first: the app's start-up
        deadline = time.monotonic() + 20
        while not (search := client.get("/health").json()["search"])["ready"] and time.monotonic() < deadline:
            time.sleep(0.02)
    assert search["ready"] is True and search["error"] is None and search["profiles"] == 0
