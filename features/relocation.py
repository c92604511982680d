"""Pair features for the drivers of relocation (issue #11 item 4), point-in-time and pure.

Kept apart from ``features.pairs.FEATURE_NAMES`` so that the ranker's 46 features, its saved models
and every caller of ``build_pair_features`` stay as they are; a signing model adds these columns
by name (:data:`RELOCATION_FEATURE_NAMES`).

``signals_{type}_{zone|elsewhere}_{w}d``
    Signals of each type (``features.schema.SIGNAL_TYPES``) dated in the ``w`` days before as_of
    (``w`` in 90, 365; strictly before as_of), split by **where** they happened: the signal's
    province is the zone's (``zone``) or another known province (``elsewhere``). A signal without a
    province counts in neither: a new branch of unknown place says nothing about coming here.
``capital_band``, ``employees_band``
    Size bands 0–3 of registered capital (< 1000万, < 1亿, < 10亿, ≥ 10亿 CNY) and of insured
    employees (< 50, < 300, < 1000, ≥ 1000); NaN when unknown. Current registry values (not
    historised, like ``features.pairs``' size features).
``fit``, ``fit_relative``, ``fit_gap_best``, ``fit_rank_pct``
    The pair's calibrated ``fit`` (a column of the candidates when the fit model has run, else NaN),
    its ratio to and gap from the best fit among the same node's candidates at the same as_of,
    and its rank by fit there over the number of candidates (best = 1 / n). Retrieval ranks are
    inputs to fit, not features of propensity.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np
import pandas as pd

from features.pairs import COL_AS_OF, _as_of_ns, _events_before, _table, short_province
from features.schema import (
    COL_CAPITAL_CNY,
    COL_DATE,
    COL_EMPLOYEES,
    COL_ENTERPRISE_ID,
    COL_NODE_ID,
    COL_PROVINCE,
    COL_SIGNAL_TYPE,
    SIGNAL_TYPES,
    check_columns,
)

RELOCATION_WINDOWS: Final = (90, 365)
WHERE: Final = ("zone", "elsewhere")
CAPITAL_BANDS_CNY: Final = (1e7, 1e8, 1e9)  # 1000万, 1亿, 10亿
EMPLOYEE_BANDS: Final = (50.0, 300.0, 1000.0)
COL_FIT: Final = "fit"

SIGNAL_WHERE_FEATURES: Final = [
    f"signals_{t}_{where}_{w}d" for t in SIGNAL_TYPES for where in WHERE for w in RELOCATION_WINDOWS
]
SIZE_BAND_FEATURES: Final = ["capital_band", "employees_band"]
FIT_FEATURES: Final = [COL_FIT, "fit_relative", "fit_gap_best", "fit_rank_pct"]
RELOCATION_FEATURE_NAMES: Final[list[str]] = [*SIGNAL_WHERE_FEATURES, *SIZE_BAND_FEATURES, *FIT_FEATURES]


def relocation_features(
    candidates: pd.DataFrame,
    tables: Mapping[str, pd.DataFrame],
    as_of: pd.Timestamp | None = None,
    *,
    zone_province: str,
) -> pd.DataFrame:
    """The features of the module docstring for each (node, candidate, as-of date).

    Args:
        candidates: ``node_id, enterprise_id`` [+ ``as_of`` per row, + ``fit``].
        tables: ``signals`` (``enterprise_id, signal_type, date, province``) and ``enterprises``
            (``enterprise_id``, registered capital, employees); missing tables count as empty.
        as_of: the date for every row when candidates have no ``as_of`` column.
        zone_province: the zone's province, e.g. '湖北省'.

    Returns:
        (n_pairs, 3 + len(RELOCATION_FEATURE_NAMES)): ``node_id, enterprise_id, as_of`` then the
        features as float64, in the row order (and index) of ``candidates``.
    """
    check_columns(list(candidates.columns), [COL_NODE_ID, COL_ENTERPRISE_ID], "candidates")
    asof = _as_of_ns(candidates, as_of)
    out = {**signal_where_features(candidates, tables, asof, zone_province)}
    out.update(size_band_features(candidates, tables))
    out.update(fit_relative_features(candidates, asof))
    keys = pd.DataFrame(
        {
            COL_NODE_ID: candidates[COL_NODE_ID],
            COL_ENTERPRISE_ID: candidates[COL_ENTERPRISE_ID],
            COL_AS_OF: pd.Series(asof.astype("datetime64[ns]"), index=candidates.index),
        }
    )
    feats = pd.DataFrame({n: out[n] for n in RELOCATION_FEATURE_NAMES}, index=candidates.index)
    return pd.concat([keys, feats], axis=1)


def signal_where_features(
    candidates: pd.DataFrame, tables: Mapping[str, pd.DataFrame], asof: np.ndarray, zone_province: str
) -> dict[str, np.ndarray]:
    """Signal counts by type × (zone province | elsewhere) × window, per row (``asof`` in ns)."""
    signals = _table(tables, "signals", [COL_ENTERPRISE_ID, COL_SIGNAL_TYPE, COL_DATE])
    # one row per distinct (enterprise, as-of): signals are joined once per firm and date
    ent_codes, ents = pd.factorize(candidates[COL_ENTERPRISE_ID].astype("string"))
    date_codes, dates = pd.factorize(asof)
    key_codes, keys = pd.factorize(np.asarray(ent_codes, dtype=np.int64) * len(dates) + date_codes)
    u_ent = np.asarray(keys // len(dates), dtype=np.int64)  # -1 (missing id) never matches a signal
    u_asof = np.asarray(dates, dtype=np.int64)[keys % len(dates)]
    ent_index = pd.Index(np.asarray(ents.astype(object)), dtype=object)
    rows, ev, age = _events_before(signals[COL_ENTERPRISE_ID], signals[COL_DATE], ent_index, u_ent, u_asof)
    type_code = pd.Categorical(signals[COL_SIGNAL_TYPE].astype("string"), categories=list(SIGNAL_TYPES)).codes[ev]
    zone = short_province(pd.Series([zone_province])).iloc[0]
    prov = short_province(signals[COL_PROVINCE]) if COL_PROVINCE in signals else pd.Series(pd.NA, index=signals.index)
    prov_ev = prov.astype("string").to_numpy(dtype=object, na_value="")[ev]
    known = prov_ev != ""
    in_zone = known & (prov_ev == zone)
    where_mask = {"zone": in_zone, "elsewhere": known & ~in_zone}
    n = len(keys)
    out = {}
    for t, stype in enumerate(SIGNAL_TYPES):
        for where in WHERE:
            for w in RELOCATION_WINDOWS:
                m = (type_code == t) & where_mask[where] & (age <= w)
                out[f"signals_{stype}_{where}_{w}d"] = np.bincount(rows[m], minlength=n).astype(float)[key_codes]
    return out


def _bands(values: np.ndarray, cuts: tuple[float, ...]) -> np.ndarray:
    return np.where(np.isnan(values), np.nan, np.searchsorted(np.asarray(cuts), values, side="right").astype(float))


def size_band_features(candidates: pd.DataFrame, tables: Mapping[str, pd.DataFrame]) -> dict[str, np.ndarray]:
    """``capital_band`` and ``employees_band`` (0–3, NaN unknown) of each row's enterprise."""
    ent = _table(tables, "enterprises", [COL_ENTERPRISE_ID]).drop_duplicates(COL_ENTERPRISE_ID, keep="last")
    index = pd.Index(ent[COL_ENTERPRISE_ID].astype(str).to_numpy(dtype=object))
    pos = index.get_indexer(pd.Index(candidates[COL_ENTERPRISE_ID].astype(str).to_numpy(dtype=object)))
    out = {}
    for name, col, cuts in (("capital_band", COL_CAPITAL_CNY, CAPITAL_BANDS_CNY), ("employees_band", COL_EMPLOYEES, EMPLOYEE_BANDS)):  # fmt: skip
        values = pd.to_numeric(ent[col], errors="coerce").to_numpy(dtype=np.float64) if col in ent else np.full(len(ent), np.nan)  # fmt: skip
        per_row = np.where(pos >= 0, np.append(values, np.nan)[pos], np.nan)
        out[name] = _bands(per_row, cuts)
    return out


def fit_relative_features(candidates: pd.DataFrame, asof: np.ndarray) -> dict[str, np.ndarray]:
    """``fit`` and its place among the same node's candidates at the same as_of (NaN without ``fit``)."""
    n = len(candidates)
    if COL_FIT not in candidates.columns:
        return {name: np.full(n, np.nan) for name in FIT_FEATURES}
    fit = pd.to_numeric(candidates[COL_FIT], errors="coerce").to_numpy(dtype=np.float64)
    node_codes = pd.factorize(candidates[COL_NODE_ID].to_numpy())[0].astype(np.int64)
    date_codes, dates = pd.factorize(asof)
    group = node_codes * max(len(dates), 1) + date_codes  # one integer per (node, as_of): no MultiIndex
    s = pd.Series(fit)
    g = s.groupby(group)
    best = g.transform("max").to_numpy(dtype=np.float64)
    rank = g.rank(ascending=False, method="min").to_numpy(dtype=np.float64)
    count = g.transform("count").to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(best > 0, fit / best, np.nan)
    return {
        COL_FIT: fit,
        "fit_relative": relative,
        "fit_gap_best": best - fit,
        "fit_rank_pct": np.where(np.isnan(fit), np.nan, rank / count),
    }
