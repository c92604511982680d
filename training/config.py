"""Training configuration: labels, time split, LightGBM parameters and the MLflow registry."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TrainingConfig(BaseModel):
    """How the ranker is trained, evaluated, registered and promoted."""

    model_config = ConfigDict(extra="forbid")

    stage_gains: dict[str, int] = Field(
        default_factory=lambda: {"线索": 0, "终止": 0, "接洽": 1, "考察": 2, "洽谈": 2, "签约": 3, "落地": 3}
    )
    query_period: str = "QS"  # pandas offset alias: one query per (node, quarter)
    test_periods: int = Field(default=2, ge=1)
    valid_periods: int = Field(default=2, ge=1)
    n_estimators: int = Field(default=400, ge=1)
    learning_rate: float = Field(default=0.05, gt=0, le=1)
    num_leaves: int = Field(default=31, ge=2)
    min_child_samples: int = Field(default=20, ge=1)
    early_stopping_rounds: int = Field(default=50, ge=1)
    n_jobs: int = Field(default=1, ge=1)
    random_state: int = 42
    tracking_uri: str | None = None  # default: SQLite in the workspace; MLFLOW_TRACKING_URI wins
    experiment: str = "sansetu-ranker"
    registered_model: str = "sansetu-ranker"
    promotion_metric: str = "ndcg@20"
    promotion_margin: float = Field(default=0.0, ge=0)
