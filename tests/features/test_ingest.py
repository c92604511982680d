"""Pure ingest: column maps, parsing, validation, rejects, duplicates, upsert merge."""

from __future__ import annotations

import json
import re
from datetime import date

import numpy as np
import pandas as pd
import pytest

from features import schema as S
from features.ingest import (
    ColumnMap,
    ColumnRule,
    apply_column_map,
    coerce_table,
    empty_table,
    identity_map,
    merge_upsert,
    missing_columns,
    parse_column_map,
    parse_date_series,
    unmapped_columns,
    validate_table,
)

A, B, C, D = "91420100MA4K0000AP", "91420100MA4K0000BT", "91420100MA4K0000CX", "91420100MA4K0000D1"
INDUSTRY = {"columns": ["industry_code", "industry_name"], "pattern": r"^(?:[A-Za-z]?\s*(\d{2,4}))?\s*(.*)$"}


def _frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame(rows, dtype=object)


def _rejects(rejects: pd.DataFrame) -> list[tuple[object, ...]]:
    return [tuple(r) for r in rejects[["row", "field", "value", "reason"]].itertuples(index=False)]


# ---------------------------------------------------------------- column maps
def test_parse_column_map_builds_rules() -> None:
    cmap = parse_column_map(
        {
            "table": "presence",
            "columns": {"产值（万元）": {"column": "output_value_cny", "scale": 10000}, "年度": "year"},
        },
        name="m",
    )
    assert cmap == ColumnMap(
        "m",
        "presence",
        (ColumnRule("产值（万元）", ("output_value_cny",), scale=10000.0), ColumnRule("年度", ("year",))),
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"table": "nope", "columns": {"a": "name"}}, "column map 'm': 'table' must be one of ['enterprises', 'presence', 'assets', 'relations', 'signals', 'outcomes', 'fit_marks']; got 'nope'"),
        ({"table": "assets", "columns": {}}, "column map 'm': 'columns' must be a non-empty mapping of source → target; got {}"),
        ({"table": "assets", "columns": {"名称": "title"}}, "column map 'm', column '名称': unknown target columns ['title'] for table assets; valid: ['asset_id', 'asset_type', 'description', 'name', 'node_id', 'owner']"),
        ({"table": "assets", "columns": {"x": {"column": "name", "scale": 0}}}, "column map 'm', column 'x': 'scale' must be a positive number; got 0"),
        ({"table": "assets", "columns": {"x": {"column": "name", "unit": 1}}}, "column map 'm', column 'x': expected a target name or a mapping with keys ['column', 'columns', 'pattern', 'scale', 'values']; got {'column': 'name', 'unit': 1}"),
        ({"table": "assets", "columns": {"x": {"columns": ["name", "owner"]}}}, "column map 'm', column 'x': several target columns ['name', 'owner'] need a 'pattern' with one group each"),
        ({"table": "assets", "columns": {"x": {"columns": ["name", "owner"], "pattern": "(a)"}}}, "column map 'm', column 'x': 'pattern' has 1 groups but there are 2 target columns"),
        ({"table": "assets"}, "column map 'm': 'columns' must be a non-empty mapping of source → target; got None"),
        ({"table": "assets", "columns": {"a": "name"}, "extra": 1}, "column map 'm' must be a mapping with keys 'table' and 'columns'; got ['columns', 'extra', 'table']"),
    ],
)  # fmt: skip
def test_parse_column_map_rejects_bad_maps(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_column_map(data, name="m")


def test_apply_column_map_alternatives_extra_and_pattern() -> None:
    cmap = parse_column_map(
        {
            "table": "enterprises",
            "columns": {
                "统一社会信用代码": "enterprise_id",
                "企业名称": "name",
                "公司名称": "name",
                "国标行业": INDUSTRY,
            },
        },
        name="t",
    )
    raw = _frame(
        [
            {
                "公司名称": "乙公司",
                "企业名称": "甲公司",
                "統一社會信用代碼": A,
                "国标行业": "C3976 光电子器件制造",
                "数据来源": "x",
            },
            {
                "公司名称": "丙公司",
                "企业名称": None,
                "統一社會信用代碼": B,
                "国标行业": "光电子器件制造",
                "数据来源": None,
            },
            {"公司名称": None, "企业名称": None, "統一社會信用代碼": C, "国标行业": "3976", "数据来源": None},
        ]
    )
    out = apply_column_map(raw, cmap)
    assert list(out.columns) == ["enterprise_id", "name", "industry_code", "industry_name", "extra:数据来源"]
    assert out["name"].fillna("<NA>").tolist() == ["甲公司", "丙公司", "<NA>"]
    assert out["enterprise_id"].tolist() == [A, B, C]  # header matched after traditional → simplified
    assert out["industry_code"].fillna("<NA>").tolist() == ["3976", "<NA>", "3976"]
    assert out["industry_name"].fillna("<NA>").tolist() == ["光电子器件制造", "光电子器件制造", "<NA>"]


def test_apply_column_map_identity_and_unmapped_columns() -> None:
    raw = _frame([{"asset_id": "F1", "asset_type": "fund", "Name": "光谷基金", "备注": "x"}])
    cmap = identity_map("assets")
    out = apply_column_map(raw, cmap)
    assert out.to_dict("records") == [{"asset_id": "F1", "asset_type": "fund", "name": "光谷基金"}]
    assert unmapped_columns(raw, cmap) == ["备注"]
    assert missing_columns(out, cmap) == []


def test_apply_column_map_scale_values_and_missing_columns() -> None:
    cmap = parse_column_map(
        {
            "table": "presence",
            "columns": {
                "产值（万元）": {"column": "output_value_cny", "scale": 10000},
                "是否链主": {"column": "is_chain_leader", "values": {"是": True, "否": False}},
                "节点编号": "node_id",
            },
        },
        name="p",
    )
    raw = _frame(
        [
            {"产值(万元)": "1,234.5", "是否链主": "是 ", "节点编号": "n1"},
            {"产值(万元)": "x", "是否链主": "？", "节点编号": "n1"},
        ]
    )
    out = apply_column_map(raw, cmap)
    assert out["output_value_cny"].tolist() == [12345000.0, "x"]
    assert out["is_chain_leader"].tolist() == [True, "？"]
    assert missing_columns(out, cmap) == ["enterprise_id", "year"]


# ---------------------------------------------------------------- parsing
def test_parse_date_series_formats() -> None:
    values = pd.Series(
        [
            "2019-03-01",
            "2019/3/1",
            "2019年3月1日",
            "20190301",
            "2019.03.01",
            "2019-03-01 12:30:00",
            "2019-03",
            "43525",
            "2019-02-30",
            "soon",
            None,
        ]
    )
    dates, errors = parse_date_series(values)
    assert dates.dtype == "datetime64[ns]"
    assert dates.iloc[:8].tolist() == [pd.Timestamp("2019-03-01")] * 8
    assert dates.iloc[8:].isna().all()
    assert errors.tolist()[8:] == [
        "not a calendar date (year 2019, month 2, day 30)",
        "not a date (expected e.g. 2019-03-01, 2019/3/1, 2019年3月1日 or 20190301)",
        None,
    ]


# ---------------------------------------------------------------- validation
def test_validate_table_enterprises_types_and_rejects() -> None:
    df = _frame(
        [
            {"enterprise_id": A.lower(), "name": "  光電子（武漢）有限公司 ", "status": "存续（在营、开业、在册）", "founded": "2019/3/1",
             "registered_capital_cny": "5000万人民币", "employees": "120", "listed": "否", "financing_round": "A轮", "extra:来源": "企查查"},
            {"enterprise_id": "91420100MA4K0000AX", "name": "坏代码", "status": "存续", "founded": "2019-03-01",
             "registered_capital_cny": "1亿", "employees": None, "listed": None, "financing_round": None, "extra:来源": None},
            {"enterprise_id": B, "name": None, "status": "注销", "founded": None,
             "registered_capital_cny": None, "employees": None, "listed": None, "financing_round": None, "extra:来源": None},
            {"enterprise_id": C, "name": "丙", "status": "吊销，未注销", "founded": "someday",
             "registered_capital_cny": "100万卢布", "employees": "-3", "listed": "也许", "financing_round": "Z轮", "extra:来源": None},
        ]
    )  # fmt: skip
    good, rejects = validate_table(df, "enterprises", "e.csv")
    assert list(good.columns) == S.SCHEMAS["enterprises"].column_names
    assert good[S.COL_ENTERPRISE_ID].tolist() == [A, C]
    assert good[S.COL_NAME].tolist() == ["光电子(武汉)有限公司", "丙"]
    assert good[S.COL_IS_OPERATING].tolist() == [True, False]
    assert good[S.COL_FOUNDED].tolist()[0] == pd.Timestamp("2019-03-01") and pd.isna(good[S.COL_FOUNDED].iloc[1])
    assert good[S.COL_CAPITAL_CNY].iloc[0] == 5e7 and np.isnan(good[S.COL_CAPITAL_CNY].iloc[1])
    assert good[S.COL_LISTED].tolist() == [False, False]
    assert json.loads(good[S.COL_EXTRA].iloc[0]) == {"来源": "企查查"} and pd.isna(good[S.COL_EXTRA].iloc[1])
    assert good.dtypes.astype(str).to_dict() == empty_table("enterprises").dtypes.astype(str).to_dict()
    currencies = "['AUD', 'CAD', 'CHF', 'CNY', 'EUR', 'GBP', 'HKD', 'JPY', 'KRW', 'MOP', 'SGD', 'TWD', 'USD']"
    assert _rejects(rejects) == [
        (2, "enterprise_id", "91420100MA4K0000AX", "not a valid unified social credit code (18 characters, GB 32100-2015 check character); row rejected"),
        (3, "name", "", "missing required value; row rejected"),
        (4, "founded", "someday", "not a date (expected e.g. 2019-03-01, 2019/3/1, 2019年3月1日 or 20190301); value cleared, row kept"),
        (4, "registered_capital_cny", "100万卢布", f"registered capital '100万卢布' has unknown currency '卢布'; known: {currencies}; value cleared, row kept"),
        (4, "employees", "-3", "negative; value cleared, row kept"),
        (4, "listed", "也许", "not a yes/no value (expected 是/否, true/false, 1/0); value cleared, row kept"),
        (4, "financing_round", "Z轮", "not one of ['天使轮', 'A轮', 'B轮', 'C轮', 'D轮及以后', '战略投资', 'IPO']; value cleared, row kept"),
    ]  # fmt: skip
    assert set(rejects["file"]) == {"e.csv"}


def test_validate_table_missing_required_column_names_it() -> None:
    with pytest.raises(
        ValueError,
        match=re.escape(
            "presence from p.csv is missing required columns ['year']; got columns ['enterprise_id', 'node_id']"
        ),
    ):
        validate_table(_frame([{"enterprise_id": A, "node_id": "n"}]), "presence", "p.csv")


def test_validate_table_unknown_table() -> None:
    msg = "unknown table 'firms'; expected one of ['enterprises', 'presence', 'assets', 'relations', 'signals', 'outcomes', 'fit_marks']"
    with pytest.raises(ValueError, match=re.escape(msg)):
        validate_table(_frame([]), "firms", "x.csv")


def test_validate_table_duplicates_keep_latest_then_most_complete_then_last() -> None:
    rows = [
        {
            "outcome_id": "o1",
            "enterprise_id": A,
            "node_id": "n",
            "stage": "接洽",
            "date": "2024-05-01",
            "amount_cny": None,
        },
        {
            "outcome_id": "o1",
            "enterprise_id": A,
            "node_id": "n",
            "stage": "签约",
            "date": "2024-06-01",
            "amount_cny": None,
        },
        {
            "outcome_id": "o1",
            "enterprise_id": A,
            "node_id": "n",
            "stage": "线索",
            "date": "2024-01-01",
            "amount_cny": "5",
        },
        {
            "outcome_id": "o2",
            "enterprise_id": B,
            "node_id": "n",
            "stage": "线索",
            "date": "2024-01-01",
            "amount_cny": "5",
        },
        {
            "outcome_id": "o2",
            "enterprise_id": B,
            "node_id": "n",
            "stage": "接洽",
            "date": "2024-01-01",
            "amount_cny": None,
        },
        {
            "outcome_id": "o3",
            "enterprise_id": C,
            "node_id": "n",
            "stage": "线索",
            "date": "2024-01-01",
            "amount_cny": None,
        },
        {
            "outcome_id": "o3",
            "enterprise_id": C,
            "node_id": "n",
            "stage": "接洽",
            "date": "2024-01-01",
            "amount_cny": None,
        },
        {
            "outcome_id": "o3",
            "enterprise_id": C,
            "node_id": "n",
            "stage": "未知",
            "date": "2025-01-01",
            "amount_cny": None,
        },
    ]
    good, rejects = validate_table(_frame(rows), "outcomes", "o.csv")
    assert good[["outcome_id", "stage"]].values.tolist() == [["o1", "签约"], ["o2", "线索"], ["o3", "接洽"]]
    assert _rejects(rejects) == [
        (1, "outcome_id", "o1", "duplicate of row 2; row rejected"),
        (3, "outcome_id", "o1", "duplicate of row 2; row rejected"),
        (5, "outcome_id", "o2", "duplicate of row 4; row rejected"),
        (6, "outcome_id", "o3", "duplicate of row 7; row rejected"),
        (8, "stage", "未知", "not one of ['线索', '接洽', '考察', '洽谈', '签约', '落地', '终止']; row rejected"),
    ]


def test_validate_table_presence_composite_key_duplicates() -> None:
    rows = [
        {"enterprise_id": A, "node_id": "n1", "year": "2023", "output_value_cny": "10"},
        {"enterprise_id": A, "node_id": "n1", "year": "2023.0", "output_value_cny": None},
        {"enterprise_id": A, "node_id": "n1", "year": "2024", "output_value_cny": None},
        {"enterprise_id": A, "node_id": "n1", "year": "1850", "output_value_cny": None},
        {"enterprise_id": A, "node_id": "n1", "year": "2027", "output_value_cny": None},  # a year not yet begun
    ]
    good, rejects = validate_table(_frame(rows), "presence", "p.xlsx", today=date(2026, 12, 3))
    assert good["year"].tolist() == [2023, 2024]
    np.testing.assert_array_equal(good["output_value_cny"].to_numpy(), [10.0, np.nan])
    assert good["year"].dtype == "int64"
    assert _rejects(rejects) == [
        (2, "enterprise_id+node_id+year", f"{A} / n1 / 2023", "duplicate of row 1; row rejected"),
        (4, "year", "1850", "not a year between 1949 and 2026; row rejected"),
        (5, "year", "2027", "not a year between 1949 and 2026; row rejected"),
    ]


def test_validate_table_relations_customer_swapped_and_enterprise_ends_checked() -> None:
    rows = [
        {"relation_id": "r1", "src_id": A, "src_type": "enterprise", "dst_id": B, "dst_type": "enterprise", "relation_type": "customer", "weight": "0.5", "date": "2023-01-01"},
        {"relation_id": "r2", "src_id": "F1", "src_type": "asset", "dst_id": C, "dst_type": "enterprise", "relation_type": "fund_portfolio", "weight": "1.5", "date": "2023-01-01"},
        {"relation_id": "r3", "src_id": "F1", "src_type": "asset", "dst_id": "BAD", "dst_type": "enterprise", "relation_type": "fund_portfolio", "weight": None, "date": "2023-01-01"},
    ]  # fmt: skip
    good, rejects = validate_table(_frame(rows), "relations", "r.csv")
    assert good[["relation_id", "src_id", "src_type", "dst_id", "relation_type"]].values.tolist() == [
        ["r1", B, "enterprise", A, "supplier"],
        ["r2", "F1", "asset", C, "fund_portfolio"],
    ]
    assert _rejects(rejects) == [
        (2, "weight", "1.5", "outside (0, 1]; value cleared, row kept"),
        (3, "dst_id", "BAD", "not a valid unified social credit code for an enterprise end; row rejected"),
    ]


def test_validate_table_other_tables_reject_bad_enterprise_ids() -> None:
    rows = [{"signal_id": "s1", "enterprise_id": "X", "signal_type": "hiring", "date": "2024-01-01"}]
    good, rejects = validate_table(_frame(rows), "signals", "s.csv")
    assert good.empty and list(good.columns) == S.SCHEMAS["signals"].column_names
    assert _rejects(rejects)[0][:3] == (1, "enterprise_id", "X")


def test_validate_table_caps_long_text() -> None:
    rows = [{"enterprise_id": A, "name": "甲", "business_scope": "光" * 150}]
    good, _ = validate_table(_frame(rows), "enterprises", "e.csv", max_text_chars=100)
    assert good[S.COL_BUSINESS_SCOPE].iloc[0] == "光" * 100


def test_validate_table_status_missing_means_operating() -> None:
    good, _ = validate_table(_frame([{"enterprise_id": A, "name": "甲"}]), "enterprises", "e.csv")
    assert good[S.COL_IS_OPERATING].tolist() == [True]


# ---------------------------------------------------------------- frames
def test_empty_table_dtypes() -> None:
    dtypes = empty_table("presence").dtypes.astype(str).to_dict()
    assert dtypes == {
        "enterprise_id": "str",
        "node_id": "str",
        "year": "int64",
        "output_value_cny": "float64",
        "tax_cny": "float64",
        "employees": "float64",
        "is_chain_leader": "bool",
    }


def test_merge_upsert_replaces_by_key_and_appends() -> None:
    cur = coerce_table(
        pd.DataFrame({"asset_id": ["a", "b"], "asset_type": ["fund", "lab"], "name": ["甲", "乙"]}), "assets"
    )
    new = coerce_table(
        pd.DataFrame({"asset_id": ["b", "c"], "asset_type": ["lab", "lab"], "name": ["乙2", "丙"]}), "assets"
    )
    merged, n_replaced, n_added = merge_upsert(cur, new, "assets")
    assert merged["asset_id"].tolist() == ["a", "b", "c"]
    assert merged["name"].tolist() == ["甲", "乙2", "丙"]
    assert (n_replaced, n_added) == (1, 1)


def test_validate_table_customer_row_with_bad_source_reports_source_field() -> None:
    rows = [{"relation_id": "r1", "src_id": "BAD", "src_type": "enterprise", "dst_id": A, "dst_type": "enterprise", "relation_type": "customer", "date": "2023-01-01"}]  # fmt: skip
    good, rejects = validate_table(_frame(rows), "relations", "r.csv")
    assert good.empty
    assert _rejects(rejects) == [
        (1, "src_id", "BAD", "not a valid unified social credit code for an enterprise end; row rejected")
    ]


# ---------------------------------------------------------------- bounds: dates, finite numbers, control characters
TODAY = date(2026, 12, 3)


@pytest.mark.parametrize(
    ("table", "row"),
    [
        ("outcomes", {"outcome_id": "O", "enterprise_id": A, "node_id": "n1", "stage": "签约"}),
        ("signals", {"signal_id": "O", "enterprise_id": A, "signal_type": "financing"}),
        ("relations", {"relation_id": "O", "src_id": A, "src_type": "enterprise", "dst_id": B, "dst_type": "enterprise",
                       "relation_type": "supplier"}),
    ],
)  # fmt: skip
def test_validate_table_event_dates_lie_between_1949_10_01_and_today(table: str, row: dict[str, object]) -> None:
    dates = ["9999-12-31", "1900-01-01", "1949-09-30", "1949-10-01", "2026-12-03", "2026-12-04", "2262-04-12"]
    df = _frame([{**row, S.SCHEMAS[table].key[0]: f"X{i}", "date": d} for i, d in enumerate(dates)])
    good, rejects = validate_table(df, table, "f.csv", today=TODAY)
    assert good["date"].tolist() == [pd.Timestamp("1949-10-01"), pd.Timestamp("2026-12-03")]
    assert good["date"].dtype == "datetime64[ns]"
    after = "after today (2026-12-03, Asia/Shanghai); row rejected"
    assert _rejects(rejects) == [
        (1, "date", "9999-12-31", after),
        (2, "date", "1900-01-01", "before 1949-10-01; row rejected"),
        (3, "date", "1949-09-30", "before 1949-10-01; row rejected"),
        (6, "date", "2026-12-04", after),
        (7, "date", "2262-04-12", after),
    ]


def test_validate_table_enterprise_dates_cleared_outside_their_bounds() -> None:
    df = _frame(
        [
            {"enterprise_id": A, "name": "甲", "founded": "1921-07-01", "financing_date": "1948-01-01"},
            {"enterprise_id": B, "name": "乙", "founded": "2030-01-01", "financing_date": "9999-12-31"},
            {"enterprise_id": C, "name": "丙", "founded": "1700-01-01", "financing_date": "2026-12-03"},
        ]
    )
    good, rejects = validate_table(df, "enterprises", "e.csv", today=TODAY)
    assert good["enterprise_id"].tolist() == [A, B, C]
    assert good["founded"].tolist()[0] == pd.Timestamp("1921-07-01") and good["founded"].iloc[1:].isna().all()
    assert good["financing_date"].iloc[:2].isna().all() and good["financing_date"].iloc[2] == pd.Timestamp("2026-12-03")
    kept = "value cleared, row kept"
    assert _rejects(rejects) == [
        (1, "financing_date", "1948-01-01", f"before 1949-10-01; {kept}"),
        (2, "founded", "2030-01-01", f"after today (2026-12-03, Asia/Shanghai); {kept}"),
        (2, "financing_date", "9999-12-31", f"after today (2026-12-03, Asia/Shanghai); {kept}"),
        (3, "founded", "1700-01-01", f"before 1800-01-01; {kept}"),
    ]


def test_validate_table_today_defaults_to_the_clock_in_shanghai(monkeypatch: pytest.MonkeyPatch) -> None:
    import features.ingest

    monkeypatch.setattr(features.ingest, "today_in_zone", lambda now=None: date(2020, 1, 1))
    row: dict[str, object] = {
        "outcome_id": "O1",
        "enterprise_id": A,
        "node_id": "n1",
        "stage": "签约",
        "date": "2020-01-02",
    }
    good, rejects = validate_table(_frame([row]), "outcomes", "o.csv")
    assert good.empty and _rejects(rejects) == [
        (1, "date", "2020-01-02", "after today (2020-01-01, Asia/Shanghai); row rejected")
    ]


def test_validate_table_numbers_must_be_finite() -> None:
    base = {"enterprise_id": A, "node_id": "n1", "stage": "签约", "date": "2020-01-01"}
    amounts = ["1e400", "inf", "-Infinity", "nan", "NaN", "1e300", "12.5"]
    df = _frame([{**base, "outcome_id": f"O{i}", "amount_cny": a} for i, a in enumerate(amounts)])
    good, rejects = validate_table(df, "outcomes", "o.csv", today=TODAY)
    assert good["outcome_id"].tolist() == [f"O{i}" for i in range(7)]
    assert good["amount_cny"].iloc[:5].isna().all() and good["amount_cny"].iloc[5:].tolist() == [1e300, 12.5]
    assert _rejects(rejects) == [
        (i + 1, "amount_cny", a, "not a finite number; value cleared, row kept") for i, a in enumerate(amounts[:5])
    ]
    presence = _frame(
        [
            {"enterprise_id": A, "node_id": "n1", "year": "1e400", "output_value_cny": "5"},
            {"enterprise_id": B, "node_id": "n1", "year": "2024", "output_value_cny": "1" + "0" * 400},
        ]
    )
    good, rejects = validate_table(presence, "presence", "p.csv", today=TODAY)
    assert good["enterprise_id"].tolist() == [B] and good["output_value_cny"].isna().all()
    assert _rejects(rejects) == [
        (1, "year", "1e400", "not a finite number; row rejected"),
        (2, "output_value_cny", "1" + "0" * 400, "not a finite number; value cleared, row kept"),
    ]


def test_validate_table_scaled_and_capital_overflow_is_not_finite() -> None:
    cmap = ColumnMap(
        "m",
        "presence",
        (ColumnRule("id", ("enterprise_id",)), ColumnRule("node", ("node_id",)), ColumnRule("year", ("year",)),
         ColumnRule("产值（万元）", ("output_value_cny",), scale=10000.0)),
    )  # fmt: skip
    raw = pd.DataFrame({"id": [A], "node": ["n1"], "year": ["2024"], "产值（万元）": ["1e305"]}, dtype=object)
    good, rejects = validate_table(apply_column_map(raw, cmap), "presence", "p.csv", today=TODAY)
    assert good["output_value_cny"].isna().all()
    assert _rejects(rejects)[0][1:] == ("output_value_cny", "inf", "not a finite number; value cleared, row kept")
    huge = "1" + "0" * 400 + "万元"
    ent = _frame([{"enterprise_id": A, "name": "甲", "registered_capital_cny": huge}])
    good, rejects = validate_table(ent, "enterprises", "e.csv", today=TODAY)
    assert good["registered_capital_cny"].isna().all()
    assert _rejects(rejects) == [
        (
            1,
            "registered_capital_cny",
            huge,
            f"registered capital {huge!r} is not a finite amount; value cleared, row kept",
        )
    ]


def test_validate_table_control_characters_are_stripped_like_normalize_text() -> None:
    df = _frame(
        [
            {"enterprise_id": A, "name": "光谷\x00科技\x07有限公司", "business_scope": "研发\x1b[31m\x85\x9f光器件\x7f",
             "extra:备注": "甲\x00乙"},
        ]
    )  # fmt: skip
    good, rejects = validate_table(df, "enterprises", "e.csv", today=TODAY)
    assert rejects.empty
    assert good["name"].tolist() == ["光谷 科技 有限公司"]
    assert good["business_scope"].tolist() == ["研发 [31m 光器件"]
    assert json.loads(good["extra"].iloc[0]) == {"备注": "甲 乙"}
    assert not good[["name", "business_scope", "extra"]].stack().str.contains(r"[\x00-\x1f\x7f-\x9f]").any()


# ---------------------------------------------------------------- unreadable cells (XLSX formulas without a value)
def test_column_targets_match_apply_column_map_and_map_cell_problems() -> None:
    from features.ingest import UNCACHED_FORMULA, CellProblem, column_targets, map_cell_problems

    cmap = parse_column_map(
        {"table": "enterprises", "columns": {"企业名称": "name", "公司名称": "name", "国标行业": INDUSTRY}}, name="t"
    )
    columns = ["公司名称", "企业名称", "統一社會信用代碼", "enterprise_id", "国标行业", "数据来源", "name"]
    targets = column_targets(columns, cmap)
    assert targets == {
        "企业名称": ("name",),
        "公司名称": ("name",),
        "国标行业": ("industry_code", "industry_name"),
        "enterprise_id": ("enterprise_id",),
        "統一社會信用代碼": ("extra:统一社会信用代码",),
        "数据来源": ("extra:数据来源",),
        "name": ("extra:name",),
    }
    raw = pd.DataFrame([["x"] * len(columns)], columns=columns, dtype=object)
    assert {t for ts in targets.values() for t in ts} == set(apply_column_map(raw, cmap).columns)
    assert column_targets(["资产编号", "备注"], identity_map("assets")) == {}
    cells = [CellProblem(0, "国标行业", "=A1", UNCACHED_FORMULA), CellProblem(1, "不用", "=B1", UNCACHED_FORMULA)]
    assert map_cell_problems(cells, ["国标行业", "不用"], cmap) == [
        CellProblem(0, "industry_code", "=A1", UNCACHED_FORMULA),
        CellProblem(0, "industry_name", "=A1", UNCACHED_FORMULA),
        CellProblem(1, "extra:不用", "=B1", UNCACHED_FORMULA),
    ]


def test_validate_table_unread_cells_replace_missing_required_value() -> None:
    from features.ingest import CellProblem

    df = _frame(
        [
            {"asset_id": "F1", "asset_type": "fund", "name": None, "description": None},
            {"asset_id": "F2", "asset_type": "fund", "name": "乙", "description": None},
            {"asset_id": None, "asset_type": None, "name": None, "description": None},
        ]
    )
    unread = [
        CellProblem(0, "name", "=B2", "unreadable"),
        CellProblem(1, "description", "=D3", "unreadable"),
        CellProblem(1, "name", "=C3", "unreadable"),  # the cell has a value after all (another source): not reported
        CellProblem(2, "asset_id", "=A4", "unreadable"),
    ]
    good, rejects = validate_table(df, "assets", "a.xlsx", unread=unread)
    assert good["asset_id"].tolist() == ["F2"]
    assert _rejects(rejects) == [
        (1, "name", "=B2", "unreadable; row rejected"),
        (2, "description", "=D3", "unreadable; value cleared, row kept"),
        (3, "asset_id", "=A4", "unreadable; row rejected"),
        (3, "asset_type", "", "missing required value; row rejected"),
        (3, "name", "", "missing required value; row rejected"),
    ]


def test_validate_table_rejects_show_control_characters_as_replacement_and_cut_long_values() -> None:
    rows = [
        {"asset_id": "F1", "asset_type": "基\x00金", "name": "光谷基金"},
        {"asset_id": "F2", "asset_type": "基" * 600, "name": "光谷基金"},
    ]
    _, rejects = validate_table(_frame(rows), "assets", "a.csv")
    values = rejects["value"].tolist()
    assert values[0] == "基\ufffd金"
    assert len(values[1]) == 501 and values[1].endswith("…")
