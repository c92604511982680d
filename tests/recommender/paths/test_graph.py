"""The relation graph: node kinds, names, edge attributes, point in time."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from recommender.paths.graph import build_graph, local_kinds


def _tables() -> dict[str, pd.DataFrame]:
    relations = pd.DataFrame(
        {
            "relation_id": ["R1", "R2", "R3", "R4"],
            "src_id": ["T", "F1", "T", "L1"],
            "src_type": ["enterprise", "asset", "enterprise", "asset"],
            "dst_id": ["LEAD", "T", "LEAD", "P"],
            "dst_type": ["enterprise", "enterprise", "enterprise", "enterprise"],
            "relation_type": ["supplier", "fund_portfolio", "shareholder", "lab_collaboration"],
            "weight": [0.9, None, 0.3, 1.7],
            "date": pd.to_datetime(["2024-01-01", "2025-06-30", "2026-01-01", "2023-05-01"]),
        }
    )
    assets = pd.DataFrame(
        {
            "asset_id": ["F1", "L1", "S1"],
            "asset_type": ["fund", "lab", "scenario"],
            "name": ["光谷产业基金", "光谷实验室", "数据中心示范"],
            "description": ["", "", "800G光模块"],
            "node_id": [None, None, "optical_comm.optical_module"],
            "owner": [None, None, "某数据中心"],
        }
    )
    presence = pd.DataFrame(
        {
            "enterprise_id": ["LEAD", "LEAD", "LOC", "OLD"],
            "node_id": ["optical_comm.fiber_cable", "optical_comm.preform", "optical_comm.fiber_cable", "x.y"],
            "year": [2025, 2025, 2025, 2024],
            "is_chain_leader": [False, True, None, True],
        }
    )
    enterprises = pd.DataFrame({"enterprise_id": ["T", "LEAD"], "name": ["目标公司", "链主公司"]})
    return {"relations": relations, "assets": assets, "presence": presence, "enterprises": enterprises}


def test_build_graph_nodes_carry_kind_name_and_node():
    t = _tables()
    g = build_graph(t["relations"], t["assets"], t["presence"], t["enterprises"])
    assert dict(g.nodes(data="kind")) == {
        "F1": "fund",
        "L1": "lab",
        "S1": "scenario",
        "T": "enterprise",
        "LEAD": "chain_leader",
        "P": "enterprise",
        "LOC": "local_enterprise",
    }
    assert g.nodes["LEAD"]["name"] == "链主公司"
    assert g.nodes["LEAD"]["node_id"] == "optical_comm.preform"  # the node where it leads
    assert g.nodes["P"]["name"] == "P"  # no name known: the id
    assert g.nodes["S1"]["node_id"] == "optical_comm.optical_module"
    assert g.nodes["S1"]["owner"] == "某数据中心"
    assert g.graph["as_of"] == pd.Timestamp("2026-01-01")


def test_build_graph_edges_are_typed_dated_weighted():
    t = _tables()
    g = build_graph(t["relations"], t["assets"], t["presence"])
    assert g.number_of_edges() == 4
    assert g.edges["T", "LEAD", "R1"] == {
        "relation_id": "R1",
        "relation_type": "supplier",
        "weight": 0.9,
        "date": pd.Timestamp("2024-01-01"),
    }
    assert g.edges["F1", "T", "R2"]["weight"] == 0.5  # missing strength → default
    assert g.edges["L1", "P", "R4"]["weight"] == 1.0  # clipped to [0, 1]
    assert sorted(g["T"]["LEAD"]) == ["R1", "R3"]  # a multigraph keeps both relations


def test_build_graph_as_of_drops_later_edges_and_presence():
    t = _tables()
    g = build_graph(t["relations"], t["assets"], t["presence"], as_of="2024-12-31")
    assert sorted(k for _, _, k in g.edges(keys=True)) == ["R1", "R4"]
    assert g.graph["as_of"] == pd.Timestamp("2024-12-31")
    assert g.nodes["OLD"]["kind"] == "chain_leader"  # presence of 2024, the latest year ≤ as_of
    assert "LOC" not in g  # present only from 2025 and in no relation before as_of


def test_local_kinds_prefers_leader_flag():
    kinds = local_kinds(_tables()["presence"])
    assert kinds.to_dict("index") == {
        "LEAD": {"kind": "chain_leader", "node_id": "optical_comm.preform"},
        "LOC": {"kind": "local_enterprise", "node_id": "optical_comm.fiber_cable"},
    }


def test_build_graph_rejects_missing_columns():
    t = _tables()
    rel = t["relations"].drop(columns=["date"])
    msg = (
        "relations is missing required columns ['date']; got columns "
        "['relation_id', 'src_id', 'src_type', 'dst_id', 'dst_type', 'relation_type', 'weight']."
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        build_graph(rel, t["assets"], t["presence"])
