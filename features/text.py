"""Text normalisation applied once at ingest: NFKC, traditional → simplified, whitespace.

Chinese registry and zone exports mix full-width and half-width characters (``ＡＢＣ１２３``,
``（``, ``，``, the ideographic space ``\\u3000``) and traditional and simplified characters
(``光電子`` / ``光电子``). Every text value the engine stores goes through the same three steps so
that equal things compare equal and search sees one spelling:

1. Unicode NFKC — full-width letters, digits and punctuation become half-width, compatibility
   ideographs become the unified ones, ``\\u3000`` and no-break spaces become spaces.
2. Traditional → simplified, character by character, with OpenCC's single-character table
   ``TSCharacters.txt`` shipped in the ``opencc-python-reimplemented`` package (first candidate of
   each entry). Phrase-level conversion is not attempted: it is 10–100× slower and the character
   table is what a search index needs. The table is read once, lazily, and cached.
3. Zero-width characters and soft hyphens are removed; every run of whitespace or control
   characters becomes one space; leading and trailing whitespace is stripped.

:func:`normalize_text` does this for one string with ``str.translate``; :func:`normalize_series`
does it for a whole column with Arrow's vectorised NFKC and regular expressions plus one
``str.translate`` call per chunk of rows, which is what makes millions of rows practical.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from importlib import resources
from typing import Any, Final

import numpy as np
import pandas as pd

OPENCC_PACKAGE = "opencc"
OPENCC_CHAR_TABLE = "TSCharacters.txt"
# Removed outright (a zero-width space inside a word must not become a space).
_DELETE_CHARS = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
# Whitespace and controls collapsed to one space. Same set in the Python and the Arrow (RE2) form.
_SPACE_CLASS = r"\s\x00-\x1f\x7f-\x9f\u2028\u2029"
_SPACE_RE = re.compile(f"[{_SPACE_CLASS}]+")
_SPACE_RE2 = r"[\s\x{00}-\x{1f}\x{7f}-\x{9f}\x{2028}\x{2029}]+"
_DELETE_RE2 = "[" + "".join(f"\\x{{{ord(c):04x}}}" for c in _DELETE_CHARS) + "]"


PROVINCE_SUFFIX: Final = r"(壮族自治区|回族自治区|维吾尔自治区|特别行政区|自治区|省|市)$"
"""The administrative suffix of a province-level name: '湖北省' and '湖北' name the same province."""


def province_stem(name: Any) -> str:
    """'湖北省' → '湖北', '广西壮族自治区' → '广西', ' 上海市 ' → '上海'; missing → ''."""
    if name is None or (isinstance(name, float) and name != name) or name is pd.NA:
        return ""
    return re.sub(PROVINCE_SUFFIX, "", str(name).strip())


@lru_cache(maxsize=1)
def traditional_to_simplified_table() -> dict[int, int]:
    """``{ord(traditional): ord(simplified)}`` from OpenCC's single-character table (cached).

    Raises:
        RuntimeError: the installed ``opencc-python-reimplemented`` lacks its dictionary file.
    """
    try:
        text = (resources.files(OPENCC_PACKAGE) / "dictionary" / OPENCC_CHAR_TABLE).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise RuntimeError(
            f"traditional→simplified table {OPENCC_PACKAGE}/dictionary/{OPENCC_CHAR_TABLE} not found; "
            "install opencc-python-reimplemented"
        ) from exc
    return parse_opencc_char_table(text)


def parse_opencc_char_table(text: str) -> dict[int, int]:
    """Parse OpenCC ``source<TAB>target1 target2 …`` lines into a one-to-one code-point table.

    Only single-character sources are kept and the first target wins; identities are dropped.

    >>> parse_opencc_char_table("電\\t电\\n乾\\t干 乾\\n藉\\t藉 借\\n")
    {38651: 30005, 20094: 24178}
    """
    table: dict[int, int] = {}
    for line in text.splitlines():
        src, _, targets = line.partition("\t")
        first = targets.split(" ", 1)[0].strip()
        if len(src) == 1 and len(first) == 1 and src != first:
            table[ord(src)] = ord(first)
    return table


@lru_cache(maxsize=2)
def _translate_table(to_simplified: bool) -> dict[int, int | None]:
    table: dict[int, int | None] = dict.fromkeys(map(ord, _DELETE_CHARS))
    if to_simplified:
        table.update(traditional_to_simplified_table())
    return table


def normalize_text(s: Any, to_simplified: bool = True) -> str:
    """Normalise one value: NFKC, traditional → simplified, whitespace collapsed and stripped.

    ``None`` and NaN give ``""``; non-strings are converted with ``str`` first.

    >>> normalize_text("  光電子器件製造（ＡＢＣ）\\u3000有限公司 ")
    '光电子器件制造(ABC) 有限公司'
    """
    if s is None or (isinstance(s, float) and np.isnan(s)) or s is pd.NA:
        return ""
    text = unicodedata.normalize("NFKC", s if isinstance(s, str) else str(s))
    text = text.translate(_translate_table(to_simplified))
    return _SPACE_RE.sub(" ", text).strip()


def normalize_series(values: pd.Series, to_simplified: bool = True) -> pd.Series:
    """Vectorised :func:`normalize_text` over a column; missing values stay missing.

    Args:
        values: any Series (non-strings are converted with ``str``), shape (n,).
        to_simplified: convert traditional characters to simplified.

    Returns:
        A Series of pandas' ``str`` dtype with the same index, shape (n,).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(values.dtype, pd.StringDtype):
        values = values.astype("str")
    arr = pa.array(values)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = pc.utf8_normalize(arr.cast(pa.large_string()), form="NFKC")
    if to_simplified:
        arr = translate_arrow(arr, traditional_to_simplified_table())
    arr = pc.replace_substring_regex(arr, pattern=_DELETE_RE2, replacement="")
    arr = pc.utf8_trim_whitespace(pc.replace_substring_regex(arr, pattern=_SPACE_RE2, replacement=" "))
    return pd.Series(pd.arrays.ArrowStringArray(arr).astype("str"), index=values.index, name=values.name)


def translate_arrow(arr: Any, table: dict[int, int]) -> Any:
    """Apply a one-to-one code-point ``table`` to an Arrow ``large_string`` array, vectorised.

    Works on the UTF-8 bytes: every 3-byte sequence (the whole CJK basic plane) is decoded with
    numpy, looked up in a dense table and rewritten in place when both sides are 3 bytes long. The
    rare rows where a 4-byte character is involved fall back to ``str.translate``. The result equals
    ``[v.translate(table) for v in arr]``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if arr.offset:  # the buffers below are read from position 0
        arr = arr.take(pa.array(np.arange(len(arr))))
    lut, wide_src = _dense_tables(tuple(sorted(table.items())))
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]].copy()
    lead = np.flatnonzero((data >= 0xE0) & (data <= 0xEF))
    cp = ((data[lead] & 0x0F).astype(np.int32) << 12) | ((data[lead + 1] & 0x3F).astype(np.int32) << 6)
    cp |= data[lead + 2] & 0x3F
    new = lut[cp]
    hit = np.flatnonzero(new != cp)
    pos, new = lead[hit], new[hit]
    narrow = new < 0x10000
    data[pos[narrow]] = 0xE0 | (new[narrow] >> 12)
    data[pos[narrow] + 1] = 0x80 | ((new[narrow] >> 6) & 0x3F)
    data[pos[narrow] + 2] = 0x80 | (new[narrow] & 0x3F)
    fallback_pos = [pos[~narrow]]
    if wide_src.size:
        lead4 = np.flatnonzero(data >= 0xF0)
        cp4 = ((data[lead4] & 0x07).astype(np.int32) << 18) | ((data[lead4 + 1] & 0x3F).astype(np.int32) << 12)
        cp4 |= ((data[lead4 + 2] & 0x3F).astype(np.int32) << 6) | (data[lead4 + 3] & 0x3F)
        fallback_pos.append(lead4[np.isin(cp4, wide_src)])
    rel = offsets - offsets[0]
    out = pa.LargeStringArray.from_buffers(
        len(arr), pa.py_buffer(rel.tobytes()), pa.py_buffer(data.tobytes()), arr.buffers()[0], arr.null_count
    )
    rows = np.unique(np.searchsorted(rel, np.concatenate(fallback_pos), side="right") - 1)
    if rows.size == 0:
        return out
    mask = np.zeros(len(arr), dtype=bool)
    mask[rows] = True
    fixed = [v.translate(table) for v in arr.take(pa.array(rows)).to_pylist()]
    return pc.replace_with_mask(out, pa.array(mask), pa.array(fixed, type=pa.large_string()))


@lru_cache(maxsize=4)
def _dense_tables(items: tuple[tuple[int, int], ...]) -> tuple[np.ndarray, np.ndarray]:
    """A dense BMP lookup array (identity where unmapped) and the sorted astral sources."""
    lut = np.arange(0x10000, dtype=np.int32)
    wide = []
    for src, dst in items:
        if src < 0x10000:
            lut[src] = dst
        else:
            wide.append(src)
    return lut, np.asarray(sorted(wide), dtype=np.int32)
