"""Gap priority: relatedness and density against naive loops, RCA, the priority formula, ordering."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from recommender.colour_map.priority import (
    density,
    gap_priority,
    order_nodes,
    priority_table,
    proximity,
    region_node_counts,
    revealed_advantage,
)
from recommender.settings import PathsConfig


def naive_proximity(m: list[list[int]]) -> np.ndarray:
    """φ_ij = min(P(i|j), P(j|i)) with explicit loops over regions."""
    n_r, n_n = len(m), len(m[0])
    phi = np.zeros((n_n, n_n))
    for i in range(n_n):
        for j in range(n_n):
            if i == j:
                continue
            both = sum(1 for r in range(n_r) if m[r][i] and m[r][j])
            has_i = sum(1 for r in range(n_r) if m[r][i])
            has_j = sum(1 for r in range(n_r) if m[r][j])
            p_i_given_j = both / has_j if has_j else 0.0
            p_j_given_i = both / has_i if has_i else 0.0
            phi[i, j] = min(p_i_given_j, p_j_given_i)
    return phi


def naive_density(phi: np.ndarray, x: list[int]) -> list[float]:
    out = []
    for i in range(len(x)):
        num = sum(phi[i][j] * x[j] for j in range(len(x)))
        den = sum(phi[i][j] for j in range(len(x)))
        out.append(num / den if den else 0.0)
    return out


def test_proximity_and_density_match_naive_reference(random_seed):
    rng = np.random.default_rng(random_seed)
    m = (rng.random((9, 7)) < 0.4).astype(int)
    m[:, 6] = 0  # a node present nowhere: related to nothing
    x = [1, 0, 1, 0, 0, 1, 0]
    phi = proximity(m)
    np.testing.assert_allclose(phi, naive_proximity(m.tolist()), rtol=0, atol=1e-15)
    np.testing.assert_allclose(density(phi, np.array(x)), naive_density(phi, x), rtol=0, atol=1e-15)
    assert density(phi, np.array(x))[6] == 0.0


def test_proximity_small_matrix_exact():
    m = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 1]])
    # u = (3, 2, 2); C01 = 2 → 2/3; C02 = 1 → 1/3; C12 = 1 → 1/2
    np.testing.assert_allclose(proximity(m), [[0, 2 / 3, 1 / 3], [2 / 3, 0, 1 / 2], [1 / 3, 1 / 2, 0]])
    np.testing.assert_allclose(
        density(proximity(m), np.array([0, 1, 1])), [1.0, (1 / 2) / (2 / 3 + 1 / 2), (1 / 2) / (1 / 3 + 1 / 2)]
    )  # d_2 = φ21 / (φ20 + φ21)


def _universe() -> tuple[pd.DataFrame, pd.DataFrame]:
    enterprises = pd.DataFrame(
        {
            "enterprise_id": [f"E{i}" for i in range(8)],
            "province": ["湖北省", "湖北省", "湖北省", "广东省", "广东省", "江苏省", "江苏省", "江苏省"],
            "city": ["武汉市", "武汉市", "武汉市", "深圳市", "深圳市", "苏州市", "苏州市", "苏州市"],
            "industry_code": ["3976", "3832", "3921", "3976", "3921", "3832", "3832", "9999"],
        }
    )
    nodes = pd.DataFrame(
        {
            "node_id": ["c.chip", "c.fiber", "c.equip"],
            "industry_codes": [["3976"], ["3832"], ["3921", "3976"]],
            "strategic_weight": [2.0, 1.0, 1.5],
        }
    )
    return enterprises, nodes


def test_region_node_counts_by_industry_code_and_zone_presence():
    enterprises, nodes = _universe()
    presence = pd.DataFrame(
        {"enterprise_id": ["Z1", "Z2", "Z1"], "node_id": ["c.fiber", "c.fiber", "c.chip"], "year": [2025, 2025, 2024]}
    )
    counts = region_node_counts(enterprises, nodes, presence)
    assert counts.index.tolist() == ["广东省/深圳市", "本园区", "江苏省/苏州市", "湖北省/武汉市"]
    assert counts.to_numpy().tolist() == [[1, 0, 2], [0, 2, 0], [0, 2, 0], [1, 1, 2]]
    by_province = region_node_counts(enterprises, nodes, by="province")
    assert by_province.loc["江苏省"].tolist() == [0, 2, 0]


def test_region_node_counts_rejects_unknown_region_kind():
    enterprises, nodes = _universe()
    with pytest.raises(ValueError, match=re.escape("by must be one of ['city', 'province']; got 'district'")):
        region_node_counts(enterprises, nodes, by="district")


def test_revealed_advantage_formula():
    counts = pd.DataFrame([[1, 0, 2], [0, 2, 0], [1, 1, 2]], index=["a", "b", "c"], columns=["x", "y", "z"])
    rca = revealed_advantage(counts)
    total = 9.0
    assert rca.loc["a", "x"] == pytest.approx((1 / 3) / (2 / total))
    assert rca.loc["b", "y"] == pytest.approx((2 / 2) / (3 / total))
    assert rca.loc["a", "y"] == 0.0


def test_priority_table_formula_and_green_nan():
    enterprises, nodes = _universe()
    map_df = pd.DataFrame(
        {"node_id": ["c.chip", "c.fiber", "c.equip"], "colour": ["red", "green", "blue"], "gap": [0.9, 0.0, None]}
    )
    cfg = PathsConfig(relatedness_region="city", priority_floor=0.1)
    table = priority_table(map_df, nodes, enterprises, config=cfg)
    counts = region_node_counts(enterprises, nodes)
    m = (revealed_advantage(counts).to_numpy() >= 1).astype(int)
    phi = naive_proximity(m.tolist())
    d = naive_density(phi, [0, 1, 0])
    expected = [2.0 * 0.9 * (0.1 + d[0]) / 1.1, np.nan, 1.5 * 0.5 * (0.1 + d[2]) / 1.1]
    np.testing.assert_allclose(table["priority"].to_numpy(), expected)
    np.testing.assert_allclose(table["density"].to_numpy(), d)
    assert table["gap"].tolist() == [0.9, 0.0, 0.5]  # a missing blue gap counts 0.5
    series = gap_priority(map_df.set_axis([5, 6, 7]), nodes, enterprises, config=cfg)
    assert series.index.tolist() == [5, 6, 7] and series.name == "priority"


def test_order_nodes_by_priority_then_id():
    map_df = pd.DataFrame({"node_id": ["a", "b", "c", "d"], "priority": [0.2, np.nan, 0.5, 0.2]})
    assert order_nodes(map_df)["node_id"].tolist() == ["c", "a", "d", "b"]


def test_priority_table_rejects_missing_columns():
    enterprises, nodes = _universe()
    msg = "map_df is missing required columns ['colour']; got columns ['node_id']."
    with pytest.raises(ValueError, match=re.escape(msg)):
        priority_table(pd.DataFrame({"node_id": ["c.chip"]}), nodes, enterprises)
