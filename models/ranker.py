"""Ranker: LightGBM lambdarank over (query, candidate) feature rows, with a self-describing save format.

Rows must be sorted by query (``group`` gives the query sizes in row order, as LightGBM expects).
Training is deterministic: ``deterministic=True``, ``force_row_wise=True``, a fixed ``seed`` and a
fixed ``n_jobs``; early stopping watches NDCG at ``eval_at[0]`` on the validation set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import lightgbm as lgb

MODEL_FILE: Final = "model.txt"
COMPONENT: Final = "Ranker"
BIAS_COLUMN: Final = "bias"
_PARAM_NAMES: Final = (
    "n_estimators", "learning_rate", "num_leaves", "min_child_samples", "early_stopping_rounds", "eval_at",
    "random_state", "n_jobs",
)  # fmt: skip


def _check_group(group: Sequence[int] | np.ndarray, n_rows: int, what: str) -> np.ndarray:
    g = np.asarray(group, dtype=np.int64)
    if g.ndim != 1 or (g <= 0).any():
        raise ValueError(f"{what} must be a 1-d sequence of positive query sizes; got {g.tolist()[:10]}")
    if int(g.sum()) != n_rows:
        raise ValueError(f"Sum of {what} ({int(g.sum())}) not equal to the number of rows ({n_rows}).")
    return g


class Ranker:
    """LightGBM lambdarank ranker.

    Args:
        n_estimators: maximum number of boosting rounds.
        learning_rate: shrinkage.
        num_leaves: leaves per tree.
        min_child_samples: minimum rows per leaf.
        early_stopping_rounds: stop when validation NDCG@eval_at[0] has not improved for this many rounds.
        eval_at: NDCG cut-offs evaluated on the validation set (the first one drives early stopping).
        random_state: LightGBM ``seed``.
        n_jobs: threads (fixed for reproducibility).
    """

    booster_: lgb.Booster
    feature_names_: list[str]
    best_iteration_: int
    evals_result_: dict[str, Any]
    manifest_: dict[str, Any]

    def __init__(
        self,
        *,
        n_estimators: int = 400,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_child_samples: int = 20,
        early_stopping_rounds: int = 50,
        eval_at: tuple[int, ...] = (20, 10, 50),
        random_state: int = 42,
        n_jobs: int = 1,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.early_stopping_rounds = early_stopping_rounds
        self.eval_at = eval_at
        self.random_state = random_state
        self.n_jobs = n_jobs

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _PARAM_NAMES}

    def _lgb_params(self) -> dict[str, Any]:
        return {
            "objective": "lambdarank",
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "random_state": self.random_state,
            "n_jobs": self.n_jobs,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }

    def fit(
        self,
        X: pd.DataFrame,
        y: Sequence[float] | np.ndarray,
        group: Sequence[int] | np.ndarray,
        eval_set: tuple[pd.DataFrame, np.ndarray] | None = None,
        eval_group: Sequence[int] | np.ndarray | None = None,
    ) -> Ranker:
        """Fit on rows sorted by query.

        Args:
            X: (n_rows, n_features) feature frame; its column names become ``feature_names_``.
            y: (n_rows,) graded relevance labels (non-negative ints).
            group: (n_queries,) query sizes in row order, summing to n_rows.
            eval_set: (X_valid, y_valid) for early stopping; eval_group its query sizes.
        """
        import lightgbm as lgb

        if self.n_estimators < 1:
            raise ValueError(
                f"The 'n_estimators' parameter of Ranker must be an int >= 1. Got {self.n_estimators} instead."
            )
        y_arr = np.asarray(y, dtype=np.float64)
        if len(y_arr) != len(X):
            raise ValueError(f"Length of y ({len(y_arr)}) not equal to the number of rows of X ({len(X)}).")
        g = _check_group(group, len(X), "group")
        model = lgb.LGBMRanker(**self._lgb_params())
        kwargs: dict[str, Any] = {}
        if eval_set is not None:
            if eval_group is None:
                raise ValueError("eval_group is required with eval_set; got None.")
            Xv, yv = eval_set
            kwargs = {
                "eval_X": (Xv,),
                "eval_y": (np.asarray(yv, dtype=np.float64),),
                "eval_group": [_check_group(eval_group, len(Xv), "eval_group")],
                "eval_at": list(self.eval_at),
                "callbacks": [lgb.early_stopping(self.early_stopping_rounds, first_metric_only=True, verbose=False)],
            }
        model.fit(X, y_arr, group=g, **kwargs)
        self.booster_ = model.booster_
        self.feature_names_ = [str(c) for c in X.columns]
        self.best_iteration_ = int(model.best_iteration_ or self.booster_.current_iteration())
        self.evals_result_ = dict(model.evals_result_ or {})
        return self

    @classmethod
    def from_booster(cls, booster: lgb.Booster, **params: Any) -> Ranker:
        """Wrap a trained Booster (e.g. loaded from the MLflow registry)."""
        self = cls(**params)
        self.booster_ = booster
        self.feature_names_ = list(booster.feature_name())
        self.best_iteration_ = int(booster.best_iteration or booster.current_iteration())
        self.evals_result_ = {}
        return self

    @classmethod
    def blend(cls, parts: Sequence[tuple[Ranker, float]], **params: Any) -> Ranker:
        """One ranker whose score is ``sum(weight * part.predict(X))``, as a single LightGBM model.

        The trees of every part (up to its best iteration) are concatenated into one model with
        their leaf and internal values multiplied by the part's weight: a tree ensemble is additive,
        so the result predicts exactly the weighted sum, ``contributions`` still sum to the score,
        and it saves, loads and registers like any other ranker. All parts must use the same
        features in the same order.
        """
        import lightgbm as lgb

        if not parts:
            raise ValueError("Ranker.blend needs at least one (ranker, weight) part; got none.")
        names = parts[0][0].feature_names_
        for ranker, _ in parts[1:]:
            if ranker.feature_names_ != names:
                raise ValueError(
                    f"Ranker.blend parts must share features: expected {names!r}, found {ranker.feature_names_!r}."
                )
        header, tail, trees = "", "", []
        for i, (ranker, weight) in enumerate(parts):
            text = ranker.booster_.model_to_string(num_iteration=ranker.best_iteration_)
            start, end = text.index("\nTree=0\n"), text.index("\nend of trees")
            if i == 0:
                header = "\n".join(line for line in text[:start].split("\n") if not line.startswith("tree_sizes="))
                tail = text[end:]
            trees += [_scale_tree(block, weight) for block in text[start + 1 : end].split("\n\n") if block.strip()]
        body = "\n\n".join(f"Tree={k}\n" + block.split("\n", 1)[1] for k, block in enumerate(trees))
        booster = lgb.Booster(model_str=f"{header}\n{body}\n\n{tail}")
        out = cls.from_booster(booster, **params)
        out.best_iteration_ = len(trees)
        return out

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.feature_names_ if c not in X.columns]
        if missing:
            raise ValueError(f"X is missing features {missing} that the ranker was trained on.")
        # column-major as the frame holds it: LightGBM reads either order, and making it row-major would
        # cost more than the prediction of a small model (measured: 0.9 s of 1.5 s for 750,000 rows)
        m = X[self.feature_names_].to_numpy(dtype=np.float64)
        return m if m.flags.c_contiguous or m.flags.f_contiguous else np.ascontiguousarray(m)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """(n_rows,) scores; higher = better. Columns are selected by name, in training order."""
        self._check_fitted()
        return np.asarray(
            self.booster_.predict(self._matrix(X), num_iteration=self.best_iteration_, num_threads=self.n_jobs)
        )

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """(n_rows, n_features + 1) SHAP contributions; the last column ``bias``; rows sum to ``predict``."""
        self._check_fitted()
        raw = self.booster_.predict(
            self._matrix(X), num_iteration=self.best_iteration_, pred_contrib=True, num_threads=self.n_jobs
        )
        return pd.DataFrame(np.asarray(raw), columns=[*self.feature_names_, BIAS_COLUMN], index=X.index)

    def feature_importance(self, importance_type: str = "gain") -> pd.Series:
        self._check_fitted()
        values = self.booster_.feature_importance(importance_type=importance_type, iteration=self.best_iteration_)
        return pd.Series(values, index=self.feature_names_, name=importance_type).sort_values(ascending=False)

    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_"):
            raise ValueError("This Ranker instance is not fitted yet; call 'fit' first.")

    # ------------------------------------------------------------ persistence

    def save(
        self, path: str | Path, *, fingerprints: dict[str, str] | None = None, config: dict[str, Any] | None = None
    ) -> Path:
        """Write ``model.txt`` and ``manifest.json`` atomically (``models.manifest``).

        The manifest records the component, the ranker's params plus ``config``, the feature names,
        the best iteration, library versions, the model file's sha256 and the training data's
        fingerprints (``fingerprints``: name -> sha256, the first one is ``data_sha256``).
        """
        from models.manifest import Manifest, atomic_directory

        self._check_fitted()
        fps = dict(fingerprints or {})
        with atomic_directory(Path(path)) as staging:
            self.booster_.save_model(str(staging / MODEL_FILE), num_iteration=self.best_iteration_)
            model_sha = hashlib.sha256((staging / MODEL_FILE).read_bytes()).hexdigest()
            Manifest.build(
                COMPONENT,
                libraries=("lightgbm", "numpy", "pandas", "scikit-learn"),
                config={**self.get_params(), **dict(config or {})},
                data_sha256=next(iter(fps.values()), None),
                count=len(self.feature_names_),
                extra={
                    "feature_names": self.feature_names_,
                    "best_iteration": self.best_iteration_,
                    "model_sha256": model_sha,
                    "fingerprints": fps,
                },
            ).write(staging)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, expected_features: Sequence[str] | None = None) -> Ranker:
        """Load a saved ranker.

        Refuses another component, a model file whose sha256 differs from the manifest, and (with
        ``expected_features``) other feature names; warns when library versions differ.
        """
        import lightgbm as lgb

        from models.manifest import Manifest, ManifestMismatchError

        folder = Path(path)
        manifest = Manifest.read(folder)
        expected: dict[str, Any] = {"component": COMPONENT}
        manifest.check(expected)
        if expected_features is not None and list(expected_features) != manifest.extra["feature_names"]:
            raise ManifestMismatchError(
                f"{COMPONENT} manifest does not match: feature_names: expected {list(expected_features)!r}, "
                f"found {manifest.extra['feature_names']!r}."
            )
        manifest.check_libraries(["lightgbm"])
        try:
            model_bytes = (folder / MODEL_FILE).read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"Failed while loading ranker from {folder}: {MODEL_FILE} does not exist."
            ) from None
        sha = hashlib.sha256(model_bytes).hexdigest()
        if sha != manifest.extra["model_sha256"]:
            raise ManifestMismatchError(
                f"{COMPONENT} manifest does not match: model_sha256: expected {manifest.extra['model_sha256']!r}, "
                f"found {sha!r}."
            )
        params = {k: (tuple(v) if k == "eval_at" else v) for k, v in manifest.config.items() if k in _PARAM_NAMES}
        ranker = cls.from_booster(lgb.Booster(model_str=model_bytes.decode("utf-8")), **params)
        ranker.best_iteration_ = int(manifest.extra["best_iteration"])
        ranker.manifest_ = manifest.to_dict()
        return ranker


def _scale_tree(block: str, weight: float) -> str:
    """A LightGBM model-text tree with its leaf and internal values multiplied by ``weight``."""
    lines = []
    for line in block.strip("\n").split("\n"):
        key, _, values = line.partition("=")
        if key in ("leaf_value", "internal_value"):
            line = key + "=" + " ".join(repr(float(v) * weight) for v in values.split())
        lines.append(line)
    return "\n".join(lines)
