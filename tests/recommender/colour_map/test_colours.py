"""Colours, reasons, LQ, gap and diff of the three-colour map on small hand-made zones."""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from recommender.colour_map.colours import (
    DIFF_COLUMNS,
    MAP_COLUMNS,
    colour_of,
    compute_map,
    diff_maps,
    format_cny,
    gap_of,
    location_quotient,
    reason_of,
)
from recommender.settings import MapConfig

NAN = float("nan")


def _nodes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "chain_id": ["z"] * 4,
            "node_id": ["z.a", "z.b", "z.c", "z.d"],
            "name": ["甲节点", "乙节点", "丙节点", "丁节点"],
            "stage": ["upstream", "midstream", "downstream", "downstream"],
            "industry_codes": [["1111"], ["2222"], ["3333"], ["4444", "4445"]],
        }
    )


def _universe() -> pd.DataFrame:
    """100 operating enterprises U000..U099 (codes 1111 x10, 2222 x20, 3333 x40, 4444 x30) and one
    closed enterprise X000 with code 1111 (outside the universe by default)."""
    codes = ["1111"] * 10 + ["2222"] * 20 + ["3333"] * 40 + ["4444"] * 30
    ent = pd.DataFrame(
        {
            "enterprise_id": [f"U{i:03d}" for i in range(100)],
            "name": [f"企业{i:03d}" for i in range(100)],
            "industry_code": codes,
            "is_operating": True,
        }
    )
    closed = pd.DataFrame(
        {"enterprise_id": ["X000"], "name": ["注销企业"], "industry_code": ["1111"], "is_operating": [False]}
    )
    return pd.concat([ent, closed], ignore_index=True)


def _presence() -> pd.DataFrame:
    """2024: z.a 6 locals (U000 leader, 3亿元 in all), z.b 2 locals, z.c none, z.d U070 (code 4444)
    and U010 (code 2222: outside z.d's codes). 2023: z.a 2亿元, z.d 1亿元."""
    rows = [(f"U{i:03d}", "z.a", 2024, 5e7, i == 0) for i in range(6)]
    rows += [("U010", "z.b", 2024, 1e7, False), ("U011", "z.b", 2024, 2e7, False)]
    rows += [("U070", "z.d", 2024, 6e7, False), ("U010", "z.d", 2024, 3e7, False)]
    rows += [("U000", "z.a", 2023, 2e8, True), ("U070", "z.d", 2023, 1e8, False)]
    return pd.DataFrame(rows, columns=["enterprise_id", "node_id", "year", "output_value_cny", "is_chain_leader"])


@pytest.fixture
def zone_map() -> pd.DataFrame:
    return compute_map(_nodes(), _presence(), _universe(), MapConfig())


def test_compute_map_columns_and_order(zone_map: pd.DataFrame) -> None:
    assert list(zone_map.columns) == MAP_COLUMNS
    assert zone_map["node_id"].tolist() == ["z.a", "z.b", "z.c", "z.d"]
    assert zone_map["year"].tolist() == [2024] * 4
    assert zone_map["priority"].isna().all()


def test_compute_map_counts_output_leader_growth(zone_map: pd.DataFrame) -> None:
    assert zone_map["n_local"].tolist() == [6, 2, 0, 2]
    assert_allclose(zone_map["output_value_cny"].to_numpy(), [3e8, 3e7, NAN, 9e7])
    assert zone_map["has_leader"].tolist() == [True, False, False, False]
    assert zone_map["leaders"].tolist() == [["企业000"], [], [], []]
    assert_allclose(zone_map["growth"].to_numpy(), [0.5, NAN, NAN, -0.1])


def test_compute_map_location_quotient(zone_map: pd.DataFrame) -> None:
    # N_local = 6 + 2 + 0 + 2 = 10 (U010 sits at two nodes). z.d: n_universe = 30 (code 4444; 4445
    # unused) + U010 (local there, registered under 2222) = 31; N_universe = 10 + 20 + 40 + 31 = 101.
    assert zone_map["n_universe"].tolist() == [10, 20, 40, 31]
    assert_allclose(zone_map["lq"].to_numpy(), [0.6 / (10 / 101), 0.2 / (20 / 101), 0.0, 0.2 / (31 / 101)])


def test_compute_map_colours_and_reasons(zone_map: pd.DataFrame) -> None:
    assert zone_map["colour"].tolist() == ["green", "blue", "red", "blue"]
    assert zone_map["reason"].tolist() == [
        "本地6家企业，产值3.0亿元（同比增长50.0%），含链主〈企业000〉，区位熵6.06，需延链固链",
        "本地2家企业，产值3000万元，无链主，区位熵1.01；距绿色尚缺：企业数≥5家、链主、区位熵≥1.20，需强链",
        "本地无企业布局（区位熵0.00），需补链",
        "本地2家企业，产值9000万元（同比下降10.0%），无链主，区位熵0.65；距绿色尚缺：企业数≥5家、链主、区位熵≥1.20，需强链",
    ]


def test_compute_map_gap(zone_map: pd.DataFrame) -> None:
    lq_b, lq_d = 0.2 / (20 / 101), 0.2 / (31 / 101)
    expected = [0.0, 1 - (0.4 + min(lq_b / 1.2, 1) + 0) / 3, 1.0, 1 - (0.4 + lq_d / 1.2 + 0) / 3]
    assert_allclose(zone_map["gap"].to_numpy(), expected, atol=1e-6)


def test_compute_map_non_operating_enterprises_join_the_universe_when_asked() -> None:
    m = compute_map(_nodes(), _presence(), _universe(), MapConfig(exclude_non_operating=False))
    assert m["n_universe"].tolist() == [11, 20, 40, 31]
    assert_allclose(m["lq"].iloc[0], 0.6 / (11 / 102))


def test_compute_map_local_enterprise_missing_from_universe_counts_in_both() -> None:
    presence = pd.DataFrame(
        {
            "enterprise_id": ["NEW1"],
            "node_id": ["z.c"],
            "year": [2024],
            "output_value_cny": [1e6],
            "is_chain_leader": [False],
        }
    )
    m = compute_map(_nodes(), presence, _universe(), MapConfig())
    assert m["n_universe"].tolist() == [10, 20, 41, 30]
    assert_allclose(m["lq"].to_numpy(), [0.0, 0.0, 1.0 / (41 / 101), 0.0])
    assert m["reason"].iloc[2] == "本地1家企业，产值100万元，无链主，区位熵2.46；距绿色尚缺：企业数≥5家、链主，需强链"


def test_compute_map_splits_a_shared_industry_code_between_its_nodes() -> None:
    nodes = _nodes()
    nodes.at[1, "industry_codes"] = ["2222", "3333"]  # z.b and z.c now share 3333
    m = compute_map(nodes, _presence(), _universe(), MapConfig())
    # 2222 (20) goes to z.b alone, 3333 (40) half to z.b and half to z.c.
    assert m["n_universe"].tolist() == [10, 40, 20, 31]
    assert_allclose(m["lq"].to_numpy(), [0.6 / (10 / 101), 0.2 / (40 / 101), 0.0, 0.2 / (31 / 101)])


def test_compute_map_as_of_year_uses_that_year_and_the_one_before() -> None:
    m = compute_map(_nodes(), _presence(), _universe(), MapConfig(), as_of_year=2023)
    assert m["n_local"].tolist() == [1, 0, 0, 1]
    assert m["growth"].isna().all()
    assert m["colour"].tolist() == ["blue", "red", "red", "blue"]


def test_compute_map_rejects_unknown_year() -> None:
    with pytest.raises(
        ValueError, match=re.escape("as_of_year 2020 has no presence rows; presence covers years [2023, 2024]")
    ):
        compute_map(_nodes(), _presence(), _universe(), MapConfig(), as_of_year=2020)


def test_compute_map_rejects_missing_presence_columns() -> None:
    presence = _presence().drop(columns=["year"])
    msg = (
        "presence is missing required columns ['year']; got columns "
        "['enterprise_id', 'node_id', 'output_value_cny', 'is_chain_leader']."
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        compute_map(_nodes(), presence, _universe(), MapConfig())


def test_compute_map_without_presence_is_all_red() -> None:
    empty = _presence().iloc[0:0]
    m = compute_map(_nodes(), empty, _universe(), MapConfig())
    assert m["colour"].tolist() == ["red"] * 4
    assert m["year"].isna().all()


def test_compute_map_without_output_or_leader_columns() -> None:
    presence = _presence()[["enterprise_id", "node_id", "year"]]
    m = compute_map(_nodes(), presence, _universe(), MapConfig(green_requires_leader=False))
    assert m["colour"].tolist() == ["green", "blue", "red", "blue"]
    assert m["reason"].iloc[0] == "本地6家企业，产值未填报，无链主，区位熵6.06，需延链固链"


def test_compute_map_names_several_leaders_by_output() -> None:
    presence = _presence()
    presence.loc[presence["node_id"].eq("z.a") & presence["year"].eq(2024), "is_chain_leader"] = True
    presence.loc[presence["enterprise_id"].eq("U003") & presence["year"].eq(2024), "output_value_cny"] = 9e7
    m = compute_map(_nodes(), presence, _universe(), MapConfig())
    assert m["leaders"].iloc[0] == ["企业003", "企业000", "企业001", "企业002", "企业004", "企业005"]
    assert "含链主〈企业003〉、〈企业000〉等6家" in m["reason"].iloc[0]


# ---------------------------------------------------------------- rule boundaries
def _row(n: int, lq: float, leader: bool = False, output: float = NAN, growth: float = NAN) -> SimpleNamespace:
    leaders = ["链主甲"] if leader else []
    return SimpleNamespace(
        n_local=n, lq=lq, has_leader=leader, output_value_cny=output, growth=growth, leaders=leaders, colour=""
    )


@pytest.mark.parametrize(
    ("row", "config", "colour"),
    [
        (_row(0, 0.0), MapConfig(), "red"),
        (_row(1, 0.15), MapConfig(), "red"),  # lq == red_max_lq, no leader
        (_row(1, 0.1501), MapConfig(), "blue"),
        (_row(1, 0.10, leader=True), MapConfig(), "blue"),  # a leader keeps a thin node off red
        (_row(2, 3.0), MapConfig(red_max_enterprises=2), "red"),  # n == red_max_enterprises
        (_row(3, 3.0), MapConfig(red_max_enterprises=2), "blue"),
        (_row(5, 1.2, leader=True), MapConfig(), "green"),  # every green threshold exactly met
        (_row(4, 1.2, leader=True), MapConfig(), "blue"),
        (_row(5, 1.1999, leader=True), MapConfig(), "blue"),
        (_row(5, 1.2), MapConfig(), "blue"),
        (_row(5, 1.2), MapConfig(green_requires_leader=False), "green"),
        (_row(5, 1.2, True, output=1e8), MapConfig(green_min_output_cny=1e8), "green"),
        (_row(5, 1.2, True, output=9.99e7), MapConfig(green_min_output_cny=1e8), "blue"),
        (_row(5, 1.2, True, output=NAN), MapConfig(green_min_output_cny=1e8), "blue"),
        (_row(5, 1.2, True, growth=-0.1), MapConfig(green_min_growth=-0.1), "green"),
        (_row(5, 1.2, True, growth=-0.1001), MapConfig(green_min_growth=-0.1), "blue"),
        (_row(5, 1.2, True, growth=NAN), MapConfig(green_min_growth=-0.1), "green"),
    ],
)
def test_colour_of_rule_boundaries(row: SimpleNamespace, config: MapConfig, colour: str) -> None:
    assert colour_of(row, config) == colour


@pytest.mark.parametrize(
    ("row", "config", "reason"),
    [
        (_row(0, 0.0), MapConfig(), "本地无企业布局（区位熵0.00），需补链"),
        (
            _row(1, 0.08, output=3e6),
            MapConfig(),
            "本地仅1家企业，产值300万元，无链主，区位熵0.08（补链线0.15），需补链",
        ),
        (
            _row(2, 3.0, output=2.1e8, growth=0.0),
            MapConfig(red_max_enterprises=2),
            "本地仅2家企业（补链线2家），产值2.1亿元（同比持平），无链主，区位熵3.00，需补链",
        ),
        (
            _row(3, 0.62, output=2.1e8, growth=0.12),
            MapConfig(),
            "本地3家企业，产值2.1亿元（同比增长12.0%），无链主，区位熵0.62；距绿色尚缺：企业数≥5家、链主、区位熵≥1.20，需强链",
        ),
        (
            _row(6, 1.5, True, output=5e7),
            MapConfig(green_min_output_cny=1e8),
            "本地6家企业，产值5000万元，含链主〈链主甲〉，区位熵1.50；距绿色尚缺：产值≥1.0亿元，需强链",
        ),
        (
            _row(6, 1.5, True, output=5e8, growth=-0.25),
            MapConfig(green_min_growth=-0.1),
            "本地6家企业，产值5.0亿元（同比下降25.0%），含链主〈链主甲〉，区位熵1.50；距绿色尚缺：产值增速≥-10.0%，需强链",
        ),
        (
            _row(12, 1.85, True, output=3.52e9),
            MapConfig(),
            "本地12家企业，产值35.2亿元，含链主〈链主甲〉，区位熵1.85，需延链固链",
        ),
    ],
)
def test_reason_of_states_the_numbers(row: SimpleNamespace, config: MapConfig, reason: str) -> None:
    row.colour = colour_of(row, config)
    assert reason_of(row, config) == reason


@pytest.mark.parametrize(
    ("row", "config", "gap"),
    [
        (_row(0, 0.0), MapConfig(), 1.0),
        (_row(12, 1.85, True), MapConfig(), 0.0),
        (_row(2, 0.6), MapConfig(), 1 - (0.4 + 0.5 + 0.0) / 3),
        (_row(2, 0.6), MapConfig(green_requires_leader=False), 1 - (0.4 + 0.5) / 2),
        (_row(5, 1.2, True, output=5e7), MapConfig(green_min_output_cny=1e8), 1 - (1 + 1 + 1 + 0.5) / 4),
        (_row(5, 1.2, True, growth=-0.5), MapConfig(green_min_growth=0.0), 1 - (1 + 1 + 1 + 0) / 4),
    ],
)
def test_gap_of_measures_distance_to_green(row: SimpleNamespace, config: MapConfig, gap: float) -> None:
    assert math.isclose(gap_of(row, config), gap, abs_tol=1e-6)


def test_location_quotient_guards_zero_counts() -> None:
    lq = location_quotient(np.array([0, 2, 3]), 10, np.array([0, 0, 30]), 100)
    assert_allclose(lq, [0.0, 0.0, 1.0])
    assert_allclose(location_quotient(np.array([1]), 0, np.array([1]), 0), [0.0])


def test_format_cny() -> None:
    assert [format_cny(x) for x in (1e8, 99_994_999.0, 2.14e8, 0.0)] == ["1.0亿元", "9999万元", "2.1亿元", "0万元"]


# ---------------------------------------------------------------- diff
def _map(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "chain_id": [r[0].split(".")[0] for r in rows],
            "node_id": [r[0] for r in rows],
            "name": [r[1] for r in rows],
            "colour": [r[2] for r in rows],
            "reason": [f"{r[1]}是{r[2]}" for r in rows],
        }
    )


def test_diff_maps_lists_changed_added_and_removed_nodes() -> None:
    before = _map([("z.a", "甲", "red"), ("z.b", "乙", "blue"), ("z.c", "丙", "green"), ("y.old", "旧", "red")])
    after = _map([("z.a", "甲", "blue"), ("z.b", "乙", "blue"), ("z.c", "丙", "blue"), ("x.new", "新", "green")])
    d = diff_maps(before, after)
    assert list(d.columns) == DIFF_COLUMNS
    assert d.to_dict(orient="records") == [
        {"chain_id": "x", "node_id": "x.new", "name": "新", "change": "added", "colour_before": None,
         "colour_after": "green", "reason": "新是green"},
        {"chain_id": "y", "node_id": "y.old", "name": "旧", "change": "removed", "colour_before": "red",
         "colour_after": None, "reason": "旧是red"},
        {"chain_id": "z", "node_id": "z.a", "name": "甲", "change": "changed", "colour_before": "red",
         "colour_after": "blue", "reason": "甲是blue"},
        {"chain_id": "z", "node_id": "z.c", "name": "丙", "change": "changed", "colour_before": "green",
         "colour_after": "blue", "reason": "丙是blue"},
    ]  # fmt: skip


def test_diff_maps_same_map_is_empty(zone_map: pd.DataFrame) -> None:
    assert diff_maps(zone_map, zone_map.copy()).empty


def test_diff_maps_without_previous_is_empty(zone_map: pd.DataFrame) -> None:
    d = diff_maps(None, zone_map)
    assert d.empty and list(d.columns) == DIFF_COLUMNS
