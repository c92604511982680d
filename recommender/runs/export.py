"""Analysts' outputs: the Excel workbook, per-node CSV files and Parquet, safe against formula injection.

The workbook (openpyxl) has a ``三色图`` sheet with the map (rows filled red / blue / green), one sheet
per chain with its nodes' targets, reasons and routes, and a ``本周新增`` sheet with the diff against
the previous run. Any text cell that starts with ``=``, ``+``, ``-``, ``@``, tab or CR is neutralised
(prefixed with ``'`` and stored as text) — in the workbook and in the CSV files, which Excel opens
the same way. The web service's downloads call :func:`workbook_bytes` and :func:`targets_csv_bytes`.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

MAP_SHEET = "三色图"
DIFF_SHEET = "本周新增"
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
COLOUR_LABELS = {"red": "红", "blue": "蓝", "green": "绿"}
COLOUR_FILLS = {"red": "F8B4B4", "blue": "B4CDF0", "green": "B8E6B8"}
STAGE_LABELS = {"upstream": "上游", "midstream": "中游", "downstream": "下游"}

# map column -> header; only the columns present are written, in this order
MAP_HEADERS = {
    "chain_id": "产业链",
    "node_id": "节点编号",
    "name": "节点",
    "stage": "环节",
    "colour": "颜色",
    "reason": "判定依据",
    "priority": "补链优先级",
    "n_local": "本地企业数",
    "output_value_cny": "产值（元）",
    "has_leader": "有链主",
    "lq": "区位熵",
    "growth": "增长率",
    "gap": "缺口",
}
TARGET_HEADERS = {
    "node_id": "节点编号",
    "node_name": "节点",
    "rank": "排名",
    "enterprise_id": "统一社会信用代码",
    "name": "企业名称",
    "score": "签约概率",  # the champion's calibrated P(签约 | approached), written as a percentage
    "theme": "招商路径主题",
    "reasons": "推荐理由",
    "routes": "对接路径",
    "sources": "来源",
}
DIFF_HEADERS = {
    "node_id": "节点编号",
    "node_name": "节点",
    "change": "变化",
    "enterprise_id": "统一社会信用代码",
    "name": "企业名称",
    "rank": "排名",
    "rank_before": "上期排名",
    "detail": "说明",
}
PERCENT_HEADERS = frozenset({"签约概率", "匹配度"})  # probabilities in [0, 1], shown as 12.3%
_ILLEGAL_XML = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")
_BAD_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")


# ---------------------------------------------------------------- cell safety
def neutralise(value: str) -> str:
    """Make a text cell inert: prefix ``'`` when it starts with a formula trigger.

    >>> neutralise('=HYPERLINK("http://x","y")')
    '\\'=HYPERLINK("http://x","y")'
    >>> neutralise("光迅科技")
    '光迅科技'
    """
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def _cell_value(v: Any) -> Any:
    """A value as written to a cell: text neutralised and cleaned of XML-illegal characters."""
    if v is None or (isinstance(v, float) and v != v):
        return None
    if isinstance(v, bool):
        return v
    if hasattr(v, "item") and not isinstance(v, str):  # numpy scalar
        v = v.item()
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    if isinstance(v, (list, tuple, dict)):
        v = json.dumps(v, ensure_ascii=False)
    return neutralise(_ILLEGAL_XML.sub("", str(v)))


def _texts(value: Any, keys: tuple[str, ...]) -> str:
    """Render a reasons/routes JSON list as one line per item, picking the first present text key."""
    items = value
    if isinstance(value, str):
        if not value.strip():
            return ""
        try:
            items = json.loads(value)
        except json.JSONDecodeError:
            return value
    if items is None or (isinstance(items, float) and items != items):
        return ""
    if not isinstance(items, list):
        items = [items]
    lines = []
    for it in items:
        if isinstance(it, dict):
            text = next((str(it[k]) for k in keys if it.get(k)), json.dumps(it, ensure_ascii=False))
        else:
            text = str(it)
        lines.append(text)
    return "\n".join(lines)


def render_reasons(value: Any) -> str:
    """Reasons JSON (list of strings or objects with ``text``) as lines of Chinese text."""
    return _texts(value, ("text", "sentence", "reason", "label"))


def render_routes(value: Any) -> str:
    """Routes JSON (list of objects with ``sentence``) as lines ``[theme] sentence``."""
    items = value
    if isinstance(value, str) and value.strip():
        try:
            items = json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(items, list):
        items = [
            {"sentence": f"[{it['theme']}] {it.get('sentence', '')}".strip()}
            if isinstance(it, dict) and it.get("theme")
            else it
            for it in items
        ]
    return _texts(items, ("sentence", "text"))


# ---------------------------------------------------------------- frames for the sheets (pure)
def sheet_title(name: str, taken: set[str]) -> str:
    """A valid, unique worksheet title (<= 31 chars, none of ``[]:*?/\\``)."""
    base = _BAD_SHEET_CHARS.sub("_", name).strip("'") or "sheet"
    title, n = base[:31], 2
    while title in taken:
        suffix = f"_{n}"
        title, n = base[: 31 - len(suffix)] + suffix, n + 1
    taken.add(title)
    return title


def map_sheet_frame(map_df: pd.DataFrame) -> pd.DataFrame:
    """The map as written: known columns only, colour and stage in Chinese labels."""
    cols = [c for c in MAP_HEADERS if c in map_df.columns]
    out = map_df[cols].copy()
    if "colour" in out:
        out["colour"] = out["colour"].map(lambda c: COLOUR_LABELS.get(c, c))
    if "stage" in out:
        out["stage"] = out["stage"].map(lambda s: STAGE_LABELS.get(s, s))
    return out.rename(columns=MAP_HEADERS)


def targets_sheet_frame(targets: pd.DataFrame, node_names: Mapping[str, str]) -> pd.DataFrame:
    """One chain's targets as written: node name added, reasons and routes rendered as text."""
    out = targets.copy()
    out["node_name"] = out["node_id"].map(lambda n: node_names.get(n, ""))
    if "reasons" in out:
        out["reasons"] = out["reasons"].map(render_reasons)
    if "routes" in out:
        out["routes"] = out["routes"].map(render_routes)
    cols = [c for c in TARGET_HEADERS if c in out.columns]
    return out[cols].rename(columns=TARGET_HEADERS)


def diff_sheet_frame(diff: Mapping[str, Any] | None) -> pd.DataFrame:
    """The run diff as rows: 新增 / 移出 / 排名变化 per target, and 颜色变化 per node."""
    rows: list[dict[str, Any]] = []
    for node in (diff or {}).get("nodes", []):
        base = {"node_id": node["node_id"], "node_name": node.get("name", "")}
        for e in node.get("new", []):
            rows.append(
                base | {"change": "新增", "enterprise_id": e["enterprise_id"], "name": e["name"], "rank": e["rank"]}
            )
        for e in node.get("moved", []):
            d = f"上升{e['change']}位" if e["change"] > 0 else f"下降{-e['change']}位"
            rows.append(
                base
                | {"change": "排名变化", "enterprise_id": e["enterprise_id"], "name": e["name"]}
                | {"rank": e["rank"], "rank_before": e["rank_before"], "detail": d}
            )
        for e in node.get("dropped", []):
            rows.append(
                base
                | {"change": "移出", "enterprise_id": e["enterprise_id"], "name": e["name"]}
                | {"rank_before": e["rank_before"]}
            )
    for c in (diff or {}).get("colour_changes", []):
        before, after = COLOUR_LABELS.get(c["before"], c["before"]), COLOUR_LABELS.get(c["after"], c["after"])
        rows.append(
            {"node_id": c["node_id"], "node_name": c["name"], "change": "颜色变化", "detail": f"{before} → {after}"}
        )
    return pd.DataFrame(rows, columns=list(DIFF_HEADERS)).rename(columns=DIFF_HEADERS)


# ---------------------------------------------------------------- workbook
def _write_sheet(ws: Any, frame: pd.DataFrame, fills: list[str | None] | None = None) -> None:
    """Write ``frame`` into a write-only worksheet (streamed: linear in the number of cells)."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    ncols = len(frame.columns)
    for j, col in enumerate(frame.columns, start=1):
        width = max([len(str(col))] + [min(len(str(v)), 60) for v in frame[col].head(200)])
        ws.column_dimensions[get_column_letter(j)].width = min(max(8, width * 1.6), 80)
    ws.freeze_panes = "A2"
    if ncols:
        ws.auto_filter.ref = f"A1:{get_column_letter(ncols)}{len(frame) + 1}"
    bold, wrap = Font(bold=True), Alignment(wrap_text=True, vertical="top")
    header = []
    for c in frame.columns:
        cell = WriteOnlyCell(ws, value=str(c))
        cell.font = bold
        header.append(cell)
    ws.append(header)
    fill_cache: dict[str, PatternFill] = {}
    percent = [str(c) in PERCENT_HEADERS for c in frame.columns]
    for i, row in enumerate(frame.itertuples(index=False, name=None)):
        colour = fills[i] if fills else None
        fill = (
            fill_cache.setdefault(colour, PatternFill("solid", start_color=colour, end_color=colour))
            if colour
            else None
        )
        cells = []
        for v, pct in zip(row, percent, strict=True):
            cell = WriteOnlyCell(ws, value=_cell_value(v))
            if pct and isinstance(cell.value, float):
                cell.number_format = "0.0%"
            if isinstance(cell.value, str):
                cell.data_type = "s"  # never a formula, whatever the text
                if "\n" in cell.value:
                    cell.alignment = wrap
            if fill is not None:
                cell.fill = fill
            cells.append(cell)
        ws.append(cells)


def workbook_bytes(
    map_df: pd.DataFrame,
    targets_df: pd.DataFrame,
    diff: Mapping[str, Any] | None = None,
    chain_names: Mapping[str, str] | None = None,
    extra_sheets: Mapping[str, pd.DataFrame] | None = None,
) -> bytes:
    """The analysts' workbook as ``.xlsx`` bytes.

    Args:
        map_df: the colour map (``chain_id, node_id, name, stage, colour, reason, ...``).
        targets_df: the targets (``chain_id, node_id, rank, enterprise_id, name, score,
            reasons, routes, theme, sources``).
        diff: :func:`recommender.runs.directory.diff_runs` output for the ``本周新增`` sheet (empty sheet if None).
        chain_names: chain id -> display name used as the sheet title (default: the chain id).
        extra_sheets: title -> frame written as is after ``本周新增`` (the refresh's 本地延链, 排除名单 and 待核实).
    """
    from openpyxl import Workbook

    missing = [c for c in ("chain_id", "node_id", "colour") if c not in map_df.columns]
    if missing:
        raise ValueError(f"map_df is missing required columns {missing}; got columns {list(map_df.columns)}.")
    missing = [c for c in ("chain_id", "node_id", "rank") if c not in targets_df.columns]
    if missing:
        raise ValueError(f"targets_df is missing required columns {missing}; got columns {list(targets_df.columns)}.")
    wb = Workbook(write_only=True)
    taken = {MAP_SHEET, DIFF_SHEET}
    _write_sheet(wb.create_sheet(MAP_SHEET), map_sheet_frame(map_df), [COLOUR_FILLS.get(c) for c in map_df["colour"]])
    node_names = dict(zip(map_df["node_id"], map_df.get("name", map_df["node_id"]), strict=True))
    chains = list(dict.fromkeys(list(map_df["chain_id"]) + list(targets_df["chain_id"])))
    for chain in chains:
        part = targets_df[targets_df["chain_id"] == chain].sort_values(["node_id", "rank"], kind="stable")
        title = sheet_title((chain_names or {}).get(chain, chain), taken)
        _write_sheet(wb.create_sheet(title), targets_sheet_frame(part, node_names))
    _write_sheet(wb.create_sheet(DIFF_SHEET), diff_sheet_frame(diff))
    for title, frame in (extra_sheets or {}).items():
        _write_sheet(wb.create_sheet(sheet_title(title, taken)), frame)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _write_atomic(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def export_workbook(
    map_df: pd.DataFrame,
    targets_df: pd.DataFrame,
    path: Path,
    diff: Mapping[str, Any] | None = None,
    chain_names: Mapping[str, str] | None = None,
    extra_sheets: Mapping[str, pd.DataFrame] | None = None,
) -> Path:
    """Write :func:`workbook_bytes` to ``path`` (temp file + rename)."""
    return _write_atomic(Path(path), workbook_bytes(map_df, targets_df, diff, chain_names, extra_sheets))


def read_workbook(path: Path | bytes) -> dict[str, pd.DataFrame]:
    """Read every sheet back as a DataFrame of the cell values (header row = columns)."""
    from openpyxl import load_workbook

    src = io.BytesIO(path) if isinstance(path, bytes) else path
    wb = load_workbook(src, read_only=True)
    out = {}
    for ws in wb.worksheets:
        rows = list(ws.iter_rows(values_only=True))
        header = list(rows[0]) if rows else []
        body = [list(r) + [None] * (len(header) - len(r)) for r in rows[1:]]  # trailing empty cells are not stored
        out[ws.title] = pd.DataFrame(body, columns=header, dtype=object)
    wb.close()
    return out


# ---------------------------------------------------------------- CSV and Parquet
def targets_csv_bytes(targets: pd.DataFrame, node_names: Mapping[str, str] | None = None) -> bytes:
    """Targets as analysts read them (Chinese headers, reasons and routes as text lines), UTF-8-BOM CSV
    so that Excel opens Chinese correctly, every text cell neutralised."""
    frame = targets_sheet_frame(targets, node_names or {})
    safe = frame.astype(object).map(lambda v: neutralise(v) if isinstance(v, str) else v)
    return safe.to_csv(index=False, lineterminator="\r\n").encode("utf-8-sig")


def write_node_csvs(targets: pd.DataFrame, folder: Path, node_names: Mapping[str, str] | None = None) -> list[Path]:
    """``folder/<node_id>.csv`` for each node of ``targets``, rows in rank order."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for node, part in targets.groupby("node_id", sort=True):
        data = targets_csv_bytes(part.sort_values("rank"), node_names)
        out.append(_write_atomic(folder / f"{node}.csv", data))
    return out


def write_parquet(df: pd.DataFrame, path: Path) -> Path:
    """Parquet through a temp file + rename (raw values: Parquet is not opened by spreadsheets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------- the lists' other sheets
LOCAL_SHEET = "本地延链"
EXCLUDED_SHEET = "排除名单"
NEAR_FIT_SHEET = "待核实"
EXCLUDED_HEADERS = {
    "node_id": "节点编号", "node_name": "节点", "enterprise_id": "统一社会信用代码", "name": "企业名称",
    "reason": "排除原因", "stage": "阶段", "date": "日期", "note": "备注", "fit": "匹配度", "score": "签约概率",
}  # fmt: skip
NEAR_FIT_HEADERS = {
    "node_id": "节点编号", "node_name": "节点", "near_rank": "序号", "enterprise_id": "统一社会信用代码",
    "name": "企业名称", "fit": "匹配度", "score": "签约概率", "why": "说明",
}  # fmt: skip
NEAR_FIT_CHECK_COLUMNS = (
    "核实结果",
    "核实人",
    "核实日期",
    "备注",
)  # empty, for the analyst (column map zone-fit_marks)


LIST_FRAMES = ("local_extension", "excluded", "near_fit")  # the run's frames list_sheets writes, by parameter name


def list_sheets(
    local_extension: pd.DataFrame | None,
    excluded: pd.DataFrame | None,
    near_fit: pd.DataFrame | None,
    node_names: Mapping[str, str],
    fit_threshold: float,
) -> dict[str, pd.DataFrame]:
    """The workbook's sheets beside the lists (``recommender.ranking.lists``), from the run's frames;
    a frame that is None (a run from before it) gives no sheet:

    * 本地延链: local firms that fit another node, written as the targets are, with the nodes where they already are;
    * 排除名单: the pairs left out, with the reason;
    * 待核实: per node the outside firms just below ``fit_threshold``, best fit first, each with why it is not
      listed, and empty 核实结果 / 核实人 / 核实日期 / 备注 columns: filled in and ingested as the ``fit_marks``
      table (column map ``zone-fit_marks``), they decide the pair at the next refresh.
    """
    sheets: dict[str, pd.DataFrame] = {}
    name_of = {str(k): str(v) for k, v in node_names.items()}
    if local_extension is not None:
        frame = targets_sheet_frame(local_extension, name_of)
        zone = local_extension.get("zone_nodes", pd.Series("", index=local_extension.index))
        frame["已在园区节点"] = zone.fillna("").map(lambda v: "、".join(name_of.get(n, n) for n in v.split("|") if n))
        sheets[LOCAL_SHEET] = frame
    if excluded is not None:
        out = excluded.assign(node_name=excluded["node_id"].map(lambda n: name_of.get(n, "")))
        if "date" in out:
            out["date"] = pd.to_datetime(out["date"]).dt.strftime("%Y-%m-%d").fillna("")
        sheets[EXCLUDED_SHEET] = out[[c for c in EXCLUDED_HEADERS if c in out.columns]].rename(columns=EXCLUDED_HEADERS)
    if near_fit is not None:
        why = f"低于阈值{fit_threshold:.0%}，未列入名单：请核实其是否生产本节点产品，在「核实结果」填 是 / 否"
        out = near_fit.assign(node_name=near_fit["node_id"].map(lambda n: name_of.get(n, "")),
                              why=near_fit["fit"].map(lambda f: f"匹配度{math.floor(100 * f)}%，{why}"))  # fmt: skip
        frame = out[[c for c in NEAR_FIT_HEADERS if c in out.columns]].rename(columns=NEAR_FIT_HEADERS)
        sheets[NEAR_FIT_SHEET] = frame.assign(**dict.fromkeys(NEAR_FIT_CHECK_COLUMNS, ""))
    return sheets
