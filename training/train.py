"""Fit every model family on a time split, pick the best by expected signings, evaluate it (pure).

``train_and_evaluate`` is what ``sansetu train`` calls between loading data and logging to MLflow
(docs/ranking.md, "The gate"):

1. split the queries by time into train / valid / test periods;
2. fit the approach propensity ``π = P(approached | x, node, period)`` on the full candidate pools
   of the train and validation periods (``training.signing.ApproachPropensity``);
3. fit each family of ``training.families`` — ``binary_ipw`` (LightGBM binary on signed (签约/落地),
   approached pairs weighted by the clipped inverse propensity), ``binary`` (the same, unweighted),
   ``logistic`` (L2 logistic regression, weighted) and ``lambdarank`` (the LightGBM lambdarank parts
   on graded stages) — and calibrate each one's margin to P(签约 | approached) on the validation
   periods' approached pairs (isotonic, weighted);
4. judge each family on the validation periods as the product lists firms: per (node, period) the
   candidates whose ``fit`` reaches ``fit_threshold``, ordered by the family's score, top k; the
   value is the doubly robust off-policy estimate of expected signings@k (``training.offpolicy``)
   with one direct model for all lists (the mean calibrated probability of all families);
   the best family (ties: the earlier in ``training.families``) is the run's model;
5. score the test periods with every family, the run's model (``ranker``), similarity (the
   product's fused retrieval order), the heuristic, random and the oracle (the sample's truth when
   given, else its oracle table), with the same off-policy estimate, the truth's expected
   signings@k when a truth is given, and the older NDCG metrics.

On the sample zone the truth is reported beside the estimate and never used to choose.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pandas as pd

from features.pairs import COL_AS_OF, RETRIEVAL_FEATURES
from features.relocation import RELOCATION_FEATURE_NAMES
from features.schema import COL_ENTERPRISE_ID, COL_NODE_ID
from models.ranker import Ranker
from models.scorer import Calibration, SigningScorer, isotonic_calibration, platt_calibration
from training.baselines import baseline_heuristic_score, oracle_scores, similarity_score
from training.config import DEFAULT_FAMILIES, TrainingConfig
from training.dataset import (
    COL_APPROACHED,
    COL_FIT,
    COL_LABEL,
    COL_QUERY,
    COL_SIGNED,
    TrainingSet,
    query_groups,
    subsample_negatives,
)
from training.evaluate import NDCG_CUTOFFS, evaluate_ranking
from training.offpolicy import COL_PREDICTED, COL_PROPENSITY, COL_RANK, dr_estimate, snips_estimate
from training.signing import fit_approach_propensity, fit_signing_model, signing_weights
from training.splits import TimeSplit, split_frame, time_split

log = logging.getLogger(__name__)

FAMILIES: Final = DEFAULT_FAMILIES
BASELINES: Final = ("similarity", "heuristic", "random", "oracle")
TIE_KS: Final = (10, 5)  # the gate's tie-break cut-offs (``beats``)
SYSTEMS: Final = ("ranker", *FAMILIES, *BASELINES)
Truth = Callable[[pd.DataFrame], np.ndarray]
"""P(签约 | approached) for rows ``node_id, enterprise_id, as_of`` (the sample zone's generator)."""


@dataclass
class TrainResult:
    """Everything a training run produced.

    Attributes:
        model: the run's model (the family that won on the validation periods).
        family: its family.
        split: query periods of train / valid / test.
        metrics: system -> metric -> value on the test periods (``SYSTEMS``; ``ranker`` is ``model``).
        test: the test rows (keys, labels, features, ``propensity``) with ``score_<system>`` columns.
        fingerprints: name -> sha256 of the data the run used.
        counts: rows and queries per split.
        feature_importance: the model's importance per feature (gain, or |coefficient| for logistic).
        metrics_approached: NDCG among the approached test pairs only (one query per test period).
        validation: family -> the gate's figures on the validation periods (``ope_signings@k``,
            ``snips_signings@k``, ``coverage@k`` and, with a truth, ``signings@k``).
        scorers: family -> its fitted, calibrated model.
        valid: the validation rows the gate judged on (with ``propensity``; the registry re-judges the
            current champion on them).
        fit_threshold: the fit a listed firm needs (``ranking.fit_threshold``).
        judge: the direct model of the run's doubly robust estimates (:func:`judge_model`).
    """

    model: SigningScorer
    family: str
    split: TimeSplit
    metrics: dict[str, dict[str, float]]
    test: pd.DataFrame
    fingerprints: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    feature_importance: dict[str, float] = field(default_factory=dict)
    metrics_approached: dict[str, dict[str, float]] = field(default_factory=dict)
    validation: dict[str, dict[str, float]] = field(default_factory=dict)
    scorers: dict[str, SigningScorer] = field(default_factory=dict)
    valid: pd.DataFrame | None = None
    fit_threshold: float = 0.5
    judge: MeanJudge | None = None


# ---------------------------------------------------------------- features


def model_features(feature_names: list[str], config: TrainingConfig) -> list[str]:
    """The features the ranker sees: ``feature_names`` minus ``config.excluded_features`` (order kept)."""
    unknown = sorted(set(config.excluded_features) - set(feature_names))
    if unknown:
        raise ValueError(f"training.excluded_features names unknown features {unknown}; known: {feature_names}.")
    return [n for n in feature_names if n not in set(config.excluded_features)]


def signing_features(frame: pd.DataFrame, feature_names: list[str], config: TrainingConfig) -> list[str]:
    """The signing families' features: ``model_features`` less the retrieval ranks and scores (inputs
    of fit, not of propensity), plus the relocation features the frame carries (fit among them)."""
    base = [n for n in model_features(feature_names, config) if n not in RETRIEVAL_FEATURES]
    return base + [c for c in RELOCATION_FEATURE_NAMES if c in frame.columns and c not in base]


# ---------------------------------------------------------------- the lambdarank family


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
    """Fit the lambdarank family (``config.ranker_rows``) with early stopping on ``valid``.

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


def calibrate_on(margin: np.ndarray, valid: pd.DataFrame, config: TrainingConfig) -> Calibration:
    """Margin -> P(签约 | approached) on the approached validation rows, weighted by 1 / π (clipped)."""
    a = valid[COL_APPROACHED].to_numpy(dtype=bool)
    y = valid[COL_SIGNED].to_numpy(dtype=np.float64)[a]
    w = signing_weights(valid[COL_PROPENSITY].to_numpy()[a], config.max_weight)
    if len(np.unique(y)) < 2:
        return Calibration("none")
    fit = isotonic_calibration if config.calibration == "isotonic" else platt_calibration
    return fit(np.asarray(margin)[a], y, w)


def lambdarank_scorer(
    train: pd.DataFrame, valid: pd.DataFrame, names: list[str], config: TrainingConfig
) -> SigningScorer:
    import lightgbm as lgb

    ranker = fit_ranker(train, valid, names, config)
    booster = lgb.Booster(model_str=ranker.booster_.model_to_string(num_iteration=ranker.best_iteration_))
    scorer = SigningScorer("lambdarank", list(ranker.feature_names_), Calibration("none"), booster=booster)
    scorer.calibration = calibrate_on(scorer.margin(valid), valid, config)
    return scorer


# ---------------------------------------------------------------- fitting every family


def fit_families(
    train: pd.DataFrame, valid: pd.DataFrame, names: list[str], config: TrainingConfig
) -> dict[str, SigningScorer]:
    """Each family of ``config.families``, fitted on ``train`` and calibrated on ``valid`` (logged)."""
    feats = signing_features(train, names, config)
    params = {"n_estimators": config.n_estimators, "learning_rate": config.learning_rate,
              "num_leaves": config.num_leaves, "min_child_samples": config.min_child_samples,
              "early_stopping_rounds": config.early_stopping_rounds, "random_state": config.random_state,
              "n_jobs": config.n_jobs, "calibration": config.calibration}  # fmt: skip
    spec = {"binary_ipw": ("lightgbm", "ipw"), "binary": ("lightgbm", "none"), "logistic": ("logistic", "ipw")}
    out: dict[str, SigningScorer] = {}
    for i, family in enumerate(config.families, 1):
        t0 = time.perf_counter()
        if family == "lambdarank":
            sub = subsample_negatives(train, config.max_negatives_per_query, config.random_state)
            out[family] = lambdarank_scorer(sub, valid, names, config)
        else:
            kind, weighting = spec[family]
            model = fit_signing_model(train, valid, feats, weighting=weighting,  # type: ignore[arg-type]
                                      max_weight=config.max_weight, family=kind, **params)  # fmt: skip
            out[family] = model.scorer(family)
        log.info("train: family %d/%d %s fitted on %d rows (%d approached), %.1f s", i, len(config.families),
                 family, len(train), int(train[COL_APPROACHED].sum()), time.perf_counter() - t0)  # fmt: skip
    return out


@dataclass(frozen=True)
class MeanJudge:
    """The direct model of every doubly robust estimate: the mean calibrated P(签约 | approached) of all
    the run's families whose score is a probability.

    Why not one family's model: the logs cover 1–3 % of a fit-gated list's places on the sample zone,
    so the estimate is mostly Σ of the direct model over the list, and the ordering that maximises
    that sum is the direct model's own. Judged by ``binary_ipw``'s model, ``binary_ipw`` won 11 of 12
    benchmark runs while ordering the top 5 worse than two other families on the truth. The mean of
    every family still favours their consensus; that limit is documented (docs/ranking.md, "The gate").
    """

    members: tuple[SigningScorer, ...]

    @property
    def family(self) -> str:
        return "mean(" + ", ".join(m.family for m in self.members) + ")"

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(np.mean([m.predict(X) for m in self.members], axis=0), dtype=np.float64)


def judge_model(families: Mapping[str, SigningScorer]) -> MeanJudge:
    """:class:`MeanJudge` of the families whose calibration gives a probability (all of them when none does)."""
    members = tuple(s for s in families.values() if s.is_probability) or tuple(families.values())
    return MeanJudge(members)


# ---------------------------------------------------------------- judging lists


def fit_lists(frame: pd.DataFrame, score: np.ndarray, k: int, fit_threshold: float) -> pd.DataFrame:
    """Per (node, as_of): the rows whose fit reaches ``fit_threshold``, by score (ties: firm id), top k.

    A frame without a known ``fit`` (no fit model ran) lists every row.

    Returns ``node_id, enterprise_id, as_of, rank`` and the positions of the rows in ``frame`` (``row``).
    """
    known = COL_FIT in frame and bool(frame[COL_FIT].notna().any())  # no fit model ran: no gate
    fit = pd.to_numeric(frame[COL_FIT], errors="coerce").fillna(0.0).to_numpy() if known else None
    keep = np.ones(len(frame), dtype=bool) if fit is None else fit >= fit_threshold
    rows = pd.DataFrame({COL_NODE_ID: frame[COL_NODE_ID].astype(str).to_numpy(),
                         COL_ENTERPRISE_ID: frame[COL_ENTERPRISE_ID].astype(str).to_numpy(),
                         COL_AS_OF: pd.to_datetime(frame[COL_AS_OF]).to_numpy(), "score": np.asarray(score),
                         "row": np.arange(len(frame))})[keep]  # fmt: skip
    rows = rows.sort_values([COL_AS_OF, COL_NODE_ID, "score", COL_ENTERPRISE_ID],
                            ascending=[True, True, False, True], kind="stable")  # fmt: skip
    rows[COL_RANK] = rows.groupby([COL_AS_OF, COL_NODE_ID], sort=False).cumcount().to_numpy() + 1
    return rows[rows[COL_RANK] <= k].drop(columns="score").reset_index(drop=True)


def list_metrics(
    frame: pd.DataFrame,
    score: np.ndarray,
    predicted: np.ndarray,
    *,
    k: int,
    fit_threshold: float,
    max_weight: float,
    truth: np.ndarray | None = None,
) -> dict[str, float]:
    """Expected signings@k of the fit-gated lists that ``score`` orders on ``frame``'s queries.

    ``ope_signings@k`` (shrunk doubly robust, direct model ``predicted`` per row; ``dr_shrinkage@k``
    is the factor λ its correction kept), ``snips_signings@k``, ``coverage@k`` (share of places the
    logs approached), ``places@k`` per unit and, with ``truth``
    (P(签约 | approached) per row), ``signings@k``. Units are the (node, period) queries of ``frame``.
    """
    lists = fit_lists(frame, score, k, fit_threshold)
    logs = frame[[COL_NODE_ID, COL_ENTERPRISE_ID, COL_AS_OF, COL_APPROACHED, COL_SIGNED, COL_PROPENSITY]]
    logs = logs.assign(
        **{COL_NODE_ID: logs[COL_NODE_ID].astype(str), COL_ENTERPRISE_ID: logs[COL_ENTERPRISE_ID].astype(str)}
    )
    dr = dr_estimate(lists.assign(**{COL_PREDICTED: np.asarray(predicted)[lists["row"].to_numpy()]}), logs, k=k,
                     max_weight=max_weight)  # fmt: skip
    sn = snips_estimate(lists, logs, k=k, max_weight=max_weight)
    n_units = int(frame.groupby([COL_NODE_ID, COL_AS_OF]).ngroups)
    # units whose list is empty sign nothing: the estimators average over the units with places
    out = {f"ope_signings@{k}": dr.estimate * dr.n_units / n_units if dr.n_units else 0.0,
           f"snips_signings@{k}": sn.estimate * sn.n_units / n_units if sn.n_units else 0.0,
           f"coverage@{k}": dr.coverage, f"places@{k}": len(lists) / n_units,
           f"dr_shrinkage@{k}": dr.shrinkage}  # fmt: skip
    if truth is not None:
        out[f"signings@{k}"] = float(np.asarray(truth)[lists["row"].to_numpy()].sum() / n_units)
    return out


# ---------------------------------------------------------------- the run


def _with_propensity(
    train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame, names: list[str]
) -> list[pd.DataFrame]:
    t0 = time.perf_counter()
    model = fit_approach_propensity(pd.concat([train, valid]), names)
    log.info("train: approach propensity fitted on %d train+valid rows, %.1f s", len(train) + len(valid),
             time.perf_counter() - t0)  # fmt: skip
    return [d.assign(**{COL_PROPENSITY: model.predict(d)}) for d in (train, valid, test)]


def gate_table(
    valid: pd.DataFrame,
    scorers: Mapping[str, SigningScorer],
    config: TrainingConfig,
    fit_threshold: float,
    truth: Truth | None = None,
    judge: MeanJudge | SigningScorer | None = None,
) -> dict[str, dict[str, float]]:
    """Family -> :func:`gate_metrics` on the validation rows (k of ``promotion_metric``, else 20);
    ``judge``: the direct model of the estimates (default :func:`judge_model` of ``scorers``)."""
    predicted = (judge or judge_model(scorers)).predict(valid)
    t = None if truth is None else truth(valid[[COL_NODE_ID, COL_ENTERPRISE_ID, COL_AS_OF]])
    return {
        name: gate_metrics(valid, s.margin(valid), predicted, k=promotion_k(config), fit_threshold=fit_threshold,
                           max_weight=config.max_weight, truth=t)
        for name, s in scorers.items()
    }  # fmt: skip


def judged_ks(k: int) -> list[int]:
    """The cut-offs the gate compares, in order: ``k``, then the smaller of :data:`TIE_KS`."""
    return [k, *[c for c in TIE_KS if c < k]]


def gate_metrics(
    frame: pd.DataFrame,
    score: np.ndarray,
    predicted: np.ndarray,
    *,
    k: int,
    fit_threshold: float,
    max_weight: float,
    truth: np.ndarray | None = None,
) -> dict[str, float]:
    """:func:`list_metrics` at ``k`` and at each tie-break cut-off of :func:`judged_ks`."""
    out: dict[str, float] = {}
    for cut in judged_ks(k):
        out.update(list_metrics(frame, score, predicted, k=cut, fit_threshold=fit_threshold,
                                max_weight=max_weight, truth=truth))  # fmt: skip
    return out


def gate_key(figures: Mapping[str, float], k: int) -> tuple[float, ...]:
    """``ope_signings@k`` then the tie-breaks, a NaN as −inf (it never wins)."""
    values = (figures.get(f"ope_signings@{c}", float("nan")) for c in judged_ks(k))
    return tuple(v if np.isfinite(v) else -np.inf for v in values)


def beats(a: tuple[float, ...], b: tuple[float, ...], margin: float = 0.0) -> bool:
    """Lexicographic: ``a`` beats ``b`` at the first cut-off where they differ (by more than a relative
    1e-9; the first cut-off needs more than ``margin``). When the lists are shorter than k, every
    ordering lists the same firms and ties at k: the smaller cut-offs then say which puts the likely
    signers first."""
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if abs(x - y) <= 1e-9 * max(1.0, abs(y)) or (np.isinf(x) and np.isinf(y) and x == y):
            continue
        return bool(x > y + (margin if i == 0 else 0.0))
    return False


def promotion_k(config: TrainingConfig) -> int:
    metric = config.promotion_metric
    return int(metric.split("@")[1]) if metric.startswith("ope_signings@") else 20


def best_family(table: Mapping[str, Mapping[str, float]], k: int, order: list[str]) -> str:
    """The family whose :func:`gate_key` is highest (ties: the earlier in ``order``)."""
    families = [f for f in order if f in table]
    best = families[0]
    for f in families[1:]:
        if beats(gate_key(table[f], k), gate_key(table[best], k)):
            best = f
    return best


def score_systems(
    test: pd.DataFrame,
    feature_names: list[str],
    scorers: Mapping[str, SigningScorer],
    model: SigningScorer,
    oracle: pd.DataFrame | None,
    truth: Truth | None = None,
    random_state: int = 0,
) -> dict[str, np.ndarray]:
    """Scores of each system on the test rows (``SYSTEMS``; ``ranker`` = ``model``)."""
    X = test[feature_names]
    # families order by their margin: the same order as the calibrated probability, without its ties
    scores = {"ranker": model.margin(test), **{name: s.margin(test) for name, s in scorers.items()}}
    scores["similarity"] = product_similarity(test)
    scores["heuristic"] = baseline_heuristic_score(X)
    scores["random"] = np.random.default_rng(random_state).random(len(test))
    if truth is not None:
        scores["oracle"] = np.asarray(truth(test[[COL_NODE_ID, COL_ENTERPRISE_ID, COL_AS_OF]]), dtype=np.float64)
    elif oracle is not None:
        scores["oracle"] = oracle_scores(test[[COL_NODE_ID, COL_ENTERPRISE_ID]], oracle)
    return scores


def product_similarity(frame: pd.DataFrame) -> np.ndarray:
    """The product's search order: the fused retrieval ``similarity`` (dense score where the frame has
    none); a firm no retriever returned ranks last."""
    fused = pd.to_numeric(frame["similarity"], errors="coerce") if "similarity" in frame else None
    s = similarity_score(frame) if fused is None or fused.isna().all() else fused.to_numpy(dtype=np.float64)
    return np.nan_to_num(np.asarray(s, dtype=np.float64), nan=-1.0)


def evaluate_systems(
    test: pd.DataFrame,
    scores: Mapping[str, np.ndarray],
    predicted: np.ndarray | None = None,
    *,
    k: int = 20,
    fit_threshold: float = 0.5,
    max_weight: float = 50.0,
    truth: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """NDCG metrics (``training.evaluate.evaluate_ranking``) and, with ``predicted`` (the direct
    model's P(签约 | approached) per row) and the ``propensity``/``signed`` columns, the list metrics
    of :func:`gate_metrics` (at k and the tie-break cut-offs) for every system on the same rows."""
    q, y = test[COL_QUERY].to_numpy(), test[COL_LABEL].to_numpy(dtype=np.float64)
    out = {name: evaluate_ranking(q, y, s, ndcg_cutoffs=NDCG_CUTOFFS) for name, s in scores.items()}
    if predicted is not None and COL_PROPENSITY in test and COL_SIGNED in test:
        for name, s in scores.items():
            out[name].update(gate_metrics(test, s, predicted, k=k, fit_threshold=fit_threshold,
                                          max_weight=max_weight, truth=truth))  # fmt: skip
    return out


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
    *,
    truth: Truth | None = None,
    fit_threshold: float = 0.5,
    production: SigningScorer | None = None,
) -> TrainResult:
    """Split by time, fit every family, pick the best on validation, evaluate every system on test.

    ``production``: a registered model to evaluate as ``ranker`` instead of the run's pick
    (``sansetu evaluate``); features it reads that the rows lack are NaN.
    """
    t0 = time.perf_counter()
    frame, names = training_set.frame, training_set.feature_names
    split = time_split(frame[COL_AS_OF], config.valid_periods, config.test_periods)
    train, valid, test = _with_propensity(*split_frame(frame, split), names)
    log.info("train: %d / %d / %d rows in the train / valid / test periods", len(train), len(valid), len(test))
    scorers = fit_families(train, valid, names, config)
    judge = judge_model(scorers)
    table = gate_table(valid, scorers, config, fit_threshold, truth, judge)
    metric = f"ope_signings@{promotion_k(config)}"
    family = best_family(table, promotion_k(config), list(config.families))
    model = scorers[family]
    log.info("train: %s wins on the validation periods (%s %s), %.1f s", family, metric,
             " / ".join(f"{v:.4f}" for v in gate_key(table[family], promotion_k(config))), time.perf_counter() - t0)  # fmt: skip
    scores = score_systems(test, names, scorers, model, oracle, truth, config.random_state)
    if production is not None:
        missing = [n for n in production.feature_names if n not in test.columns]
        scores["ranker"] = production.margin(test.assign(**{n: np.nan for n in missing}))
    t = scores.get("oracle") if truth is not None else None
    metrics = evaluate_systems(test, scores, judge.predict(test), k=promotion_k(config),
                               fit_threshold=fit_threshold, max_weight=config.max_weight, truth=t)  # fmt: skip
    from models.manifest import fingerprint_frame

    counts = {
        "rows_train": len(train), "rows_valid": len(valid), "rows_test": len(test),
        "queries_train": int(train[COL_QUERY].nunique()), "queries_valid": int(valid[COL_QUERY].nunique()),
        "queries_test": int(test[COL_QUERY].nunique()),
        "approached_train": int(train[COL_APPROACHED].sum()), "signed_train": int(np.nansum(train[COL_SIGNED])),
    }  # fmt: skip
    return TrainResult(
        model, family, split, metrics, test.assign(**{f"score_{k}": v for k, v in scores.items()}),
        {"training_set": fingerprint_frame(frame), **dict(fingerprints or {})}, counts, model.importance(),
        evaluate_approached(test, scores), table, scorers, valid, fit_threshold, judge,
    )  # fmt: skip


def metrics_table(
    metrics: Mapping[str, Mapping[str, float]], reference: str = "similarity", k: int = 20
) -> list[dict[str, object]]:
    """Rows for printing: one per system with expected signings@k (estimate, truth when known), coverage,
    NDCG@20 and the estimate relative to ``reference``."""
    key = f"ope_signings@{k}"
    base = metrics.get(reference, {}).get(key, float("nan"))
    rows: list[dict[str, object]] = []
    for name in [s for s in SYSTEMS if s in metrics] + [s for s in metrics if s not in SYSTEMS]:
        m = metrics[name]
        row: dict[str, object] = {"system": name}
        for col in (key, f"signings@{k}", "signings@5", f"coverage@{k}", f"places@{k}", "ndcg@20"):
            if col in m:
                row[col] = round(float(m[col]), 4)
        if key in m:
            row[f"{key} / {reference}"] = round(float(m[key]) / base, 3) if base else float("nan")
        rows.append(row)
    return rows
