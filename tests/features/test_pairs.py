"""Point-in-time pair features: exact values on a hand-made zone, leakage, per-row as_of, errors."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from features.pairs import FEATURE_NAMES, PATH_CAP, build_pair_features, geography_features, short_province

AS_OF = pd.Timestamp("2024-07-01")


def _nodes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "node_id": ["c.chip", "c.module"],
            "industry_codes": [["3976", "3973"], ["3921"]],
            "strategic_weight": [2.0, 1.0],
        }
    )


def _tables() -> dict[str, pd.DataFrame]:
    d = pd.Timestamp
    enterprises = pd.DataFrame(
        {
            "enterprise_id": ["E1", "E2", "E3", "L1"],
            "province": ["湖北省", "广东省", "湖南省", "湖北省"],
            "founded": [d("2014-07-01"), d("2020-01-01"), None, d("2000-01-01")],
            "registered_capital_cny": [np.e**10 - 1, 0.0, None, 1e9],
            "employees": [np.e**3 - 1, None, 5.0, 1000.0],
            "industry_code": ["3976", "3979", "3921", "3976"],
            "listed": [False, True, False, True],
            "financing_round": ["B轮", "IPO", None, "IPO"],
            "financing_date": [d("2024-01-01"), d("2024-09-01"), None, d("2010-01-01")],
        }
    )
    signals = pd.DataFrame(
        {
            "signal_id": ["S1", "S2", "S3", "S4", "S5"],
            "enterprise_id": ["E1", "E1", "E1", "E1", "E2"],
            "signal_type": ["financing", "financing", "new_branch", "hiring", "land_purchase"],
            "date": [d("2024-06-01"), d("2023-12-01"), d("2022-01-01"), d("2024-07-01"), d("2023-08-01")],
            "province": ["湖北省", "湖北省", "湖北省", "湖北省", "广东省"],
        }
    )
    presence = pd.DataFrame(
        {"enterprise_id": ["L1"], "node_id": ["c.module"], "year": [2021], "is_chain_leader": [True]}
    )
    assets = pd.DataFrame({"asset_id": ["F1", "U1"], "asset_type": ["fund", "university"], "name": ["基金", "大学"]})
    relations = pd.DataFrame(
        {
            "relation_id": ["R1", "R2", "R3"],
            "src_id": ["L1", "F1", "E2"],
            "dst_id": ["E1", "E3", "E3"],
            "relation_type": ["supplier", "fund_portfolio", "supplier"],
            "date": [d("2023-01-01"), d("2022-05-01"), d("2021-01-01")],
        }
    )
    outcomes = pd.DataFrame(
        {
            "outcome_id": ["O1", "O2", "O3"],
            "enterprise_id": ["E2", "E2", "E1"],
            "node_id": ["c.chip", "c.chip", "c.module"],
            "stage": ["接洽", "终止", "接洽"],
            "date": [d("2023-09-01"), d("2024-02-01"), d("2019-01-01")],
        }
    )
    return {"enterprises": enterprises, "signals": signals, "presence": presence, "assets": assets,
            "relations": relations, "outcomes": outcomes}  # fmt: skip


def _candidates() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "node_id": ["c.chip", "c.chip", "c.chip", "c.module", "c.chip"],
            "enterprise_id": ["E1", "E2", "E3", "E1", "X9"],
            "dense_score": [0.9, 0.8, np.nan, 0.7, 0.1],
            "dense_rank": [1.0, 2.0, np.nan, 1.0, 3.0],
            "lexical_score": [0.5, np.nan, 0.4, 0.6, np.nan],
            "lexical_rank": [1.0, np.nan, 2.0, 1.0, np.nan],
        }
    )


MAP = pd.DataFrame({"node_id": ["c.chip", "c.module"], "colour": ["red", "green"], "gap": [0.9, 0.0]})


def _features(candidates: pd.DataFrame | None = None, tables: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    return build_pair_features(
        _candidates() if candidates is None else candidates,
        tables or _tables(),
        _nodes(),
        MAP,
        AS_OF,
        zone_province="湖北省",
    )


def test_build_pair_features_exact_values_on_a_hand_made_zone() -> None:
    f = _features().set_index(["node_id", "enterprise_id"])
    assert list(f.columns) == ["as_of", *FEATURE_NAMES]
    e1 = f.loc[("c.chip", "E1")]
    expected_e1 = {
        "dense_score": 0.9, "n_retrievers": 2.0, "industry_exact": 1.0, "industry_group": 1.0, "industry_division": 1.0,
        "log_capital": 10.0, "log_employees": 3.0, "age_years": 3653 / 365.25, "listed": 0.0,
        "financing_round": 3.0, "financing_age_days": 182.0,
        "signals_financing_90d": 1.0, "signals_financing_180d": 1.0, "signals_financing_365d": 2.0,
        "signals_hiring_365d": 0.0,  # dated on as_of itself: not before it
        "signals_new_branch_365d": 0.0, "branches_in_zone_province": 1.0,
        "same_province": 1.0, "distance_km": 0.0, "neighbour_province": 0.0, "is_local": 0.0,
        "ties_leader": 1.0, "ties_local": 1.0, "ties_fund": 0.0, "path_length": 1.0,
        "node_colour": 2.0, "node_gap": 0.9, "strategic_weight": 2.0,
        "prior_contacts": 1.0, "terminated_365d": 0.0, "contacted_node_before": 0.0,
    }  # fmt: skip
    for name, value in expected_e1.items():
        assert e1[name] == pytest.approx(value, abs=1e-9), name
    assert f.loc[("c.module", "E1"), "contacted_node_before"] == 1.0
    assert f.loc[("c.module", "E1"), "industry_exact"] == 0.0
    assert f.loc[("c.module", "E1"), "industry_division"] == 1.0  # 39 = 39
    e2 = f.loc[("c.chip", "E2")]
    # the IPO is dated after as_of: round, its age and the listing are unknown then
    assert np.isnan(e2["financing_round"]) and np.isnan(e2["financing_age_days"]) and e2["listed"] == 0.0
    assert (e2["industry_exact"], e2["industry_group"], e2["industry_division"]) == (0.0, 1.0, 1.0)
    assert (e2["signals_land_purchase_365d"], e2["signals_land_purchase_180d"]) == (1.0, 0.0)
    assert (e2["prior_contacts"], e2["terminated_365d"], e2["neighbour_province"]) == (2.0, 1.0, 0.0)
    assert (e2["ties_local"], e2["path_length"]) == (0.0, 2.0)  # E2 - E3 - F1 (fund)
    e3 = f.loc[("c.chip", "E3")]
    assert (e3["ties_fund"], e3["path_length"], e3["neighbour_province"], e3["n_retrievers"]) == (1.0, 1.0, 1.0, 1.0)
    assert np.isnan(e3["age_years"]) and np.isnan(e3["log_capital"])
    unknown = f.loc[("c.chip", "X9")]
    assert np.isnan(unknown["log_capital"]) and unknown["path_length"] == PATH_CAP and unknown["prior_contacts"] == 0.0


def test_build_pair_features_ignores_records_dated_on_or_after_as_of() -> None:
    """Leakage: future signals, relations, outcomes, presence and financing change no feature."""
    base = _features()
    t = _tables()
    d = pd.Timestamp
    future = {
        "signals": pd.DataFrame({"signal_id": ["S9", "S10"], "enterprise_id": ["E3", "E1"],
                                 "signal_type": ["new_branch", "financing"], "date": [AS_OF, d("2025-01-01")],
                                 "province": ["湖北省", "湖北省"]}),
        "relations": pd.DataFrame({"relation_id": ["R9", "R10"], "src_id": ["L1", "U1"], "dst_id": ["E2", "X9"],
                                   "relation_type": ["supplier", "alumni"], "date": [AS_OF, d("2026-01-01")]}),
        "outcomes": pd.DataFrame({"outcome_id": ["O9", "O10"], "enterprise_id": ["E3", "E1"], "node_id": ["c.chip"] * 2,
                                  "stage": ["签约", "终止"], "date": [AS_OF, d("2024-12-01")]}),
        "presence": pd.DataFrame({"enterprise_id": ["E3"], "node_id": ["c.chip"], "year": [2025],
                                  "is_chain_leader": [True]}),
    }  # fmt: skip
    for name, rows in future.items():
        t[name] = pd.concat([t[name], rows], ignore_index=True)
    pd.testing.assert_frame_equal(_features(tables=t), base)


def test_build_pair_features_per_row_as_of_equals_scalar_calls() -> None:
    cands = _candidates()
    dates = [pd.Timestamp("2023-01-01"), AS_OF, pd.Timestamp("2024-12-31")]
    stacked = pd.concat([cands.assign(as_of=d) for d in dates], ignore_index=True)
    together = build_pair_features(stacked, _tables(), _nodes(), MAP, zone_province="湖北省")
    one_by_one = pd.concat(
        [build_pair_features(cands, _tables(), _nodes(), MAP, d, zone_province="湖北省") for d in dates],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(together, one_by_one)
    early = together[together["as_of"] == dates[0]].set_index(["node_id", "enterprise_id"])
    assert early.loc[("c.chip", "E1"), "signals_financing_365d"] == 0.0
    assert early.loc[("c.chip", "E2"), "prior_contacts"] == 0.0


def test_build_pair_features_uses_the_map_known_at_each_date() -> None:
    maps = pd.DataFrame(
        {"node_id": ["c.chip", "c.chip"], "colour": ["blue", "red"], "gap": [0.5, 0.9],
         "as_of": [pd.Timestamp("2023-01-01"), pd.Timestamp("2024-01-01")]}
    )  # fmt: skip
    stacked = pd.DataFrame({"node_id": ["c.chip"] * 3, "enterprise_id": ["E1"] * 3,
                            "as_of": pd.to_datetime(["2022-06-01", "2023-06-01", "2024-06-01"])})  # fmt: skip
    f = build_pair_features(stacked, _tables(), _nodes(), maps, zone_province="湖北省")
    np.testing.assert_array_equal(f["node_colour"].to_numpy(), [np.nan, 1.0, 2.0])
    np.testing.assert_array_equal(f["node_gap"].to_numpy(), [np.nan, 0.5, 0.9])


def test_build_pair_features_rejects_missing_columns_and_dates() -> None:
    with pytest.raises(ValueError, match=re.escape("candidates is missing required columns ['node_id']")):
        build_pair_features(
            pd.DataFrame({"enterprise_id": ["E1"]}), _tables(), _nodes(), MAP, AS_OF, zone_province="湖北省"
        )
    with pytest.raises(
        ValueError, match=re.escape("as_of is required when candidates have no 'as_of' column; got None.")
    ):
        build_pair_features(_candidates(), _tables(), _nodes(), MAP, zone_province="湖北省")
    with pytest.raises(ValueError, match=re.escape("Pass either an as_of argument or an 'as_of' column")):
        build_pair_features(_candidates().assign(as_of=AS_OF), _tables(), _nodes(), MAP, AS_OF, zone_province="湖北省")


def test_geography_features_distance_and_neighbours() -> None:
    g = geography_features(pd.Series(["湖北省", "湖南", "广东省", "新疆维吾尔自治区", None]), "湖北省")
    np.testing.assert_array_equal(g["same_province"], [1.0, 0.0, 0.0, 0.0, np.nan])
    np.testing.assert_array_equal(g["neighbour_province"], [0.0, 1.0, 0.0, 0.0, np.nan])
    assert g["distance_km"][0] == 0.0 and 290 < g["distance_km"][1] < 310 and g["distance_km"][3] > 2500
    assert short_province(pd.Series(["广西壮族自治区"])).iloc[0] == "广西"
    with pytest.raises(ValueError, match=re.escape("zone_province must be a province of")):
        geography_features(pd.Series(["湖北省"]), "火星")
