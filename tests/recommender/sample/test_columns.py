"""Tests of the raw files' headers (recommender/sample/columns.py): taken from the column maps, one per column."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from features import schema as S
from features.ingest import ColumnMap, parse_column_map
from features.io import default_column_map, load_column_map
from recommender.sample.columns import EXTRA_HEADERS, raw_headers, to_raw

MAPS_DIR = Path(__file__).resolve().parents[3] / "configs" / "column_maps"


@pytest.fixture(scope="module")
def builtin_maps() -> dict[str, ColumnMap]:
    return {t: load_column_map(default_column_map(t), MAPS_DIR, t) for t in S.TABLES}


def test_raw_headers_take_the_first_header_of_each_column_name_first(builtin_maps: dict[str, ColumnMap]) -> None:
    enterprises = parse_column_map(
        {
            "table": "enterprises",
            "columns": {
                "信用代码": "enterprise_id",
                "统一社会信用代码": "enterprise_id",  # a synonym: not written
                "行业": {"columns": ["industry_code", "industry_name"], "pattern": r"^(\d{4})?\s*(.*)$"},
                "行业代码": "industry_code",  # filled by 行业 already
                "公司名称": "name",
                "企业名称": "name",
            },
        },
        name="tiny",
    )
    headers = raw_headers({**builtin_maps, "enterprises": enterprises})
    assert list(headers["enterprises"].items()) == [
        ("name", "公司名称"),
        ("enterprise_id", "信用代码"),
        ("industry_code", "行业"),
        *EXTRA_HEADERS["enterprises"].items(),
    ]
    assert list(headers["presence"].values()) == [r.source for r in builtin_maps["presence"].rules]


def test_raw_headers_need_a_map_of_each_table(builtin_maps: dict[str, ColumnMap]) -> None:
    with pytest.raises(ValueError, match="needs a column map for table signals; got none"):
        raw_headers({t: m for t, m in builtin_maps.items() if t != "signals"})
    with pytest.raises(ValueError, match=re.escape("needs a column map for table signals; got 'zone-outcomes'")):
        raw_headers({**builtin_maps, "signals": builtin_maps["outcomes"]})
    nameless = parse_column_map({"table": "enterprises", "columns": {"信用代码": "enterprise_id"}}, name="nameless")
    with pytest.raises(ValueError, match=re.escape("column map 'nameless' has no source header for ['name']")):
        raw_headers({**builtin_maps, "enterprises": nameless})


def test_to_raw_renames_and_orders_the_columns() -> None:
    frame = pd.DataFrame({"b": [1, 2], "a": ["x", "y"]})
    raw = to_raw("assets", frame, {"a": "甲", "b": "乙"})
    assert list(raw.columns) == ["甲", "乙"]
    assert raw["乙"].tolist() == [1, 2]


def test_to_raw_refuses_columns_the_map_and_the_generator_do_not_share() -> None:
    frame = pd.DataFrame({"a": [1], "c": [2]})
    with pytest.raises(ValueError, match=re.escape("the map's ['乙 (b)'] are not generated, the generated ['c'] are")):
        to_raw("assets", frame, {"a": "甲", "b": "乙"})
