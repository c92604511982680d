"""The published model: a calibrated P(签约 | approached) over pair features, family-agnostic (pure).

Every model family that ``sansetu train`` fits (LightGBM lambdarank parts, LightGBM binary,
logistic regression) ends as one :class:`SigningScorer`: a *margin* (a real-valued score, higher =
more likely to sign) and a monotone :class:`Calibration` that maps it to a probability. The margin
is either a LightGBM booster's raw score (``kind="lightgbm"``) or a linear model over median-imputed,
standardised features with a missing indicator per feature that had gaps (``kind="linear"``).

``contributions`` splits the margin per feature (LightGBM ``pred_contrib``; for the linear model
``coef × standardised value``, a missing indicator counted with its feature) plus ``bias``: they sum
to the margin, not to the probability (the calibration is monotone, so a feature that raises the
margin raises the probability).

Saved as ``scorer.json`` (+ ``model.txt`` for LightGBM) in one folder: plain text, no pickle.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pandas as pd

SCORER_FILE: Final = "scorer.json"
BOOSTER_FILE: Final = "model.txt"
BIAS: Final = "bias"
FORMAT: Final = 1


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64))))


@dataclass(frozen=True)
class Calibration:
    """A monotone map from margin to probability.

    ``isotonic``: piecewise-linear through ``(x, y)`` (sklearn's ``X_thresholds_``, ``y_thresholds_``),
    clipped at both ends; ``platt``: ``sigmoid(a · margin + b)``; ``sigmoid``: ``sigmoid(margin)``
    (a binary model's own probability); ``none``: the margin itself (not a probability).
    """

    method: Literal["isotonic", "platt", "sigmoid", "none"] = "sigmoid"
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    a: float = 1.0
    b: float = 0.0

    def __post_init__(self) -> None:
        if self.method not in ("isotonic", "platt", "sigmoid", "none"):
            raise ValueError(f"Calibration method must be isotonic, platt, sigmoid or none; got {self.method!r}.")
        if self.method == "isotonic":
            if len(self.x) == 0 or len(self.x) != len(self.y):
                raise ValueError(f"isotonic calibration needs x and y of equal, non-zero length; got {len(self.x)} and {len(self.y)}.")  # fmt: skip
            if np.any(np.diff(self.x) < 0) or np.any(np.diff(self.y) < 0):
                raise ValueError("isotonic calibration needs non-decreasing x and y.")

    @property
    def is_probability(self) -> bool:
        return self.method != "none"

    def apply(self, margin: np.ndarray) -> np.ndarray:
        m = np.asarray(margin, dtype=np.float64)
        if self.method == "isotonic":
            return np.asarray(np.interp(m, self.x, self.y), dtype=np.float64)
        if self.method == "platt":
            return sigmoid(self.a * m + self.b)
        if self.method == "sigmoid":
            return sigmoid(m)
        return m

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "x": list(self.x), "y": list(self.y), "a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        return cls(d["method"], tuple(map(float, d.get("x", ()))), tuple(map(float, d.get("y", ()))),
                   float(d.get("a", 1.0)), float(d.get("b", 0.0)))  # fmt: skip


@dataclass(frozen=True)
class LinearMargin:
    """``intercept + Σ coef · z`` with ``z`` = (median-filled x, missing indicators) standardised."""

    names: tuple[str, ...]
    median: tuple[float, ...]
    gaps: tuple[bool, ...]  # which features get a missing indicator (appended in feature order)
    mean: tuple[float, ...]  # len(names) + sum(gaps)
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def __post_init__(self) -> None:
        n, k = len(self.names), len(self.names) + sum(self.gaps)
        lengths = {"median": len(self.median), "gaps": len(self.gaps)}
        lengths.update(
            {"mean": len(self.mean) - k + n, "scale": len(self.scale) - k + n, "coef": len(self.coef) - k + n}
        )
        bad = {name: v for name, v in lengths.items() if v != n}
        if bad:
            raise ValueError(f"LinearMargin over {n} features (+{k - n} missing indicators) got lengths off by {bad}.")

    def standardised(self, X: pd.DataFrame) -> np.ndarray:
        values = X[list(self.names)].to_numpy(dtype=np.float64)
        missing = np.isnan(values)
        filled = np.where(missing, np.asarray(self.median), values)
        z = np.hstack([filled, missing[:, np.asarray(self.gaps, dtype=bool)].astype(np.float64)])
        return (z - np.asarray(self.mean)) / np.asarray(self.scale)

    def margin(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.standardised(X) @ np.asarray(self.coef) + self.intercept)

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """(n, len(names)) per-feature parts of the margin (a missing indicator added to its feature)."""
        parts = self.standardised(X) * np.asarray(self.coef)
        n = len(self.names)
        out = parts[:, :n].copy()
        out[:, np.flatnonzero(self.gaps)] += parts[:, n:]
        return out


@dataclass
class SigningScorer:
    """A calibrated P(签约 | approached) of one model family (module docstring).

    Attributes:
        family: the family that produced it (``lambdarank``, ``lgbm_binary_ipw``, ``logistic_ipw`` …).
        feature_names: the features, in the order the model reads them.
        calibration: margin -> probability.
        booster: a ``lightgbm.Booster`` (``kind="lightgbm"``), else None.
        linear: a :class:`LinearMargin` (``kind="linear"``), else None.
        info: free-form facts saved with it (training rows, validation metrics, …).
    """

    family: str
    feature_names: list[str]
    calibration: Calibration
    booster: Any = None
    linear: LinearMargin | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.booster is None) == (self.linear is None):
            raise ValueError("SigningScorer needs exactly one of booster (LightGBM) or linear; got "
                             f"{'both' if self.booster is not None else 'neither'}.")  # fmt: skip
        if self.linear is not None and list(self.linear.names) != list(self.feature_names):
            raise ValueError("SigningScorer's linear model must read feature_names in order.")

    @property
    def kind(self) -> str:
        return "lightgbm" if self.booster is not None else "linear"

    @property
    def is_probability(self) -> bool:
        return self.calibration.is_probability

    def _check(self, X: pd.DataFrame) -> None:
        missing = [c for c in self.feature_names if c not in X.columns]
        if missing:
            raise ValueError(f"X is missing features {missing} that the {self.family} scorer was trained on.")

    def margin(self, X: pd.DataFrame) -> np.ndarray:
        """(n,) the uncalibrated score; higher = more likely to sign."""
        self._check(X)
        if self.linear is not None:
            return self.linear.margin(X)
        m = X[self.feature_names].to_numpy(dtype=np.float64)
        return np.asarray(self.booster.predict(m, raw_score=True, num_threads=1), dtype=np.float64)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """(n,) calibrated P(签约 | approached) in [0, 1] (the margin itself under ``none``)."""
        return self.calibration.apply(self.margin(X))

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """(n, features + 1): per-feature parts of the margin and ``bias``; rows sum to :meth:`margin`."""
        self._check(X)
        if self.linear is not None:
            parts = self.linear.contributions(X)
            bias = np.full((len(X), 1), self.linear.intercept)
            raw = np.hstack([parts, bias])
        else:
            m = X[self.feature_names].to_numpy(dtype=np.float64)
            raw = np.asarray(self.booster.predict(m, pred_contrib=True, num_threads=1))
        return pd.DataFrame(raw, columns=[*self.feature_names, BIAS], index=X.index)

    def importance(self) -> dict[str, float]:
        """Feature -> gain (LightGBM) or |coefficient| on the standardised feature (linear), largest first."""
        if self.linear is not None:
            coef = np.abs(np.asarray(self.linear.coef[: len(self.feature_names)]))
            values = dict(zip(self.feature_names, coef.tolist(), strict=True))
        else:
            gain = self.booster.feature_importance(importance_type="gain")
            values = dict(zip(self.feature_names, map(float, gain), strict=True))
        return dict(sorted(values.items(), key=lambda kv: -kv[1]))

    # ------------------------------------------------------------ persistence

    def save(self, folder: str | Path) -> Path:
        """Write ``scorer.json`` (+ ``model.txt``) into ``folder`` (created)."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        doc: dict[str, Any] = {"format": FORMAT, "family": self.family, "kind": self.kind,
                               "feature_names": self.feature_names, "calibration": self.calibration.to_dict(),
                               "info": self.info}  # fmt: skip
        if self.booster is not None:
            text = self.booster.model_to_string()
            (out / BOOSTER_FILE).write_text(text, encoding="utf-8")
            doc["booster_sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
        else:
            assert self.linear is not None
            doc["linear"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.linear.__dict__.items()}
        (out / SCORER_FILE).write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
        return out

    @classmethod
    def load(cls, folder: str | Path) -> SigningScorer:
        """Read what :meth:`save` wrote; a changed ``model.txt`` or an unknown format is an error."""
        path = Path(folder)
        try:
            doc = json.loads((path / SCORER_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path / SCORER_FILE} does not exist: not a saved SigningScorer.") from None
        if doc.get("format") != FORMAT:
            raise ValueError(f"{path / SCORER_FILE}: expected format {FORMAT}, found {doc.get('format')!r}.")
        common: dict[str, Any] = {"family": doc["family"], "feature_names": list(doc["feature_names"]),
                  "calibration": Calibration.from_dict(doc["calibration"]), "info": dict(doc.get("info", {}))}  # fmt: skip
        if doc["kind"] == "linear":
            lin = doc["linear"]
            fields: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in lin.items()}
            linear = LinearMargin(**fields)
            return cls(**common, linear=linear)
        import lightgbm as lgb

        text = (path / BOOSTER_FILE).read_text(encoding="utf-8")
        sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if sha != doc.get("booster_sha256"):
            raise ValueError(f"{path / BOOSTER_FILE}: sha256 {sha} differs from {doc.get('booster_sha256')} in {SCORER_FILE}.")  # fmt: skip
        return cls(**common, booster=lgb.Booster(model_str=text))


def isotonic_calibration(
    margin: Sequence[float] | np.ndarray, y: np.ndarray, w: np.ndarray | None = None
) -> Calibration:
    """Weighted isotonic regression of ``y`` (0/1) on ``margin`` as a :class:`Calibration`."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(np.asarray(margin), y, sample_weight=w)
    return Calibration("isotonic", tuple(map(float, iso.X_thresholds_)), tuple(map(float, iso.y_thresholds_)))


def platt_calibration(margin: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> Calibration:
    """Weighted logistic regression of ``y`` on ``margin`` as a :class:`Calibration`."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1e6, max_iter=1000).fit(np.asarray(margin)[:, None], y, sample_weight=w)
    return Calibration("platt", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))
