"""Training sets: approaches, labels, candidates per query, sampling, groups; time splits."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.pairs import FEATURE_NAMES
from training.config import TrainingConfig
from training.dataset import approaches, build_training_set, query_candidates, query_groups, subsample_negatives
from training.splits import split_frame, time_split

d = pd.Timestamp


def _outcomes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "outcome_id": [f"O{i}" for i in range(7)],
            "enterprise_id": ["A", "A", "A", "B", "B", "C", "A"],
            "node_id": ["n1", "n1", "n1", "n1", "n1", "n2", "n2"],
            "stage": ["线索", "接洽", "签约", "接洽", "终止", "考察", "接洽"],
            "date": [d("2023-02-10"), d("2023-03-01"), d("2024-05-01"), d("2023-06-30"), d("2023-08-01"),
                     d("2023-01-01"), d("2023-12-31")],
        }
    )  # fmt: skip


def test_approaches_label_best_stage_within_the_horizon() -> None:
    a = approaches(_outcomes(), TrainingConfig(label_horizon_days=365))
    assert a.to_dict("list") == {
        "node_id": ["n1", "n2", "n1", "n2"],
        "enterprise_id": ["A", "C", "B", "A"],
        "started": [d("2023-02-10"), d("2023-01-01"), d("2023-06-30"), d("2023-12-31")],
        "as_of": [d("2023-01-01"), d("2023-01-01"), d("2023-04-01"), d("2023-10-01")],
        "label": [1.0, 2.0, 1.0, 1.0],  # A's 签约 came 446 days after its start: outside the horizon
    }
    longer = approaches(_outcomes(), TrainingConfig(label_horizon_days=500, query_period="YS"))
    assert longer.set_index(["node_id", "enterprise_id"])["label"].to_dict() == {
        ("n2", "C"): 2.0, ("n1", "A"): 3.0, ("n1", "B"): 1.0, ("n2", "A"): 1.0,
    }  # fmt: skip
    assert set(longer["as_of"]) == {d("2023-01-01")}


def test_approaches_rejects_stages_without_gain() -> None:
    gains = {"线索": 0, "接洽": 1, "考察": 2, "洽谈": 2, "签约": 3, "落地": 3}
    with pytest.raises(
        ValueError, match=re.escape("outcomes have stages ['终止'] without a gain in training.stage_gains")
    ):
        approaches(_outcomes(), TrainingConfig(stage_gains=gains))


def test_query_candidates_adds_approached_and_out_of_pool_and_drops_pairs_in_process() -> None:
    appr = approaches(_outcomes(), TrainingConfig())
    pool = pd.DataFrame({"node_id": ["n1"] * 4, "enterprise_id": ["A", "P", "Q", "NEW"],
                         "dense_score": [0.9, 0.8, 0.7, 0.6], "dense_rank": [1.0, 2.0, 3.0, 4.0]})  # fmt: skip
    ents = pd.DataFrame({"enterprise_id": ["A", "B", "C", "P", "Q", "NEW", "Z1", "Z2"],
                         "founded": [d("2000-01-01")] * 5 + [d("2023-05-01"), d("2000-01-01"), d("2000-01-01")]})  # fmt: skip
    rows = query_candidates(appr, pool, ents, TrainingConfig(out_of_pool_negatives=1.0, random_state=0))
    q1 = rows[(rows["node_id"] == "n1") & (rows["as_of"] == d("2023-01-01"))].set_index("enterprise_id")
    assert sorted(q1.index) == ["A", "P", "Q"]  # NEW was founded after as_of
    assert (q1.loc["A", "label"], q1.loc["A", "approached"], q1.loc["P", "approached"]) == (1.0, True, False)
    q2 = rows[(rows["node_id"] == "n1") & (rows["as_of"] == d("2023-04-01"))].set_index("enterprise_id")
    # A is already in process (approach started before 2023-04-01); B was approached but not retrieved,
    # so one random unretrieved, unapproached enterprise joins as a negative
    assert "A" not in q2.index and q2.loc["B", "retrieved"] == np.False_ and q2.loc["B", "label"] == 1.0
    extra = q2[~q2["retrieved"] & ~q2["approached"]]
    assert len(extra) == 1 and extra.index[0] in {"C", "Z1", "Z2"} and np.isnan(extra["dense_score"].iloc[0])


def test_build_training_set_sorted_by_query_with_features(world: dict[str, Any]) -> None:
    cfg = TrainingConfig()
    ts = build_training_set(
        world["tables"], world["nodes"], world["map_df"], world["candidates"], cfg, zone_province="湖北省"
    )
    f = ts.frame
    assert ts.feature_names == FEATURE_NAMES and list(f.columns[:7]) == [
        "query_id", "node_id", "enterprise_id", "as_of", "label", "approached", "retrieved"]  # fmt: skip
    assert query_groups(f).sum() == len(f)
    assert not f.duplicated(["query_id", "enterprise_id"]).any()
    assert f["as_of"].is_monotonic_increasing
    assert set(np.unique(f["label"])) <= {0.0, 1.0, 2.0, 3.0} and (f["label"] > 0).sum() > 100
    again = build_training_set(
        world["tables"], world["nodes"], world["map_df"], world["candidates"], cfg, zone_province="湖北省"
    )
    pd.testing.assert_frame_equal(f, again.frame)


def test_subsample_negatives_keeps_approached_rows() -> None:
    frame = pd.DataFrame({"query_id": ["a"] * 6 + ["b"] * 3, "approached": [True, False, False, False, False, True,
                                                                            False, False, False]})  # fmt: skip
    kept = subsample_negatives(frame, 2, random_state=0)
    assert kept.groupby("query_id")["approached"].agg(["sum", "size"]).to_dict("list") == {
        "sum": [2, 0],
        "size": [4, 2],
    }
    assert kept.index.is_monotonic_increasing
    assert subsample_negatives(frame, None, 0) is frame


def test_query_groups_requires_sorted_rows() -> None:
    assert query_groups(pd.DataFrame({"query_id": ["a", "a", "b"]})).tolist() == [2, 1]
    with pytest.raises(ValueError, match=re.escape("Rows are not sorted by query")):
        query_groups(pd.DataFrame({"query_id": ["a", "b", "a"]}))


def test_time_split_keeps_periods_whole_and_ordered() -> None:
    dates = pd.Series(pd.to_datetime(["2023-01-01", "2023-04-01", "2023-07-01", "2023-10-01", "2024-01-01"] * 2))
    s = time_split(dates, valid_periods=1, test_periods=2)
    assert s.train == (d("2023-01-01"), d("2023-04-01")) and s.valid == (d("2023-07-01"),)
    assert s.test == (d("2023-10-01"), d("2024-01-01"))
    frame = pd.DataFrame({"as_of": dates, "i": range(10)})
    tr, va, te = split_frame(frame, s)
    assert (len(tr), len(va), len(te)) == (4, 2, 4) and tr["as_of"].max() < va["as_of"].min() <= te["as_of"].min()
    with pytest.raises(
        ValueError, match=re.escape("A time split needs at least 6 query periods (1 train, 2 valid, 3 test); got 5:")
    ):
        time_split(dates, valid_periods=2, test_periods=3)


# ---------------------------------------------------------------- rows training cannot use
def test_usable_outcomes_sets_aside_bad_dates_and_missing_values_with_reasons() -> None:
    from datetime import date, datetime

    from training.dataset import usable_outcomes

    raw = pd.DataFrame(
        {
            "outcome_id": ["O1", "fb-9", "O3", "O4", "O5", "O6", "O7"],
            "enterprise_id": ["A", "A", "B", "B", None, "C", "C"],
            "node_id": ["n1", "n1", "n1", "n1", "n1", "n1", "n2"],
            "stage": ["接洽", "签约", "接洽", "接洽", "接洽", "开会", "考察"],
            "date": [datetime(2023, 1, 5), datetime(9999, 12, 31), datetime(1900, 1, 1), None,
                     datetime(2023, 2, 1), datetime(2023, 3, 1), datetime(2026, 12, 3)],
        }
    )  # fmt: skip
    raw["date"] = pd.to_datetime(raw["date"])  # as the feedback merge makes it: datetime64[us]
    usable, set_aside = usable_outcomes(raw, today=date(2026, 12, 3))
    assert usable["outcome_id"].tolist() == ["O1", "O7"]
    assert set_aside.to_dict("list") == {
        "outcome_id": ["fb-9", "O3", "O4", "O5", "O6"],
        "field": ["date", "date", "date", "enterprise_id", "stage"],
        "value": ["9999-12-31", "1900-01-01", "", "", "开会"],
        "reason": [
            "after today (2026-12-03, Asia/Shanghai)",
            "before 1949-10-01",
            "missing value",
            "missing value",
            "not one of ['线索', '接洽', '考察', '洽谈', '签约', '落地', '终止']",
        ],
    }
    assert set_aside.index.tolist() == [1, 2, 3, 4, 5]
    clean, none = usable_outcomes(_outcomes(), today=date(2026, 12, 3))
    assert none.empty and clean.equals(_outcomes())


def test_build_training_set_sets_aside_an_outcome_dated_9999_and_warns(
    world: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    from datetime import datetime

    cfg = TrainingConfig()
    args = (world["nodes"], world["map_df"], world["candidates"], cfg)
    outcomes = world["tables"]["outcomes"]
    expected = build_training_set(world["tables"], *args, zone_province="湖北省").frame
    bad = outcomes.iloc[[0]].assign(outcome_id="BAD-1")
    bad["date"] = pd.Series([datetime(9999, 12, 31)], index=bad.index, dtype="datetime64[us]")
    tables = {**world["tables"], "outcomes": pd.concat([outcomes, bad], ignore_index=True)}
    assert tables["outcomes"]["date"].dtype == "datetime64[us]"
    with caplog.at_level("WARNING", logger="training.dataset"):
        ts = build_training_set(tables, *args, zone_province="湖北省")
    pd.testing.assert_frame_equal(ts.frame, expected)
    assert [r.getMessage() for r in caplog.records] == [
        "training sets aside 1 outcome row it cannot use: BAD-1 (date 9999-12-31: after today "
        f"({pd.Timestamp.now(tz='Asia/Shanghai').date()}, Asia/Shanghai))"
    ]
