"""Training sets from the zone's outcome history (pure).

Approaches
    An approach is an (enterprise, node) pair's outcome records. It starts at the pair's first
    record; its label is the best stage reached within ``label_horizon_days`` of that start, mapped
    through ``TrainingConfig.stage_gains`` (default 线索/终止 0, 接洽 1, 考察/洽谈 2, 签约/落地 3).
    A pair is one approach: later records of it never open a new query.
Queries
    One query per (node, period) in which at least one approach started, for periods that start at
    least ``label_maturity_days`` before the newest outcome record (younger approaches are still
    running: their labels are not known yet) (period = quarter by
    default, ``query_period``). The query's as-of date is the period start: features use only
    records dated before it, the label only the approach's own records (dated on or after it).
Candidates of a query
    * the node's dense and lexical retrieval candidates founded before the as-of date, except pairs
      whose approach started before it (already in process, not a target any more); label 0 unless
      approached in this period;
    * every enterprise approached for the node in the period (labelled), even if retrieval missed it;
    * for each approached enterprise that retrieval missed, ``out_of_pool_negatives`` random
      enterprises that retrieval also missed (label 0), so that "not retrieved" does not give the
      label away. Sampling is seeded with ``random_state``.

``subsample_negatives`` keeps every approached row and at most ``max_negatives_per_query``
unapproached ones per query (seeded); apply it to the training split only so that validation and
test are evaluated on full candidate lists.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Final

import numpy as np
import pandas as pd

from features.pairs import COL_AS_OF, FEATURE_NAMES, build_pair_features
from features.relocation import RELOCATION_FEATURE_NAMES, relocation_features
from features.schema import (
    COL_DATE,
    COL_ENTERPRISE_ID,
    COL_FOUNDED,
    COL_NODE_ID,
    COL_OUTCOME_ID,
    COL_STAGE,
    EVENT_DATE_MIN,
    STAGES,
    check_columns,
)
from features.validate import date_bound_problem, today_in_zone
from training.config import TrainingConfig

log = logging.getLogger(__name__)

COL_QUERY: Final = "query_id"
COL_LABEL: Final = "label"
COL_APPROACHED: Final = "approached"
COL_RETRIEVED: Final = "retrieved"
COL_STARTED: Final = "started"
RETRIEVAL_COLUMNS: Final = ["dense_score", "dense_rank", "lexical_score", "lexical_rank"]
COL_SIGNED: Final = "signed"  # = training.offpolicy.COL_SIGNED
COL_FIT: Final = "fit"  # = features.relocation.COL_FIT
CARRIED_COLUMNS: Final = [COL_FIT, "similarity"]  # candidate columns a query row keeps when present (else NaN)
SIGNING_STAGES: Final = ("签约", "落地")
PERIOD_OF: Final = {"QS": "Q", "MS": "M", "YS": "Y"}


@dataclass(frozen=True)
class TrainingSet:
    """Rows sorted by query (as_of, node_id), then by candidate order.

    ``frame`` columns: ``query_id, node_id, enterprise_id, as_of, label, approached, retrieved,
    signed, similarity`` followed by ``feature_names`` and the relocation features
    (``features.relocation.RELOCATION_FEATURE_NAMES``, with the candidates' ``fit`` when they carry it).
    """

    frame: pd.DataFrame
    feature_names: list[str]

    @property
    def X(self) -> pd.DataFrame:
        return self.frame[self.feature_names]

    @property
    def y(self) -> np.ndarray:
        return self.frame[COL_LABEL].to_numpy(dtype=np.float64)

    @property
    def group(self) -> np.ndarray:
        return query_groups(self.frame)


def query_groups(frame: pd.DataFrame) -> np.ndarray:
    """Sizes of the consecutive runs of ``query_id`` (rows must be sorted by query)."""
    q = frame[COL_QUERY].to_numpy()
    if len(q) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(q[1:] != q[:-1]) + 1]
    sizes = np.diff(np.r_[starts, len(q)])
    if len(starts) != len(pd.unique(q)):
        raise ValueError("Rows are not sorted by query: some query_id appears in more than one run of rows.")
    return sizes


SET_ASIDE_COLUMNS: Final = (COL_OUTCOME_ID, "field", "value", "reason")


def usable_outcomes(outcomes: pd.DataFrame, today: date | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The outcome rows training can use, and the others set aside with a reason (pure).

    A row is set aside when its ``date`` is missing, not a date, before
    ``features.schema.EVENT_DATE_MIN`` or after ``today`` (default: today in Asia/Shanghai,
    ``features.validate.today_in_zone``) — e.g. ``9999-12-31``, which ``datetime64[ns]`` cannot even
    hold — or when its enterprise, node or stage is missing or the stage is not one of
    ``features.schema.STAGES``. Validated snapshots hold no such row; the analysts' feedback and
    older snapshots may.

    Returns:
        ``(usable, set_aside)``: ``usable`` is ``outcomes`` itself when every row is usable, else its
        usable rows (index and order kept); ``set_aside`` has one row per set-aside row (its index
        label from ``outcomes``) with ``outcome_id, field, value, reason`` (the first problem of the row).
    """
    today = today_in_zone() if today is None else today
    n = len(outcomes)
    field = np.full(n, None, dtype=object)
    value = np.full(n, "", dtype=object)
    reason = np.full(n, None, dtype=object)
    for col in (COL_ENTERPRISE_ID, COL_NODE_ID, COL_STAGE):
        if col not in outcomes:
            continue
        values = outcomes[col]
        missing = values.isna().to_numpy()
        bad = missing if col != COL_STAGE else missing | ~values.isin(STAGES).to_numpy()
        first = bad & pd.isna(reason)
        field[first], value[first] = col, values[first].astype(str).where(~missing[first], "").to_numpy()
        reason[first] = np.where(missing[first], "missing value", f"not one of {list(STAGES)}")
    if COL_DATE in outcomes:
        problems, shown = _date_problems(outcomes[COL_DATE], today)
        first = pd.notna(problems) & pd.isna(reason)
        field[first], value[first], reason[first] = COL_DATE, shown[first], problems[first]
    bad = pd.notna(reason)
    ids = outcomes[COL_OUTCOME_ID].astype(str).to_numpy() if COL_OUTCOME_ID in outcomes else np.arange(n).astype(str)
    set_aside = pd.DataFrame(
        {COL_OUTCOME_ID: ids[bad], "field": field[bad], "value": value[bad], "reason": reason[bad]},
        index=outcomes.index[bad],
    )
    return (outcomes[~bad] if bad.any() else outcomes), set_aside


def _date_problems(dates: pd.Series, today: date) -> tuple[np.ndarray, np.ndarray]:
    """Per row: why the date cannot be used (None when it can) and the date as shown."""
    codes, uniques = pd.factorize(dates, use_na_sentinel=True)
    problems = np.full(len(uniques) + 1, "missing value", dtype=object)
    shown = np.full(len(uniques) + 1, "", dtype=object)
    for i, u in enumerate(uniques):
        try:
            ts = pd.Timestamp(u)
        except (ValueError, TypeError, OverflowError):
            problems[i], shown[i] = "not a date", str(u)
            continue
        if pd.isna(ts):
            continue
        shown[i] = ts.strftime("%Y-%m-%d") if ts == ts.normalize() else str(ts)
        problems[i] = date_bound_problem(ts, EVENT_DATE_MIN, today)
    return problems[codes], shown[codes]


def describe_set_aside(set_aside: pd.DataFrame, first: int = 5) -> str:
    """'training sets aside 2 outcome rows it cannot use: fb-1 (date 9999-12-31: after today (…)), O7 (…)'."""
    n = len(set_aside)
    shown = [
        f"{r[COL_OUTCOME_ID]} ({r['field']}{' ' + r['value'] if r['value'] else ''}: {r['reason']})"
        for r in set_aside.head(first).to_dict("records")
    ]
    more = f" and {n - first} more" if n > first else ""
    return f"training sets aside {n} outcome row{'s' if n != 1 else ''} it cannot use: {', '.join(shown)}{more}"


def approaches(outcomes: pd.DataFrame, config: TrainingConfig) -> pd.DataFrame:
    """One row per (enterprise, node) approach: ``node_id, enterprise_id, started, as_of, label``."""
    check_columns(list(outcomes.columns), [COL_ENTERPRISE_ID, COL_NODE_ID, COL_STAGE, COL_DATE], "outcomes")
    unknown = sorted(set(outcomes[COL_STAGE].dropna().astype(str)) - set(config.stage_gains))
    if unknown:
        raise ValueError(
            f"outcomes have stages {unknown} without a gain in training.stage_gains; known stages are "
            f"{sorted(config.stage_gains)}."
        )
    o = pd.DataFrame(
        {
            COL_ENTERPRISE_ID: outcomes[COL_ENTERPRISE_ID].astype(str).to_numpy(),
            COL_NODE_ID: outcomes[COL_NODE_ID].astype(str).to_numpy(),
            "gain": outcomes[COL_STAGE].astype(str).map(config.stage_gains).to_numpy(dtype=np.float64),
            COL_DATE: pd.to_datetime(outcomes[COL_DATE]).astype("datetime64[ns]").to_numpy(),
        }
    ).dropna(subset=[COL_DATE])
    keys = [COL_ENTERPRISE_ID, COL_NODE_ID]
    o[COL_STARTED] = o.groupby(keys)[COL_DATE].transform("min")
    within = o[COL_DATE] < o[COL_STARTED] + pd.Timedelta(days=config.label_horizon_days)
    out = o[within].groupby(keys, as_index=False).agg(started=(COL_STARTED, "first"), label=("gain", "max"))
    out[COL_AS_OF] = (
        out[COL_STARTED].dt.to_period(PERIOD_OF[config.query_period]).dt.start_time.astype("datetime64[ns]")
    )
    return out[[COL_NODE_ID, COL_ENTERPRISE_ID, COL_STARTED, COL_AS_OF, COL_LABEL]].sort_values(
        [COL_AS_OF, COL_NODE_ID, COL_ENTERPRISE_ID], ignore_index=True
    )


def mature(appr: pd.DataFrame, outcomes: pd.DataFrame, maturity_days: int) -> pd.DataFrame:
    """Approaches of periods at least ``maturity_days`` older than the newest outcome record.

    The newest periods' approaches have not had time to reach 签约 (the history ends mid-process);
    kept, they would be graded as failures and the test set would hold no signings.
    """
    end = pd.to_datetime(outcomes[COL_DATE]).max()
    return appr[appr[COL_AS_OF] + pd.Timedelta(days=maturity_days) <= end].reset_index(drop=True)


def query_candidates(
    appr: pd.DataFrame,
    candidates: pd.DataFrame,
    enterprises: pd.DataFrame,
    config: TrainingConfig,
) -> pd.DataFrame:
    """Candidate rows of every query (see the module docstring), unsorted.

    Returns:
        ``node_id, as_of, enterprise_id, label, approached, retrieved`` + ``RETRIEVAL_COLUMNS``.
    """
    check_columns(list(candidates.columns), [COL_NODE_ID, COL_ENTERPRISE_ID], "candidates")
    keep = [c for c in [*RETRIEVAL_COLUMNS, *CARRIED_COLUMNS] if c in candidates]
    pool = candidates[[COL_NODE_ID, COL_ENTERPRISE_ID, *keep]].copy()
    for c in [*RETRIEVAL_COLUMNS, *CARRIED_COLUMNS]:
        if c not in pool:
            pool[c] = np.nan
    pool = pool[pool["dense_rank"].notna() | pool["lexical_rank"].notna()]
    pool = pool.astype({COL_NODE_ID: str, COL_ENTERPRISE_ID: str}).drop_duplicates([COL_NODE_ID, COL_ENTERPRISE_ID])
    founded = pd.Series(
        pd.to_datetime(enterprises[COL_FOUNDED]).astype("datetime64[ns]").to_numpy()
        if COL_FOUNDED in enterprises
        else pd.NaT,
        index=enterprises[COL_ENTERPRISE_ID].astype(str).to_numpy(),
    )
    founded = founded[~founded.index.duplicated(keep="last")]
    queries = appr[[COL_NODE_ID, COL_AS_OF]].drop_duplicates()
    rows = queries.merge(pool, on=COL_NODE_ID, how="inner")
    rows = rows[_founded_before(rows, founded)]
    started = appr.set_index([COL_NODE_ID, COL_ENTERPRISE_ID])[COL_STARTED]
    key = pd.MultiIndex.from_frame(rows[[COL_NODE_ID, COL_ENTERPRISE_ID]])
    rows = rows[~(started.reindex(key).to_numpy() < rows[COL_AS_OF].to_numpy())]  # already in process
    rows = rows.merge(appr[[COL_NODE_ID, COL_AS_OF, COL_ENTERPRISE_ID, COL_LABEL]], how="outer", indicator=True,
                      on=[COL_NODE_ID, COL_AS_OF, COL_ENTERPRISE_ID])  # fmt: skip
    rows[COL_APPROACHED] = rows["_merge"] != "left_only"
    rows[COL_RETRIEVED] = rows["_merge"] != "right_only"
    rows[COL_LABEL] = rows[COL_LABEL].fillna(0.0)
    rows = rows.drop(columns="_merge")
    extra = _out_of_pool(rows, pool, appr, founded, config)
    return pd.concat([rows, extra], ignore_index=True) if len(extra) else rows.reset_index(drop=True)


def _founded_before(rows: pd.DataFrame, founded: pd.Series) -> np.ndarray:
    f = founded.reindex(rows[COL_ENTERPRISE_ID].to_numpy()).to_numpy()
    return np.asarray(pd.isna(f) | (f < rows[COL_AS_OF].to_numpy()))


def _out_of_pool(
    rows: pd.DataFrame, pool: pd.DataFrame, appr: pd.DataFrame, founded: pd.Series, config: TrainingConfig
) -> pd.DataFrame:
    """Random unretrieved, unapproached enterprises: ``out_of_pool_negatives`` per approached-unretrieved one."""
    missed = rows[rows[COL_APPROACHED] & ~rows[COL_RETRIEVED]].groupby([COL_NODE_ID, COL_AS_OF]).size()
    want = np.ceil(missed.to_numpy() * config.out_of_pool_negatives).astype(np.int64)
    if want.sum() == 0 or len(founded) == 0:
        return rows.iloc[0:0]
    rng = np.random.default_rng(config.random_state)
    draws = want * 4 + 8  # oversample, then drop the ones that are retrieved, approached or too new
    q = np.repeat(np.arange(len(want)), draws)
    universe = founded.index.to_numpy()
    picks = pd.DataFrame(
        {
            COL_NODE_ID: missed.index.get_level_values(0).to_numpy()[q],
            COL_AS_OF: missed.index.get_level_values(1).to_numpy()[q],
            COL_ENTERPRISE_ID: universe[rng.integers(0, len(universe), size=len(q))],
            "_q": q,
        }
    ).drop_duplicates([COL_NODE_ID, COL_AS_OF, COL_ENTERPRISE_ID])
    picks = picks[_founded_before(picks, founded)]
    taken = pd.concat([pool[[COL_NODE_ID, COL_ENTERPRISE_ID]], appr[[COL_NODE_ID, COL_ENTERPRISE_ID]]])
    clash = pd.MultiIndex.from_frame(picks[[COL_NODE_ID, COL_ENTERPRISE_ID]]).isin(
        pd.MultiIndex.from_frame(taken.astype(str))
    )
    picks = picks[~clash]
    picks = picks[picks.groupby("_q").cumcount().to_numpy() < want[picks["_q"].to_numpy()]]
    return picks.drop(columns="_q").assign(
        **{COL_LABEL: 0.0, COL_APPROACHED: False, COL_RETRIEVED: False},
        **{c: np.nan for c in [*RETRIEVAL_COLUMNS, *CARRIED_COLUMNS]},
    )


def build_training_set(
    tables: Mapping[str, pd.DataFrame],
    nodes: pd.DataFrame,
    map_df: pd.DataFrame | None,
    candidates: pd.DataFrame,
    config: TrainingConfig,
    *,
    zone_province: str,
    today: date | None = None,
) -> TrainingSet:
    """Queries, candidates, labels and point-in-time features from the outcome history.

    Outcome rows training cannot use (a date outside 1949-10-01 … ``today``, a missing enterprise,
    node or stage: :func:`usable_outcomes`) are left out with a warning naming the first few; one bad
    row never stops training.

    Args:
        tables: the tables of ``features.io.load_tables``.
        nodes: ``features.chains.nodes_frame``; approaches at unknown nodes are ignored.
        map_df: colour map (optionally with ``as_of`` rows, see ``build_pair_features``).
        candidates: retrieval output for the nodes (``node_id, enterprise_id, dense_score, dense_rank,
            lexical_score, lexical_rank``), retrieved without the in-zone filter.
        config: labels, periods, sampling.
        zone_province: the zone's province.
        today: the latest usable outcome date (default: today in Asia/Shanghai).
    """
    outcomes = tables.get("outcomes")
    if outcomes is None or len(outcomes) == 0:
        raise ValueError("Cannot build a training set: the outcomes table is empty (no approach history).")
    outcomes, set_aside = usable_outcomes(outcomes, today)
    if len(set_aside):
        log.warning(describe_set_aside(set_aside))
        if len(outcomes) == 0:
            raise ValueError("Cannot build a training set: no outcome row is usable (see the warning above).")
        tables = {**tables, "outcomes": outcomes}
    appr = mature(approaches(outcomes, config), outcomes, config.label_maturity_days)
    appr = appr[appr[COL_NODE_ID].isin(set(nodes[COL_NODE_ID].astype(str)))]
    enterprises = tables.get("enterprises", pd.DataFrame(columns=[COL_ENTERPRISE_ID]))
    rows = query_candidates(appr, candidates, enterprises, config)
    rows = rows.sort_values(
        [COL_AS_OF, COL_NODE_ID, COL_RETRIEVED, "dense_rank", "lexical_rank", COL_ENTERPRISE_ID],
        ascending=[True, True, False, True, True, True],
        na_position="last",
        ignore_index=True,
    )
    rows.insert(0, COL_QUERY, rows[COL_NODE_ID] + "@" + rows[COL_AS_OF].dt.strftime("%Y-%m-%d"))
    feats = build_pair_features(rows.drop(columns=[COL_QUERY]), tables, nodes, map_df, zone_province=zone_province)
    rows[COL_SIGNED] = signed_column(rows, outcomes, config)
    reloc = relocation_features(rows[[COL_NODE_ID, COL_ENTERPRISE_ID, COL_AS_OF, COL_FIT]], tables,
                                zone_province=zone_province)  # fmt: skip
    frame = pd.concat(
        [rows[[COL_QUERY, COL_NODE_ID, COL_ENTERPRISE_ID, COL_AS_OF, COL_LABEL, COL_APPROACHED, COL_RETRIEVED,
               COL_SIGNED, "similarity"]],
         feats[FEATURE_NAMES], reloc[[c for c in RELOCATION_FEATURE_NAMES if c not in FEATURE_NAMES]]],
        axis=1,
    )  # fmt: skip
    return TrainingSet(frame=frame, feature_names=list(FEATURE_NAMES))


def signed_column(rows: pd.DataFrame, outcomes: pd.DataFrame, config: TrainingConfig) -> np.ndarray:
    """Per query row: 1.0 when its approach reached 签约/落地 within the horizon, 0.0 when not, NaN unapproached.

    The same approaches as the graded ``label`` (:func:`approaches`), labelled with the signing
    stages only: intermediate stages can be reached out of courtesy and are not signings.
    """
    gains = {s: int(s in SIGNING_STAGES) for s in config.stage_gains}
    signed = approaches(outcomes, config.model_copy(update={"stage_gains": gains}))
    keys = [COL_NODE_ID, COL_ENTERPRISE_ID, COL_AS_OF]
    y = rows[keys].merge(signed[[*keys, COL_LABEL]], on=keys, how="left", validate="many_to_one")[COL_LABEL]
    approached = rows[COL_APPROACHED].to_numpy(dtype=bool)
    return np.where(approached, y.fillna(0.0).to_numpy(dtype=np.float64), np.nan)


def subsample_negatives(frame: pd.DataFrame, max_per_query: int | None, random_state: int) -> pd.DataFrame:
    """Keep approached rows and at most ``max_per_query`` random unapproached rows per query (order kept)."""
    if max_per_query is None:
        return frame
    unapproached = ~frame[COL_APPROACHED].to_numpy(dtype=bool)
    key = np.random.default_rng(random_state).random(int(unapproached.sum()))
    order = pd.Series(key).groupby(frame[COL_QUERY].to_numpy()[unapproached]).rank(method="first").to_numpy()
    keep = ~unapproached
    keep[np.flatnonzero(unapproached)[order <= max_per_query]] = True
    return frame[keep]
