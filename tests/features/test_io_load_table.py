"""features.io.load_table: one table as load_tables gives it, without reading the others."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from features import schema as S
from features.io import load_table, load_tables, write_snapshot


def test_load_table_equals_load_tables_entry(tmp_path: Path) -> None:
    write_snapshot(pd.DataFrame({"asset_id": ["a"], "asset_type": ["fund"], "name": ["甲"]}), tmp_path, "assets")
    every = load_tables(tmp_path)
    for table in S.TABLES:
        assert_frame_equal(load_table(tmp_path, table), every[table])


def test_load_table_missing_table_is_empty_with_schema_columns(tmp_path: Path) -> None:
    got = load_table(tmp_path / "none", "relations")
    assert got.empty and list(got.columns) == S.SCHEMAS["relations"].column_names
    assert str(got["date"].dtype) == "datetime64[ns]"


def test_load_table_rejects_unknown_table(tmp_path: Path) -> None:
    msg = f"The 'table' parameter of load_table must be one of {list(S.TABLES)}. Got 'companies' instead."
    with pytest.raises(ValueError, match=re.escape(msg)):
        load_table(tmp_path, "companies")
