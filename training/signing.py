"""Who signs: the signing label, the approach-propensity model and P(sign | approached) (pure).

The ranker's old label graded every stage and gave every unapproached candidate 0, so it learned
whom the team approaches (its habits) as much as who comes. Here the target is the zone's: **signed**.

Signing label (:func:`signing_labels`)
    Per approached (node, enterprise) pair, the approach of :func:`training.dataset.approaches` (it
    starts at the pair's first record; a pair is one approach), ``signed`` = 1 when a record of
    签约 or 落地 is dated within ``label_horizon_days`` of the start, else 0. Intermediate stages
    (接洽 … 洽谈) can be reached out of courtesy: they are kept only as the auxiliary ``stage_gain``
    (the best ``stage_gains`` value reached), never as the label.
Approach propensity (:class:`ApproachPropensity`)
    ``π = P(approached | x, node, period)`` among the candidate pool of each query (node, period):
    an L2-regularised logistic regression on the standardised pair features (median-imputed, with
    a missing indicator per feature that has gaps) plus one unpenalised intercept per query. The
    per-query intercepts absorb everything that is constant within a (node, period) — how busy the
    team was, how many firms the node's pool holds — and make the model calibrated in the large per
    query: at the fit, the propensities of a query's candidates sum to the number it approached.
Signing model (:class:`SigningModel`, :func:`fit_signing_model`)
    ``P(sign | approached, x)`` fitted on approached pairs only, each weighted by
    ``min(1 / π, max_weight)`` (clipped, then self-normalised to mean 1), so that the fit serves
    the population of candidates rather than the firms the team used to pick: unweighted, a model
    that cannot represent the truth exactly spends its capacity where the team looked. Two families
    behind one interface: ``lightgbm`` (binary, deterministic) and ``logistic`` (sklearn,
    L2-regularised). The raw score is calibrated on a validation period with isotonic regression or
    Platt scaling, fitted with the same weights, so ``predict`` is a probability: the published
    ``score``.

Everything is seeded (``random_state``) and single-threaded by default (``n_jobs=1``); fitting logs
its steps, rows and elapsed seconds (``logging``, logger ``training.signing``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import pandas as pd

from features.pairs import COL_AS_OF
from features.schema import COL_ENTERPRISE_ID, COL_NODE_ID, check_columns
from models.scorer import Calibration, LinearMargin, SigningScorer, isotonic_calibration, platt_calibration
from training.config import TrainingConfig
from training.dataset import COL_APPROACHED, COL_LABEL, SIGNING_STAGES, approaches, mature
from training.offpolicy import COL_PROPENSITY, COL_SIGNED, DEFAULT_MAX_WEIGHT, inverse_propensity_weights

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

COL_STAGE_GAIN: Final = "stage_gain"
FAMILIES: Final = ("lightgbm", "logistic")
CALIBRATIONS: Final = ("isotonic", "platt", "none")
_EPS: Final = 1e-6


# ---------------------------------------------------------------- the label


def signing_labels(
    outcomes: pd.DataFrame,
    config: TrainingConfig | None = None,
    *,
    signing_stages: Sequence[str] = SIGNING_STAGES,
    mature_only: bool = False,
) -> pd.DataFrame:
    """One row per approached (node, enterprise): did it sign within the horizon?

    Args:
        outcomes: the outcome records (``enterprise_id, node_id, stage, date``).
        config: ``stage_gains``, ``label_horizon_days``, ``query_period``, ``label_maturity_days``
            (default ``TrainingConfig()``).
        signing_stages: the stages that count as signed (default 签约, 落地).
        mature_only: keep only approaches of periods at least ``label_maturity_days`` older than the
            newest record (:func:`training.dataset.mature`): younger ones may still sign.

    Returns:
        ``node_id, enterprise_id, started, as_of, signed`` (0.0 / 1.0) ``, stage_gain`` (auxiliary:
        the best stage gain reached within the horizon), sorted by ``as_of, node_id, enterprise_id``.
    """
    config = TrainingConfig() if config is None else config
    unknown = sorted(set(signing_stages) - set(config.stage_gains))
    if unknown:
        raise ValueError(
            f"signing_stages {unknown} are not stages of training.stage_gains; known stages are "
            f"{sorted(config.stage_gains)}."
        )
    graded = approaches(outcomes, config)
    signed_gains = {s: int(s in set(signing_stages)) for s in config.stage_gains}
    signed = approaches(outcomes, config.model_copy(update={"stage_gains": signed_gains}))
    keys = [COL_NODE_ID, COL_ENTERPRISE_ID, COL_AS_OF]
    if not graded[keys].equals(signed[keys]):  # same records, same grouping: one approach per pair in both
        raise RuntimeError("approaches() gave the graded and the signed labelling different rows.")
    out = signed.rename(columns={COL_LABEL: COL_SIGNED}).assign(**{COL_STAGE_GAIN: graded[COL_LABEL].to_numpy()})
    out[COL_SIGNED] = out[COL_SIGNED].astype(np.float64)
    return mature(out, outcomes, config.label_maturity_days) if mature_only else out


def attach_signed(frame: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (query rows ``node_id, enterprise_id, as_of, approached``) with a ``signed`` column.

    ``signed`` is the label of the approach that started in the row's period (``labels`` from
    :func:`signing_labels`); NaN on unapproached rows. An approached row without a label is an error.
    """
    check_columns(list(frame.columns), [COL_NODE_ID, COL_ENTERPRISE_ID, COL_AS_OF, COL_APPROACHED], "frame")
    check_columns(list(labels.columns), [COL_NODE_ID, COL_ENTERPRISE_ID, COL_AS_OF, COL_SIGNED], "labels")
    keys = [COL_NODE_ID, COL_ENTERPRISE_ID, COL_AS_OF]
    lab = labels[[*keys, COL_SIGNED]].astype({COL_NODE_ID: str, COL_ENTERPRISE_ID: str})
    lab[COL_AS_OF] = pd.to_datetime(lab[COL_AS_OF]).astype("datetime64[ns]")
    left = frame[keys].astype({COL_NODE_ID: str, COL_ENTERPRISE_ID: str})
    left[COL_AS_OF] = pd.to_datetime(left[COL_AS_OF]).astype("datetime64[ns]")
    y = left.merge(lab, on=keys, how="left", validate="many_to_one")[COL_SIGNED].to_numpy(dtype=np.float64)
    approached = frame[COL_APPROACHED].to_numpy(dtype=bool)
    missing = approached & np.isnan(y)
    if missing.any():
        raise ValueError(f"labels have no approach for {int(missing.sum())} approached rows of frame.")
    return frame.assign(**{COL_SIGNED: np.where(approached, y, np.nan)})


# ---------------------------------------------------------------- design matrix


class _Standardiser:
    """Median imputation, a missing indicator per feature with gaps, standardisation (fitted on train)."""

    def fit(self, X: pd.DataFrame) -> _Standardiser:
        values = X.to_numpy(dtype=np.float64)
        self.names_ = list(X.columns)
        med = np.nanmedian(np.where(np.isnan(values).all(axis=0), 0.0, values), axis=0)
        self.median_ = np.where(np.isnan(med), 0.0, med)
        self.gaps_ = np.isnan(values).any(axis=0)
        filled = self._fill(values)
        self.mean_ = filled.mean(axis=0)
        sd = filled.std(axis=0)
        self.scale_ = np.where(sd > 0, sd, 1.0)  # a constant column stays constant (0 after centring)
        return self

    def _fill(self, values: np.ndarray) -> np.ndarray:
        missing = np.isnan(values)
        filled = np.where(missing, self.median_, values)
        return np.hstack([filled, missing[:, self.gaps_].astype(np.float64)])

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        check_columns(list(X.columns), self.names_, "X")
        return (self._fill(X[self.names_].to_numpy(dtype=np.float64)) - self.mean_) / self.scale_


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * x)))


# ---------------------------------------------------------------- approach propensity


class ApproachPropensity:
    """P(approached | x, node, period): L2 logistic regression with one intercept per query.

    Fitted by alternating Newton steps: the per-query intercepts (unpenalised, vectorised over
    queries) and the feature coefficients (penalty ``1 / C`` on standardised features).

    Args:
        C: inverse L2 strength on the feature coefficients (sklearn's convention).
        max_iter: alternating rounds at most.
        tol: stop when no coefficient and no query intercept moves by more than this.
        min_propensity: floor of the returned propensities (the weights are clipped anyway).
    """

    def __init__(self, *, C: float = 1.0, max_iter: int = 100, tol: float = 1e-6, min_propensity: float = 1e-4):
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.min_propensity = min_propensity

    def fit(self, frame: pd.DataFrame, feature_names: Sequence[str]) -> ApproachPropensity:
        """Learn from every candidate row: ``node_id, as_of, approached`` + ``feature_names``."""
        _check_positive("C", self.C, "ApproachPropensity")
        check_columns(list(frame.columns), [COL_NODE_ID, COL_AS_OF, COL_APPROACHED, *feature_names], "frame")
        t0 = time.perf_counter()
        self.feature_names_ = list(feature_names)
        self.standardiser_ = _Standardiser().fit(frame[self.feature_names_])
        X = self.standardiser_.transform(frame[self.feature_names_])
        a = frame[COL_APPROACHED].to_numpy(dtype=bool).astype(np.float64)
        q, self.queries_ = _query_codes(frame)
        n_q = len(self.queries_)
        n_a = np.bincount(q, weights=a, minlength=n_q)
        beta, delta = np.zeros(X.shape[1]), _logit(np.clip(n_a / np.bincount(q, minlength=n_q), _EPS, 1 - _EPS))
        lam = 1.0 / self.C
        it = 0
        while it < self.max_iter:
            it += 1
            eta = X @ beta
            for _ in range(3):  # the query intercepts: one Newton step each, all queries at once
                p = _sigmoid(eta + delta[q])
                step = np.bincount(q, weights=a - p, minlength=n_q) / np.maximum(
                    np.bincount(q, weights=p * (1 - p), minlength=n_q), 1e-12
                )
                delta = np.clip(delta + step, -30.0, 30.0)
            p = _sigmoid(eta + delta[q])
            grad = X.T @ (a - p) - lam * beta
            hess = (X * (p * (1 - p))[:, None]).T @ X + lam * np.eye(X.shape[1])
            move = np.linalg.solve(hess, grad)
            beta = beta + move
            if max(float(np.abs(move).max(initial=0.0)), float(np.abs(step).max(initial=0.0))) < self.tol:
                break
        self.coef_, self.query_intercept_, self.n_iter_ = beta, delta, it
        log.info("approach propensity: %d rows, %d queries, %d approached, %d rounds, %.1f s",
                 len(frame), n_q, int(a.sum()), it, time.perf_counter() - t0)  # fmt: skip
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """(n,) propensities in [min_propensity, 1]; a query not seen at fit uses the mean intercept."""
        X = self.standardiser_.transform(frame[self.feature_names_])
        keys = pd.MultiIndex.from_frame(_query_frame(frame))
        pos = self.queries_.get_indexer(keys)
        delta = np.where(pos >= 0, self.query_intercept_[np.maximum(pos, 0)], float(self.query_intercept_.mean()))
        return np.clip(_sigmoid(X @ self.coef_ + delta), self.min_propensity, 1.0)


def _query_frame(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            COL_NODE_ID: frame[COL_NODE_ID].astype(str).to_numpy(),
            COL_AS_OF: pd.to_datetime(frame[COL_AS_OF]).astype("datetime64[ns]").to_numpy(),
        }
    )


def _query_codes(frame: pd.DataFrame) -> tuple[np.ndarray, pd.MultiIndex]:
    keys = pd.MultiIndex.from_frame(_query_frame(frame))
    codes, uniques = pd.factorize(keys)
    return np.asarray(codes, dtype=np.int64), pd.MultiIndex.from_tuples(list(uniques), names=keys.names)


def _logit(p: np.ndarray) -> np.ndarray:
    return np.asarray(np.log(p) - np.log1p(-p))


def fit_approach_propensity(
    frame: pd.DataFrame, feature_names: Sequence[str], *, C: float = 1.0, max_iter: int = 100
) -> ApproachPropensity:
    """:class:`ApproachPropensity` fitted on the candidate pools of ``frame`` (every row of each query)."""
    return ApproachPropensity(C=C, max_iter=max_iter).fit(frame, feature_names)


# ---------------------------------------------------------------- weights


def signing_weights(propensity: np.ndarray | pd.Series, max_weight: float | None = DEFAULT_MAX_WEIGHT) -> np.ndarray:
    """``min(1 / π, max_weight)``, self-normalised to mean 1 (so the effective sample keeps its size)."""
    w = inverse_propensity_weights(propensity, max_weight)
    return w / w.mean() if len(w) else w


# ---------------------------------------------------------------- the signing model


class SigningModel:
    """Calibrated P(sign | approached, x) with one interface over two families.

    Args:
        family: ``lightgbm`` (LGBMClassifier, binary) or ``logistic`` (sklearn, median-imputed,
            standardised, L2 with ``C``).
        calibration: ``isotonic`` or ``platt`` on the validation rows, or ``none``.
        n_estimators, learning_rate, num_leaves, min_child_samples, early_stopping_rounds: LightGBM.
        C: logistic regression's inverse L2 strength.
        random_state: LightGBM's seed.
        n_jobs: LightGBM's threads.
        log_every: log a line every this many boosting rounds.
    """

    def __init__(
        self,
        *,
        family: Literal["lightgbm", "logistic"] = "lightgbm",
        calibration: Literal["isotonic", "platt", "none"] = "isotonic",
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        num_leaves: int = 7,
        min_child_samples: int = 20,
        early_stopping_rounds: int | None = 50,
        C: float = 1.0,
        random_state: int = 42,
        n_jobs: int = 1,
        log_every: int = 50,
    ):
        self.family = family
        self.calibration = calibration
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.early_stopping_rounds = early_stopping_rounds
        self.C = C
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.log_every = log_every

    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray | pd.Series,
        *,
        sample_weight: np.ndarray | None = None,
        X_valid: pd.DataFrame | None = None,
        y_valid: np.ndarray | pd.Series | None = None,
        valid_weight: np.ndarray | None = None,
    ) -> SigningModel:
        """Fit on approached rows (``y`` 0/1), calibrate on the validation rows (weights optional)."""
        self._check_params(X_valid is not None)
        y_arr = _binary(y, "y")
        w = np.ones(len(y_arr)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if len(w) != len(y_arr) or len(X) != len(y_arr):
            raise ValueError(f"X ({len(X)}), y ({len(y_arr)}) and sample_weight ({len(w)}) must have equal lengths.")
        if len(np.unique(y_arr)) < 2:
            raise ValueError(
                f"y must hold both signed (1) and unsigned (0) rows; got only {np.unique(y_arr).tolist()}."
            )
        self.feature_names_ = list(X.columns)
        t0 = time.perf_counter()
        self.estimator_ = self._fit_family(X, y_arr, w, X_valid, y_valid, valid_weight)
        log.info("signing model (%s): fitted on %d approached rows (%d signed), %.1f s",
                 self.family, len(y_arr), int(y_arr.sum()), time.perf_counter() - t0)  # fmt: skip
        self.calibration_ = Calibration("sigmoid")
        if self.calibration != "none" and X_valid is not None and y_valid is not None:
            yv = _binary(y_valid, "y_valid")
            wv = np.ones(len(yv)) if valid_weight is None else np.asarray(valid_weight, dtype=np.float64)
            self.calibration_ = fit_calibration(self.calibration, self.predict_raw(X_valid), yv, wv)
            log.info("signing model: %s calibration on %d validation rows, %.1f s",
                     self.calibration, len(yv), time.perf_counter() - t0)  # fmt: skip
        return self

    def _check_params(self, has_valid: bool) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"The 'family' parameter of SigningModel must be one of {list(FAMILIES)}. Got {self.family!r} instead.")  # fmt: skip
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"The 'calibration' parameter of SigningModel must be one of {list(CALIBRATIONS)}. Got {self.calibration!r} instead.")  # fmt: skip
        if self.calibration != "none" and not has_valid:
            raise ValueError(f"SigningModel with calibration={self.calibration!r} needs X_valid and y_valid (a validation period); got none.")  # fmt: skip
        _check_positive("C", self.C, "SigningModel")

    def _fit_family(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        w: np.ndarray,
        X_valid: pd.DataFrame | None,
        y_valid: np.ndarray | pd.Series | None,
        valid_weight: np.ndarray | None,
    ) -> Any:
        if self.family == "logistic":
            from sklearn.linear_model import LogisticRegression

            self.standardiser_ = _Standardiser().fit(X)
            return LogisticRegression(C=self.C, max_iter=2000).fit(self.standardiser_.transform(X), y, sample_weight=w)
        import lightgbm as lgb

        model = lgb.LGBMClassifier(
            objective="binary", n_estimators=self.n_estimators, learning_rate=self.learning_rate,
            num_leaves=self.num_leaves, min_child_samples=self.min_child_samples, random_state=self.random_state,
            n_jobs=self.n_jobs, deterministic=True, force_row_wise=True, verbose=-1,
        )  # fmt: skip
        callbacks: list[Callable[..., None]] = [_progress_callback(self.log_every, self.n_estimators, len(y))]
        kwargs: dict[str, Any] = {}
        if X_valid is not None and y_valid is not None and self.early_stopping_rounds:
            callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
            kwargs = {"eval_X": (X_valid,), "eval_y": (_binary(y_valid, "y_valid"),), "eval_metric": "binary_logloss"}
            if valid_weight is not None:
                kwargs["eval_sample_weight"] = [np.asarray(valid_weight, dtype=np.float64)]
        return model.fit(X, y, sample_weight=w, callbacks=callbacks, **kwargs)

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        """(n,) the family's margin (log-odds before calibration); higher = more likely to sign."""
        check_columns(list(X.columns), self.feature_names_, "X")
        X = X[self.feature_names_]
        if self.family == "logistic":
            return np.asarray(self.estimator_.decision_function(self.standardiser_.transform(X)), dtype=np.float64)
        return np.asarray(self.estimator_.predict(X, raw_score=True), dtype=np.float64)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """(n,) calibrated P(sign | approached, x) in [0, 1]."""
        return self.calibration_.apply(self.predict_raw(X))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """(n, 2) ``[P(no sign), P(sign)]``, sklearn's shape."""
        p = self.predict(X)
        return np.column_stack([1.0 - p, p])

    def scorer(self, family: str | None = None, info: dict[str, Any] | None = None) -> SigningScorer:
        """The fitted model as a :class:`models.scorer.SigningScorer` (what is registered and published)."""
        common: dict[str, Any] = {"family": family or self.family, "feature_names": list(self.feature_names_),
                  "calibration": self.calibration_, "info": dict(info or {})}  # fmt: skip
        if self.family == "logistic":
            st, lr = self.standardiser_, self.estimator_
            linear = LinearMargin(
                names=tuple(st.names_), median=tuple(map(float, st.median_)), gaps=tuple(map(bool, st.gaps_)),
                mean=tuple(map(float, st.mean_)), scale=tuple(map(float, st.scale_)),
                coef=tuple(map(float, lr.coef_[0])), intercept=float(lr.intercept_[0]),
            )  # fmt: skip
            return SigningScorer(**common, linear=linear)
        import lightgbm as lgb

        best = int(getattr(self.estimator_, "best_iteration_", 0) or 0) or None
        booster = lgb.Booster(model_str=self.estimator_.booster_.model_to_string(num_iteration=best))
        return SigningScorer(**common, booster=booster)


def fit_calibration(method: str, margin: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> Calibration:
    """``isotonic`` or ``platt`` on (margin, y) with weights; ``none``: the model's own sigmoid."""
    if method == "isotonic":
        return isotonic_calibration(margin, y, w)
    if method == "platt":
        return platt_calibration(margin, y, w)
    return Calibration("sigmoid")


def _progress_callback(every: int, total: int, n_rows: int) -> Callable[..., None]:
    t0 = time.perf_counter()

    def callback(env: Any) -> None:
        step = env.iteration + 1
        if every and (step % every == 0 or step == total):
            log.info("signing model: step %d/%d, %d rows, %.1f s", step, total, n_rows, time.perf_counter() - t0)

    return callback


def _binary(y: np.ndarray | pd.Series, name: str) -> np.ndarray:
    arr = np.asarray(y, dtype=np.float64)
    bad = ~((arr == 0) | (arr == 1))
    if bad.any():
        raise ValueError(f"{name} must be 0 or 1 (signed); got {int(bad.sum())} other values, e.g. {arr[bad][:3].tolist()}.")  # fmt: skip
    return arr


def _check_positive(name: str, value: float, owner: str) -> None:
    if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
        raise ValueError(f"The '{name}' parameter of {owner} must be a float in the range (0, inf). Got {value!r} instead.")  # fmt: skip


def fit_signing_model(
    train: pd.DataFrame,
    valid: pd.DataFrame | None,
    feature_names: Sequence[str],
    *,
    weighting: Literal["ipw", "none"] = "ipw",
    max_weight: float | None = DEFAULT_MAX_WEIGHT,
    **params: Any,
) -> SigningModel:
    """P(sign | approached, x) from the approached rows of ``train``, calibrated on those of ``valid``.

    Args:
        train, valid: query rows with ``approached``, ``signed`` (:func:`attach_signed`),
            ``propensity`` (``ApproachPropensity.predict``; needed with ``weighting="ipw"``) and
            ``feature_names``; only approached rows are used.
        feature_names: the model's features.
        weighting: ``ipw`` weighs each row by its clipped, self-normalised inverse propensity
            (:func:`signing_weights`), training and calibration alike; ``none`` does not.
        max_weight: the clip.
        **params: :class:`SigningModel` parameters (``family``, ``calibration``, …); unknown names
            are an error listing the valid ones.
    """
    valid_params = set(SigningModel().__dict__)
    unknown = sorted(set(params) - valid_params)
    if unknown:
        raise TypeError(f"fit_signing_model got unknown parameters {unknown}; valid: {sorted(valid_params)}.")
    if weighting not in ("ipw", "none"):
        raise ValueError(f"The 'weighting' parameter must be one of ['ipw', 'none']. Got {weighting!r} instead.")
    t0 = time.perf_counter()
    tr = _approached_rows(train, feature_names, weighting, "train")
    va = None if valid is None else _approached_rows(valid, feature_names, weighting, "valid")
    w_tr = signing_weights(tr[COL_PROPENSITY], max_weight) if weighting == "ipw" else None
    w_va = signing_weights(va[COL_PROPENSITY], max_weight) if weighting == "ipw" and va is not None else None
    log.info("signing model: step 1/2 weights (%s) for %d train and %d valid approached rows",
             weighting, len(tr), 0 if va is None else len(va))  # fmt: skip
    model = SigningModel(**params).fit(
        tr[list(feature_names)], tr[COL_SIGNED], sample_weight=w_tr,
        X_valid=None if va is None else va[list(feature_names)], y_valid=None if va is None else va[COL_SIGNED],
        valid_weight=w_va,
    )  # fmt: skip
    log.info("signing model: step 2/2 done, %.1f s", time.perf_counter() - t0)
    return model


def _approached_rows(frame: pd.DataFrame, feature_names: Sequence[str], weighting: str, name: str) -> pd.DataFrame:
    need = [COL_APPROACHED, COL_SIGNED, *feature_names] + ([COL_PROPENSITY] if weighting == "ipw" else [])
    check_columns(list(frame.columns), need, name)
    return frame[frame[COL_APPROACHED].to_numpy(dtype=bool)]
