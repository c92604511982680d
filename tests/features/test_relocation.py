"""Relocation features: where signals happened × type × recency, size bands, fit relative to the node."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.testing import assert_allclose, assert_array_equal

from features.pairs import FEATURE_NAMES
from features.relocation import RELOCATION_FEATURE_NAMES, relocation_features


def _tables() -> dict[str, pd.DataFrame]:
    signals = pd.DataFrame(
        {
            "signal_id": ["S1", "S2", "S3", "S4", "S5", "S6"],
            "enterprise_id": ["E1", "E1", "E1", "E2", "E2", "E1"],
            "signal_type": ["new_branch", "new_branch", "land_purchase", "new_branch", "hiring", "new_branch"],
            "date": pd.to_datetime(
                ["2024-05-01", "2023-12-01", "2024-06-20", "2024-06-01", "2024-06-15", "2024-07-01"]
            ),
            "province": ["湖北省", "广东省", "湖北", None, "江苏省", "湖北省"],
        }
    )
    enterprises = pd.DataFrame(
        {
            "enterprise_id": ["E1", "E2", "E3"],
            "registered_capital_cny": [5e6, 2e8, np.nan],
            "employees": [50.0, 20.0, 5000.0],
        }
    )
    return {"signals": signals, "enterprises": enterprises}


def _candidates() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "node_id": ["n1", "n1", "n1", "n2"],
            "enterprise_id": ["E1", "E2", "E3", "E1"],
            "fit": [0.8, 0.4, np.nan, 0.5],
        },
        index=[10, 11, 12, 13],
    )


def test_relocation_features_by_hand() -> None:
    got = relocation_features(_candidates(), _tables(), pd.Timestamp("2024-07-01"), zone_province="湖北省")
    assert list(got.columns) == ["node_id", "enterprise_id", "as_of", *RELOCATION_FEATURE_NAMES]
    assert list(got.index) == [10, 11, 12, 13]
    # E1: branch in Hubei 61 days before (90 and 365), branch in Guangdong 213 days before (365 only),
    # land in Hubei 11 days before; S6 is dated on as_of itself, so not yet known
    assert_array_equal(got["signals_new_branch_zone_90d"], [1, 0, 0, 1])
    assert_array_equal(got["signals_new_branch_zone_365d"], [1, 0, 0, 1])
    assert_array_equal(got["signals_new_branch_elsewhere_90d"], [0, 0, 0, 0])
    assert_array_equal(got["signals_new_branch_elsewhere_365d"], [1, 0, 0, 1])
    assert_array_equal(got["signals_land_purchase_zone_90d"], [1, 0, 0, 1])
    # E2: a branch of unknown province counts nowhere; hiring in Jiangsu is elsewhere
    assert_array_equal(got["signals_hiring_elsewhere_90d"], [0, 1, 0, 0])
    assert got.filter(like="signals_").to_numpy().sum() == 2 * 5 + 2  # E1: 5 counts per row, E2: hiring twice
    assert_array_equal(got["capital_band"], [0, 2, np.nan, 0])
    assert_array_equal(got["employees_band"], [1, 0, 3, 1])
    assert_allclose(got["fit_relative"], [1.0, 0.5, np.nan, 1.0])
    assert_allclose(got["fit_gap_best"], [0.0, 0.4, np.nan, 0.0])
    assert_allclose(got["fit_rank_pct"], [0.5, 1.0, np.nan, 1.0])


def test_relocation_features_are_point_in_time_per_row() -> None:
    cands = _candidates().assign(as_of=pd.to_datetime(["2024-01-01", "2024-07-01", "2024-07-01", "2024-07-02"]))
    got = relocation_features(cands, _tables(), zone_province="湖北")
    # at 2024-01-01 only the Guangdong branch (31 days before) is known for E1
    assert_array_equal(got["signals_new_branch_elsewhere_90d"], [1, 0, 0, 0])
    assert_array_equal(got["signals_new_branch_zone_90d"], [0, 0, 0, 2])  # S1 and S6 by 2024-07-02
    # fit is ranked within (node, as_of): (n1, 07-01) holds E2 and E3 (no fit), the others are alone
    assert_allclose(got["fit_relative"], [1.0, 1.0, np.nan, 1.0])


def test_relocation_features_without_fit_or_tables() -> None:
    got = relocation_features(_candidates().drop(columns="fit"), {}, pd.Timestamp("2024-07-01"), zone_province="湖北省")
    assert got[RELOCATION_FEATURE_NAMES].filter(like="signals_").to_numpy().sum() == 0
    assert got[["fit", "fit_relative", "capital_band"]].isna().all().all()


def test_relocation_feature_names_do_not_clash_with_pair_features() -> None:
    assert not set(RELOCATION_FEATURE_NAMES) & set(FEATURE_NAMES)
    assert len(set(RELOCATION_FEATURE_NAMES)) == len(RELOCATION_FEATURE_NAMES) == 5 * 2 * 2 + 2 + 4
