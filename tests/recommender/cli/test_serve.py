"""``sansetu serve`` points at the API contract it really serves (there is no /docs page)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from recommender.cli import app


def test_serve_names_the_openapi_document_not_docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[tuple[str, int]] = []
    monkeypatch.setattr("uvicorn.run", lambda application, host, port, log_level: started.append((host, port)))
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["serve", "--port", "8765", "-w", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    assert started == [("127.0.0.1", 8765)]
    assert "/openapi.json, with a viewer token" in result.output and "/docs" not in result.output
