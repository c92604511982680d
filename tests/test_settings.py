from __future__ import annotations

from pathlib import Path

import pytest

from recommender.settings import ConfigError, load_chains, load_settings


def test_load_settings_defaults_and_workspace_override(tmp_path: Path) -> None:
    s = load_settings(workspace=tmp_path / "ws")
    assert s.workspace == tmp_path / "ws"
    assert s.retrieval.embedder == "e5-small-int8"


def test_load_settings_env_overrides_nested_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANSETU_RETRIEVAL__TOP_K_DENSE", "300")
    s = load_settings()
    assert s.retrieval.top_k_dense == 300
    assert s.retrieval.embedder == "e5-small-int8"  # the rest of the section still comes from YAML


def test_load_settings_names_key_expected_and_got(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("retrieval:\n  top_k_dense: 0\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_settings(config_file=cfg)
    assert str(exc.value) == (
        f"Invalid configuration in {cfg}:\n  retrieval.top_k_dense: Input should be greater than or equal to 1 (got 0)"
    )


def test_load_settings_rejects_unknown_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("retrieval:\n  embeder: tfidf\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_settings(config_file=cfg)
    assert str(exc.value) == (
        f"Invalid configuration in {cfg}:\n  retrieval.embeder: Extra inputs are not permitted (got 'tfidf')"
    )


def test_load_settings_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_file=tmp_path / "nope.yaml")


def test_load_chains_reads_bundled_chains() -> None:
    chains = load_chains(load_settings())
    assert all(8 <= len(c.nodes) <= 20 for c in chains)


def test_load_settings_serve_sessions_and_timezone(tmp_path: Path) -> None:
    s = load_settings()
    assert (s.serve.session_hours, s.serve.session_idle_minutes, s.serve.timezone) == (12.0, 60.0, "Asia/Shanghai")
    assert s.serve.openapi_requires_token is True
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("serve:\n  timezone: Mars/Base\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"serve\.timezone: Value error, must be an IANA time zone"):
        load_settings(config_file=cfg)
