"""What a refresh step is: the run context it sees, the result it returns, its declaration.

Both the pipeline (which runs the steps) and the steps themselves import this module, so it
imports neither.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final

import pandas as pd

from recommender.refresh.executor import Executor
from recommender.refresh.logs import LOGGER_NAME
from recommender.runs import directory as runs
from recommender.runs.export import write_parquet
from recommender.settings import Settings
from recommender.workspace import Workspace

HEURISTIC: Final = "heuristic"


class InputError(ValueError):
    """Bad input or configuration (exit code 2)."""


@dataclass
class RunContext:
    """What a step sees: settings, paths, the executor and an in-process cache shared by the steps."""

    settings: Settings
    workspace: Workspace
    as_of: date
    run_id: str
    staging: Path
    executor: Executor
    inputs: Path | None = None
    progress: bool = False
    encoder: Any = None  # an explicit dense encoder (tests, benchmarks); default from settings
    previous: runs.RunInfo | None = None
    log: logging.Logger = field(default_factory=lambda: logging.getLogger(LOGGER_NAME))
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def as_of_ts(self) -> pd.Timestamp:
        return pd.Timestamp(self.as_of)

    def read_parquet(self, rel: str) -> pd.DataFrame:
        return pd.read_parquet(self.staging / rel)

    def write_parquet(self, df: pd.DataFrame, rel: str) -> str:
        write_parquet(df, self.staging / rel)
        return rel

    def write_json(self, obj: Any, rel: str) -> str:
        runs.write_json_atomic(self.staging / rel, obj)
        return rel


@dataclass(frozen=True)
class StepResult:
    """Files a step wrote (relative to the staging dir) and facts for the manifest."""

    outputs: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict)


def _no_inputs(ctx: RunContext) -> Any:
    return None


@dataclass(frozen=True)
class Step:
    """One checkpointed step: ``run`` writes outputs; ``inputs`` describes what else it reads (JSON-able)."""

    name: str
    run: Callable[[RunContext], StepResult]
    inputs: Callable[[RunContext], Any] = _no_inputs
    always: bool = False  # cheap and detects new inputs: re-runs on every refresh
