"""Raw readers, built-in column maps, snapshots, rejects files and ingest_file end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import schema as S
from features.io import (
    IngestError,
    available_column_maps,
    detect_encoding,
    ingest_file,
    load_column_map,
    load_tables,
    read_raw,
    read_snapshot,
    snapshot_paths,
    write_rejects,
    write_snapshot,
)

MAPS = Path(__file__).resolve().parents[2] / "configs" / "column_maps"
A, B, C, D = "91420100MA4K0000AP", "91420100MA4K0000BT", "91420100MA4K0000CX", "91420100MA4K0000D1"
REGISTRY_HEADERS = [
    "企业名称", "统一社会信用代码", "登记状态", "成立日期", "注册资本", "所属省份", "所属城市", "所属区县", "国标行业",
    "经营范围", "企业简介", "主营产品", "参保人数", "是否上市", "最新融资轮次", "最新融资日期",
]  # fmt: skip
# The raw formats of docs/design.md, one header list per zone map.
ZONE_HEADERS = {
    "presence": ["统一社会信用代码", "节点编号", "年度", "产值（万元）", "纳税（万元）", "从业人数", "是否链主"],
    "assets": ["资产编号", "资产类型", "名称", "简介", "节点编号", "发布方"],
    "relations": ["关系编号", "源编号", "源类型", "目标编号", "目标类型", "关系类型", "强度", "日期"],
    "signals": ["事件编号", "统一社会信用代码", "事件类型", "日期", "金额（万元）", "省份", "城市", "事件描述"],
    "outcomes": ["记录编号", "统一社会信用代码", "节点编号", "阶段", "日期", "金额（万元）", "备注"],
}


def _enterprises_raw() -> pd.DataFrame:
    return pd.DataFrame(
        [
            [
                "武漢光迅科技股份有限公司", A, "存续（在营、开业、在册）", "2001-01-22", "5000万人民币", "湖北省", "武汉市",
                "洪山区", "C3976 光电子器件制造", "光電子器件、光纖通信設備的研發", "国内领先的光器件企业", "光模块；光芯片",
                "3500", "是", "IPO", "2009-08-21", "企查查",
            ],
            [
                "长飞光纤光缆股份有限公司", B, "在业", "1988/5/31", "1.2亿美元", "湖北省", "武汉市", "东湖新技术开发区",
                "C3832 光纤制造", "光纤预制棒、光纤、光缆", None, "光纤预制棒", "1,200", "否", "A+轮", "2019年3月1日", None,
            ],
        ],
        columns=[*REGISTRY_HEADERS, "数据来源"],
    )  # fmt: skip


# ---------------------------------------------------------------- built-in maps
def test_available_column_maps_lists_builtins() -> None:
    assert available_column_maps(MAPS) == [
        "identity", "registry-cn", "zone-assets", "zone-fit_marks", "zone-outcomes", "zone-presence",
        "zone-relations", "zone-signals",
    ]  # fmt: skip


@pytest.mark.parametrize("table", list(ZONE_HEADERS))
def test_zone_maps_cover_the_raw_formats_exactly(table: str) -> None:
    cmap = load_column_map(f"zone-{table}", MAPS, table=table)
    assert [r.source for r in cmap.rules] == ZONE_HEADERS[table]
    assert {t for r in cmap.rules for t in r.targets} >= set(S.SCHEMAS[table].required)


def test_registry_cn_map_knows_the_usual_headers_and_alternatives() -> None:
    cmap = load_column_map("registry-cn", MAPS, table="enterprises")
    sources = {r.source for r in cmap.rules}
    assert set(REGISTRY_HEADERS) <= sources
    assert {
        "公司名称",
        "信用代码",
        "注册资金",
        "省份",
        "城市",
        "区县",
        "行业",
        "公司简介",
        "员工人数",
        "人员规模",
    } <= sources


def test_load_column_map_errors(tmp_path: Path) -> None:
    names = (
        "['identity', 'registry-cn', 'zone-assets', 'zone-fit_marks', 'zone-outcomes', 'zone-presence', "
        "'zone-relations', 'zone-signals']"
    )
    with pytest.raises(
        IngestError, match=re.escape(f"unknown column map 'nope'; built-in maps: {names}, or give a YAML file path")
    ):
        load_column_map("nope", MAPS)
    with pytest.raises(IngestError, match=re.escape("column map 'zone-assets' is for table 'assets', not 'signals'")):
        load_column_map("zone-assets", MAPS, table="signals")
    bad = tmp_path / "bad.yaml"
    bad.write_text("table: assets\ncolumns: {名称: title}\n", encoding="utf-8")
    msg = "column map 'bad', column '名称': unknown target columns ['title'] for table assets; valid: ['asset_id', 'asset_type', 'description', 'name', 'node_id', 'owner'] (file "
    with pytest.raises(IngestError, match=re.escape(msg)):
        load_column_map(bad, MAPS)


# ---------------------------------------------------------------- raw readers
@pytest.mark.parametrize(
    ("encoding", "expected"),
    [("gbk", "gb18030"), ("gb18030", "gb18030"), ("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("utf-16", "utf-16")],
)
def test_read_raw_detects_csv_encodings(tmp_path: Path, encoding: str, expected: str) -> None:
    path = tmp_path / "e.csv"
    _enterprises_raw().to_csv(path, index=False, encoding=encoding, sep="\t" if encoding == "utf-16" else ",")
    raw = read_raw(path)
    assert raw.attrs["encoding"] == expected
    assert list(raw.columns) == [*REGISTRY_HEADERS, "数据来源"]
    assert raw.iloc[0, 0] == "武漢光迅科技股份有限公司" and pd.isna(raw.iloc[1, 10])


def test_detect_encoding_gbk_bytes() -> None:
    assert detect_encoding("统一社会信用代码,企业名称\n".encode("gbk")) == "gb18030"


def test_read_raw_errors(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match=re.escape(f"cannot read {tmp_path / 'x.csv'}: no such file")):
        read_raw(tmp_path / "x.csv")
    doc = tmp_path / "x.docx"
    doc.write_bytes(b"x")
    msg = f"cannot read {doc}: unknown file type '.docx'; expected one of ['.csv', '.parquet', '.pq', '.tsv', '.txt', '.xlsm', '.xlsx']"
    with pytest.raises(IngestError, match=re.escape(msg)):
        read_raw(doc)
    xlsx = tmp_path / "p.xlsx"
    pd.DataFrame({"a": [1]}).to_excel(xlsx, index=False, sheet_name="名单")
    with pytest.raises(IngestError, match=re.escape(f"cannot read {xlsx}: no sheet '其他'; sheets: ['名单']")):
        read_raw(xlsx, sheet="其他")
    with pytest.raises(
        IngestError,
        match=re.escape(f"cannot read {tmp_path / 'e.csv'}: not valid utf-8 at line 2, column 1 (byte 4: b"),
    ):
        (tmp_path / "e.csv").write_bytes(b"a,b\n" + "光".encode("gbk"))
        read_raw(tmp_path / "e.csv", encoding="utf-8")


# ---------------------------------------------------------------- ingest_file
def test_ingest_file_gbk_registry_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "企业名录.csv"
    _enterprises_raw().to_csv(path, index=False, encoding="gbk")
    report = ingest_file(path, "enterprises", "registry-cn", tmp_path / "snap", tmp_path / "rej", maps_dir=MAPS)
    assert (report.n_read, report.n_ok, report.n_rejected, report.n_duplicates, report.rejects) == (2, 2, 0, 0, None)
    assert report.messages == ["read 2 rows, encoding gb18030", "columns kept in 'extra': ['数据来源']"]
    df = read_snapshot(tmp_path / "snap", "enterprises")
    assert df is not None and Path(report.snapshot or "") == snapshot_paths(tmp_path / "snap", "enterprises")[-1]
    row = df.iloc[0].to_dict()
    assert row == {
        "enterprise_id": A, "name": "武汉光迅科技股份有限公司", "status": "存续(在营、开业、在册)", "is_operating": True,
        "province": "湖北省", "city": "武汉市", "district": "洪山区", "founded": pd.Timestamp("2001-01-22"),
        "registered_capital_cny": 5e7, "employees": 3500.0, "industry_code": "3976", "industry_name": "光电子器件制造",
        "business_scope": "光电子器件、光纤通信设备的研发", "description": "国内领先的光器件企业", "products": "光模块;光芯片",
        "listed": True, "financing_round": "IPO", "financing_date": pd.Timestamp("2009-08-21"), "extra": '{"数据来源":"企查查"}',
    }  # fmt: skip
    second = df.iloc[1]
    assert second["registered_capital_cny"] == pytest.approx(1.2e8 * 7.1)
    assert (second["employees"], second["financing_round"], second["financing_date"]) == (
        1200.0,
        "A轮",
        pd.Timestamp("2019-03-01"),
    )
    assert pd.isna(second["description"]) and pd.isna(second["extra"])


def test_ingest_file_xlsx_presence_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "presence.xlsx"
    raw = pd.DataFrame(
        {
            "统一社会信用代码": [A, B],
            "节点编号": ["optical_comm.optical_chip", "optical_comm.fiber"],
            "年度": [2023, 2024],
            "产值（万元）": [1234.5, None],
            "纳税（万元）": [10, 20],
            "从业人数": [300, 40],
            "是否链主": ["是", "否"],
        }
    )
    with pd.ExcelWriter(path, engine="openpyxl") as w:
        pd.DataFrame({"说明": ["封面"]}).to_excel(w, index=False, sheet_name="说明")
        raw.to_excel(w, index=False, sheet_name="在园企业")
    report = ingest_file(path, "presence", None, tmp_path / "snap", tmp_path / "rej", sheet="在园企业", maps_dir=MAPS)
    assert (report.n_ok, report.n_rejected) == (2, 0)
    df = read_snapshot(tmp_path / "snap", "presence")
    assert df is not None
    assert df.drop(columns="output_value_cny").to_dict("list") == {
        "enterprise_id": [A, B], "node_id": ["optical_comm.optical_chip", "optical_comm.fiber"], "year": [2023, 2024],
        "tax_cny": [100000.0, 200000.0],
        "employees": [300.0, 40.0], "is_chain_leader": [True, False],
    }  # fmt: skip
    np.testing.assert_array_equal(df["output_value_cny"].to_numpy(), [12345000.0, np.nan])
    assert df["year"].dtype == "int64"
    assert read_raw(path, sheet=1).shape == (2, 7)


def test_ingest_file_rejects_file_exact_contents(tmp_path: Path) -> None:
    path = tmp_path / "signals.csv"
    path.write_text(
        "事件编号,统一社会信用代码,事件类型,日期,金额（万元）,省份,城市,事件描述\n"
        f"S1,{A},融资,2024-01-05,5000,湖北省,武汉市,B轮融资\n"
        "S2,91420100MA4K0000AQ,招聘,2024-02-01,,湖北省,武汉市,\n"
        f"S3,{B},上市,2024-02-01,,,,\n"
        f"S4,{C},扩产,2024-13-01,,,,\n"
        f"S5,{D},购地,2024/3/1,约100,,,\n"
        f"S1,{A},融资,2024-01-06,6000,湖北省,武汉市,B轮融资(更新)\n"
        f",{A},融资,2024-01-06,,,,\n",
        encoding="utf-8",
    )
    report = ingest_file(path, "signals", None, tmp_path / "snap", tmp_path / "rej", maps_dir=MAPS)
    assert (report.n_read, report.n_ok, report.n_rejected, report.n_duplicates, report.n_cleared) == (7, 2, 4, 1, 1)
    assert report.rejects is not None and Path(report.rejects).parent == tmp_path / "rej"
    text = Path(report.rejects).read_text(encoding="utf-8-sig")
    assert text.splitlines() == [
        "file,row,field,value,reason",
        "signals.csv,1,signal_id,S1,duplicate of row 6; row rejected",
        'signals.csv,2,enterprise_id,91420100MA4K0000AQ,"not a valid unified social credit code (18 characters, GB 32100-2015 check character); row rejected"',
        "signals.csv,3,signal_type,上市,\"not one of ['financing', 'new_branch', 'land_purchase', 'hiring', 'capacity_expansion']; row rejected\"",
        'signals.csv,4,date,2024-13-01,"not a calendar date (year 2024, month 13, day 1); row rejected"',
        'signals.csv,5,amount_cny,约100,"not a number; value cleared, row kept"',
        "signals.csv,7,signal_id,,missing required value; row rejected",
    ]
    df = read_snapshot(tmp_path / "snap", "signals")
    assert df is not None
    assert df[["signal_id", "signal_type", "date"]].values.tolist() == [
        ["S5", "land_purchase", pd.Timestamp("2024-03-01")],
        ["S1", "financing", pd.Timestamp("2024-01-06")],
    ]  # fmt: skip  (file order of the kept rows)
    np.testing.assert_array_equal(df["amount_cny"].to_numpy(), [np.nan, 6e7])
    assert df["description"].fillna("<NA>").tolist() == ["<NA>", "B轮融资(更新)"]


def test_ingest_file_upsert_merges_by_key(tmp_path: Path) -> None:
    first = tmp_path / "a.csv"
    first.write_text("资产编号,资产类型,名称\nF1,基金,光谷产业基金\nU1,高校,华中科技大学\n", encoding="utf-8-sig")
    second = tmp_path / "b.csv"
    second.write_text("资产编号,资产类型,名称\nU1,高校,華中科技大學\nL1,实验室,光谷实验室\n", encoding="utf-8-sig")
    ingest_file(first, "assets", None, tmp_path / "snap", tmp_path / "rej", maps_dir=MAPS)
    report = ingest_file(second, "assets", None, tmp_path / "snap", tmp_path / "rej", mode="upsert", maps_dir=MAPS)
    assert (report.n_ok, report.n_total) == (2, 3)
    assert report.messages[-1] == "upsert: 1 rows replaced, 1 added, 1 kept"
    df = read_snapshot(tmp_path / "snap", "assets")
    assert df is not None
    assert df[["asset_id", "asset_type", "name"]].values.tolist() == [
        ["F1", "fund", "光谷产业基金"], ["U1", "university", "华中科技大学"], ["L1", "lab", "光谷实验室"],
    ]  # fmt: skip
    assert len(snapshot_paths(tmp_path / "snap", "assets")) == 2
    replaced = ingest_file(second, "assets", None, tmp_path / "snap", tmp_path / "rej", maps_dir=MAPS)
    assert replaced.n_total == 2


def test_ingest_file_canonical_parquet_with_identity(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.parquet"
    pd.DataFrame(
        {
            "outcome_id": ["o1"],
            "enterprise_id": [A],
            "node_id": ["n"],
            "stage": ["签约"],
            "date": [pd.Timestamp("2024-05-01")],
            "amount_cny": [3e7],
        }
    ).to_parquet(path)
    for cmap in ("identity", "zone-outcomes"):
        report = ingest_file(path, "outcomes", cmap, tmp_path / "snap", tmp_path / "rej", maps_dir=MAPS)
        assert (report.n_ok, report.rejects) == (1, None)
    df = read_snapshot(tmp_path / "snap", "outcomes")
    assert df is not None and df.iloc[0][["date", "amount_cny"]].tolist() == [pd.Timestamp("2024-05-01"), 3e7]


def test_ingest_file_missing_columns_named(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("统一社会信用代码,年份\n" + A + ",2024\n", encoding="utf-8")
    msg = (
        "p.csv cannot be loaded as presence with column map 'zone-presence': missing required columns "
        "['node_id (节点编号)', 'year (年度)']; got columns ['统一社会信用代码', '年份']"
    )
    with pytest.raises(IngestError, match=re.escape(msg)):
        ingest_file(path, "presence", None, tmp_path / "snap", tmp_path / "rej", maps_dir=MAPS)
    assert not (tmp_path / "snap").exists()


def test_ingest_file_relations_customer_stored_as_supplier(tmp_path: Path) -> None:
    path = tmp_path / "relations.csv"
    path.write_text(
        "关系编号,源编号,源类型,目标编号,目标类型,关系类型,强度,日期\n"
        f"R1,{A},企业,{B},企业,客户,0.8,2022-06-01\nR2,F1,资产,{C},企业,基金投资,1,2021-01-01\n",
        encoding="utf-8",
    )
    ingest_file(path, "relations", None, tmp_path / "snap", tmp_path / "rej", maps_dir=MAPS)
    df = read_snapshot(tmp_path / "snap", "relations")
    assert df is not None
    assert df[["src_id", "src_type", "dst_id", "dst_type", "relation_type", "weight"]].values.tolist() == [
        [B, "enterprise", A, "enterprise", "supplier", 0.8], ["F1", "asset", C, "enterprise", "fund_portfolio", 1.0],
    ]  # fmt: skip


# ---------------------------------------------------------------- snapshots and rejects
def test_write_snapshot_newest_wins_and_is_atomic(tmp_path: Path) -> None:
    a = pd.DataFrame({"asset_id": ["a"], "asset_type": ["fund"], "name": ["甲"]})
    b = pd.DataFrame({"asset_id": ["b"], "asset_type": ["lab"], "name": ["乙"]})
    p1 = write_snapshot(a, tmp_path, "assets", stamp="20260101T000000000000")
    p2 = write_snapshot(b, tmp_path, "assets", stamp="20260101T000000000000")
    assert (p1.name, p2.name) == ("20260101T000000000000.parquet", "20260101T000000000001.parquet")
    assert sorted(p.name for p in (tmp_path / "assets").iterdir()) == [p1.name, p2.name]  # no temp files left
    current = read_snapshot(tmp_path, "assets")
    assert current is not None and current["asset_id"].tolist() == ["b"]
    assert re.fullmatch(r"\d{8}T\d{12}\.parquet", write_snapshot(a, tmp_path, "assets").name)


def test_load_tables_fills_missing_tables_with_empty_frames(tmp_path: Path) -> None:
    write_snapshot(pd.DataFrame({"asset_id": ["a"], "asset_type": ["fund"], "name": ["甲"]}), tmp_path, "assets")
    tables = load_tables(tmp_path)
    assert list(tables) == list(S.TABLES)
    assert len(tables["assets"]) == 1 and list(tables["assets"].columns) == S.SCHEMAS["assets"].column_names
    assert tables["relations"].empty and list(tables["relations"].columns) == S.SCHEMAS["relations"].column_names
    assert str(tables["relations"]["date"].dtype) == "datetime64[ns]"
    assert read_snapshot(tmp_path, "signals") is None


def test_write_rejects_only_when_there_are_some(tmp_path: Path) -> None:
    empty = pd.DataFrame(columns=["file", "row", "field", "value", "reason"])
    assert write_rejects(empty, tmp_path, "assets") is None
    rejects = pd.DataFrame({"file": ["a.csv"], "row": [3], "field": ["name"], "value": [""], "reason": ["missing"]})
    path = write_rejects(rejects, tmp_path, "assets", stamp="20260101T000000000000")
    assert path == tmp_path / "assets-20260101T000000000000.csv"
    assert path.read_bytes() == "\ufefffile,row,field,value,reason\na.csv,3,name,,missing\n".encode()


def test_ingest_report_is_json_serialisable(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("资产编号,资产类型,名称\nF1,基金,光谷产业基金\n", encoding="utf-8")
    report = ingest_file(path, "assets", "zone-assets", tmp_path / "snap", tmp_path / "rej", maps_dir=MAPS)
    assert json.loads(json.dumps(report.to_dict()))["n_ok"] == 1


def test_ingest_file_big5_traditional_csv_is_simplified(tmp_path: Path) -> None:
    path = tmp_path / "tw.csv"
    rows = "".join(f"臺灣積體電路製造股份有限公司{i},{code},存續\n" for i, code in enumerate((A, B, C, D)))
    path.write_bytes(("企業名稱,統一社會信用代碼,登記狀態\n" + rows).encode("big5"))
    report = ingest_file(path, "enterprises", None, tmp_path / "snap", tmp_path / "rej", maps_dir=MAPS)
    assert report.messages[0] == "read 4 rows, encoding big5"
    df = read_snapshot(tmp_path / "snap", "enterprises")
    assert df is not None
    assert df[["name", "status", "is_operating"]].values.tolist()[0] == ["台湾积体电路制造股份有限公司0", "存续", True]


def test_ingest_file_of_only_bad_rows_keeps_the_table(tmp_path: Path) -> None:
    good = tmp_path / "a.csv"
    good.write_text("资产编号,资产类型,名称\nF1,基金,光谷产业基金\n", encoding="utf-8")
    bad = tmp_path / "b.csv"
    bad.write_text("资产编号,资产类型,名称\nX1,工厂,某工厂\n", encoding="utf-8")
    ingest_file(good, "assets", None, tmp_path / "snap", tmp_path / "rej", maps_dir=MAPS)
    report = ingest_file(bad, "assets", None, tmp_path / "snap", tmp_path / "rej", maps_dir=MAPS)
    assert (report.n_ok, report.n_rejected, report.snapshot, report.n_total) == (0, 1, None, 1)
    assert report.rejects is not None and Path(report.rejects).is_file()
    assert report.messages[-1] == "no valid rows: no snapshot written, the current table is unchanged"
    assert len(snapshot_paths(tmp_path / "snap", "assets")) == 1


def test_ingest_report_messages_summarise_problems(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(
        "资产编号,资产类型,名称\nF1,基金,甲\nF1,基金,乙\nF2,基金,丙\nF2,基金,丁\nF3,工厂,戊\n", encoding="utf-8"
    )
    report = ingest_file(path, "assets", None, tmp_path / "snap", tmp_path / "rej", maps_dir=MAPS)
    assert report.messages == [
        "read 5 rows, encoding utf-8",
        "2 × asset_id: duplicate of another row",
        "1 × asset_type: not one of ['fund', 'university', 'lab', 'scenario', 'alumni_network']",
    ]


def test_ingest_file_xlsx_title_row_and_blank_rows(tmp_path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["2024年光谷在园企业名单"])
    ws.append(["统一社会信用代码", "节点编号", "年度", "是否链主"])
    ws.append([A, "n1", 2024, "是"])
    ws.append([None, None, None, None])
    ws.append([B, "n1", "二〇二四", "否"])
    ws.append([C, "n2", 2024, None])
    ws.append([None, None, None, None])
    path = tmp_path / "presence.xlsx"
    wb.save(path)
    report = ingest_file(path, "presence", None, tmp_path / "snap", tmp_path / "rej", maps_dir=MAPS)
    assert (report.n_read, report.n_ok, report.n_rejected) == (4, 2, 1)
    assert report.messages == [
        "header on sheet row 2 (title rows above it skipped)",
        "1 blank rows skipped",
        "1 × year: not a number",
    ]
    assert report.rejects is not None
    assert Path(report.rejects).read_text(encoding="utf-8-sig").splitlines()[1] == (
        "presence.xlsx,3,year,二〇二四,not a number; row rejected"
    )


def test_ingest_file_header_only_keeps_the_table_unless_allow_empty(tmp_path: Path) -> None:
    good = tmp_path / "a.csv"
    good.write_text("资产编号,资产类型,名称\nF1,基金,光谷产业基金\nL1,实验室,光谷实验室\n", encoding="utf-8")
    header_only = tmp_path / "header_only.csv"
    header_only.write_text("资产编号,资产类型,名称\n", encoding="utf-8")
    ingest_file(good, "assets", None, tmp_path / "snap", tmp_path / "rej", maps_dir=MAPS)
    report = ingest_file(header_only, "assets", None, tmp_path / "snap", tmp_path / "rej", maps_dir=MAPS)
    assert (report.n_read, report.n_ok, report.snapshot, report.rejects, report.n_total) == (0, 0, None, None, 2)
    assert report.messages[-1] == (
        "no data rows: no snapshot written, the current table is unchanged (allow_empty / --allow-empty stores an "
        "empty table)"
    )
    assert len(snapshot_paths(tmp_path / "snap", "assets")) == 1
    current = read_snapshot(tmp_path / "snap", "assets")
    assert current is not None and current["asset_id"].tolist() == ["F1", "L1"]

    meant = ingest_file(
        header_only, "assets", None, tmp_path / "snap", tmp_path / "rej", maps_dir=MAPS, allow_empty=True
    )
    assert (meant.n_read, meant.n_ok, meant.n_total) == (0, 0, 0) and meant.snapshot is not None
    replaced = read_snapshot(tmp_path / "snap", "assets")
    assert replaced is not None and replaced.empty and list(replaced.columns) == S.SCHEMAS["assets"].column_names


def test_ingest_file_outcome_dated_9999_is_rejected_with_field_and_reason(tmp_path: Path) -> None:
    from datetime import date

    path = tmp_path / "outcomes.csv"
    path.write_bytes(
        (
            ",".join(ZONE_HEADERS["outcomes"]) + "\n"
            f"O1,{A},n1,签约,9999-12-31,100,正常\n"
            f"O2,{A},n1,落地,2024-05-06,1e400,备注\x00带控制符\n"
            f"O3,{B},n1,接洽,2024-05-07,inf,\n"
        ).encode("utf-8")
    )
    report = ingest_file(
        path, "outcomes", None, tmp_path / "snap", tmp_path / "rej", maps_dir=MAPS, today=date(2026, 12, 3)
    )
    assert (report.n_read, report.n_ok, report.n_rejected, report.n_cleared) == (3, 2, 1, 2)
    assert report.rejects is not None
    assert Path(report.rejects).read_text(encoding="utf-8-sig").splitlines()[1:] == [
        'outcomes.csv,1,date,9999-12-31,"after today (2026-12-03, Asia/Shanghai); row rejected"',
        'outcomes.csv,2,amount_cny,1e400,"not a finite number; value cleared, row kept"',
        'outcomes.csv,3,amount_cny,inf,"not a finite number; value cleared, row kept"',
    ]
    df = read_snapshot(tmp_path / "snap", "outcomes")
    assert df is not None and df["outcome_id"].tolist() == ["O2", "O3"]
    assert df["note"].tolist()[0] == "备注 带控制符" and df["amount_cny"].isna().all()


def test_ingest_file_identity_parquet_with_infinite_numbers_and_nul_text(tmp_path: Path) -> None:
    from datetime import date

    path = tmp_path / "signals.parquet"
    pd.DataFrame(
        {
            "signal_id": ["S1", "S2"],
            "enterprise_id": [A, B],
            "signal_type": ["financing", "hiring"],
            "date": [pd.Timestamp("2024-01-01"), pd.Timestamp("1900-01-01")],
            "amount_cny": [float("inf"), 5.0],
            "description": ["融资\x00完成", None],
        }
    ).to_parquet(path)
    report = ingest_file(path, "signals", "identity", tmp_path / "snap", tmp_path / "rej", today=date(2026, 12, 3))
    assert (report.n_ok, report.n_rejected, report.n_cleared) == (1, 1, 1)
    df = read_snapshot(tmp_path / "snap", "signals")
    assert df is not None and df[["signal_id", "description"]].values.tolist() == [["S1", "融资 完成"]]
    assert np.isnan(df["amount_cny"].iloc[0])


# ---------------------------------------------------------------- limits
def test_ingest_file_csv_with_a_5_mb_cell_keeps_every_row(tmp_path: Path) -> None:
    big = "光" * (5 * 1024 * 1024 // 3 + 10)  # 5 MB of UTF-8 in one quoted cell, with a line break inside
    rows = [f"F{i},基金,基金{i},简介{i}" for i in range(49)]
    rows.insert(20, f'B1,实验室,大实验室,"{big[:1000]}\n{big}"')
    path = tmp_path / "assets.csv"
    path.write_text("资产编号,资产类型,名称,简介\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert path.stat().st_size > 5 * 1024 * 1024
    raw = read_raw(path)
    assert len(raw) == 50 and raw["简介"].str.len().max() == len(big) + 1001
    report = ingest_file(path, "assets", None, tmp_path / "snap", tmp_path / "rej", maps_dir=MAPS, max_text_chars=2000)
    assert (report.n_read, report.n_ok, report.n_rejected, report.rejects) == (50, 50, 0, None)
    df = read_snapshot(tmp_path / "snap", "assets")
    assert df is not None and df["asset_id"].tolist()[19:22] == ["F19", "B1", "F20"]
    assert len(df.loc[df["asset_id"] == "B1", "description"].iloc[0]) == 2000


def test_ingest_file_csv_rows_with_too_many_or_too_few_fields_are_rejected_alone(tmp_path: Path) -> None:
    """Arrow refuses the whole file for one ragged row ('Expected 4 columns, got 5'); only that row goes."""
    path = tmp_path / "assets.csv"
    path.write_text(
        "资产编号,资产类型,名称,简介\n"
        "F1,基金,光谷基金,简介\n"
        "F2,基金,光谷二期,募资5,000万元\n"  # an unquoted thousands separator: five fields
        'F3,高校,华中科技大学,"两行\n简介"\n'  # a quoted line break keeps the record whole
        "F4,实验室\n"  # two fields
        "F5,基金,光谷三期,简介\n",
        encoding="utf-8",
    )
    report = ingest_file(path, "assets", None, tmp_path / "snap", tmp_path / "rej", maps_dir=MAPS)
    assert (report.n_read, report.n_ok, report.n_rejected) == (5, 3, 2)
    df = read_snapshot(tmp_path / "snap", "assets")
    assert df is not None and df["asset_id"].tolist() == ["F1", "F3", "F5"]
    assert df.loc[df["asset_id"] == "F3", "description"].iloc[0] == "两行 简介"
    assert report.rejects is not None
    rejects = pd.read_csv(report.rejects, encoding="utf-8-sig")
    assert sorted(set(rejects["row"])) == [2, 4]
    by_row = rejects.groupby("row")["reason"].first()
    assert by_row[2] == "the row has 5 fields where the header has 4 (a separator in an unquoted value?); row rejected"
    assert by_row[4].startswith("the row has 2 fields where the header has 4")
    assert rejects.loc[rejects["row"] == 2, "value"].iloc[0] == "F2,基金,光谷二期,募资5,000万元"


def _xlsx_bomb(path: Path, padding: int) -> Path:
    """A valid presence workbook whose sheet XML is padded with ``padding`` spaces (deflates ~1000:1)."""
    import io
    import zipfile

    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(ZONE_HEADERS["presence"][:3])
    ws.append([A, "n1", 2024])
    buf = io.BytesIO()
    wb.save(buf)
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b"</sheetData>", b" " * padding + b"</sheetData>")
            dst.writestr(info.filename, data)
    return path


def test_read_raw_refuses_an_xlsx_that_inflates_past_the_limits(tmp_path: Path) -> None:
    import time

    from features.io import ReadLimits

    bomb = _xlsx_bomb(tmp_path / "bomb.xlsx", 3_000_000)
    assert bomb.stat().st_size < 20_000
    assert len(read_raw(bomb, limits=ReadLimits(max_xlsx_uncompressed_bytes=10_000_000, max_xlsx_ratio=10_000))) == 1
    t0 = time.perf_counter()
    with pytest.raises(IngestError) as size:
        read_raw(bomb, limits=ReadLimits(max_xlsx_uncompressed_bytes=2_000_000, max_xlsx_ratio=10_000))
    assert str(size.value) == (
        f"cannot read {bomb}: the workbook would inflate to 3.0 MB uncompressed, over the limit of 2.0 MB "
        "(setting ingest.max_xlsx_uncompressed_mb); split it or save it as CSV"
    )
    with pytest.raises(IngestError) as ratio:
        read_raw(bomb)  # defaults: 200 MB, ratio 100
    assert re.fullmatch(
        re.escape(f"cannot read {bomb}: xl/worksheets/sheet1.xml would inflate ")
        + r"\d+ times \(3\.0 MB from \d+ bytes\), over the limit of 100 times "
        + re.escape("(setting ingest.max_xlsx_compression_ratio): not an ordinary spreadsheet; re-save it in Excel"),
        str(ratio.value),
    ), str(ratio.value)
    assert time.perf_counter() - t0 < 2.0


def test_read_raw_refuses_an_xlsx_that_is_not_a_workbook(tmp_path: Path) -> None:
    fake = tmp_path / "presence.xlsx"
    fake.write_text("统一社会信用代码,节点编号,年度\n", encoding="utf-8")
    with pytest.raises(IngestError) as exc:
        read_raw(fake)
    assert str(exc.value) == (
        f"cannot read {fake}: not an XLSX workbook (an .xlsx file is a zip archive; this one is not): "
        "if it is a CSV, name it .csv"
    )


def test_read_raw_xlsx_whose_directory_understates_its_sizes_is_refused_not_inflated(tmp_path: Path) -> None:
    import struct

    bomb = _xlsx_bomb(tmp_path / "liar.xlsx", 3_000_000)
    data = bytearray(bomb.read_bytes())
    name = b"xl/worksheets/sheet1.xml"
    entry = data.find(b"PK\x01\x02")
    while data[entry + 46 : entry + 46 + len(name)] != name:  # the sheet's central directory record
        entry = data.find(b"PK\x01\x02", entry + 4)
    struct.pack_into("<I", data, entry + 24, 1000)  # declared uncompressed size: 1000 bytes
    bomb.write_bytes(bytes(data))
    with pytest.raises(IngestError, match=re.escape(f"cannot read {bomb} as xlsx: ")):
        read_raw(bomb)


def test_ingest_file_xlsx_formulas_without_cached_values_are_reported_per_cell(tmp_path: Path) -> None:
    import zipfile

    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["统一社会信用代码", "节点编号", "年度", "产值（万元）"])
    ws.append([A, "n1", 2024, "=1+1"])  # optional value from a formula Excel never computed
    ws.append([B, "n1", "=2020+4", 7])  # required value from such a formula
    ws.append([C, "n2", 2024, "=5*1"])  # a formula with its cached value (set below): read as 5
    ws.append(["=A2", "=B2", "=C2", None])  # a trailing row of formulas only is not a blank row
    plain = tmp_path / "plain.xlsx"
    wb.save(plain)
    path = tmp_path / "presence.xlsx"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b"<f>5*1</f><v />", b"<f>5*1</f><v>5</v>")
            dst.writestr(info.filename, data)
    report = ingest_file(path, "presence", None, tmp_path / "snap", tmp_path / "rej", maps_dir=MAPS)
    assert (report.n_read, report.n_ok, report.n_rejected, report.n_cleared) == (4, 2, 2, 1)
    formula = "formula without a cached value: re-save the file in Excel"
    assert report.rejects is not None
    assert Path(report.rejects).read_text(encoding="utf-8-sig").splitlines()[1:] == [
        f'presence.xlsx,1,output_value_cny,=1+1,"{formula}; value cleared, row kept"',
        f"presence.xlsx,2,year,=2020+4,{formula}; row rejected",
        f"presence.xlsx,4,enterprise_id,=A2,{formula}; row rejected",
        f"presence.xlsx,4,node_id,=B2,{formula}; row rejected",
        f"presence.xlsx,4,year,=C2,{formula}; row rejected",
    ]
    assert report.messages == [
        f"2 × year: {formula}",
        f"1 × output_value_cny: {formula}",
        f"1 × enterprise_id: {formula}",
        f"1 × node_id: {formula}",
    ]
    df = read_snapshot(tmp_path / "snap", "presence")
    assert df is not None
    assert df[["enterprise_id", "output_value_cny"]].values.tolist()[1] == [C, 50000.0]
    assert np.isnan(df["output_value_cny"].iloc[0])


def test_ingest_file_xlsx_formula_in_an_extra_enterprise_column_is_reported(tmp_path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["企业名称", "统一社会信用代码", "备注"])
    ws.append(["甲公司", A, '=CONCAT("a","b")'])
    path = tmp_path / "e.xlsx"
    wb.save(path)
    report = ingest_file(path, "enterprises", None, tmp_path / "snap", tmp_path / "rej", maps_dir=MAPS)
    assert (report.n_ok, report.n_cleared) == (1, 1)
    assert report.rejects is not None
    assert Path(report.rejects).read_text(encoding="utf-8-sig").splitlines()[1] == (
        'e.xlsx,1,extra,"=CONCAT(""a"",""b"")","formula without a cached value: re-save the file in Excel; value '
        'cleared, row kept"'
    )


# ---------------------------------------------------------------- encodings and binary files
def test_read_raw_mixed_encodings_are_named_by_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    utf8 = "名称,城市\n" + "".join(f"光谷企业{i},武汉\n" for i in range(50))
    path.write_bytes(utf8.encode("utf-8") + "长沙企业,长沙\n".encode("gbk") + "末行,武汉\n".encode())
    with pytest.raises(IngestError) as exc:
        read_raw(path)
    assert str(exc.value) == (
        f"cannot read {path}: not one encoding: valid UTF-8 up to line 52, column 1, where bytes "
        "b'\\xb3\\xa4\\xc9\\xb3' are not UTF-8: the file may mix encodings; re-save it in one encoding (UTF-8) "
        "or pass --encoding (e.g. gb18030, big5, utf-8)"
    )


def test_read_raw_long_utf8_then_gbk_is_refused_not_garbled(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    utf8 = "名称,城市\n" + "".join(f"光谷企业{i:06d},武汉\n" for i in range(60_000))  # > 1 MB: detected as UTF-8
    path.write_bytes(utf8.encode("utf-8") + "长沙企业,长沙\n".encode("gbk"))
    assert path.stat().st_size > 1 << 20
    with pytest.raises(IngestError, match=re.escape("valid UTF-8 up to line 60002, column 1, where bytes")):
        read_raw(path)
    ascii_then_gbk = tmp_path / "gbk.csv"  # an ASCII start is no UTF-8 evidence: GB18030 as before
    ascii_then_gbk.write_bytes(("a,b\n" + "x,1\n" * 300_000).encode() + "长沙,2\n".encode("gbk"))
    raw = read_raw(ascii_then_gbk)
    assert raw.attrs["encoding"] == "gb18030" and raw["a"].iloc[-1] == "长沙"


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "it looks like a PNG image"),
        (b"PK\x03\x04" + bytes(200), "it looks like a zip archive, e.g. an .xlsx workbook: name it .xlsx"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(200), "it looks like an old Excel .xls or Office file: save it as .xlsx or CSV"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "it looks like a PDF document"),
    ],
)  # fmt: skip
def test_read_raw_binary_file_named_csv_is_not_a_text_file(tmp_path: Path, content: bytes, what: str) -> None:
    path = tmp_path / "企业名录.csv"
    path.write_bytes(content)
    with pytest.raises(IngestError) as exc:
        read_raw(path)
    assert str(exc.value) == f"cannot read {path}: not a text file ({what}); expected a CSV or TSV export"


def test_read_raw_random_bytes_are_not_a_text_file(tmp_path: Path) -> None:
    path = tmp_path / "random.csv"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    with pytest.raises(IngestError) as exc:
        read_raw(path, encoding="gb18030")
    assert re.fullmatch(
        re.escape(f"cannot read {path}: not a text file (")
        + r"\d+ of its first 3000 bytes are control characters"
        + re.escape("); expected a CSV or TSV export"),
        str(exc.value),
    ), str(exc.value)


def test_read_raw_utf16_without_bom_gets_a_hint_and_reads_when_forced(tmp_path: Path) -> None:
    path = tmp_path / "unicode.txt"
    path.write_bytes("名称\t城市\nabc\t武汉\ndef\t长沙\n".encode("utf-16-le"))
    with pytest.raises(IngestError) as exc:
        read_raw(path)
    assert str(exc.value) == (
        f"cannot read {path}: it looks like UTF-16 text without a byte-order mark: pass --encoding utf-16-le"
    )
    assert read_raw(path, encoding="utf-16-le")["城市"].tolist() == ["武汉", "长沙"]


def test_read_raw_a_few_nul_characters_do_not_make_a_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(("资产编号,名称\n" + "".join(f"F{i},基金\x00{i}\n" for i in range(40))).encode("utf-8"))
    assert len(read_raw(path)) == 40
