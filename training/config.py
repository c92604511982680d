"""Training configuration: labels, time split, LightGBM parameters and the MLflow registry."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Family = Literal["binary_ipw", "binary", "logistic", "lambdarank"]
DEFAULT_FAMILIES: tuple[Family, ...] = ("binary_ipw", "binary", "logistic", "lambdarank")


class TrainingConfig(BaseModel):
    """How the ranker is trained, evaluated, registered and promoted (documented in docs/ranking.md)."""

    model_config = ConfigDict(extra="forbid")

    stage_gains: dict[str, int] = Field(
        default_factory=lambda: {"线索": 0, "终止": 0, "接洽": 1, "考察": 2, "洽谈": 2, "签约": 3, "落地": 3}
    )
    query_period: Literal["QS", "MS", "YS"] = "QS"  # one query per (node, quarter | month | year)
    label_horizon_days: int = Field(default=365, ge=1)  # an approach's label: best stage within this many days
    label_maturity_days: int = Field(default=270, ge=0)  # periods younger than this at the data's end are left out
    max_negatives_per_query: int | None = Field(default=300, ge=1)  # training rows only; None keeps all
    out_of_pool_negatives: float = Field(default=1.0, ge=0)  # per approached-but-not-retrieved enterprise
    # What the ranker learns from (docs/ranking.md, "What the ranker learns"): "approached" = the approached
    # pairs only, graded by stage, one query per period across all nodes (who *signs* once approached);
    # "all" = every candidate of each (node, period), unapproached labelled 0 (who gets *approached*);
    # "two_part" = both, standardised and added into one booster: conversion + approach_weight × approach.
    ranker_rows: Literal["two_part", "approached", "all"] = "two_part"
    approach_weight: float = Field(default=1.0, ge=0)  # two_part: weight of the approach part (standardised)
    # left out of the ranker: they reveal the historical approach policy (history) or are constant
    # within a (node, period) and only shift whole nodes against each other (node context)
    excluded_features: list[str] = Field(
        default_factory=lambda: [
            "prior_contacts", "terminated_365d", "contacted_node_before", "node_colour", "node_gap", "strategic_weight"
        ]
    )  # fmt: skip
    test_periods: int = Field(default=2, ge=1)
    valid_periods: int = Field(default=2, ge=1)
    n_estimators: int = Field(default=400, ge=1)
    learning_rate: float = Field(default=0.05, gt=0, le=1)
    num_leaves: int = Field(default=7, ge=2)
    min_child_samples: int = Field(default=20, ge=1)
    early_stopping_rounds: int = Field(default=50, ge=1)
    n_jobs: int = Field(default=1, ge=1)
    random_state: int = 42
    tracking_uri: str | None = None  # default: SQLite in the workspace; MLFLOW_TRACKING_URI wins
    experiment: str = "sansetu-ranker"
    registered_model: str = "sansetu-ranker"
    # the model families `train` fits; the best on the validation periods' promotion_metric is the run's model
    # (docs/ranking.md, "The gate"); ties go to the earlier family of this list
    families: list[Family] = Field(default_factory=lambda: list(DEFAULT_FAMILIES), min_length=1)
    calibration: Literal["isotonic", "platt"] = "isotonic"  # margin -> P(签约 | approached), on validation
    max_weight: float = Field(default=50.0, ge=1)  # clip of 1 / approach propensity (training and estimates)
    # ope_signings@k: the doubly robust off-policy estimate of expected signings in the top k of each node's
    # list on the validation periods; the ndcg / recall / map metrics are the older test-period ones
    promotion_metric: Literal[
        "ope_signings@20", "ope_signings@10", "ope_signings@5", "ndcg@10", "ndcg@20", "ndcg@50", "recall@50", "map"
    ] = "ope_signings@20"
    promotion_margin: float = Field(default=0.0, ge=0)
