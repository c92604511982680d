"""Pure ingest steps: column maps, type parsing, validation, rejects and duplicate resolution.

A raw file (read by :mod:`features.io`, every cell a string) goes through

1. :func:`apply_column_map` — source headers → the schema's column names (``features.schema``),
   with optional ``scale``, ``values`` and ``pattern`` rules; unknown enterprise columns are kept
   for the ``extra`` JSON column; files that already use the schema's names pass unchanged.
2. :func:`validate_table` — text normalised once (:func:`features.text.normalize_series`), every
   column parsed to its dtype, required values, vocabularies, credit codes, ranges checked, derived
   columns filled (``is_operating``; ``客户`` relations stored as ``supplier``), duplicates on the key
   resolved. Returns the good rows and a rejects frame (``file, row, field, value, reason``).

Policy (also in docs/data.md):

* A problem in a required or key column rejects the row. A problem in an optional column clears
  that value and keeps the row; it is still listed in the rejects frame, the reason ending in
  ``value cleared, row kept``.
* ``row`` is the 1-based data row of the source file (the header row is not counted).
* Duplicates on the key: the kept row is the one with the latest ``date`` (tables that have one),
  then the most non-missing values, then the last in the file. Every other row of the key is
  listed as ``duplicate of row N``.

Everything is vectorised; parsers that need Python run once per distinct value.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

import numpy as np
import pandas as pd

from features import schema as S
from features.text import normalize_series, normalize_text
from features.validate import date_bound_problem, date_bounds, parse_capital_series, today_in_zone, valid_credit_codes

EXTRA_PREFIX: Final = "extra:"  # apply_column_map keeps unknown enterprise columns under this prefix
REJECT_COLUMNS: Final = ("file", "row", "field", "value", "reason")
PANDAS_DTYPES: Final[dict[str, Any]] = {
    "str": "str",
    "float": "float64",
    "int": "int64",
    "bool": "bool",
    "date": "datetime64[ns]",
}
TEXT_COLUMNS: Final = frozenset({S.COL_BUSINESS_SCOPE, S.COL_DESCRIPTION, S.COL_PRODUCTS, S.COL_NOTE})
CUSTOMER: Final = "customer"  # accepted relation_type on input; stored swapped as supplier
# Columns holding unified social credit codes, per table; relations check src/dst by their type.
_CREDIT_CODE_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "enterprises": (S.COL_ENTERPRISE_ID,),
    "presence": (S.COL_ENTERPRISE_ID,),
    "signals": (S.COL_ENTERPRISE_ID,),
    "outcomes": (S.COL_ENTERPRISE_ID,),
    "fit_marks": (S.COL_ENTERPRISE_ID,),
}
_NON_NEGATIVE: Final = frozenset({S.COL_CAPITAL_CNY, S.COL_EMPLOYEES, S.COL_OUTPUT_VALUE_CNY, S.COL_AMOUNT_CNY})
_TRUE: Final = frozenset({"true", "t", "1", "1.0", "yes", "y", "是", "有", "√", "已上市", "上市"})
_FALSE: Final = frozenset({"false", "f", "0", "0.0", "no", "n", "否", "无", "×", "未上市"})
_BOOL_DEFAULTS: Final[dict[str, bool]] = {S.COL_IS_OPERATING: True, S.COL_LISTED: False, S.COL_IS_CHAIN_LEADER: False}
_DATE_RES: Final = (
    re.compile(
        r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$"
    ),
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
)
_MONTH_RE: Final = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*月?$")
_EXCEL_SERIAL_RE: Final = re.compile(r"^\d{5}(?:\.0+)?$")
_EXCEL_EPOCH: Final = pd.Timestamp("1899-12-30")
_INDUSTRY_CODE_RE: Final = r"^\d{2,4}$"
_MAP_RULE_KEYS: Final = frozenset({"column", "columns", "scale", "values", "pattern"})
UNCACHED_FORMULA: Final = "formula without a cached value: re-save the file in Excel"


@dataclass(frozen=True)
class CellProblem:
    """A source cell whose value could not be read, e.g. an XLSX formula Excel never computed.

    Attributes:
        row: 0-based row position in the frame (reported as row ``row + 1``).
        column: the source header before :func:`map_cell_problems`, the mapped column after it.
        value: what the rejects file shows (the formula).
        reason: why the value is missing (:data:`UNCACHED_FORMULA`).
    """

    row: int
    column: str
    value: str
    reason: str


# ================================================================ column maps
@dataclass(frozen=True)
class ColumnRule:
    """How one source column becomes one or more schema columns.

    Attributes:
        source: the source header (matched after :func:`normalize_header`).
        targets: schema column names; several only together with ``pattern``.
        scale: multiply the parsed number by this (e.g. 10000 for 万元).
        values: replace whole values (matched after normalisation); others pass unchanged.
        pattern: a regular expression whose groups fill ``targets`` in order.
    """

    source: str
    targets: tuple[str, ...]
    scale: float | None = None
    values: Mapping[str, Any] | None = None
    pattern: str | None = None


@dataclass(frozen=True)
class ColumnMap:
    """A named set of :class:`ColumnRule` for one table (``configs/column_maps/<name>.yaml``)."""

    name: str
    table: str
    rules: tuple[ColumnRule, ...] = field(default_factory=tuple)


def normalize_header(name: Any) -> str:
    """A header as matched against column maps: normalised text, no spaces, lower case.

    >>> normalize_header(" 产值（万元） "), normalize_header("Enterprise_ID")
    ('产值(万元)', 'enterprise_id')
    """
    return normalize_text(name).replace(" ", "").lower()


def identity_map(table: str) -> ColumnMap:
    """The map for files that already use the schema's column names."""
    _check_table(table)
    return ColumnMap(name="identity", table=table)


def parse_column_map(data: Mapping[str, Any], name: str) -> ColumnMap:
    """Check and build a :class:`ColumnMap` from its YAML mapping.

    Raises:
        ValueError: naming the map, the offending key, what was expected and what came.
    """
    if not isinstance(data, Mapping) or set(data) - {"table", "columns", "description"}:
        got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
        raise ValueError(f"column map {name!r} must be a mapping with keys 'table' and 'columns'; got {got}")
    table = data.get("table")
    if table not in S.TABLES:
        raise ValueError(f"column map {name!r}: 'table' must be one of {list(S.TABLES)}; got {table!r}")
    columns = data.get("columns")
    if not isinstance(columns, Mapping) or not columns:
        raise ValueError(
            f"column map {name!r}: 'columns' must be a non-empty mapping of source → target; got {columns!r}"
        )
    rules = tuple(_parse_rule(name, str(table), str(src), spec) for src, spec in columns.items())
    return ColumnMap(name=name, table=str(table), rules=rules)


def _parse_rule(map_name: str, table: str, source: str, spec: Any) -> ColumnRule:
    where = f"column map {map_name!r}, column {source!r}"
    if isinstance(spec, str):
        spec = {"column": spec}
    if not isinstance(spec, Mapping) or not spec or set(spec) - _MAP_RULE_KEYS:
        raise ValueError(
            f"{where}: expected a target name or a mapping with keys {sorted(_MAP_RULE_KEYS)}; got {spec!r}"
        )
    if ("column" in spec) == ("columns" in spec):
        raise ValueError(f"{where}: give exactly one of 'column' or 'columns'; got {sorted(spec)}")
    targets = (spec["column"],) if "column" in spec else tuple(spec["columns"])
    allowed = set(S.SCHEMAS[table].column_names)
    unknown = [t for t in targets if t not in allowed]
    if unknown:
        raise ValueError(f"{where}: unknown target columns {unknown} for table {table}; valid: {sorted(allowed)}")
    pattern = spec.get("pattern")
    if pattern is not None:
        try:
            n_groups = re.compile(pattern).groups
        except re.error as exc:
            raise ValueError(f"{where}: 'pattern' {pattern!r} is not a valid regular expression: {exc}") from None
        if n_groups != len(targets):
            raise ValueError(f"{where}: 'pattern' has {n_groups} groups but there are {len(targets)} target columns")
    elif len(targets) != 1:
        raise ValueError(f"{where}: several target columns {list(targets)} need a 'pattern' with one group each")
    scale = spec.get("scale")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int | float) or scale <= 0):
        raise ValueError(f"{where}: 'scale' must be a positive number; got {scale!r}")
    values = spec.get("values")
    if values is not None and not isinstance(values, Mapping):
        raise ValueError(f"{where}: 'values' must be a mapping of source value → value; got {values!r}")
    return ColumnRule(source, targets, None if scale is None else float(scale), values, pattern)


def apply_column_map(raw: pd.DataFrame, column_map: ColumnMap) -> pd.DataFrame:
    """Rename and transform ``raw``'s columns to the schema of ``column_map.table``.

    Source headers are matched after :func:`normalize_header`. Several sources may fill one target
    (alternative headers): the first rule in map order that has a value wins, row by row. Columns
    that already carry a schema name are taken as they are. Unknown columns are kept as
    ``extra:<header>`` for enterprises (packed into ``extra`` by :func:`validate_table`) and dropped
    for the other tables (see :func:`unmapped_columns`).

    Args:
        raw: the file as read, shape (n, k); values are strings or missing.
        column_map: the map.

    Returns:
        A frame of shape (n, m) with the same row order; values are still unparsed except where a
        rule's ``scale`` or ``values`` produced numbers or booleans.
    """
    schema = S.SCHEMAS[column_map.table]
    by_header = {normalize_header(c): c for c in raw.columns}
    out: dict[str, pd.Series] = {}
    used: set[str] = set()
    for rule in column_map.rules:
        src = by_header.get(normalize_header(rule.source))
        if src is None:
            continue
        used.add(src)
        for target, values in zip(rule.targets, _apply_rule(raw[src], rule), strict=True):
            out[target] = values if target not in out else out[target].where(out[target].notna(), values)
    for key, src in by_header.items():
        if src in used:
            continue
        if key in schema.column_names and key not in out:
            out[key] = raw[src]
            used.add(src)
        elif schema.extra_columns and key != S.COL_EXTRA:
            out[EXTRA_PREFIX + normalize_text(src)] = raw[src]
            used.add(src)
    return pd.DataFrame(out, index=raw.index)


def column_targets(columns: Sequence[str], column_map: ColumnMap) -> dict[str, tuple[str, ...]]:
    """The columns of :func:`apply_column_map`'s result that each source column feeds (same matching:
    rules in map order, then schema names, then ``extra:<header>`` for enterprises); dropped sources
    are absent."""
    schema = S.SCHEMAS[column_map.table]
    by_header = {normalize_header(c): c for c in columns}
    out: dict[str, tuple[str, ...]] = {}
    filled: set[str] = set()
    for rule in column_map.rules:
        src = by_header.get(normalize_header(rule.source))
        if src is not None:
            out[src] = out.get(src, ()) + rule.targets
            filled.update(rule.targets)
    for key, src in by_header.items():
        if src in out:
            continue
        if key in schema.column_names and key not in filled:
            out[src] = (key,)
            filled.add(key)
        elif schema.extra_columns and key != S.COL_EXTRA:
            out[src] = (EXTRA_PREFIX + normalize_text(src),)
    return out


def map_cell_problems(
    problems: Sequence[CellProblem], columns: Sequence[str], column_map: ColumnMap
) -> list[CellProblem]:
    """Source-cell problems re-addressed to the mapped columns their cells feed (one per target;
    none for a dropped column), for :func:`validate_table`'s ``unread``."""
    targets = column_targets(columns, column_map)
    return [CellProblem(p.row, target, p.value, p.reason) for p in problems for target in targets.get(p.column, ())]


def unmapped_columns(raw: pd.DataFrame, column_map: ColumnMap) -> list[str]:
    """Source columns :func:`apply_column_map` drops (neither mapped nor schema names nor extra)."""
    schema = S.SCHEMAS[column_map.table]
    if schema.extra_columns:
        return []
    known = {normalize_header(r.source) for r in column_map.rules} | set(schema.column_names)
    return [c for c in raw.columns if normalize_header(c) not in known]


def missing_columns(mapped: pd.DataFrame, column_map: ColumnMap) -> list[str]:
    """Required schema columns absent after mapping, each with the source headers that would fill it."""
    missing = []
    for col in S.SCHEMAS[column_map.table].required:
        if col in mapped.columns:
            continue
        sources = [r.source for r in column_map.rules if col in r.targets]
        missing.append(f"{col} ({' / '.join(sources)})" if sources else col)
    return missing


def _apply_rule(values: pd.Series, rule: ColumnRule) -> list[pd.Series]:
    if rule.pattern is not None:
        text = normalize_series(values)
        parts = text.str.extract(rule.pattern, expand=True)
        parts = parts.where(parts.notna() & (parts != ""))
        no_match = text.notna() & parts.isna().all(axis=1)
        first = parts.iloc[:, 0].astype(object).where(~no_match, values)  # unmatched: whole value to the first target
        return [first] + [parts.iloc[:, i].astype(object) for i in range(1, parts.shape[1])]
    out = values
    if rule.values is not None:
        out = _map_values(out, rule.values)
    if rule.scale is not None:
        numbers, errors = parse_number_series(out)
        out = pd.Series(np.where(errors.isna(), numbers * rule.scale, out.astype(object)), index=values.index)
        out = out.where(values.notna())
    return [out]


def _map_values(values: pd.Series, mapping: Mapping[str, Any]) -> pd.Series:
    """Replace whole values found in ``mapping`` (keys and values compared after normalisation)."""
    lookup = {normalize_text(k).lower(): v for k, v in mapping.items()}
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = np.empty(len(uniques) + 1, dtype=object)
    mapped[-1] = None
    for i, u in enumerate(uniques):
        mapped[i] = lookup.get(normalize_text(u).lower(), u)
    return pd.Series(mapped[codes], index=values.index, dtype=object)


# ================================================================ parsers (vectorised over distinct values)
def _per_unique(values: pd.Series, parse: Callable[[Any], Any]) -> tuple[np.ndarray, np.ndarray]:
    """Run ``parse`` once per distinct non-missing value; returns (parsed objects, error messages)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    parsed = np.full(len(uniques) + 1, None, dtype=object)
    errors = np.full(len(uniques) + 1, None, dtype=object)
    for i, u in enumerate(uniques):
        try:
            parsed[i] = parse(u)
        except ValueError as exc:
            errors[i] = str(exc)
    return parsed[codes], errors[codes]


def _to_number(v: Any) -> float:
    if isinstance(v, bool):
        raise ValueError(f"not a number: {v!r}")
    if isinstance(v, int | float | np.integer | np.floating):
        number = float(v)
    else:
        text = normalize_text(v).replace(",", "").replace(" ", "")
        try:
            number = float(text)
        except ValueError:
            raise ValueError("not a number") from None
    if not math.isfinite(number):  # 1e400, inf, nan: never stored
        raise ValueError("not a finite number")
    return number


def parse_number_series(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Numbers from strings such as ``1,234.5`` or ``１２３``; returns (float64 values, error messages)."""
    parsed, errors = _per_unique(values, _to_number)
    numbers = pd.Series(parsed, index=values.index, dtype=object).astype("float64")
    return numbers, pd.Series(errors, index=values.index, dtype=object)


def _to_bool(v: Any) -> bool:
    if isinstance(v, bool | np.bool_):
        return bool(v)
    text = normalize_text(v).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("not a yes/no value (expected 是/否, true/false, 1/0)")


def parse_bool_series(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Booleans from 是/否, true/false, yes/no, 1/0; returns (object values, error messages)."""
    parsed, errors = _per_unique(values, _to_bool)
    return pd.Series(parsed, index=values.index, dtype=object), pd.Series(errors, index=values.index, dtype=object)


def _to_date(v: Any) -> pd.Timestamp:
    if isinstance(v, pd.Timestamp):
        return v.normalize()
    text = normalize_text(v)
    for rx in _DATE_RES:
        m = rx.match(text)
        if m:
            return _make_date(int(m[1]), int(m[2]), int(m[3]))
    m = _MONTH_RE.match(text)
    if m:
        return _make_date(int(m[1]), int(m[2]), 1)
    if _EXCEL_SERIAL_RE.match(text):
        return _EXCEL_EPOCH + pd.Timedelta(days=int(float(text)))
    raise ValueError("not a date (expected e.g. 2019-03-01, 2019/3/1, 2019年3月1日 or 20190301)")


def _make_date(year: int, month: int, day: int) -> pd.Timestamp:
    try:
        return pd.Timestamp(year=year, month=month, day=day)
    except ValueError:
        raise ValueError(f"not a calendar date (year {year}, month {month}, day {day})") from None


_NS_RANGE: Final = (pd.Timestamp.min.ceil("D"), pd.Timestamp.max.floor("D"))


def parse_date_series(
    values: pd.Series, earliest: date | None = None, today: date | None = None
) -> tuple[pd.Series, pd.Series]:
    """Dates from ``2019-03-01``, ``2019/3/1``, ``2019.3.1``, ``2019年3月1日``, ``20190301``, ``2019-03``
    (→ the 1st), a trailing time, or an Excel serial day number; returns (datetime64[ns], errors).

    A date before ``earliest`` or after ``today`` is an error naming the bound; one that
    ``datetime64[ns]`` cannot hold (``9999-12-31``) always is.
    """

    def parse(v: Any) -> pd.Timestamp:
        ts = _to_date(v)
        problem = date_bound_problem(ts, earliest, today) if earliest is not None and today is not None else None
        if problem is None and not _NS_RANGE[0] <= ts <= _NS_RANGE[1]:
            problem = f"outside {_NS_RANGE[0].date()} … {_NS_RANGE[1].date()}"
        if problem is not None:
            raise ValueError(problem)
        return ts

    parsed, errors = _per_unique(values, parse)
    dates = pd.to_datetime(pd.Series(parsed, index=values.index, dtype=object)).astype("datetime64[ns]")
    return dates, pd.Series(errors, index=values.index, dtype=object)


# ================================================================ validation
@dataclass
class _Problems:
    """Collects problems as (positions, field, values, reason, rejects_row) batches."""

    batches: list[tuple[np.ndarray, str, np.ndarray, np.ndarray, bool]] = field(default_factory=list)

    def add(self, mask: np.ndarray, field_name: str, values: pd.Series, reason: Any, reject_row: bool) -> None:
        pos = np.flatnonzero(mask)
        if pos.size == 0:
            return
        vals = values.to_numpy(dtype=object)[pos]
        reasons = np.asarray(reason, dtype=object)[pos] if isinstance(reason, np.ndarray | pd.Series) else None
        if reasons is None:
            reasons = np.full(pos.size, reason, dtype=object)
        self.batches.append((pos, field_name, vals, reasons, reject_row))

    def drop(self, rows: np.ndarray) -> None:
        """Forget the problems of the rows where ``rows`` (bool, shape (n,)) is true."""
        kept = []
        for pos, name, vals, reasons, reject in self.batches:
            ok = ~rows[pos]
            if ok.any():
                kept.append((pos[ok], name, vals[ok], reasons[ok], reject))
        self.batches = kept

    def rejected_rows(self, n: int) -> np.ndarray:
        out = np.zeros(n, dtype=bool)
        for pos, _, _, _, reject in self.batches:
            if reject:
                out[pos] = True
        return out


def validate_table(
    df: pd.DataFrame,
    table: str,
    source: str,
    *,
    to_simplified: bool = True,
    max_text_chars: int | None = None,
    today: date | None = None,
    unread: Sequence[CellProblem] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate a mapped table against ``features.schema.SCHEMAS[table]``.

    Args:
        df: the mapped frame (schema column names; ``extra:*`` columns for enterprises), shape (n, k).
            Row ``i`` (0-based position) is reported as source row ``i + 1``. Rows with no value
            at all are skipped without a report.
        table: one of ``features.schema.TABLES``.
        source: the file name written into the rejects' ``file`` column.
        to_simplified: convert traditional characters to simplified in text.
        max_text_chars: cut long free-text columns (business scope, description, products, note).
        today: the latest accepted date (default: today in Asia/Shanghai, ``features.validate.today_in_zone``);
            event dates must also be on or after ``features.schema.EVENT_DATE_MIN``.
        unread: cells of ``df`` (mapped columns, see :func:`map_cell_problems`) whose source value
            could not be read; a cell left without a value is reported with its reason (row
            rejected for a required or key column, value cleared otherwise) instead of
            ``missing required value``, and its row is never taken for a blank one.

    Returns:
        ``(good, rejects)``: the valid rows with exactly the schema's columns and dtypes (index
        reset, file order, duplicates resolved), and the problems with columns
        ``file, row, field, value, reason`` sorted by row.

    Raises:
        ValueError: unknown table, or a required column is absent (the message names them).
    """
    schema = _check_table(table)
    S.check_columns(list(df.columns), schema.required, f"{table} from {source}")
    df = df.reset_index(drop=True)
    problems = _Problems()
    today = today_in_zone() if today is None else today
    by_column: dict[str, list[CellProblem]] = {}
    for u in unread:
        by_column.setdefault(S.COL_EXTRA if u.column.startswith(EXTRA_PREFIX) else u.column, []).append(u)
    out: dict[str, pd.Series] = {}
    for spec in schema.columns:
        if spec.name == S.COL_EXTRA:
            continue
        values = df[spec.name] if spec.name in df.columns else pd.Series(None, index=df.index, dtype=object)
        cells = by_column.get(spec.name, [])
        out[spec.name] = _validate_column(values, spec, table, problems, to_simplified, max_text_chars, today, cells)
    if schema.extra_columns:
        out[S.COL_EXTRA] = _pack_extra(df, to_simplified)
        _add_unread(problems, by_column.get(S.COL_EXTRA, []), S.COL_EXTRA, len(df), None, False)
    frame = pd.DataFrame(out, index=df.index)
    frame = _derive(frame, table, problems)
    blank = df.isna().all(axis=1).to_numpy().copy()  # empty rows (e.g. inside a sheet) are skipped, not reported
    if table == "fit_marks" and S.COL_FITS in df:  # a 待核实 row without a verdict is not checked yet: skipped
        verdict = df[S.COL_FITS]
        blank |= (verdict.isna() | (verdict.astype(str).str.strip() == "")).to_numpy()
    blank[[u.row for u in unread]] = False  # a row of unreadable cells is not empty
    problems.drop(blank)
    bad = problems.rejected_rows(len(frame))
    keep, dup_rejects = _resolve_duplicates(frame, bad | blank, schema, source)
    rejects = _rejects_frame(problems, bad, source)
    rejects = pd.concat([rejects, dup_rejects], ignore_index=True) if len(dup_rejects) else rejects
    rejects = rejects.sort_values(["row"], kind="stable").reset_index(drop=True)
    good = coerce_table(frame[keep].reset_index(drop=True), table)
    return good, rejects


def _validate_column(
    values: pd.Series,
    spec: S.ColumnSpec,
    table: str,
    problems: _Problems,
    to_simplified: bool,
    max_text_chars: int | None,
    today: date,
    unread: list[CellProblem],
) -> pd.Series:
    """Parse one column to its dtype, recording problems; bad optional values are cleared."""
    name, reject = spec.name, spec.required or spec.name in S.SCHEMAS[table].key
    if spec.dtype == "str":
        parsed = _normalize_text_column(values, to_simplified)
        parsed = parsed.where(parsed.ne(""))
        errors = pd.Series(None, index=values.index, dtype=object)
        if max_text_chars is not None and name in TEXT_COLUMNS:
            parsed = parsed.str.slice(0, max_text_chars)
    elif spec.dtype == "float":
        parsed, errors = parse_capital_series(values) if name == S.COL_CAPITAL_CNY else parse_number_series(values)
    elif spec.dtype == "int":
        parsed, errors = _parse_year_like(values, today)
    elif spec.dtype == "bool":
        parsed, errors = parse_bool_series(values)
    else:
        parsed, errors = parse_date_series(values, *date_bounds(table, name, today))
    errors = _check_value(parsed, errors, spec, table)
    shown = values.astype(object)
    problems.add(errors.notna().to_numpy(), name, shown, errors, reject)
    parsed = parsed.where(errors.isna())
    missing = parsed.isna().to_numpy() & errors.isna().to_numpy()
    missing &= ~_add_unread(problems, unread, name, len(values), missing, reject)
    if spec.required:
        problems.add(missing, name, shown, "missing required value", True)
    return parsed


def _add_unread(
    problems: _Problems, unread: list[CellProblem], name: str, n: int, missing: np.ndarray | None, reject: bool
) -> np.ndarray:
    """Report the unreadable cells of a column that are left without a value (``missing``; None: all)."""
    hit = np.zeros(n, dtype=bool)
    if not unread:
        return hit
    shown = np.full(n, None, dtype=object)
    reasons = np.full(n, None, dtype=object)
    for u in unread:
        hit[u.row], shown[u.row], reasons[u.row] = True, u.value, u.reason
    if missing is not None:
        hit &= missing
    problems.add(hit, name, pd.Series(shown), reasons, reject)
    return hit


def _normalize_text_column(values: pd.Series, to_simplified: bool) -> pd.Series:
    """:func:`normalize_series` of a text column (every control character, C0, DEL and C1, becomes a space)."""
    if not isinstance(values.dtype, pd.StringDtype):
        values = values.astype("str")
    return normalize_series(values, to_simplified=to_simplified)


def _check_value(parsed: pd.Series, errors: pd.Series, spec: S.ColumnSpec, table: str) -> pd.Series:
    """Add vocabulary, credit-code and range errors to the parse errors."""
    errors = errors.astype(object).copy()
    present = parsed.notna() & errors.isna()
    if spec.choices:
        allowed = set(spec.choices) | ({CUSTOMER} if spec.name == S.COL_RELATION_TYPE else set())
        bad = present & ~parsed.isin(allowed)
        errors[bad] = f"not one of {list(spec.choices)}"
    if spec.name in _CREDIT_CODE_COLUMNS.get(table, ()):
        bad = present & ~valid_credit_codes(parsed.str.upper())
        errors[bad] = "not a valid unified social credit code (18 characters, GB 32100-2015 check character)"
    if spec.name in _NON_NEGATIVE:
        errors[present & parsed.lt(0)] = "negative"
    if spec.name == S.COL_WEIGHT:
        errors[present & ~parsed.between(0, 1, inclusive="right")] = "outside (0, 1]"
    if spec.name == S.COL_INDUSTRY_CODE:
        errors[present & ~parsed.str.fullmatch(_INDUSTRY_CODE_RE)] = "not a GB/T 4754 industry code (2–4 digits)"
    return errors


def _parse_year_like(values: pd.Series, today: date) -> tuple[pd.Series, pd.Series]:
    """A year of zone figures: from 1949 (``EVENT_DATE_MIN``) up to this year, never a future one."""
    numbers, errors = parse_number_series(values)
    errors = errors.astype(object).copy()
    ok = numbers.notna() & errors.isna()
    lo, hi = S.EVENT_DATE_MIN.year, today.year
    errors[ok & (numbers.mod(1).ne(0) | ~numbers.between(lo, hi))] = f"not a year between {lo} and {hi}"
    return numbers.where(errors.isna()).astype("Int64"), errors


def _derive(frame: pd.DataFrame, table: str, problems: _Problems) -> pd.DataFrame:
    """Table-specific derived columns: credit codes upper-cased, is_operating, customer → supplier."""
    for col in _CREDIT_CODE_COLUMNS.get(table, ()):
        frame[col] = frame[col].str.upper()
    if table == "enterprises":
        status = frame[S.COL_STATUS]
        from_status = status.str.startswith(S.OPERATING_STATUSES).astype(object)
        frame[S.COL_IS_OPERATING] = from_status.where(status.notna(), frame[S.COL_IS_OPERATING])
    if table == "relations":
        frame = _relations_checked(frame, problems)
    return frame


def _relations_checked(frame: pd.DataFrame, problems: _Problems) -> pd.DataFrame:
    """Enterprise ends must carry valid credit codes (checked as in the file); then ``customer``
    rows are swapped into ``supplier``."""
    for id_col, type_col in ((S.COL_SRC_ID, S.COL_SRC_TYPE), (S.COL_DST_ID, S.COL_DST_TYPE)):
        is_ent = frame[type_col].eq("enterprise").fillna(False).to_numpy()
        ids = frame[id_col]
        frame.loc[is_ent, id_col] = ids[is_ent].str.upper()
        bad = is_ent & ids.notna().to_numpy() & ~valid_credit_codes(frame[id_col].fillna(""))
        reason = "not a valid unified social credit code for an enterprise end"
        problems.add(bad, id_col, ids, reason, True)
    customer = frame[S.COL_RELATION_TYPE].eq(CUSTOMER).fillna(False).to_numpy()
    if customer.any():
        for a, b in ((S.COL_SRC_ID, S.COL_DST_ID), (S.COL_SRC_TYPE, S.COL_DST_TYPE)):
            frame.loc[customer, [a, b]] = frame.loc[customer, [b, a]].to_numpy()
        frame.loc[customer, S.COL_RELATION_TYPE] = "supplier"
    return frame


def _pack_extra(df: pd.DataFrame, to_simplified: bool) -> pd.Series:
    """One compact JSON object per row of the ``extra:*`` columns (missing values left out)."""
    cols = [c for c in df.columns if c.startswith(EXTRA_PREFIX)]
    existing = (
        _normalize_text_column(df[S.COL_EXTRA], to_simplified) if S.COL_EXTRA in df.columns else None
    )  # identity files: already JSON, kept as it is
    if not cols:
        return existing if existing is not None else pd.Series(np.nan, index=df.index, dtype="str")
    body = np.full(len(df), "", dtype=object)
    for c in cols:
        text = _normalize_text_column(df[c], to_simplified)
        text = text.where(text.ne(""))
        codes, uniques = pd.factorize(text, use_na_sentinel=True)
        key = json.dumps(c[len(EXTRA_PREFIX) :], ensure_ascii=False) + ":"
        frag = np.array([key + json.dumps(u, ensure_ascii=False) + "," for u in uniques] + [""], dtype=object)
        body = body + frag[codes]
    packed = pd.Series(body, index=df.index, dtype=object)
    packed = ("{" + packed.str.slice(0, -1) + "}").where(packed.ne(""))
    if existing is not None:
        both = existing.notna() & packed.notna()
        merged = [
            json.dumps({**json.loads(a), **json.loads(b)}, ensure_ascii=False)
            for a, b in zip(existing[both], packed[both], strict=True)
        ]
        packed = packed.where(~both, pd.Series(merged, index=packed.index[both.to_numpy()], dtype=object)).where(
            packed.notna(), existing
        )
    return packed.astype("str")


def _resolve_duplicates(
    frame: pd.DataFrame, bad: np.ndarray, schema: S.TableSchema, source: str
) -> tuple[np.ndarray, pd.DataFrame]:
    """Keep one good row per key (latest date, then most complete, then last); list the others."""
    keep = ~bad
    good_pos = np.flatnonzero(keep)
    key = list(schema.key)
    sub = frame.iloc[good_pos]
    order = pd.DataFrame({"pos": good_pos, "filled": sub.notna().sum(axis=1).to_numpy()})
    for k in key:
        order[k] = sub[k].to_numpy()
    sort_by = [*key, *([S.COL_DATE] if S.COL_DATE in frame.columns else []), "filled", "pos"]
    if S.COL_DATE in frame.columns:
        order[S.COL_DATE] = sub[S.COL_DATE].to_numpy()
    order = order.sort_values(sort_by, kind="stable", na_position="first")
    winner = ~order.duplicated(key, keep="last")
    losers = order[~winner]
    if losers.empty:
        return keep, pd.DataFrame(columns=list(REJECT_COLUMNS))
    winners = order[winner].set_index(key)["pos"]
    kept_pos = winners.reindex(pd.MultiIndex.from_frame(losers[key]) if len(key) > 1 else losers[key[0]]).to_numpy()
    keep[losers["pos"].to_numpy()] = False
    value = losers[key].astype(str).agg(" / ".join, axis=1) if len(key) > 1 else losers[key[0]].astype(str)
    rejects = pd.DataFrame(
        {
            "file": source,
            "row": losers["pos"].to_numpy() + 1,
            "field": "+".join(key),
            "value": value.to_numpy(),
            "reason": [f"duplicate of row {int(p) + 1}; row rejected" for p in kept_pos],
        }
    )
    return keep, rejects


def _rejects_frame(problems: _Problems, bad: np.ndarray, source: str) -> pd.DataFrame:
    if not problems.batches:
        return empty_rejects()
    pos = np.concatenate([b[0] for b in problems.batches])
    return pd.DataFrame(
        {
            "file": source,
            "row": pos + 1,
            "field": np.concatenate([np.full(b[0].size, b[1], dtype=object) for b in problems.batches]),
            "value": [_show(v) for b in problems.batches for v in b[2]],
            "reason": np.concatenate([b[3] for b in problems.batches]).astype(str)
            + np.where(bad[pos], "; row rejected", "; value cleared, row kept"),
        }
    )


_UNPRINTABLE: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _show(v: Any) -> str:
    """A rejected value as the rejects file shows it: control characters as U+FFFD (a NUL cell must
    not make the CSV unreadable in Excel), at most 500 characters."""
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return ""
    text = _UNPRINTABLE.sub("\ufffd", str(v))
    return text if len(text) <= 500 else text[:500] + "…"


# ================================================================ frames
def empty_rejects() -> pd.DataFrame:
    """A rejects frame with no rows."""
    return pd.DataFrame({c: pd.Series(dtype="int64" if c == "row" else "str") for c in REJECT_COLUMNS})


def empty_table(table: str) -> pd.DataFrame:
    """A table with no rows and the schema's columns and dtypes."""
    schema = _check_table(table)
    return pd.DataFrame({c.name: pd.Series(dtype=PANDAS_DTYPES[c.dtype]) for c in schema.columns})


def coerce_table(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """The schema's columns in order, cast to their dtypes (booleans' missing values → defaults)."""
    schema = _check_table(table)
    out = {}
    for spec in schema.columns:
        col = frame[spec.name] if spec.name in frame.columns else pd.Series(None, index=frame.index, dtype=object)
        if spec.dtype == "bool":
            col = col.astype(object).where(col.notna(), _BOOL_DEFAULTS.get(spec.name, False))
        out[spec.name] = col.astype(PANDAS_DTYPES[spec.dtype])  # type: ignore[call-overload]
    return pd.DataFrame(out, index=frame.index)


def merge_upsert(current: pd.DataFrame, new: pd.DataFrame, table: str) -> tuple[pd.DataFrame, int, int]:
    """Rows of ``new`` replace rows of ``current`` with the same key; others are kept.

    Returns:
        ``(merged, n_replaced, n_added)``; current rows keep their order, new keys are appended.
    """
    key = list(_check_table(table).key)
    cur_keys = pd.MultiIndex.from_frame(current[key].astype(str))
    new_keys = pd.MultiIndex.from_frame(new[key].astype(str))
    replaced = cur_keys.isin(new_keys)
    merged = pd.concat([coerce_table(current[~replaced], table), coerce_table(new, table)], ignore_index=True)
    return merged, int(replaced.sum()), int(len(new) - replaced.sum())


def _check_table(table: str) -> S.TableSchema:
    if table not in S.SCHEMAS:
        raise ValueError(f"unknown table {table!r}; expected one of {list(S.TABLES)}")
    return S.SCHEMAS[table]
