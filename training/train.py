"""Fit the ranker on a time split and evaluate it against the baselines in the same run (pure).

``train_and_evaluate`` is what ``sansetu train`` calls between loading data and logging to MLflow:
split by time, down-sample unapproached training rows, fit the lambdarank ranker with early
stopping on the validation periods, fit the logistic baseline on the same training rows, then score
the test periods with every system (ranker, similarity, heuristic, logistic and, on the sample
zone, the oracle) and compute the same metrics for all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pandas as pd

from features.pairs import COL_AS_OF
from features.schema import COL_ENTERPRISE_ID, COL_NODE_ID
from models.ranker import Ranker
from training.baselines import LogisticBaseline, baseline_heuristic_score, oracle_scores, similarity_score
from training.config import TrainingConfig
from training.dataset import COL_APPROACHED, COL_LABEL, COL_QUERY, TrainingSet, query_groups, subsample_negatives
from training.evaluate import NDCG_CUTOFFS, evaluate_ranking
from training.splits import TimeSplit, split_frame, time_split

SYSTEMS: Final = ("ranker", "similarity", "heuristic", "logistic", "oracle")


@dataclass
class TrainResult:
    """Everything a training run produced.

    Attributes:
        ranker: the fitted ranker.
        split: query periods of train / valid / test.
        metrics: system name -> metric name -> value on the test periods.
        test: the test rows (keys, label and features) with one ``score_<system>`` column per system.
        fingerprints: name -> sha256 of the data the run used.
        counts: rows and queries per split.
        feature_importance: gain per feature.
        metrics_approached: the same metrics among the approached test pairs only, one query per
            test period (all nodes together): "of the firms the zone approached, who went furthest" —
            the comparison with the oracle on equal terms (it scores P(signing | approached)).
    """

    ranker: Ranker
    split: TimeSplit
    metrics: dict[str, dict[str, float]]
    test: pd.DataFrame
    fingerprints: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    feature_importance: dict[str, float] = field(default_factory=dict)
    metrics_approached: dict[str, dict[str, float]] = field(default_factory=dict)


def make_ranker(config: TrainingConfig) -> Ranker:
    return Ranker(
        n_estimators=config.n_estimators,
        learning_rate=config.learning_rate,
        num_leaves=config.num_leaves,
        min_child_samples=config.min_child_samples,
        early_stopping_rounds=config.early_stopping_rounds,
        eval_at=(20, 10, 50),
        random_state=config.random_state,
        n_jobs=config.n_jobs,
    )


def model_features(feature_names: list[str], config: TrainingConfig) -> list[str]:
    """The features the ranker sees: ``feature_names`` minus ``config.excluded_features`` (order kept)."""
    unknown = sorted(set(config.excluded_features) - set(feature_names))
    if unknown:
        raise ValueError(f"training.excluded_features names unknown features {unknown}; known: {feature_names}.")
    return [n for n in feature_names if n not in set(config.excluded_features)]


def ranker_rows(frame: pd.DataFrame, config: TrainingConfig, *, pooled: bool = True) -> pd.DataFrame:
    """The rows and queries the ranker learns from (``config.ranker_rows``), sorted by query.

    ``approached``: the approached pairs only; with ``pooled`` one query per period with every node
    in it, so that the model ranks "of the firms approached, who went furthest" and its scores are
    comparable across nodes; without, the (node, period) queries as built. ``all``: every candidate
    of each (node, period) query as built (unapproached 0). ``two_part``: the rows of its conversion
    part (``approached``); ``fit_ranker`` fits the approach part on ``all``.
    """
    if config.ranker_rows == "all":
        return frame
    if config.ranker_rows == "two_part":
        return ranker_rows(frame, config.model_copy(update={"ranker_rows": "approached"}), pooled=pooled)
    rows = frame[frame[COL_APPROACHED].to_numpy(dtype=bool)]
    if not pooled:
        return rows
    period = "period@" + pd.to_datetime(rows[COL_AS_OF]).dt.strftime("%Y-%m-%d")
    return rows.assign(**{COL_QUERY: period.to_numpy()}).sort_values(COL_QUERY, kind="stable")


def fit_ranker(train: pd.DataFrame, valid: pd.DataFrame, feature_names: list[str], config: TrainingConfig) -> Ranker:
    """Fit the production ranker (``config.ranker_rows``) with early stopping on ``valid``.

    ``two_part``: a conversion part (``approached``) and an approach part (``all``, the same
    features), each divided by the standard deviation of its scores on the validation candidates,
    added with ``approach_weight`` on the approach part and merged into one booster
    (``Ranker.blend``): score = P(comes | approached) + how likely the zone is to approach and engage.
    """
    if config.ranker_rows != "two_part":
        return _fit_part(train, valid, feature_names, config)
    conversion = _fit_part(train, valid, feature_names, config.model_copy(update={"ranker_rows": "approached"}))
    approach = _fit_part(train, valid, feature_names, config.model_copy(update={"ranker_rows": "all"}))
    parts = [(conversion, 1.0), (approach, config.approach_weight)]
    weights = [(r, w / max(float(np.std(r.predict(valid))), 1e-12)) for r, w in parts if w > 0]
    return Ranker.blend(weights, **make_ranker(config).get_params())


def _fit_part(train: pd.DataFrame, valid: pd.DataFrame, feature_names: list[str], config: TrainingConfig) -> Ranker:
    """Fit on ``train`` rows with early stopping on ``valid`` (rows and queries by ``ranker_rows``).

    Training queries are pooled per period; early stopping watches the approached validation pairs
    per (node, period): a couple of pooled validation queries give an NDCG too noisy to stop on
    (measured: it stopped after 2–7 trees), a hundred (node, period) queries do not.
    """
    train, valid = ranker_rows(train, config), ranker_rows(valid, config, pooled=False)
    feature_names = model_features(feature_names, config)
    if not (train[COL_LABEL] > 0).any():
        raise ValueError("The training periods have no approached enterprise with a label above 0; nothing to learn.")
    return make_ranker(config).fit(
        train[feature_names],
        train[COL_LABEL].to_numpy(dtype=np.float64),
        group=query_groups(train),
        eval_set=(valid[feature_names], valid[COL_LABEL].to_numpy(dtype=np.float64)),
        eval_group=query_groups(valid),
    )


def score_systems(
    test: pd.DataFrame,
    feature_names: list[str],
    ranker: Ranker,
    logistic: LogisticBaseline | None,
    oracle: pd.DataFrame | None,
) -> dict[str, np.ndarray]:
    """Scores of each system on the test rows."""
    X = test[feature_names]
    scores = {"ranker": ranker.predict(X), "similarity": similarity_score(X), "heuristic": baseline_heuristic_score(X)}
    if logistic is not None:
        scores["logistic"] = logistic.predict(X)
    if oracle is not None:
        scores["oracle"] = oracle_scores(test[[COL_NODE_ID, COL_ENTERPRISE_ID]], oracle)
    return scores


def evaluate_systems(test: pd.DataFrame, scores: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """The metrics of ``training.evaluate.evaluate_ranking`` for every system on the same rows."""
    q, y = test[COL_QUERY].to_numpy(), test[COL_LABEL].to_numpy(dtype=np.float64)
    return {name: evaluate_ranking(q, y, s, ndcg_cutoffs=NDCG_CUTOFFS) for name, s in scores.items()}


def evaluate_approached(test: pd.DataFrame, scores: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Metrics among approached test pairs only, one query per test period (see ``TrainResult``)."""
    mask = test[COL_APPROACHED].to_numpy(dtype=bool)
    if not mask.any():
        return {}
    q = test[COL_AS_OF].to_numpy()[mask]
    y = test[COL_LABEL].to_numpy(dtype=np.float64)[mask]
    return {name: evaluate_ranking(q, y, s[mask], ndcg_cutoffs=NDCG_CUTOFFS) for name, s in scores.items()}


def train_and_evaluate(
    training_set: TrainingSet,
    config: TrainingConfig,
    oracle: pd.DataFrame | None = None,
    fingerprints: Mapping[str, str] | None = None,
) -> TrainResult:
    """Split by time, fit ranker and logistic baseline, evaluate every system on the test periods."""
    frame, names = training_set.frame, training_set.feature_names
    split = time_split(frame[COL_AS_OF], config.valid_periods, config.test_periods)
    train, valid, test = split_frame(frame, split)
    train = subsample_negatives(train, config.max_negatives_per_query, config.random_state)
    ranker = fit_ranker(train, valid, names, config)
    logistic = LogisticBaseline(random_state=config.random_state).fit(train[names], train[COL_LABEL].to_numpy())
    scores = score_systems(test, names, ranker, logistic, oracle)
    test_out = test.assign(**{f"score_{k}": v for k, v in scores.items()})
    from models.manifest import fingerprint_frame

    fps = {"training_set": fingerprint_frame(frame), **dict(fingerprints or {})}
    counts = {
        "rows_train": len(train), "rows_valid": len(valid), "rows_test": len(test),
        "queries_train": int(train[COL_QUERY].nunique()), "queries_valid": int(valid[COL_QUERY].nunique()),
        "queries_test": int(test[COL_QUERY].nunique()), "best_iteration": ranker.best_iteration_,
        "rows_ranker_train": len(ranker_rows(train, config)),
        "queries_ranker_train": int(ranker_rows(train, config)[COL_QUERY].nunique()),
    }  # fmt: skip
    importance = {str(k): float(v) for k, v in ranker.feature_importance("gain").items()}
    return TrainResult(
        ranker, split, evaluate_systems(test, scores), test_out, fps, counts, importance,
        evaluate_approached(test, scores),
    )  # fmt: skip


def metrics_table(metrics: Mapping[str, Mapping[str, float]], reference: str = "similarity") -> list[dict[str, object]]:
    """Rows for printing: one per system with NDCG@10/20/50, recall@50, MAP and NDCG@20 relative to ``reference``."""
    base = metrics.get(reference, {}).get("ndcg@20", float("nan"))
    rows: list[dict[str, object]] = []
    for name in [s for s in SYSTEMS if s in metrics] + [s for s in metrics if s not in SYSTEMS]:
        m = metrics[name]
        rows.append(
            {"system": name, **{k: round(m[k], 4) for k in ("ndcg@10", "ndcg@20", "ndcg@50", "recall@50", "map")},
             f"ndcg@20 / {reference}": round(m["ndcg@20"] / base, 3) if base else float("nan")}
        )  # fmt: skip
    return rows
