"""Expected signings@k of ranked lists: with a truth, and off-policy from the zone's logs (pure).

What is judged
    A list system puts firms at places 1..k of every node. At a query ``u = (node, period)`` its
    **expected signings@k** is ``V_u = Σ_{i in top k of u} p_i`` with ``p_i = P(签约 | approached, x_i)``:
    what the zone would sign, in expectation, by approaching every firm of the list in that period.
    A system's value is the mean of ``V_u`` over the units (``n_units``); per node, the mean over
    that node's units.

With a truth (the sample zone)
    :func:`expected_signings_at_k` sums a truth callable or array over the top-k places.

Without one (a real zone): the logs
    Each logged query holds candidates of which the team approached some (``approached``); an
    approached pair either signed (``signed`` 1) or not (0). ``propensity`` is the approach
    propensity ``π_i = P(approached | x_i, node, period)`` of the logged policy
    (:class:`training.signing.ApproachPropensity`, fitted on the zone's own logs). A place of a list
    is **covered** when the logs approached that firm for that node in that period. The weight of a
    covered place is ``w = min(1 / π, max_weight)`` (clipped: a place the team almost never
    approaches would otherwise carry the whole estimate). With ``P`` places over ``U`` units:

    * **SNIPS** (self-normalised inverse propensity):
      ``V̂ = P / U · Σ_covered w·y / Σ_covered w`` — the weighted signing rate of the covered places
      stands for the list's mean ``p``, times the places per unit. Unbiased for the ratio as the
      number of covered places grows when the propensities are right and no weight is clipped.
    * **DR** (doubly robust, self-normalised correction):
      ``V̂ = 1 / U · [Σ_places m̂_i + P · Σ_covered w·(y − m̂) / Σ_covered w]`` with ``m̂`` a direct
      model's P(sign | approached) for every listed firm (covered or not). Right when either the
      direct model or the propensities are right; its variance is that of the residuals. The sum is
      clipped to [0, P] (expected signings cannot be negative or exceed the places).
    * **Shrunk DR** (``dr_estimate``'s default, ``shrink=True``): the correction is scaled by
      ``λ = max(0, 1 − 1 / z²)``, ``z = r̄ / se`` with ``r̄ = Σ w·(y − m̂) / Σ w`` the weighted mean
      residual and ``se² = Σ w²·m̂(1 − m̂) / (Σ w)²`` its variance if the direct model were right
      (positive-part James–Stein on one mean). A correction within about one standard error of zero
      is noise and is dropped (the estimate is the direct model's); one the logs show plainly is
      kept almost whole, and ``λ → 1`` as covered places accumulate, so DR's consistency stands. At
      the sample's coverage (1–3 % of the places, 1–18 effective) the plain correction, ``P`` times a
      mean of a handful of 0/1 residuals, moved estimates by 2–5× the truth.

    Both pool the covered places of all units of a node (per node) or of all nodes (overall); a node
    without a covered place has no SNIPS estimate (NaN) and a DR estimate from ``m̂`` alone.
    ``coverage`` is the share of the list's places the logs cover; ``share_clipped`` the share of
    covered places whose weight was clipped; ``effective_n`` is Kish's ``(Σw)² / Σw²``. A list whose
    places the logs never approach cannot be judged from the logs: low coverage or a small
    ``effective_n`` says so.

Lists
    ``lists`` has ``node_id, enterprise_id, rank`` (1 = best; places are taken by rank, ties in row
    order) and optionally ``as_of`` (one list per (node, period)); a list without ``as_of`` is the
    node's list in every period the logs (or ``units``) hold for the node.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import pandas as pd

from features.pairs import COL_AS_OF
from features.schema import COL_ENTERPRISE_ID, COL_NODE_ID, check_columns
from training.evaluate import _check_k

COL_RANK: Final = "rank"
COL_APPROACHED: Final = "approached"  # = training.dataset.COL_APPROACHED
COL_SIGNED: Final = "signed"
COL_PROPENSITY: Final = "propensity"
COL_PREDICTED: Final = "predicted"  # DR's direct model: P(sign | approached) of a listed firm
DEFAULT_MAX_WEIGHT: Final = 50.0  # = approached with π ≥ 2 % counts in full (docs/ranking.md)

Truth = Callable[[pd.DataFrame], np.ndarray] | np.ndarray | pd.Series
"""A callable given the places (``node_id, enterprise_id, as_of`` when known, ``rank``) that returns
P(sign | approached) per place, or one probability per row of ``lists``."""


@dataclass(frozen=True)
class ListValue:
    """Expected signings@k of one list system.

    Attributes:
        method: ``truth``, ``snips`` or ``dr``.
        k: the cut-off.
        estimate: mean over units of the expected signings in the top k.
        per_node: one row per node: ``node_id, estimate, n_units, n_places`` and, off-policy,
            ``n_covered, coverage, n_signed, share_clipped, effective_n``.
        n_units, n_places: (node, period) units and list places judged.
        n_covered, coverage: covered places (approached in the logs) and their share of the places.
        share_clipped: share of covered places whose weight hit ``max_weight``.
        effective_n: Kish's effective number of covered places, ``(Σw)² / Σw²``.
        max_weight: the clip (None without one; NaN for ``truth``).
        shrinkage: DR's λ, the factor its correction was scaled by (1: none; NaN for ``truth``, ``snips``
            and ``shrink=False``).
    """

    method: Literal["truth", "snips", "dr"]
    k: int
    estimate: float
    per_node: pd.DataFrame
    n_units: int
    n_places: int
    n_covered: int = 0
    coverage: float = float("nan")
    share_clipped: float = float("nan")
    effective_n: float = float("nan")
    max_weight: float | None = float("nan")
    shrinkage: float = float("nan")

    def as_dict(self) -> dict[str, float | int | str | None]:
        """The scalar attributes (no ``per_node``), e.g. for a log line or an MLflow metric set."""
        return {
            "method": self.method, "k": self.k, "estimate": self.estimate, "n_units": self.n_units,
            "n_places": self.n_places, "n_covered": self.n_covered, "coverage": self.coverage,
            "share_clipped": self.share_clipped, "effective_n": self.effective_n, "max_weight": self.max_weight,
            "shrinkage": self.shrinkage,
        }  # fmt: skip


def inverse_propensity_weights(propensity: np.ndarray | pd.Series, max_weight: float | None) -> np.ndarray:
    """``min(1 / π, max_weight)`` per row; ``max_weight=None`` does not clip.

    Raises:
        ValueError: a propensity that is missing or outside (0, 1], or ``max_weight`` below 1.
    """
    _check_max_weight(max_weight)
    p = np.asarray(propensity, dtype=np.float64)
    bad = ~((p > 0) & (p <= 1))
    if bad.any():
        shown = [float(v) for v in p[bad][:5]]
        raise ValueError(
            f"propensity must be in (0, 1] for every approached row; got {int(bad.sum())} rows outside it, "
            f"e.g. {shown}."
        )
    w = 1.0 / p
    return w if max_weight is None else np.minimum(w, max_weight)


def _check_max_weight(max_weight: float | None) -> None:
    if max_weight is not None and not (np.isfinite(max_weight) and max_weight >= 1):
        raise ValueError(
            f"The 'max_weight' parameter must be None or a float in the range [1, inf). Got {max_weight!r} instead."
        )


def list_places(lists: pd.DataFrame, k: int, units: pd.DataFrame | None = None) -> pd.DataFrame:
    """The top-k places of every list, one row per (unit, place), in list order.

    Args:
        lists: ``node_id, enterprise_id, rank`` [+ ``as_of``] and any other columns (kept).
        k: places per list.
        units: ``node_id, as_of`` to judge a list without ``as_of`` in (each node's list is repeated
            per unit of the node; nodes without a unit drop out). Ignored when ``lists`` has ``as_of``.

    Returns:
        the places with ``node_id, enterprise_id, rank`` [+ ``as_of``] and the other columns of ``lists``.
    """
    _check_k(k)
    check_columns(list(lists.columns), [COL_NODE_ID, COL_ENTERPRISE_ID, COL_RANK], "lists")
    keys = [COL_NODE_ID, COL_AS_OF] if COL_AS_OF in lists.columns else [COL_NODE_ID]
    dup = lists.duplicated([*keys, COL_ENTERPRISE_ID])
    if dup.any():
        first = lists.loc[dup, [*keys, COL_ENTERPRISE_ID]].head(3).astype(str).agg(" / ".join, axis=1).tolist()
        raise ValueError(
            f"lists must hold each firm at most once per list ({' + '.join(keys)}); got {int(dup.sum())} repeats, "
            f"e.g. {first}."
        )
    ordered = lists.astype({COL_NODE_ID: str, COL_ENTERPRISE_ID: str}).sort_values(
        [*keys, COL_RANK], kind="stable", ignore_index=True
    )
    top = ordered[ordered.groupby(keys, sort=False).cumcount().to_numpy() < k]
    if COL_AS_OF in keys or units is None:
        return top.reset_index(drop=True)
    check_columns(list(units.columns), [COL_NODE_ID, COL_AS_OF], "units")
    u = units[[COL_NODE_ID, COL_AS_OF]].astype({COL_NODE_ID: str}).drop_duplicates()
    u = u.assign(**{COL_AS_OF: pd.to_datetime(u[COL_AS_OF]).astype("datetime64[ns]")})
    return u.merge(top, on=COL_NODE_ID, how="inner").sort_values([COL_NODE_ID, COL_AS_OF, COL_RANK], kind="stable",
                                                                  ignore_index=True)  # fmt: skip


def expected_signings_at_k(
    lists: pd.DataFrame, truth: Truth, *, k: int, units: pd.DataFrame | None = None
) -> ListValue:
    """Σ of the truth over the top k of each list, averaged over units (the sample zone's judge).

    Args:
        lists: see the module docstring.
        truth: a callable (places → P(sign | approached) per place) or one probability per row of
            ``lists`` (only allowed without ``units``, which would repeat rows).
        k: places per list.
        units: ``node_id, as_of`` for lists without ``as_of`` (see :func:`list_places`).
    """
    if callable(truth):
        places = list_places(lists, k, units)
        p = np.asarray(truth(places), dtype=np.float64)
    else:
        if units is not None and COL_AS_OF not in lists.columns:
            raise ValueError("truth as an array needs lists with as_of (or no units); pass a callable with units.")
        values = np.asarray(truth, dtype=np.float64)
        if len(values) != len(lists):
            raise ValueError(f"truth must have one value per row of lists ({len(lists)}); got {len(values)}.")
        places = list_places(lists.assign(_truth=values), k, units)
        p = places.pop("_truth").to_numpy(dtype=np.float64)
    if len(p) != len(places) or not np.all((p >= 0) & (p <= 1)):
        raise ValueError(
            f"truth must give a probability in [0, 1] for each of the {len(places)} places; got {len(p)} values"
            + (f", {int(np.sum(~((p >= 0) & (p <= 1))))} outside [0, 1]." if len(p) == len(places) else ".")
        )
    unit = _unit_codes(places)
    per_node = _per_node(places, unit)
    sums = pd.Series(p).groupby(places[COL_NODE_ID].to_numpy()).sum()
    per_node["estimate"] = sums.reindex(per_node[COL_NODE_ID]).to_numpy() / per_node["n_units"].to_numpy()
    n_units = int(unit.max()) + 1 if len(unit) else 0
    estimate = float(p.sum() / n_units) if n_units else float("nan")
    return ListValue("truth", k, estimate, per_node, n_units, len(places))


def _unit_codes(places: pd.DataFrame) -> np.ndarray:
    keys = [COL_NODE_ID, COL_AS_OF] if COL_AS_OF in places.columns else [COL_NODE_ID]
    return np.asarray(places.groupby(keys, sort=False).ngroup().to_numpy(), dtype=np.int64)


def _per_node(places: pd.DataFrame, unit: np.ndarray) -> pd.DataFrame:
    g = pd.DataFrame({COL_NODE_ID: places[COL_NODE_ID].to_numpy(), "_u": unit}).groupby(COL_NODE_ID, sort=True)
    return pd.DataFrame({"n_units": g["_u"].nunique(), "n_places": g.size()}).reset_index()


def snips_estimate(
    lists: pd.DataFrame,
    logs: pd.DataFrame,
    *,
    k: int,
    max_weight: float | None = DEFAULT_MAX_WEIGHT,
) -> ListValue:
    """Self-normalised inverse-propensity estimate of expected signings@k (module docstring).

    Args:
        lists: ``node_id, enterprise_id, rank`` [+ ``as_of``].
        logs: the logged queries' rows ``node_id, enterprise_id, as_of, approached, signed,
            propensity`` (the whole candidate pools or only the approached rows; ``signed`` and
            ``propensity`` are read on approached rows only). Its (node, as_of) pairs are the units.
        k: places per list.
        max_weight: clip of the inverse propensity (None: no clip).
    """
    return _off_policy("snips", lists, logs, k=k, max_weight=max_weight)


def dr_estimate(
    lists: pd.DataFrame,
    logs: pd.DataFrame,
    *,
    k: int,
    max_weight: float | None = DEFAULT_MAX_WEIGHT,
    shrink: bool = True,
) -> ListValue:
    """Doubly robust estimate of expected signings@k (module docstring).

    ``lists`` needs a ``predicted`` column: a direct model's P(sign | approached) of each listed firm
    (per period when ``lists`` has ``as_of``); ``shrink``: scale the correction by λ (module
    docstring; False: the plain DR estimate); other arguments as :func:`snips_estimate`.
    """
    check_columns(list(lists.columns), [COL_PREDICTED], "lists (dr_estimate)")
    return _off_policy("dr", lists, logs, k=k, max_weight=max_weight, shrink=shrink)


def _off_policy(
    method: Literal["snips", "dr"],
    lists: pd.DataFrame,
    logs: pd.DataFrame,
    *,
    k: int,
    max_weight: float | None,
    shrink: bool = False,
) -> ListValue:
    _check_max_weight(max_weight)
    covered = _covered_logs(logs)
    units = logs[[COL_NODE_ID, COL_AS_OF]]
    places = list_places(lists, k, units)
    if COL_AS_OF in lists.columns:  # lists per (node, period): judge only periods the logs hold
        logged = pd.MultiIndex.from_frame(_keys(units).drop_duplicates())
        places = places[pd.MultiIndex.from_frame(_keys(places[[COL_NODE_ID, COL_AS_OF]])).isin(logged)]
        places = places.reset_index(drop=True)
    joined = _keys(places[[COL_NODE_ID, COL_AS_OF, COL_ENTERPRISE_ID]]).merge(
        covered, on=[COL_NODE_ID, COL_AS_OF, COL_ENTERPRISE_ID], how="left"
    )
    is_cov = joined[COL_PROPENSITY].notna().to_numpy()
    w, clipped = np.zeros(len(places)), np.zeros(len(places), dtype=bool)
    w[is_cov] = inverse_propensity_weights(joined.loc[is_cov, COL_PROPENSITY].to_numpy(), max_weight)
    if max_weight is not None:
        clipped[is_cov] = 1.0 / joined.loc[is_cov, COL_PROPENSITY].to_numpy(dtype=np.float64) > max_weight
    y = joined[COL_SIGNED].fillna(0.0).to_numpy(dtype=np.float64)
    m = places[COL_PREDICTED].to_numpy(dtype=np.float64) if method == "dr" else np.zeros(len(places))
    bad_m = ~(np.isfinite(m) & (m >= 0) & (m <= 1))
    if bad_m.any():
        raise ValueError(
            f"lists' predicted must be a probability in [0, 1] at every place; got {int(bad_m.sum())} places "
            f"outside it, e.g. {[float(v) for v in m[bad_m][:3]]}."
        )
    unit = _unit_codes(places)
    node = places[COL_NODE_ID].to_numpy()
    per_node = _per_node(places, unit)
    rows = [_pooled(method, w[node == n], y[node == n], m[node == n], clipped[node == n], int(u), shrink)
            for n, u in zip(per_node[COL_NODE_ID], per_node["n_units"], strict=True)]  # fmt: skip
    per_node = pd.concat([per_node, pd.DataFrame(rows, index=per_node.index)], axis=1)
    n_units = int(unit.max()) + 1 if len(unit) else 0
    total = _pooled(method, w, y, m, clipped, n_units, shrink)
    return ListValue(
        method, k, total["estimate"], per_node, n_units, len(places), int(total["n_covered"]), total["coverage"],
        total["share_clipped"], total["effective_n"], max_weight, total["shrinkage"],
    )  # fmt: skip


def _keys(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.astype({COL_NODE_ID: str})
    if COL_ENTERPRISE_ID in out.columns:
        out = out.astype({COL_ENTERPRISE_ID: str})
    return out.assign(**{COL_AS_OF: pd.to_datetime(out[COL_AS_OF]).astype("datetime64[ns]")})


def _covered_logs(logs: pd.DataFrame) -> pd.DataFrame:
    """The approached rows of the logs: ``node_id, as_of, enterprise_id, signed, propensity``."""
    need = [COL_NODE_ID, COL_ENTERPRISE_ID, COL_AS_OF, COL_APPROACHED, COL_SIGNED, COL_PROPENSITY]
    check_columns(list(logs.columns), need, "logs")
    a = logs[logs[COL_APPROACHED].to_numpy(dtype=bool)]
    y = a[COL_SIGNED].to_numpy(dtype=np.float64)
    bad = ~((y == 0) | (y == 1))
    if bad.any():
        raise ValueError(
            f"logs' signed must be 0 or 1 on every approached row; got {int(bad.sum())} rows with other values, "
            f"e.g. {[float(v) for v in y[bad][:3]]}."
        )
    out = _keys(a[[COL_NODE_ID, COL_AS_OF, COL_ENTERPRISE_ID, COL_SIGNED, COL_PROPENSITY]])
    dup = out.duplicated([COL_NODE_ID, COL_AS_OF, COL_ENTERPRISE_ID])
    if dup.any():
        raise ValueError(
            f"logs must hold each approached (node, as_of, enterprise) once; got {int(dup.sum())} repeats."
        )
    return out


def _shrinkage(w: np.ndarray, y: np.ndarray, m: np.ndarray) -> float:
    """λ in [0, 1] of DR's correction (module docstring): ``max(0, 1 − 1 / z²)`` with ``z`` the weighted
    mean residual over its standard error under the direct model, ``Σw²·m̂(1 − m̂) / (Σw)²``."""
    sw = float(w.sum())
    if sw <= 0:
        return 0.0
    mean = float(w @ (y - m)) / sw
    var = float((w * w) @ (m * (1.0 - m))) / sw**2
    if mean == 0.0:
        return 0.0
    if var <= 0.0:
        return 1.0
    return max(0.0, 1.0 - var / mean**2)


def _pooled(
    method: str, w: np.ndarray, y: np.ndarray, m: np.ndarray, clipped: np.ndarray, n_units: int, shrink: bool = False
) -> dict[str, float]:
    """The estimate from the places of some units (weights 0 where not covered)."""
    n_places, cov = len(w), w > 0
    sw = float(w.sum())
    lam = float("nan")
    if method == "snips":
        est = n_places / n_units * float(w @ y) / sw if sw > 0 else float("nan")
    else:
        correction = n_places * float(w @ (y - m)) / sw if sw > 0 else 0.0
        if shrink:
            lam = _shrinkage(w, y, m)
            correction *= lam
        # expected signings lie in [0, places]; a few covered places with large residuals can push the
        # self-normalised correction past either end (measured: −2.2× the truth with 1–2 effective places)
        est = min(max(float(m.sum()) + correction, 0.0), float(n_places)) / n_units if n_units else float("nan")
    n_cov = int(cov.sum())
    return {
        "estimate": est,
        "n_covered": n_cov,
        "coverage": n_cov / n_places if n_places else float("nan"),
        "n_signed": float(y[cov].sum()),
        "share_clipped": float(clipped[cov].mean()) if n_cov else float("nan"),
        "effective_n": sw**2 / float(w @ w) if sw > 0 else 0.0,
        "shrinkage": lam,
    }
