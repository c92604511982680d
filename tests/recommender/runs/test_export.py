"""The analysts' workbook and CSVs: round trip, fills, formula injection."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook

from recommender.runs import export

EVIL = '=HYPERLINK("http://x","y")'


def _map() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "chain_id": ["optical_comm", "optical_comm", "laser"],
            "node_id": ["optical_comm.preform", "optical_comm.chip", "laser.source"],
            "name": ["光纤预制棒", "光芯片", "激光器"],
            "stage": ["upstream", "upstream", "midstream"],
            "colour": ["red", "blue", "green"],
            "reason": ["本地无企业", "本地企业少", "有链主"],
            "n_local": [0, 2, 9],
            "lq": [0.0, 0.5, 1.7],
        }
    )


def _targets() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "chain_id": ["optical_comm", "optical_comm", "optical_comm"],
            "node_id": ["optical_comm.preform", "optical_comm.preform", "optical_comm.chip"],
            "rank": [1, 2, 1],
            "enterprise_id": ["91420100MA4K000001", "91420100MA4K000002", "91420100MA4K000003"],
            "name": ["长飞光纤", EVIL, "-光迅科技"],
            "score": [0.91, 0.5, 0.25],
            "reasons": [json.dumps([{"text": "近180天完成B轮融资"}, {"text": "与节点描述相似度0.81"}]), "[]", "[]"],
            "routes": [json.dumps([{"theme": "产业链招商", "sentence": "经本地链主〈A〉对接"}]), "[]", "[]"],
            "theme": ["产业链招商", "", "资本招商"],
            "sources": ["dense|lexical", "dense", "signal"],
        }
    )


def test_neutralise_prefixes_every_formula_trigger() -> None:
    got = [export.neutralise(s) for s in ["=1+1", "+86", "-5", "@SUM(A1)", "\tx", "\rx", "光谷", ""]]
    assert got == ["'=1+1", "'+86", "'-5", "'@SUM(A1)", "'\tx", "'\rx", "光谷", ""]


def test_workbook_round_trips_the_map(tmp_path: Path) -> None:
    path = export.export_workbook(_map(), _targets(), tmp_path / "workbook.xlsx")
    sheets = export.read_workbook(path)
    expected = export.map_sheet_frame(_map())
    pd.testing.assert_frame_equal(sheets["三色图"], expected, check_dtype=False)
    assert list(sheets) == ["三色图", "optical_comm", "laser", "本周新增"]


def test_workbook_round_trips_targets_with_reasons_and_routes(tmp_path: Path) -> None:
    data = export.workbook_bytes(_map(), _targets(), chain_names={"optical_comm": "光通信"})
    sheet = export.read_workbook(data)["光通信"]
    assert sheet.columns.tolist() == [
        "节点编号",
        "节点",
        "排名",
        "统一社会信用代码",
        "企业名称",
        "签约概率",
        "招商路径主题",
        "推荐理由",
        "对接路径",
        "来源",
    ]
    assert sheet.iloc[0].tolist() == [
        "optical_comm.chip",
        "光芯片",
        1,
        "91420100MA4K000003",
        "'-光迅科技",
        0.25,
        "资本招商",
        None,
        None,
        "signal",
    ]
    assert sheet.iloc[1]["推荐理由"] == "近180天完成B轮融资\n与节点描述相似度0.81"
    ws = load_workbook(io.BytesIO(data))["光通信"]
    assert ws["F2"].value == 0.25 and ws["F2"].number_format == "0.0%"  # the probability reads 25.0% in Excel
    assert sheet.iloc[1]["对接路径"] == "[产业链招商] 经本地链主〈A〉对接"


def test_workbook_makes_hyperlink_company_name_inert(tmp_path: Path) -> None:
    path = export.export_workbook(_map(), _targets(), tmp_path / "w.xlsx", chain_names={"optical_comm": "光通信"})
    ws = load_workbook(path)["光通信"]
    cell = next(c for row in ws.iter_rows() for c in row if isinstance(c.value, str) and "HYPERLINK" in c.value)
    assert cell.data_type == "s"
    assert cell.value == "'" + EVIL
    assert not str(cell.value).startswith("=")


def test_workbook_fills_map_rows_by_colour(tmp_path: Path) -> None:
    path = export.export_workbook(_map(), _targets(), tmp_path / "w.xlsx")
    ws = load_workbook(path)["三色图"]
    fills = [ws.cell(row=r, column=1).fill.start_color.rgb for r in (2, 3, 4)]
    assert fills == ["00F8B4B4", "00B4CDF0", "00B8E6B8"]
    assert [ws.cell(row=r, column=5).value for r in (2, 3, 4)] == ["红", "蓝", "绿"]


def test_workbook_diff_sheet_lists_new_moved_dropped_and_colours() -> None:
    diff = {
        "nodes": [
            {
                "node_id": "c.a",
                "name": "节点A",
                "new": [{"enterprise_id": "E5", "name": "=evil", "rank": 3}],
                "moved": [{"enterprise_id": "E2", "name": "公司2", "rank_before": 2, "rank": 1, "change": 1}],
                "dropped": [{"enterprise_id": "E3", "name": "公司3", "rank_before": 3}],
            }
        ],
        "colour_changes": [{"node_id": "c.a", "chain_id": "c", "name": "节点A", "before": "red", "after": "blue"}],
    }
    sheet = export.read_workbook(export.workbook_bytes(_map(), _targets(), diff))["本周新增"]
    assert sheet.values.tolist() == [
        ["c.a", "节点A", "新增", "E5", "'=evil", 3, None, None],
        ["c.a", "节点A", "排名变化", "E2", "公司2", 1, 2, "上升1位"],
        ["c.a", "节点A", "移出", "E3", "公司3", None, 3, None],
        ["c.a", "节点A", "颜色变化", None, None, None, None, "红 → 蓝"],
    ]


def test_workbook_bytes_rejects_map_without_colour() -> None:
    bad = _map().drop(columns=["colour"])
    msg = f"map_df is missing required columns ['colour']; got columns {list(bad.columns)}."
    with pytest.raises(ValueError, match=re.escape(msg)):
        export.workbook_bytes(bad, _targets())


def test_sheet_title_is_valid_and_unique() -> None:
    taken = {"三色图"}
    assert export.sheet_title("a/b:c", taken) == "a_b_c"
    assert export.sheet_title("a/b:c", taken) == "a_b_c_2"
    assert export.sheet_title("x" * 40, taken) == "x" * 31


def test_write_node_csvs_uses_bom_and_neutralises(tmp_path: Path) -> None:
    paths = export.write_node_csvs(_targets(), tmp_path / "targets")
    assert [p.name for p in paths] == ["optical_comm.chip.csv", "optical_comm.preform.csv"]
    raw = (tmp_path / "targets" / "optical_comm.preform.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    back = pd.read_csv(tmp_path / "targets" / "optical_comm.preform.csv", encoding="utf-8-sig")
    assert back.columns.tolist() == list(export.TARGET_HEADERS.values())
    assert back["企业名称"].tolist() == ["长飞光纤", "'" + EVIL]
    assert back["排名"].tolist() == [1, 2]
    assert back["推荐理由"].tolist()[0] == "近180天完成B轮融资\n与节点描述相似度0.81"
