"""The headers of the sample's raw files, taken from the built-in column maps: one declaration.

The generator fills schema columns (``features.schema`` names) and writes each under the header that
its table's built-in map (``configs/column_maps``: ``registry-cn`` or ``zone-<table>``, docs/design.md
"Raw formats") lists first for that column. Later synonyms (公司名称, 信用代码 …) serve other exports;
a rule filling several columns (国标行业 → industry_code + industry_name) covers them, so 行业代码 and
行业名称 are not written. A file keeps its map's order, except the columns of :data:`LEADING`, and
ends with :data:`EXTRA_HEADERS`, the columns its map does not know.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Final

import pandas as pd

from features import schema as S
from features.ingest import ColumnMap
from features.io import default_column_map, load_column_map
from recommender.settings import PACKAGE_ROOT, IngestConfig

RawHeaders = Mapping[str, Mapping[str, str]]
"""Table -> {column key: header} in file order; a key is the first target column of its map rule."""

LEADING: Final[dict[str, tuple[str, ...]]] = {"enterprises": (S.COL_NAME,)}
"""Columns written first, before the map's order: registry exports open with 企业名称."""

FORMER_NAME: Final = "former_name"
EXTRA_HEADERS: Final[dict[str, dict[str, str]]] = {"enterprises": {FORMER_NAME: "曾用名"}}
"""Columns written last that the map does not know: ingest keeps them in ``extra`` (docs/sample.md)."""


def raw_headers(maps: Mapping[str, ColumnMap]) -> RawHeaders:
    """The header of every column the generator writes, per table of ``features.schema.RAW_TABLES``, in file order.

    Args:
        maps: the column map of each table.

    Raises:
        ValueError: a table without a map, a map for another table, or a :data:`LEADING` column it lacks.
    """
    out: dict[str, dict[str, str]] = {}
    for table in S.RAW_TABLES:
        cmap = maps.get(table)
        if cmap is None or cmap.table != table:
            got = "none" if cmap is None else f"{cmap.name!r} (for {cmap.table})"
            raise ValueError(f"the sample's {table} file needs a column map for table {table}; got {got}")
        first: dict[str, str] = {}
        covered: set[str] = set()
        for rule in cmap.rules:
            if covered.isdisjoint(rule.targets):
                first[rule.targets[0]] = rule.source
            covered.update(rule.targets)
        lacking = [key for key in LEADING.get(table, ()) if key not in first]
        if lacking:
            raise ValueError(f"column map {cmap.name!r} has no source header for {lacking}")
        leading = {key: first[key] for key in LEADING.get(table, ())}
        out[table] = {**leading, **first, **EXTRA_HEADERS.get(table, {})}
    return out


@functools.cache
def builtin_raw_headers() -> RawHeaders:
    """:func:`raw_headers` of the built-in maps (``features.io.default_column_map`` of each table, read once
    from the package's ``configs/column_maps``; a ``column_maps_dir`` of the config does not change the sample)."""
    maps_dir = PACKAGE_ROOT / IngestConfig().column_maps_dir
    return raw_headers({table: load_column_map(default_column_map(table), maps_dir, table) for table in S.RAW_TABLES})


def to_raw(table: str, frame: pd.DataFrame, headers: Mapping[str, str]) -> pd.DataFrame:
    """``frame`` (columns named by the keys of ``headers``) under the raw file's headers, in the file's order.

    Raises:
        ValueError: the frame lacks a column of ``headers`` or has one that is not in it.
    """
    missing = [f"{header} ({key})" for key, header in headers.items() if key not in frame.columns]
    unknown = [str(c) for c in frame.columns if c not in headers]
    if missing or unknown:
        raise ValueError(
            f"the sample's {table} columns and their column map disagree: the map's {missing} are not generated, "
            f"the generated {unknown} are not in the map"
        )
    return frame[list(headers)].rename(columns=dict(headers))
