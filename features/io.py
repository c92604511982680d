"""The only raw-file I/O of ``features``: raw files in, validated Parquet snapshots out.

* :func:`read_raw` reads CSV (UTF-8, UTF-8 with BOM, UTF-16 with BOM, GBK / GB18030, Big5 guessed),
  XLSX and Parquet into a frame of strings.
* :func:`load_column_map` reads ``configs/column_maps/<name>.yaml`` or any YAML file.
* :func:`ingest_file` maps, validates (:mod:`features.ingest`) and stores one file as a snapshot
  ``<snapshots>/<table>/<YYYYmmddTHHMMSSffffff>.parquet`` with its rejects
  ``<rejects>/<table>-<stamp>.csv``; ``mode="upsert"`` merges into the current snapshot by key.
* :func:`read_snapshot` / :func:`load_tables` give the current (newest) tables.

Every error names the file and says what was expected.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import pandas as pd
import yaml
from pyarrow import ArrowInvalid

from features import ingest as I
from features import schema as S

STAMP_FORMAT: Final = "%Y%m%dT%H%M%S%f"
CSV_SUFFIXES: Final = frozenset({".csv", ".txt", ".tsv"})
EXCEL_SUFFIXES: Final = frozenset({".xlsx", ".xlsm"})
PARQUET_SUFFIXES: Final = frozenset({".parquet", ".pq"})
IDENTITY_MAP: Final = "identity"
_SNIFF_BYTES: Final = 1 << 20
_CSV_BLOCK_BYTES: Final = 1 << 22  # Arrow parses blocks in parallel; a record must fit in one (grown on demand)
_DELIMITERS: Final = ",\t;|"
# Signatures of files that are not text, with what to tell the user.
_BINARY_MAGIC: Final = (
    (b"\x89PNG\r\n\x1a\n", "it looks like a PNG image"),
    (b"\xff\xd8\xff", "it looks like a JPEG image"),
    (b"GIF87a", "it looks like a GIF image"),
    (b"GIF89a", "it looks like a GIF image"),
    (b"%PDF-", "it looks like a PDF document"),
    (b"PK\x03\x04", "it looks like a zip archive, e.g. an .xlsx workbook: name it .xlsx"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "it looks like an old Excel .xls or Office file: save it as .xlsx or CSV"),
    (b"\x1f\x8b", "it looks like a gzip archive: unpack it first"),
    (b"PAR1", "it looks like a Parquet file: name it .parquet"),
    (b"7z\xbc\xaf\x27\x1c", "it looks like a 7z archive: unpack it first"),
    (b"Rar!\x1a\x07", "it looks like a RAR archive: unpack it first"),
)
# C0 controls other than tab, line feed, form feed, carriage return and the old end-of-file mark, and DEL.
_CONTROL_BYTES: Final = bytes(sorted((set(range(32)) - {9, 10, 12, 13, 26}) | {127}))
_NOT_UTF8_LEAD_BYTES: Final = bytes(b for b in range(256) if not 0xC2 <= b <= 0xF4)
_UTF8_EVIDENCE: Final = 16  # multi-byte characters of valid UTF-8 before an invalid byte: UTF-8 text, not GBK
IngestMode = Literal["replace", "upsert"]
MB: Final = 1_000_000
_RATIO_MIN_MEMBER_BYTES: Final = MB  # smaller members may compress any amount: harmless


@dataclass(frozen=True)
class ReadLimits:
    """How much a raw file may make the reader do (settings ``ingest.max_xlsx_*``).

    An XLSX is a zip archive: before parsing, the uncompressed sizes its directory declares (which
    the zip reader enforces while inflating) must stay under ``max_xlsx_uncompressed_bytes`` in
    total, and no member over 1 MB may inflate more than ``max_xlsx_ratio`` times (a "zip bomb").
    """

    max_xlsx_uncompressed_bytes: int = 200 * MB
    max_xlsx_ratio: float = 100.0


DEFAULT_LIMITS: Final = ReadLimits()


class IngestError(ValueError):
    """A raw file or column map cannot be used; the message names the file and the problem."""


@dataclass
class IngestReport:
    """What :func:`ingest_file` did.

    Attributes:
        n_read: data rows in the file; ``n_ok``: rows stored from it; ``n_rejected``: rows dropped
        for a problem (duplicates excluded); ``n_duplicates``: rows dropped as duplicates of another
        row of the file; ``n_cleared``: optional values cleared (their rows were kept);
        ``n_total``: rows in the new snapshot (differs from ``n_ok`` after an upsert).
    """

    file: str
    table: str
    column_map: str
    mode: str
    n_read: int = 0
    n_ok: int = 0
    n_rejected: int = 0
    n_duplicates: int = 0
    n_cleared: int = 0
    n_total: int = 0
    snapshot: str | None = None
    rejects: str | None = None
    messages: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ================================================================ raw files
def read_raw(
    path: str | Path,
    sheet: str | int | None = None,
    encoding: str | None = None,
    *,
    limits: ReadLimits = DEFAULT_LIMITS,
    prefer_sheet: str | None = None,
) -> pd.DataFrame:
    """Read a raw CSV / XLSX / Parquet file; every value a string, empty cells missing.

    Args:
        path: the file; the type comes from its suffix (.csv/.txt/.tsv, .xlsx/.xlsm, .parquet/.pq).
        sheet: Excel sheet name or 0-based index (default: ``prefer_sheet`` when the workbook has
            it, else the first sheet).
        encoding: force a CSV encoding instead of detecting it.
        limits: size limits checked before an XLSX is parsed (:class:`ReadLimits`).

    Returns:
        Shape (n_rows, n_columns), columns as in the file's header row; ``attrs["encoding"]`` says
        which encoding a CSV was read with.

    Raises:
        IngestError: missing file, unknown type, undecodable or malformed content, unknown sheet,
            an XLSX over the limits.
    """
    p = Path(path)
    if not p.is_file():
        raise IngestError(f"cannot read {p}: no such file")
    suffix = p.suffix.lower()
    try:
        if suffix in CSV_SUFFIXES:
            return _read_csv(p, encoding)
        if suffix in EXCEL_SUFFIXES:
            _check_xlsx_size(p, limits)
            return _read_excel(p, sheet, prefer_sheet)
        if suffix in PARQUET_SUFFIXES:
            return _as_strings(pd.read_parquet(p))
    except IngestError:
        raise
    except (ValueError, OSError, KeyError, UnicodeError, csv.Error, ArrowInvalid, zipfile.BadZipFile) as exc:
        raise IngestError(f"cannot read {p} as {suffix.lstrip('.')}: {exc}") from exc
    if suffix == ".xls":
        raise IngestError(f"cannot read {p}: the old Excel .xls format is not supported; save it as .xlsx or .csv")
    raise IngestError(
        f"cannot read {p}: unknown file type {suffix!r}; expected one of "
        f"{sorted(CSV_SUFFIXES | EXCEL_SUFFIXES | PARQUET_SUFFIXES)}"
    )


def detect_encoding(head: bytes) -> str:
    """The encoding of a CSV from its first bytes: BOM, else strict UTF-8, else GB18030 or Big5.

    GBK and GB2312 are subsets of GB18030. Big5 is chosen only when charset-normalizer finds it
    clearly better than GB18030 (both decode most byte strings).
    """
    for bom, name in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if head.startswith(bom):
            return name
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(head, cp_isolation=["gb18030", "big5"]).best()
    return "big5" if best is not None and best.encoding == "big5" else "gb18030"


def _read_csv(p: Path, encoding: str | None) -> pd.DataFrame:
    raw = p.read_bytes()
    _check_text(p, raw[:_SNIFF_BYTES], encoding)
    enc = encoding or detect_encoding(raw[:_SNIFF_BYTES])
    if encoding is None and enc in ("gb18030", "big5"):  # the start is not UTF-8: unless it was UTF-8 text for long
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            _refuse_mixed(p, raw, exc)
    try:
        text = raw.decode(enc)
    except UnicodeDecodeError as exc:
        if not enc.lower().replace("_", "-").startswith(("utf-16", "utf16", "utf-32", "utf32")):
            _refuse_binary(p, raw[:65536], share=0.05)  # undecodable and full of control bytes: not text
        if encoding is None and enc == "utf-8":  # valid UTF-8 at the start only: try the Chinese legacy encoding
            _refuse_mixed(p, raw, exc)
            return _read_csv(p, "gb18030")
        raise IngestError(
            f"cannot read {p}: not valid {enc} at {_position(raw, exc, enc)}; pass --encoding (e.g. gb18030, big5, "
            "utf-8)"
        ) from exc
    except LookupError as exc:
        raise IngestError(f"cannot read {p}: unknown encoding {enc!r}") from exc
    del raw
    text = text.removeprefix("\ufeff")
    sep = _sniff_delimiter(text[:65536], p.suffix.lower())
    header = next(csv.reader(io.StringIO(text[: text.find("\n") + 1 or None]), delimiter=sep), [])
    names = _unique_names(header)
    df = _parse_csv_utf8(text.encode("utf-8"), names, sep) if names else pd.DataFrame()
    df.attrs["encoding"] = enc
    return df


def _check_text(p: Path, head: bytes, encoding: str | None) -> None:
    """Refuse a file that is not text at all (an image, a workbook, random bytes) or UTF-16 without
    its byte-order mark (a hint to name the encoding) before trying to decode it."""
    for magic, what in _BINARY_MAGIC:
        if head.startswith(magic):
            raise IngestError(f"cannot read {p}: not a text file ({what}); expected a CSV or TSV export")
    wide = (encoding or "").lower().replace("_", "-").startswith(("utf-16", "utf16", "utf-32", "utf32"))
    if wide or head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return  # NUL bytes are part of the encoding
    sample = head[:65536]
    if encoding is None and len(sample) >= 8:
        even, odd = sample[0::2], sample[1::2]
        for zeros, other, name in ((odd, even, "utf-16-le"), (even, odd, "utf-16-be")):
            if zeros.count(0) > 0.3 * len(zeros) and other.count(0) < 0.05 * len(other):
                raise IngestError(
                    f"cannot read {p}: it looks like UTF-16 text without a byte-order mark: pass --encoding {name}"
                )
    _refuse_binary(p, sample, share=0.3)  # far too many control bytes for text in any encoding


def _refuse_binary(p: Path, sample: bytes, share: float) -> None:
    """Raise "not a text file" when more than ``share`` of ``sample`` (and at least 8 bytes) are control
    bytes. Text may hold a few (stripped at validation); random or compressed bytes hold about 11 %."""
    n_control = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    if n_control >= 8 and n_control > share * len(sample):
        raise IngestError(
            f"cannot read {p}: not a text file ({n_control} of its first {len(sample)} bytes are control "
            "characters); expected a CSV or TSV export"
        )


def _position(raw: bytes, exc: UnicodeDecodeError, enc: str) -> str:
    """'line 52, column 1 (byte 1234: b'\\xb3\\xa4')' of a decoding error: lines and columns count characters."""
    prefix = raw[: exc.start].decode(enc, errors="replace")
    line = prefix.count("\n") + 1
    column = len(prefix) - (prefix.rfind("\n") + 1) + 1
    return f"line {line}, column {column} (byte {exc.start}: {raw[exc.start : exc.start + 4]!r})"


def _refuse_mixed(p: Path, raw: bytes, utf8_error: UnicodeDecodeError) -> None:
    """Raise when a file is UTF-8 text (many multi-byte characters) up to ``utf8_error``: the rest is
    in another encoding, and decoding all of it as GB18030 would garble the UTF-8 part."""
    lead_bytes = len(raw[: utf8_error.start].translate(None, _NOT_UTF8_LEAD_BYTES))
    if lead_bytes < _UTF8_EVIDENCE:
        return
    prefix = raw[: utf8_error.start].decode("utf-8")
    line = prefix.count("\n") + 1
    column = len(prefix) - (prefix.rfind("\n") + 1) + 1
    raise IngestError(
        f"cannot read {p}: not one encoding: valid UTF-8 up to line {line}, column {column}, where bytes "
        f"{raw[utf8_error.start : utf8_error.start + 4]!r} are not UTF-8: the file may mix encodings; re-save it in "
        "one encoding (UTF-8) or pass --encoding (e.g. gb18030, big5, utf-8)"
    )


def _sniff_delimiter(sample: str, suffix: str) -> str:
    """Tab for .tsv; otherwise the most frequent of , TAB ; | in the header line (default comma)."""
    if suffix == ".tsv":
        return "\t"
    header = sample.split("\n", 1)[0]
    counts = {d: header.count(d) for d in _DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _unique_names(header: list[str]) -> list[str]:
    """Header names with blanks named ``column_<i>`` and repeats suffixed ``.1``, ``.2`` (as pandas)."""
    seen: dict[str, int] = {}
    names = []
    for i, h in enumerate(header):
        name = h.strip() or f"column_{i + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}.{seen[name]}"
        seen.setdefault(name, 0)
        names.append(name)
    return names


def _parse_csv_utf8(data: bytes, names: list[str], sep: str) -> pd.DataFrame:
    """Parse UTF-8 CSV bytes with Arrow (multi-threaded); every column a string, blanks missing.

    Arrow cuts the bytes into blocks parsed in parallel, and one record (a row, with its quoted line
    breaks) must fit in a block: a file with a cell of several MB is parsed again with blocks eight
    times larger, up to the whole file in one block, so no row is lost to the block size.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyarrow import csv as pcsv

    block = _CSV_BLOCK_BYTES
    while True:
        try:
            table = pcsv.read_csv(
                io.BytesIO(data),
                read_options=pcsv.ReadOptions(column_names=names, skip_rows=1, block_size=block),
                parse_options=pcsv.ParseOptions(delimiter=sep, newlines_in_values=True),
                convert_options=pcsv.ConvertOptions(
                    column_types=dict.fromkeys(names, pa.large_string()),
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                ),
            )
            break
        except ArrowInvalid as exc:
            if _RAGGED.search(str(exc)):  # a row with more or fewer fields than the header
                return _parse_csv_records(data.decode("utf-8"), names, sep)
            larger = min(block * 8, len(data) + 1, (1 << 31) - 1)
            if "straddl" not in str(exc) or larger <= block:
                raise
            block = larger
    out = {}
    for name, col in zip(names, table.columns, strict=True):
        blank = pc.equal(pc.utf8_trim_whitespace(col), "")
        col = pc.if_else(blank, pa.scalar(None, pa.large_string()), col)
        out[name] = pd.Series(pd.arrays.ArrowStringArray(col.combine_chunks()).astype("str"), name=name)
    return pd.DataFrame(out)


_RAGGED: Final = re.compile(r"Expected \d+ columns, got \d+")


def _parse_csv_records(text: str, names: list[str], sep: str) -> pd.DataFrame:
    """The slow path of a CSV whose rows do not all have the header's field count: Python's csv
    module, one record at a time. A ragged row keeps its place with no values and is listed in
    ``attrs["ragged_rows"]`` (one :class:`features.ingest.CellProblem` per cell, the record as value),
    so ingest rejects that row under its own number and keeps every other row."""
    width = len(names)
    rows: list[list[str | None]] = []
    ragged: list[I.CellProblem] = []
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    next(reader, None)  # the header
    for record in reader:
        if not record:  # an empty line, skipped like Arrow skips it
            continue
        if len(record) != width:
            shown = sep.join(record)
            reason = (
                f"the row has {len(record)} fields where the header has {width} (a separator in an unquoted value?)"
            )
            ragged += [I.CellProblem(len(rows), name, shown, reason) for name in names]
            rows.append([None] * width)
        else:
            rows.append(list[str | None](record))
    frame = _as_strings(pd.DataFrame(rows, columns=names, dtype=object))
    frame.attrs["ragged_rows"] = ragged
    return frame


def _check_xlsx_size(p: Path, limits: ReadLimits) -> None:
    """Refuse, from the zip directory alone (no inflating), a workbook over ``limits``."""
    try:
        with zipfile.ZipFile(p) as z:
            members = z.infolist()
    except zipfile.BadZipFile:
        raise IngestError(
            f"cannot read {p}: not an XLSX workbook (an .xlsx file is a zip archive; this one is not): "
            "if it is a CSV, name it .csv"
        ) from None
    total = sum(m.file_size for m in members)
    if total > limits.max_xlsx_uncompressed_bytes:
        raise IngestError(
            f"cannot read {p}: the workbook would inflate to {total / MB:.1f} MB uncompressed, over the limit of "
            f"{limits.max_xlsx_uncompressed_bytes / MB:.1f} MB (setting ingest.max_xlsx_uncompressed_mb); split it "
            "or save it as CSV"
        )
    for m in members:
        ratio = m.file_size / max(m.compress_size, 1)
        if m.file_size > _RATIO_MIN_MEMBER_BYTES and ratio > limits.max_xlsx_ratio:
            raise IngestError(
                f"cannot read {p}: {m.filename} would inflate {ratio:.0f} times ({m.file_size / MB:.1f} MB from "
                f"{m.compress_size} bytes), over the limit of {limits.max_xlsx_ratio:g} times (setting "
                "ingest.max_xlsx_compression_ratio): not an ordinary spreadsheet; re-save it in Excel"
            )


def _read_excel(p: Path, sheet: str | int | None, prefer: str | None = None) -> pd.DataFrame:
    """The sheet as strings; formulas give their cached values (what Excel last computed).

    A formula without a cached value (a workbook written by a program, never opened and saved in
    Excel) is a missing cell; it is listed in ``attrs["uncached_formulas"]`` as
    :class:`features.ingest.CellProblem` (0-based row of the frame, header, formula) so that
    validation reports it instead of a silent gap.
    """
    from openpyxl.worksheet.formula import ArrayFormula, DataTableFormula

    rows, name = _sheet_rows(p, sheet, data_only=False, prefer=prefer)
    formulas = {
        (i, j): _formula_text(v)
        for i, r in enumerate(rows)
        for j, v in enumerate(r)
        if (isinstance(v, str) and v.startswith("=")) or isinstance(v, ArrayFormula | DataTableFormula)
    }
    uncached: dict[tuple[int, int], str] = {}
    if formulas:  # a second pass for the cached values, only for workbooks that hold formulas
        cached, _ = _sheet_rows(p, name, data_only=True)
        for (i, j), f in formulas.items():
            rows[i][j] = cached[i][j] if i < len(cached) and j < len(cached[i]) else None
            if rows[i][j] is None:
                uncached[(i, j)] = f
    filled = [sum(v is not None and str(v).strip() != "" for v in r) for r in rows]
    for i, _ in uncached:
        filled[i] += 1
    while filled and filled[-1] == 0:  # formatted but empty rows at the end of a sheet
        rows.pop()
        filled.pop()
    if not rows:
        return pd.DataFrame()
    head = _header_index(filled)
    names_ = _unique_names([str(h) if h is not None else "" for h in rows[head]])
    width = len(names_)
    data = [list(r[:width]) + [None] * (width - len(r)) for r in rows[head + 1 :]]
    frame = _as_strings(pd.DataFrame(data, columns=names_, dtype=object))
    frame.attrs["header_row"] = head + 1
    frame.attrs["uncached_formulas"] = [
        I.CellProblem(i - head - 1, names_[j], f, I.UNCACHED_FORMULA)
        for (i, j), f in sorted(uncached.items())
        if i > head and j < width
    ]
    return frame


def _sheet_rows(
    p: Path, sheet: str | int | None, data_only: bool, prefer: str | None = None
) -> tuple[list[list[Any]], str]:
    """Every row of a sheet as a list of cell values, and the sheet's name (read-only, streamed);
    without ``sheet``, ``prefer`` when the workbook has it, else the first sheet."""
    from openpyxl import load_workbook

    wb = load_workbook(p, read_only=True, data_only=data_only)
    try:
        names = wb.sheetnames
        if sheet is None:
            name = prefer if prefer is not None and prefer in names else names[0]
        elif isinstance(sheet, int) or (isinstance(sheet, str) and sheet.isdigit() and sheet not in names):
            idx = int(sheet)
            if not 0 <= idx < len(names):
                raise IngestError(f"cannot read {p}: sheet index {idx} out of range; sheets: {names}")
            name = names[idx]
        elif sheet in names:
            name = sheet
        else:
            raise IngestError(f"cannot read {p}: no sheet {sheet!r}; sheets: {names}")
        return [list(r) for r in wb[name].iter_rows(values_only=True)], name
    finally:
        wb.close()


def _formula_text(v: Any) -> str:
    """The formula of a formula cell read with ``data_only=False``: ``=A1*2``, an array formula's text."""
    if isinstance(v, str):
        return v
    text = getattr(v, "text", None)  # ArrayFormula
    return str(text) if text is not None else f"=TABLE({getattr(v, 'r1', '') or ''},{getattr(v, 'r2', '') or ''})"


def _header_index(filled: list[int], look: int = 10) -> int:
    """Index of the header row: the first row with at least two values among the first ``look``
    rows when the sheet starts with a title row (one merged cell such as 「2024年在园企业名单」)."""
    if filled[0] >= 2 or max(filled[:look]) < 2:
        return 0
    return next(i for i, n in enumerate(filled[:look]) if n >= 2)


def _as_strings(df: pd.DataFrame) -> pd.DataFrame:
    """Every value a string (dates as YYYY-MM-DD, integral floats without '.0'), empties missing."""
    out = {}
    for c in df.columns:
        col = df[c]
        if pd.api.types.is_datetime64_any_dtype(col):
            s = col.dt.strftime("%Y-%m-%d")
        elif col.dtype == object:
            s = col.map(_cell_text, na_action="ignore")
        else:
            s = col.astype(object).map(_cell_text, na_action="ignore")
        s = s.astype("str")
        out[str(c)] = s.where(s.str.strip().ne(""))
    return pd.DataFrame(out, index=df.index)


def _cell_text(v: Any) -> Any:
    if isinstance(v, str):
        return v
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d") if (v.hour, v.minute, v.second) == (0, 0, 0) else v.isoformat(sep=" ")
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


# ================================================================ column maps
def available_column_maps(maps_dir: str | Path) -> list[str]:
    """Names of the built-in column maps in ``maps_dir`` plus ``identity``."""
    return sorted([p.stem for p in Path(maps_dir).glob("*.yaml")] + [IDENTITY_MAP])


def load_column_map(name_or_path: str | Path, maps_dir: str | Path, table: str | None = None) -> I.ColumnMap:
    """A column map by built-in name (``maps_dir/<name>.yaml``), by YAML path, or ``identity``.

    Args:
        name_or_path: e.g. ``registry-cn``, ``zone-presence``, ``./my_map.yaml`` or ``identity``.
        maps_dir: folder of the built-in maps.
        table: needed for ``identity``; otherwise checked against the map's ``table``.

    Raises:
        IngestError: unknown name, unreadable or invalid YAML, or a map for another table.
    """
    text = str(name_or_path)
    if text == IDENTITY_MAP:
        if table is None:
            raise IngestError("column map 'identity' needs a table")
        return I.identity_map(table)
    path = Path(text)
    if not (path.suffix.lower() in (".yaml", ".yml") or path.is_file()):
        path = Path(maps_dir) / f"{text}.yaml"
        if not path.is_file():
            raise IngestError(
                f"unknown column map {text!r}; built-in maps: {available_column_maps(maps_dir)}, or give a YAML file path"
            )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        cmap = I.parse_column_map(data, name=path.stem)
    except OSError as exc:
        raise IngestError(f"cannot read column map {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise IngestError(f"column map {path} is not valid YAML: {exc}") from exc
    except ValueError as exc:
        raise IngestError(f"{exc} (file {path})") from exc
    if table is not None and cmap.table != table:
        raise IngestError(f"column map {cmap.name!r} is for table {cmap.table!r}, not {table!r}")
    return cmap


def default_column_map(table: str) -> str:
    """The built-in map a table uses when none is given: ``registry-cn`` or ``zone-<table>``."""
    return "registry-cn" if table == "enterprises" else f"zone-{table}"


DEFAULT_SHEETS: Final[dict[str, str]] = {"fit_marks": "待核实"}
"""The sheet a table is read from when a workbook has it and no sheet is given (the refresh workbook's)."""


def default_mode(table: str) -> IngestMode:
    """How a file of ``table`` is stored when no mode is given: ``upsert`` for ``fit_marks`` (each returned
    待核实 sheet adds checks to the earlier ones), ``replace`` (the file is the whole table) otherwise."""
    return "upsert" if table == "fit_marks" else "replace"


# ================================================================ snapshots
def new_stamp() -> str:
    """A UTC time stamp ``YYYYmmddTHHMMSSffffff`` (sorts in time order)."""
    return datetime.now(UTC).strftime(STAMP_FORMAT)


def write_snapshot(df: pd.DataFrame, snapshots_dir: str | Path, table: str, stamp: str | None = None) -> Path:
    """Write ``df`` as ``<snapshots_dir>/<table>/<stamp>.parquet`` atomically (temp file + rename).

    The stamp is the current UTC time unless given; an existing stamp is never overwritten (the
    next free microsecond is used), so the newest file is always the last written.
    """
    folder = Path(snapshots_dir) / table
    folder.mkdir(parents=True, exist_ok=True)
    stamp = _free_stamp(folder, stamp or new_stamp(), ".parquet")
    target = folder / f"{stamp}.parquet"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{stamp}.", suffix=".tmp")
    os.close(fd)
    try:
        df.to_parquet(tmp, index=False)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _free_stamp(folder: Path, stamp: str, suffix: str, prefix: str = "") -> str:
    while (folder / f"{prefix}{stamp}{suffix}").exists():
        stamp = (datetime.strptime(stamp, STAMP_FORMAT) + timedelta(microseconds=1)).strftime(STAMP_FORMAT)
    return stamp


def snapshot_paths(snapshots_dir: str | Path, table: str) -> list[Path]:
    """All snapshots of a table, oldest first."""
    folder = Path(snapshots_dir) / table
    return sorted(folder.glob("*.parquet")) if folder.is_dir() else []


def read_snapshot(snapshots_dir: str | Path, table: str) -> pd.DataFrame | None:
    """The newest snapshot of ``table`` with the schema's columns and dtypes, or ``None``."""
    paths = snapshot_paths(snapshots_dir, table)
    if not paths:
        return None
    try:
        df = pd.read_parquet(paths[-1])
    except (OSError, ValueError) as exc:
        raise IngestError(f"cannot read snapshot {paths[-1]}: {exc}") from exc
    return I.coerce_table(df, table)


def load_table(snapshots_dir: str | Path, table: str) -> pd.DataFrame:
    """One table's current snapshot, or an empty frame with the schema's columns when it has none.

    What :func:`load_tables` gives for ``table``, without reading the other tables (a search needs
    only ``enterprises``).

    Raises:
        ValueError: ``table`` is not one of ``features.schema.TABLES``.
    """
    if table not in S.TABLES:
        raise ValueError(f"The 'table' parameter of load_table must be one of {list(S.TABLES)}. Got {table!r} instead.")
    df = read_snapshot(snapshots_dir, table)
    return I.empty_table(table) if df is None else df


def load_tables(snapshots_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Every table's current snapshot; missing tables as empty frames with the schema's columns."""
    out: dict[str, pd.DataFrame] = {}
    for table in S.TABLES:
        df = read_snapshot(snapshots_dir, table)
        out[table] = I.empty_table(table) if df is None else df
    return out


def write_rejects(rejects: pd.DataFrame, rejects_dir: str | Path, table: str, stamp: str | None = None) -> Path | None:
    """Write rejects as ``<rejects_dir>/<table>-<stamp>.csv`` (UTF-8 with BOM, opens in Excel).

    Returns ``None`` and writes nothing when there are no rejects.
    """
    if rejects.empty:
        return None
    folder = Path(rejects_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = _free_stamp(folder, stamp or new_stamp(), ".csv", prefix=f"{table}-")
    target = folder / f"{table}-{stamp}.csv"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{table}-{stamp}.", suffix=".tmp")
    os.close(fd)
    try:
        rejects[list(I.REJECT_COLUMNS)].to_csv(tmp, index=False, encoding="utf-8-sig")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# ================================================================ ingest
def ingest_file(
    path: str | Path,
    table: str,
    column_map: I.ColumnMap | str | Path | None,
    snapshots_dir: str | Path,
    rejects_dir: str | Path,
    mode: IngestMode = "replace",
    sheet: str | int | None = None,
    encoding: str | None = None,
    *,
    maps_dir: str | Path | None = None,
    to_simplified: bool = True,
    max_text_chars: int | None = None,
    allow_empty: bool = False,
    today: date | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> IngestReport:
    """Read, map, validate and store one raw file as the table's new snapshot.

    A file without one valid row (all rows bad, or no data rows at all: a header-only export) writes
    its rejects and no snapshot (``snapshot`` is ``None``): a wrong file must not wipe the current
    table. ``allow_empty=True`` means it: a file without data rows then stores an empty table.

    Args:
        path: CSV, XLSX or Parquet file.
        table: one of ``features.schema.TABLES``.
        column_map: a :class:`features.ingest.ColumnMap`, a built-in name / YAML path (needs
            ``maps_dir``), or ``None`` for the table's default (``registry-cn`` / ``zone-<table>``).
            A file whose headers are the schema's own names works with any map.
        snapshots_dir, rejects_dir: the workspace folders.
        mode: ``replace`` stores the file's rows as the whole table; ``upsert`` merges them into
            the current snapshot by key (the file's row wins).
        sheet, encoding, limits: see :func:`read_raw` (``limits``: settings ``ingest.max_xlsx_*``); without
            ``sheet``, a workbook is read from its ``DEFAULT_SHEETS[table]`` sheet when it has one (``fit_marks``:
            待核实), else from its first sheet.
        maps_dir: folder of the built-in maps.
        to_simplified, max_text_chars: text normalisation options (``IngestConfig``).
        allow_empty: store a file without data rows (``replace``: an empty table).
        today: the latest accepted date (default: today in Asia/Shanghai); see
            :func:`features.ingest.validate_table`.

    Raises:
        IngestError: unreadable file, unknown map, or required columns missing (the message names
            them and lists the columns found).
    """
    I.empty_table(table)  # unknown table → ValueError naming the valid ones
    if mode not in ("replace", "upsert"):
        raise IngestError(f"mode must be 'replace' or 'upsert'; got {mode!r}")
    cmap = _resolve_map(column_map, table, maps_dir)
    raw = read_raw(path, sheet=sheet, encoding=encoding, limits=limits, prefer_sheet=DEFAULT_SHEETS.get(table))
    report = IngestReport(file=str(path), table=table, column_map=cmap.name, mode=mode, n_read=len(raw))
    if "encoding" in raw.attrs:
        report.messages.append(f"read {len(raw)} rows, encoding {raw.attrs['encoding']}")
    if raw.attrs.get("header_row", 1) > 1:
        report.messages.append(f"header on sheet row {raw.attrs['header_row']} (title rows above it skipped)")
    mapped = I.apply_column_map(raw, cmap)
    missing = I.missing_columns(mapped, cmap)
    if missing:
        raise IngestError(
            f"{Path(path).name} cannot be loaded as {table} with column map {cmap.name!r}: missing required columns "
            f"{missing}; got columns {[str(c) for c in raw.columns]}"
        )
    report.messages += _column_messages(raw, mapped, cmap)
    unread = I.map_cell_problems(raw.attrs.get("uncached_formulas", []), list(raw.columns), cmap)
    unread += _on_required_columns(
        I.map_cell_problems(raw.attrs.get("ragged_rows", []), list(raw.columns), cmap), table
    )
    good, rejects = I.validate_table(
        mapped,
        table,
        Path(path).name,
        to_simplified=to_simplified,
        max_text_chars=max_text_chars,
        today=today,
        unread=unread,
    )
    _count(report, rejects, len(good))
    stamp = new_stamp()
    written = write_rejects(rejects, rejects_dir, table, stamp)
    report.rejects = None if written is None else str(written)
    no_data = report.n_ok == 0 and len(rejects) == 0
    if report.n_ok == 0 and not (no_data and allow_empty):  # never let a bad or empty file wipe the table
        current = read_snapshot(snapshots_dir, table)
        report.n_total = 0 if current is None else len(current)
        report.messages.append(
            "no data rows: no snapshot written, the current table is unchanged (allow_empty / --allow-empty stores "
            "an empty table)"
            if no_data
            else "no valid rows: no snapshot written, the current table is unchanged"
        )
        return report
    if mode == "upsert":
        current = read_snapshot(snapshots_dir, table)
        if current is not None:
            good, n_replaced, n_added = I.merge_upsert(current, good, table)
            report.messages.append(
                f"upsert: {n_replaced} rows replaced, {n_added} added, {len(current) - n_replaced} kept"
            )
    report.n_total = len(good)
    report.snapshot = str(write_snapshot(good, snapshots_dir, table, stamp))
    return report


def _on_required_columns(problems: list[I.CellProblem], table: str) -> list[I.CellProblem]:
    """A ragged row's problems on its required columns only (each says why the value is missing, so no
    'missing required value' hides the cause); a row without a required column keeps its first."""
    required = set(S.SCHEMAS[table].required)
    kept = [p for p in problems if p.column in required]
    rows = {p.row for p in kept}
    first: dict[int, I.CellProblem] = {}
    for p in problems:
        if p.row not in rows:
            first.setdefault(p.row, p)
    return sorted([*kept, *first.values()], key=lambda p: (p.row, p.column))


def _resolve_map(column_map: I.ColumnMap | str | Path | None, table: str, maps_dir: str | Path | None) -> I.ColumnMap:
    if isinstance(column_map, I.ColumnMap):
        if column_map.table != table:
            raise IngestError(f"column map {column_map.name!r} is for table {column_map.table!r}, not {table!r}")
        return column_map
    name = column_map if column_map is not None else default_column_map(table)
    if maps_dir is None and str(name) != IDENTITY_MAP and not Path(str(name)).is_file():
        raise IngestError(f"column map {str(name)!r} given by name needs maps_dir")
    return load_column_map(name, maps_dir or ".", table=table)


def _column_messages(raw: pd.DataFrame, mapped: pd.DataFrame, cmap: I.ColumnMap) -> list[str]:
    msgs = []
    extra = [c[len(I.EXTRA_PREFIX) :] for c in mapped.columns if c.startswith(I.EXTRA_PREFIX)]
    if extra:
        msgs.append(f"columns kept in 'extra': {extra}")
    dropped = I.unmapped_columns(raw, cmap)
    if dropped:
        msgs.append(f"columns ignored (not part of {cmap.table}): {dropped}")
    return msgs


def _count(report: IngestReport, rejects: pd.DataFrame, n_good: int) -> None:
    reasons = rejects["reason"].astype(str)
    is_dup = reasons.str.startswith("duplicate of row")
    rejected_rows = rejects.loc[reasons.str.endswith("row rejected") & ~is_dup, "row"]
    report.n_ok = n_good
    report.n_duplicates = int(is_dup.sum())
    report.n_rejected = int(rejected_rows.nunique())
    report.n_cleared = int(reasons.str.endswith("value cleared, row kept").sum())
    n_blank = report.n_read - report.n_ok - report.n_rejected - report.n_duplicates
    if n_blank > 0:
        report.messages.append(f"{n_blank} blank rows skipped")
    if len(rejects):
        kind = reasons.str.replace(r"; (row rejected|value cleared, row kept)$", "", regex=True)
        top = rejects.assign(kind=kind.str.replace(r"^duplicate of row \d+$", "duplicate of another row", regex=True))
        counts = top.groupby(["field", "kind"], sort=False).size().sort_values(ascending=False, kind="stable")
        for key, n in counts.head(5).to_dict().items():
            report.messages.append(f"{n} × {key[0]}: {key[1]}")  # type: ignore[index]
