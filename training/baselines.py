"""Baselines the ranker must beat, scored from the same pair features (pure).

* ``similarity_score``: retrieval similarity only: the dense cosine score, or the lexical score
  where no dense retriever was used; candidates a retriever did not return rank last.
* ``baseline_heuristic_score``: a hand-weighted score over the pair features, the baseline of
  ``sansetu evaluate`` and what a refresh scores with before any model is promoted (documented in
  docs/ranking.md; not the retrieval-time ``recommender.retrieval.candidates.heuristic_score`` that
  orders ``sansetu query --live`` and ``sansetu search`` from retrieval ranks alone)::

      0.45·similarity + 0.15·industry + 0.15·signals + 0.10·ties + 0.10·geography + 0.05·size
      − 0.20·(terminated in the last 365 days)

* ``LogisticBaseline``: pointwise logistic regression (sklearn) on "reached any stage ≥ 接洽".
* ``oracle_scores``: the sample generator's hidden propensity (sample zone only).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from features.pairs import FEATURE_NAMES
from features.schema import COL_ENTERPRISE_ID, COL_NODE_ID, check_columns

HEURISTIC_WEIGHTS: Final = {
    "similarity": 0.45,
    "industry": 0.15,
    "signals": 0.15,
    "ties": 0.10,
    "geography": 0.10,
    "size": 0.05,
}
TERMINATED_PENALTY: Final = 0.20
RRF_K: Final = 60
EXPANSION_SIGNALS: Final = [
    "signals_new_branch_365d",
    "signals_land_purchase_365d",
    "signals_capacity_expansion_365d",
    "signals_financing_365d",
    "signals_hiring_365d",
]


def similarity_score(X: pd.DataFrame) -> np.ndarray:
    """Dense score (lexical where there is no dense retriever); NaN where not retrieved (ranks last)."""
    check_columns(list(X.columns), ["dense_score", "lexical_score"], "X")
    dense = X["dense_score"].to_numpy(dtype=np.float64)
    if np.isfinite(dense).any():
        return dense
    return np.asarray(X["lexical_score"].to_numpy(dtype=np.float64))


def heuristic_components(X: pd.DataFrame) -> pd.DataFrame:
    """Each component of the heuristic in [0, 1], one row per pair."""
    check_columns(list(X.columns), FEATURE_NAMES, "X")

    def col(name: str) -> np.ndarray:
        return np.nan_to_num(X[name].to_numpy(dtype=np.float64), nan=0.0)

    rrf = [(RRF_K + 1) / (RRF_K + X[c].to_numpy(dtype=np.float64)) for c in ("dense_rank", "lexical_rank")]
    used = [r for r in rrf if np.isfinite(r).any()]
    similarity = np.mean([np.nan_to_num(r, nan=0.0) for r in used], axis=0) if used else np.zeros(len(X))
    industry = np.maximum.reduce([col("industry_exact"), 0.6 * col("industry_group"), 0.3 * col("industry_division")])
    signals = 1 - np.exp(-sum(col(c) for c in EXPANSION_SIGNALS) / 2)
    direct = col("ties_leader") + col("ties_fund") + col("ties_university") + col("ties_lab")
    path = (4 - np.nan_to_num(X["path_length"].to_numpy(dtype=np.float64), nan=4.0)) / 4
    ties = np.maximum(1 - np.exp(-direct), path)
    distance = X["distance_km"].to_numpy(dtype=np.float64)
    geography = np.maximum.reduce(
        [col("same_province"), 0.5 * col("neighbour_province"), np.nan_to_num(np.exp(-distance / 1500), nan=0.0)]
    )
    size = np.clip((col("log_capital") - 13.0) / 8.0, 0, 1)
    return pd.DataFrame(
        {"similarity": similarity, "industry": industry, "signals": signals, "ties": ties, "geography": geography,
         "size": size},
        index=X.index,
    )  # fmt: skip


def baseline_heuristic_score(X: pd.DataFrame) -> np.ndarray:
    """The hand-weighted heuristic (module docstring); higher = better."""
    parts = heuristic_components(X)
    total = sum(w * parts[k].to_numpy() for k, w in HEURISTIC_WEIGHTS.items())
    penalty = TERMINATED_PENALTY * np.nan_to_num(X["terminated_365d"].to_numpy(dtype=np.float64), nan=0.0)
    return np.asarray(total - penalty, dtype=np.float64)


class LogisticBaseline:
    """Pointwise logistic regression: median imputation, standardisation, L2 logistic regression.

    Args:
        C: inverse regularisation strength.
        relevant_min: labels >= this are the positive class.
        random_state: solver seed.
    """

    def __init__(self, *, C: float = 1.0, relevant_min: float = 1.0, random_state: int = 42) -> None:
        self.C = C
        self.relevant_min = relevant_min
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> LogisticBaseline:
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        target = (np.asarray(y, dtype=np.float64) >= self.relevant_min).astype(int)
        if len(np.unique(target)) < 2:
            raise ValueError(f"LogisticBaseline needs both classes in y; got only {np.unique(target).tolist()}.")
        usable = [c for c in X.columns if X[c].notna().any()]
        self.features_ = usable
        self.pipeline_ = make_pipeline(
            SimpleImputer(strategy="median"),
            StandardScaler(),
            LogisticRegression(C=self.C, max_iter=2000, random_state=self.random_state),
        ).fit(X[usable].to_numpy(dtype=np.float64), target)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """(n_rows,) decision function; higher = more likely to engage."""
        return np.asarray(self.pipeline_.decision_function(X[self.features_].to_numpy(dtype=np.float64)))


def oracle_scores(pairs: pd.DataFrame, oracle: pd.DataFrame) -> np.ndarray:
    """The oracle's score of each (node, enterprise) row of ``pairs``; NaN where it scored none."""
    check_columns(list(oracle.columns), [COL_NODE_ID, COL_ENTERPRISE_ID, "oracle_score"], "oracle")
    o = oracle.drop_duplicates([COL_NODE_ID, COL_ENTERPRISE_ID], keep="last")
    idx = pd.MultiIndex.from_arrays([o[COL_NODE_ID].astype(str), o[COL_ENTERPRISE_ID].astype(str)])
    key = pd.MultiIndex.from_arrays([pairs[COL_NODE_ID].astype(str), pairs[COL_ENTERPRISE_ID].astype(str)])
    pos = idx.get_indexer(key)
    values = o["oracle_score"].to_numpy(dtype=np.float64)
    return np.where(pos >= 0, values[np.maximum(pos, 0)], np.nan)
