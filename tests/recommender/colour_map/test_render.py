"""Chain pictures: every node present, right fills, arrows, legend, self-contained, no overlaps."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from features.chains import edges_frame, nodes_frame
from recommender.colour_map.colours import compute_map
from recommender.colour_map.render import (
    FILLS,
    layout_columns,
    order_rows,
    render_chain_html,
    render_chain_svg,
    render_index_html,
    wrap_label,
)
from recommender.settings import MapConfig, load_chains, load_settings

SVG_NS = "{http://www.w3.org/2000/svg}"


def _rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "chain_id": ["z"] * 5,
            "node_id": ["z.a", "z.b", "z.c", "z.d", "z.e"],
            "name": ["甲材料", "乙<器件>&", "丙模块", "丁设备", "戊应用与非常长的名字需要换行显示"],
            "stage": ["upstream", "upstream", "midstream", "midstream", "downstream"],
            "colour": ["red", "blue", "green", "blue", "red"],
            "reason": ["本地无企业布局（区位熵0.00），需补链", "理由乙", "理由丙", "理由丁", '理由"戊"'],
            "n_local": [0, 2, 9, 3, 0],
            "lq": [0.0, 0.5, 1.9, 0.7, 0.0],
            "has_leader": [False, False, True, False, False],
            "output_value_cny": [float("nan"), 3e7, 2.5e9, 1e8, float("nan")],
            "growth": [float("nan"), 0.1, -0.05, float("nan"), float("nan")],
        }
    )


def _edges() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "chain_id": ["z"] * 5,
            "src_node": ["z.a", "z.b", "z.c", "z.d", "z.a"],
            "dst_node": ["z.c", "z.c", "z.d", "z.e", "z.zz"],  # z.zz is not on the map: skipped
        }
    )


def _nodes(svg: str) -> dict[str, ET.Element]:
    root = ET.fromstring(svg)
    return {a.attrib["data-node-id"]: a for a in root.iter(f"{SVG_NS}a")}


def test_render_chain_svg_has_every_node_with_its_fill() -> None:
    svg = render_chain_svg(_rows(), _edges())
    nodes = _nodes(svg)
    assert list(nodes) == ["z.a", "z.b", "z.c", "z.d", "z.e"]
    fills = {k: a.find(f"{SVG_NS}rect").attrib["fill"] for k, a in nodes.items()}  # type: ignore[union-attr]
    assert fills == {
        "z.a": FILLS["red"],
        "z.b": FILLS["blue"],
        "z.c": FILLS["green"],
        "z.d": FILLS["blue"],
        "z.e": FILLS["red"],
    }
    assert nodes["z.b"].attrib["data-colour"] == "blue"
    assert nodes["z.b"].attrib["href"] == "#z.b"


def test_render_chain_svg_link_template() -> None:
    nodes = _nodes(render_chain_svg(_rows(), _edges(), link="/nodes/{node_id}?tab=targets&x=1"))
    assert nodes["z.c"].attrib["href"] == "/nodes/z.c?tab=targets&x=1"


def test_render_chain_svg_tooltips_carry_name_and_reason_escaped() -> None:
    svg = render_chain_svg(_rows(), _edges())
    nodes = _nodes(svg)
    assert nodes["z.a"].find(f"{SVG_NS}title").text == "甲材料：本地无企业布局（区位熵0.00），需补链"  # type: ignore[union-attr]
    assert nodes["z.b"].attrib["data-name"] == "乙<器件>&"
    assert nodes["z.e"].attrib["data-reason"] == '理由"戊"'
    assert "乙&lt;器件&gt;&amp;" in svg


def test_render_chain_svg_draws_known_edges_as_arrows() -> None:
    root = ET.fromstring(render_chain_svg(_rows(), _edges()))
    paths = [p for p in root.iter(f"{SVG_NS}path") if "data-src" in p.attrib]
    assert [(p.attrib["data-src"], p.attrib["data-dst"]) for p in paths] == [
        ("z.a", "z.c"),
        ("z.b", "z.c"),
        ("z.c", "z.d"),
        ("z.d", "z.e"),
    ]
    assert all(p.attrib["marker-end"] == "url(#arrow)" for p in paths)


def test_render_chain_svg_has_stage_labels_legend_and_stats() -> None:
    svg = render_chain_svg(_rows(), _edges())
    for text in ("上游", "中游", "下游", "红色：缺失，需补链", "蓝色：薄弱，需强链", "绿色：优势，需延链固链"):
        assert f">{text}</text>" in svg
    assert ">9家 · 区位熵1.90 · ★链主</text>" in svg


def test_render_chain_svg_stages_run_left_to_right() -> None:
    nodes = _nodes(render_chain_svg(_rows(), _edges()))
    x = {k: float(a.find(f"{SVG_NS}rect").attrib["x"]) for k, a in nodes.items()}  # type: ignore[union-attr]
    assert x["z.a"] == x["z.b"] < x["z.c"] < x["z.d"] < x["z.e"]  # z.c -> z.d: two midstream sub-columns


def test_render_chain_svg_rejects_missing_columns() -> None:
    msg = "chain map rows are missing required columns ['colour', 'reason']; got ['node_id', 'name', 'stage']"
    with pytest.raises(ValueError, match=re.escape(msg)):
        render_chain_svg(_rows()[["node_id", "name", "stage"]], _edges())


def test_layout_columns_splits_a_stage_by_inner_edges() -> None:
    col = layout_columns(
        ["a", "b", "c", "d"], ["upstream", "upstream", "midstream", "downstream"], [("a", "b"), ("b", "c")]
    )
    assert col == {"a": 0, "b": 1, "c": 2, "d": 3}


def test_order_rows_follows_predecessors() -> None:
    ids = ["u1", "u2", "m1", "m2"]
    col = {"u1": 0, "u2": 0, "m1": 1, "m2": 1}
    columns = order_rows(ids, col, [("u1", "m2"), ("u2", "m1")])
    assert columns == [["u1", "u2"], ["m2", "m1"]]


def test_wrap_label_wraps_and_cuts() -> None:
    assert wrap_label("光模块", 168, 15) == ["光模块"]
    assert wrap_label("一二三四五六七八九十甲乙丙", 150, 15) == ["一二三四五六七八九十", "甲乙丙"]
    assert wrap_label("一" * 30, 150, 15) == ["一" * 10, "一" * 9 + "…"]


def test_render_chain_html_is_self_contained() -> None:
    page = render_chain_html(_rows(), _edges(), title="演示链产业链三色图", subtitle="测试园区")
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>演示链产业链三色图</title>" in page
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"]
    assert "<link" not in page and " src=" not in page
    assert page.count('class="node"') == 5
    assert '<tr id="row-z.c">' in page
    assert "25.00亿元" in page and "-5.0%" in page


def test_render_index_html_links_chains_with_counts() -> None:
    page = render_index_html(_rows(), {"z": "演示链"})
    assert '<a href="z.html">演示链</a>' in page
    assert "红色 2" in page and "蓝色 2" in page and "绿色 1" in page


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def test_bundled_chains_render_without_overlapping_boxes() -> None:
    chains = load_chains(load_settings())
    nodes = nodes_frame(chains)
    empty = pd.DataFrame(columns=["enterprise_id", "node_id", "year"])
    map_df = compute_map(nodes, empty, pd.DataFrame(columns=["enterprise_id"]), MapConfig())
    edges = edges_frame(chains)
    for chain in chains:
        svg = render_chain_svg(map_df[map_df["chain_id"] == chain.id], edges[edges["chain_id"] == chain.id])
        boxes = [
            tuple(float(r.attrib[k]) for k in ("x", "y", "width", "height"))
            for r in (a.find(f"{SVG_NS}rect") for a in _nodes(svg).values())
            if r is not None
        ]
        assert len(boxes) == len(chain.nodes)
        assert not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :]), chain.id  # type: ignore[arg-type]
