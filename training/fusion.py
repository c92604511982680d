"""Learn the retrievers' fusion weights from labels that no benchmark uses: registry industry codes.

A chain node lists the GB/T 4754 industry codes of the firms that make its products
(``industry_codes`` in ``configs/chains``); a registry export carries each firm's own code. A
retrieved (node, firm) pair whose firm code is one of the node's codes is a positive, a pair whose
firm has another code a negative, a firm without a code is left out (unknown, not negative). The
codes are coarse and noisy — a code covers many products, firms register one main code — but they
are independent of the texts the retrievers read, which is what a fusion weight needs.

:func:`fit_fusion_weights` fits a logistic regression of that label on each retriever's
normalised score (``recommender.retrieval.fusion.fusion_matrix``), with one intercept per node
(a node with many positives must not decide the weights), and returns the coefficients clipped at
0 and scaled to sum to the number of retrievers, i.e. the ``retrieval.fusion_weights`` setting.
Deterministic (lbfgs, fixed data order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class FusionFit:
    """Learned weights and what they were learned from."""

    weights: dict[str, float]
    coefficients: dict[str, float]
    n_pairs: int
    n_positive: int
    n_nodes: int
    auc_fused: float
    auc_single: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "weights": self.weights,
            "coefficients": self.coefficients,
            "n_pairs": self.n_pairs,
            "n_positive": self.n_positive,
            "n_nodes": self.n_nodes,
            "auc_fused": self.auc_fused,
            "auc_single": self.auc_single,
        }


def industry_code_labels(candidates: pd.DataFrame, enterprises: pd.DataFrame, nodes: pd.DataFrame) -> pd.Series:
    """1.0 when the firm's industry code is one of the node's codes, 0.0 when it has another, NaN unknown.

    Codes are compared on their first four digits (GB/T 4754 class); a node without codes gives NaN.
    The states are :func:`training.fit.code_states`' (one definition for fusion and fit).
    """
    from training.fit import code_states

    states = code_states(candidates, enterprises, nodes)
    values = np.select([states == "agree", states == "disagree"], [1.0, 0.0], default=np.nan)
    return pd.Series(values, index=candidates.index, name="label", dtype=float)


def fit_fusion_weights(
    features: pd.DataFrame, labels: pd.Series, groups: pd.Series, random_state: int = 0, c: float = 1.0
) -> FusionFit:
    """Logistic regression of ``labels`` on the retrievers' normalised scores, one intercept per group.

    Args:
        features: one column per retriever (normalised scores in [0, 1]); rows are (node, firm) pairs.
        labels: 1 / 0 / NaN (NaN rows are dropped).
        groups: the node of each row (its own intercept).
        random_state: kept for the solver's signature (lbfgs is deterministic).
        c: inverse L2 strength.

    Raises:
        ValueError: fewer than 20 labelled pairs of each class.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    keep = labels.notna().to_numpy()
    x, y, g = features.to_numpy(dtype=float)[keep], labels.to_numpy(dtype=float)[keep], groups.to_numpy()[keep]
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if n_pos < 20 or n_neg < 20:
        raise ValueError(
            f"fusion weights need at least 20 labelled positive and 20 negative pairs; got {n_pos} and {n_neg} "
            "(do the enterprises carry industry codes, and do the chain nodes list industry_codes?)"
        )
    dummies = pd.get_dummies(pd.Series(g, dtype=str)).to_numpy(dtype=float)
    design = np.hstack([x, dummies])
    model = LogisticRegression(C=c, fit_intercept=False, max_iter=2000, random_state=random_state)
    model.fit(design, y)
    coef = model.coef_[0][: x.shape[1]]
    clipped = np.clip(coef, 0.0, None)
    scale = len(coef) / clipped.sum() if clipped.sum() > 0 else 1.0
    names = [str(col) for col in features.columns]
    fused = x @ clipped
    return FusionFit(
        weights={n: round(float(w * scale), 4) for n, w in zip(names, clipped, strict=True)},
        coefficients={n: round(float(w), 4) for n, w in zip(names, coef, strict=True)},
        n_pairs=int(len(y)),
        n_positive=n_pos,
        n_nodes=int(len(set(g.tolist()))),
        auc_fused=round(float(roc_auc_score(y, fused)), 4),
        auc_single={n: round(float(roc_auc_score(y, x[:, i])), 4) for i, n in enumerate(names)},
    )
