"""Profile texts of enterprises and chain nodes."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from features.profiles import enterprise_texts, node_texts


def _enterprises() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "enterprise_id": ["A", "B", "C"],
            "name": ["武漢光迅科技股份有限公司", "长飞光纤", "空壳公司"],
            "industry_name": ["光电子器件制造", None, np.nan],
            "products": ["光模块、光器件", "光纤预制棒", ""],
            "business_scope": ["光电子器件的研发　生产", "光纤光缆", None],
            "description": ["公司主营光模块。", "光纤预制棒", None],
        }
    )


def test_enterprise_texts_joins_normalised_fields_in_order() -> None:
    out = enterprise_texts(_enterprises())
    assert out.index.tolist() == ["A", "B", "C"]
    assert out.tolist() == [
        "武汉光迅科技股份有限公司；光电子器件制造；光模块、光器件；光电子器件的研发 生产；公司主营光模块",
        "长飞光纤；光纤预制棒；光纤光缆",  # the repeated description is dropped
        "空壳公司",
    ]


def test_enterprise_texts_caps_length_and_is_deterministic() -> None:
    df = _enterprises().assign(description=["很长的简介" * 100, "x", "y"])
    out = enterprise_texts(df, max_chars=40)
    assert out.str.len().max() <= 40
    assert out.iloc[0].startswith("武汉光迅科技股份有限公司；光电子器件制造")
    assert out.equals(enterprise_texts(df, max_chars=40))


def test_enterprise_texts_works_with_name_only() -> None:
    out = enterprise_texts(pd.DataFrame({"enterprise_id": ["A"], "name": ["光谷企业"]}))
    assert out.tolist() == ["光谷企业"]


def test_enterprise_texts_rejects_missing_columns() -> None:
    msg = "enterprises is missing required columns ['name']; got columns ['enterprise_id']."
    with pytest.raises(ValueError, match=re.escape(msg)):
        enterprise_texts(pd.DataFrame({"enterprise_id": ["A"]}))


def test_enterprise_texts_rejects_a_tiny_cap() -> None:
    msg = "The 'max_chars' parameter must be an int in the range [16, inf). Got 3 instead."
    with pytest.raises(ValueError, match=re.escape(msg)):
        enterprise_texts(_enterprises(), max_chars=3)


def _nodes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "chain_id": ["oc", "oc", "oc"],
            "chain_name": ["光通信", "光通信", "光通信"],
            "node_id": ["oc.chip", "oc.module", "oc.fiber"],
            "name": ["光芯片", "光模块", "光纤"],
            "description": ["激光器芯片与探测器芯片", "光收发模块", "光纤拉丝"],
            "products": [["DFB芯片", "EML芯片"], ["400G光模块"], []],
            "keywords": [["InP"], [], ["G.652"]],
        }
    )


def test_node_texts_adds_gap_phrase_for_red_and_blue() -> None:
    colours = pd.DataFrame({"node_id": ["oc.chip", "oc.module", "oc.fiber"], "colour": ["red", "blue", "green"]})
    out = node_texts(_nodes(), colours)
    assert out.to_dict() == {
        "oc.chip": "光通信；光芯片；激光器芯片与探测器芯片；DFB芯片、EML芯片；InP；本地缺失",
        "oc.module": "光通信；光模块；光收发模块；400G光模块；本地薄弱",
        "oc.fiber": "光通信；光纤；光纤拉丝；G.652",
    }


def test_node_texts_without_map_has_no_gap_phrase_and_keeps_it_under_a_cap() -> None:
    assert node_texts(_nodes()).loc["oc.chip"] == "光通信；光芯片；激光器芯片与探测器芯片；DFB芯片、EML芯片；InP"
    colours = pd.DataFrame({"node_id": ["oc.chip"], "colour": ["red"]})
    capped = node_texts(_nodes(), colours, max_chars=20).loc["oc.chip"]
    assert capped.endswith("；本地缺失") and len(capped) <= 20


def test_node_texts_rejects_a_map_without_colour() -> None:
    msg = "map is missing required columns ['colour']; got columns ['node_id']."
    with pytest.raises(ValueError, match=re.escape(msg)):
        node_texts(_nodes(), pd.DataFrame({"node_id": ["oc.chip"]}))
