"""Shared test setup: offline, quiet, deterministic."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def random_seed() -> int:
    """Seed for seeded tests; SANSETU_TEST_SEED overrides (sklearn's global_random_seed idea)."""
    return int(os.environ.get("SANSETU_TEST_SEED", "42"))
