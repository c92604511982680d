"""Fit the fit model: P(a firm makes what a chain node needs) from retrieval and overlap features.

No zone has labels saying which firms make a node's products, but every registry has industry
codes, and the chains list the codes of the firms that make each node's products. The code is a
*noisy* label: one class covers several nodes (3976 光电子器件制造 sits at ten optical nodes), so a
firm whose code agrees with node X is often a firm of a sibling node with the same class. The model
therefore has two parts (docs/ranking.md, "Fit"):

1. **Text model** ``s(x) = P(fits | x) = sigmoid(w·x + a)`` over ``TEXT_FEATURES`` (ranks and word
   overlap, never the code), learned by EM over *code families*: a firm whose code agrees with
   several of its candidate nodes belongs to (at most) one of them, so each such pair gets the
   target ``o_X / Σ_Y o_Y`` over the firm's agreeing pairs (``o = s / (1 − s)``, the text odds);
   a pair whose code disagrees gets 0; an unknown code is left out. M-step: weighted logistic
   regression. Start: the plain logistic regression of agreement.
2. **Code evidence** by Bayes' rule with one assumption, ``P(agree | fits, x) = α`` (a firm that
   makes the node's products registers one of its codes, whatever its texts say)::

       agree:     P(fits | x, agree)    = α s / g(s)
       disagree:  P(fits | x, disagree) = (1 − α) s / (1 − g(s))
       unknown:   P(fits | x)           = s                 (a missing code is no evidence)

   where ``g(s) = P(agree | s)`` is the isotonic regression of agreement on out-of-fold ``s``
   (nodes split in two seeded halves: each half scored by a text model fitted on the other), and α
   is the agreement rate of the out-of-fold pairs with ``s ≥ 0.95`` (the anchor: firms whose texts
   plainly make the node's products). No conditional independence of code and text among firms
   that do not fit is needed (it fails: siblings share both words and codes). ``g`` is capped at α,
   so agree ≥ unknown ≥ disagree; both posteriors are tabulated on a grid of ``s`` (the agree
   column made non-decreasing) and interpolated.

Deterministic (fixed data order, lbfgs, seeded node halves).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd

from features.schema import COL_ENTERPRISE_ID, COL_INDUSTRY_CODE, COL_NODE_ID, check_columns
from features.words import as_list

CODE_STATES: Final = ("agree", "disagree", "unknown")
TEXT_FEATURES: Final = (
    "best_logrank",
    "mean_logrank",
    "retrieved_share",
    "similarity",
    "product_share",
    "keyword_share",
    "name_hit",
    "word_cover",
    "word_cover_full",
)
MODEL_VERSION: Final = 1
MIN_LABELLED: Final = 20
ANCHOR: Final = 0.95
GRID: Final = np.linspace(0.0, 1.0, 201)


def code_states(candidates: pd.DataFrame, enterprises: pd.DataFrame, nodes: pd.DataFrame) -> np.ndarray:
    """Per pair ``agree`` / ``disagree`` / ``unknown``: the firm's class (first 4 digits of its GB/T 4754
    code) is / is not one of the node's ``industry_codes``; a firm without a code, or a node without
    codes, is ``unknown``. Vectorised (the node codes are exploded once)."""
    check_columns(list(candidates.columns), [COL_NODE_ID, COL_ENTERPRISE_ID], "candidates")
    check_columns(list(nodes.columns), [COL_NODE_ID, "industry_codes"], "nodes")
    if COL_INDUSTRY_CODE not in enterprises.columns:
        return np.full(len(candidates), "unknown", dtype=object)
    ents = enterprises.assign(**{COL_ENTERPRISE_ID: enterprises[COL_ENTERPRISE_ID].astype(str)})
    code = ents.drop_duplicates(COL_ENTERPRISE_ID).set_index(COL_ENTERPRISE_ID)[COL_INDUSTRY_CODE]
    code = code.astype("string").str.strip().str[:4]
    firm = candidates[COL_ENTERPRISE_ID].astype(str).map(code).astype("string")
    node = candidates[COL_NODE_ID].astype(str)
    pairs = {
        (str(n), str(c).strip()[:4])
        for n, codes in zip(nodes[COL_NODE_ID], nodes["industry_codes"], strict=True)
        for c in as_list(codes)
        if str(c).strip()
    }
    coded_nodes = {n for n, _ in pairs}
    keys = pd.MultiIndex.from_arrays([node.to_numpy(), firm.fillna("").to_numpy()])
    agree = keys.isin(list(pairs)) if pairs else np.zeros(len(candidates), dtype=bool)
    known = (firm.fillna("").str.len() > 0).to_numpy() & node.isin(coded_nodes).to_numpy()
    return np.where(~known, "unknown", np.where(agree, "agree", "disagree")).astype(object)


@dataclass(frozen=True)
class FitModel:
    """The fitted fit model: text coefficients, the code evidence table and what it was fitted on.

    Attributes:
        features: the text features, in the order of ``coefficients``; ``intercept`` is ``a``.
        alpha: P(agree | the firm fits).
        grid: values of ``s`` at which ``agree`` and ``disagree`` (the posteriors) are tabulated.
        reliability: held-out predicted vs observed agreement (``reliability`` rows), for the record.
        manifest: what the model was fitted on (counts, data fingerprint, seed).
    """

    features: tuple[str, ...]
    coefficients: tuple[float, ...]
    intercept: float
    alpha: float
    grid: tuple[float, ...]
    agree: tuple[float, ...]
    disagree: tuple[float, ...]
    reliability: tuple[Mapping[str, float], ...] = ()
    manifest: Mapping[str, Any] = field(default_factory=dict)

    def text_probability(self, features: pd.DataFrame) -> np.ndarray:
        """``s(x)``: P(fits | text features), shape (n,)."""
        check_columns(list(features.columns), list(self.features), "fit features")
        x = features[list(self.features)].to_numpy(dtype=float)
        return _sigmoid(x @ np.asarray(self.coefficients, dtype=float) + self.intercept)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """P(fits | text, code) in [0, 1], shape (n,); ``features`` holds ``self.features`` and ``code``."""
        check_columns(list(features.columns), [*self.features, "code"], "fit features")
        bad = sorted(set(features["code"].astype(str)) - set(CODE_STATES))
        if bad:
            raise ValueError(f"fit features column 'code' must hold {list(CODE_STATES)}; got {bad}")
        s = self.text_probability(features)
        state = features["code"].astype(str).to_numpy()
        agree = np.interp(s, self.grid, self.agree)
        disagree = np.interp(s, self.grid, self.disagree)
        return np.clip(np.where(state == "agree", agree, np.where(state == "disagree", disagree, s)), 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        """A YAML / JSON-ready dict (``from_dict`` reads it back)."""
        out: dict[str, Any] = {"version": MODEL_VERSION, "features": list(self.features)}
        for name in ("coefficients", "grid", "agree", "disagree"):
            out[name] = [float(v) for v in getattr(self, name)]
        out.update(intercept=float(self.intercept), alpha=float(self.alpha))
        out.update(reliability=[dict(r) for r in self.reliability], manifest=dict(self.manifest))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FitModel:
        """The model ``to_dict`` wrote; refuses another version and lists of unequal lengths."""
        required = ["version", "features", "coefficients", "intercept", "alpha", "grid", "agree", "disagree"]
        check_columns(list(data), required, "fit model")
        if data["version"] != MODEL_VERSION:
            raise ValueError(f"fit model version must be {MODEL_VERSION}; got {data['version']!r}")
        if len(data["features"]) != len(data["coefficients"]):
            raise ValueError(
                f"fit model has {len(data['features'])} features but {len(data['coefficients'])} coefficients"
            )
        if not len(data["grid"]) == len(data["agree"]) == len(data["disagree"]):
            raise ValueError(
                f"fit model grid, agree and disagree must have equal lengths; got "
                f"{len(data['grid'])}, {len(data['agree'])} and {len(data['disagree'])}"
            )
        floats = {k: tuple(float(v) for v in data[k]) for k in ("coefficients", "grid", "agree", "disagree")}
        return cls(
            features=tuple(str(f) for f in data["features"]),
            intercept=float(data["intercept"]),
            alpha=float(data["alpha"]),
            reliability=tuple(dict(r) for r in data.get("reliability", ())),
            manifest=dict(data.get("manifest", {})),
            **floats,
        )


def _sigmoid(u: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * u))  # = 1 / (1 + exp(-u)) without overflow


# ------------------------------------------------------------------------------------------- fitting
@dataclass(frozen=True)
class _Data:
    x: np.ndarray  # (n, d) text features of the labelled pairs
    agree: np.ndarray  # (n,) bool
    firm: np.ndarray  # (n,) firm position (the EM's families)
    node: np.ndarray  # (n,) str


def _labelled(features: pd.DataFrame, names: Sequence[str]) -> _Data:
    check_columns(list(features.columns), [*names, "code", COL_NODE_ID, COL_ENTERPRISE_ID], "fit features")
    sub = features[features["code"].astype(str).isin(["agree", "disagree"]).to_numpy()]
    agree = (sub["code"].astype(str) == "agree").to_numpy()
    n_pos, n_neg = int(agree.sum()), int(len(agree) - agree.sum())
    if n_pos < MIN_LABELLED or n_neg < MIN_LABELLED:
        raise ValueError(
            f"the fit model needs at least {MIN_LABELLED} pairs whose code agrees and {MIN_LABELLED} whose code "
            f"disagrees; got {n_pos} and {n_neg} (do the enterprises carry industry codes, and do the chain "
            "nodes list industry_codes?)"
        )
    firm = pd.factorize(sub[COL_ENTERPRISE_ID].astype(str))[0].astype(np.int64)
    return _Data(sub[list(names)].to_numpy(dtype=float), agree, firm, sub[COL_NODE_ID].astype(str).to_numpy())


def _text_model(data: _Data, c: float, n_iter: int, tol: float = 1e-4) -> tuple[np.ndarray, float, int]:
    """EM over code families (module docstring, step 1): ``(w, a, iterations)``."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=5000).fit(data.x, data.agree.astype(float))
    doubled = np.vstack([data.x, data.x])
    target = np.r_[np.ones(len(data.x)), np.zeros(len(data.x))]
    previous, done = data.agree.astype(float), 0
    for done in range(1, n_iter + 1):  # noqa: B007 (the count is returned)
        s = model.predict_proba(data.x)[:, 1]
        odds = np.where(data.agree, s / np.maximum(1.0 - s, 1e-12), 0.0)
        family = np.bincount(data.firm, weights=odds, minlength=int(data.firm.max()) + 1)
        r = np.where(data.agree, odds / np.maximum(family[data.firm], 1e-300), 0.0)
        model = LogisticRegression(C=c, max_iter=5000).fit(doubled, target, sample_weight=np.r_[r, 1.0 - r])
        if np.max(np.abs(r - previous)) < tol:
            break
        previous = r
    return model.coef_[0].copy(), float(model.intercept_[0]), done


def fit_fit_model(
    features: pd.DataFrame,
    names: Sequence[str] = TEXT_FEATURES,
    c: float = 1.0,
    n_iter: int = 15,
    random_state: int = 0,
    manifest: Mapping[str, Any] | None = None,
) -> FitModel:
    """Fit the text model on all nodes and the code evidence on out-of-fold scores (module docstring).

    Args:
        features: ``recommender.retrieval.fit.fit_features`` output with ``enterprise_id`` added
            (``names``, ``code``, ``node_id``, ``enterprise_id``); only ``agree`` / ``disagree`` pairs enter.
        names: the text features.
        c: inverse L2 strength of the logistic regressions.
        n_iter: most EM iterations.
        random_state: seeds the split of the nodes into the two halves of the out-of-fold scores.
        manifest: extra entries for the model's manifest (what the pairs came from).

    Raises:
        ValueError: a missing column, or fewer than ``MIN_LABELLED`` pairs of either code state.
    """
    data = _labelled(features, names)
    w, a, n_done = _text_model(data, c, n_iter)
    held_s = _out_of_fold(data, c, n_iter, random_state)
    alpha, grid, agree, disagree = _code_evidence(held_s, data.agree)
    info = {
        "n_pairs": int(len(data.agree)),
        "n_agree": int(data.agree.sum()),
        "n_nodes": len(set(data.node.tolist())),
        "em_iterations": n_done,
        "c": c,
        "random_state": random_state,
        "fingerprint": _fingerprint(data),
        **dict(manifest or {}),
    }
    table = reliability(held_s, data.agree.astype(float))  # out-of-fold s vs code agreement
    return FitModel(
        features=tuple(names),
        coefficients=tuple(round(float(v), 6) for v in w),
        intercept=round(a, 6),
        alpha=round(alpha, 6),
        grid=tuple(round(float(v), 6) for v in grid),
        agree=tuple(round(float(v), 6) for v in agree),
        disagree=tuple(round(float(v), 6) for v in disagree),
        reliability=tuple({str(k): v for k, v in row.items()} for row in table.to_dict(orient="records")),
        manifest=info,
    )


def _out_of_fold(data: _Data, c: float, n_iter: int, random_state: int) -> np.ndarray:
    """``s`` of every labelled pair from a text model fitted on the other half of the nodes."""
    nodes = np.asarray(sorted(set(data.node.tolist())))
    half = dict(zip(nodes, np.random.default_rng(random_state).permutation(len(nodes)) % 2, strict=True))
    fold = np.asarray([half[n] for n in data.node])
    s = np.empty(len(data.agree))
    for k in (0, 1):
        train = fold != k
        if not train.any() or data.agree[train].all() or not data.agree[train].any():
            train = np.ones(len(fold), dtype=bool)  # one node only: in-sample
        sub = _Data(data.x[train], data.agree[train], pd.factorize(data.firm[train])[0], data.node[train])
        w, a, _ = _text_model(sub, c, n_iter)
        s[fold == k] = _sigmoid(data.x[fold == k] @ w + a)
    return s


def _code_evidence(s: np.ndarray, agree: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """α, the grid of ``s`` and the agree / disagree posteriors on it (module docstring, step 2)."""
    from sklearn.isotonic import IsotonicRegression

    top = s >= ANCHOR if (s >= ANCHOR).sum() >= MIN_LABELLED else s >= np.quantile(s, 0.99)
    alpha = float((agree[top].sum() + 1.0) / (top.sum() + 2.0))  # Laplace: never exactly 0 or 1
    iso = IsotonicRegression(y_min=1e-6, y_max=1.0 - 1e-6, out_of_bounds="clip").fit(s, agree.astype(float))
    g = np.minimum(iso.predict(GRID), alpha)
    post_disagree = (1.0 - alpha) * GRID / np.maximum(1.0 - g, 1e-12)
    # agree: s itself, not alpha * s / g(s): that ratio multiplies any error of s where both are small
    # (measured on the sample zone: firms of sibling nodes with the same class rose to 0.4, precision fell)
    return alpha, GRID, GRID.copy(), np.clip(np.minimum(post_disagree, GRID), 0.0, 1.0)


def _fingerprint(data: _Data) -> str:
    import hashlib

    h = hashlib.sha256()
    for arr in (np.ascontiguousarray(data.x, dtype=np.float64), data.agree.astype(np.float64)):
        h.update(arr.tobytes())
    h.update("\n".join(data.node.tolist()).encode())
    return h.hexdigest()[:16]


def reliability(predicted: np.ndarray, observed: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Predicted vs observed rate in equal-width bins of the prediction: ``bin_lo, bin_hi, n, predicted, observed``."""
    p = np.asarray(predicted, dtype=float)
    y = np.asarray(observed, dtype=float)
    if p.shape != y.shape:
        raise ValueError(f"predicted and observed must have the same shape; got {p.shape} and {y.shape}")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    b = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    rows = []
    for k in range(n_bins):
        m = b == k
        if m.any():
            rows.append({"bin_lo": round(float(edges[k]), 4), "bin_hi": round(float(edges[k + 1]), 4),
                         "n": int(m.sum()), "predicted": round(float(p[m].mean()), 4),
                         "observed": round(float(y[m].mean()), 4)})  # fmt: skip
    return pd.DataFrame(rows, columns=["bin_lo", "bin_hi", "n", "predicted", "observed"])
