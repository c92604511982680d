"""Field validators: the unified social credit code (GB 32100-2015), registered capital and the
bounds of dates (``features.schema.EVENT_DATE_MIN`` … today in ``DATE_TIMEZONE``)."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Final

import numpy as np
import pandas as pd

from features import schema as S
from features.text import normalize_text

CREDIT_CODE_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # 31 characters, no I, O, S, V, Z
CREDIT_CODE_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_CHAR_VALUE = {c: i for i, c in enumerate(CREDIT_CODE_CHARSET)}
_CODE_POINT_VALUE = np.full(256, -1, dtype=np.int64)  # Latin-1 code point -> charset index, -1 outside
_CODE_POINT_VALUE[[ord(c) for c in CREDIT_CODE_CHARSET]] = np.arange(len(CREDIT_CODE_CHARSET))
_CHARSET_POINTS = np.asarray([ord(c) for c in CREDIT_CODE_CHARSET], dtype=np.uint32)


def credit_code_check_char(first17: str) -> str:
    """The 18th (check) character of a unified social credit code from its first 17 characters.

    >>> credit_code_check_char("91420100MA4KL7X1")  # doctest: +SKIP
    """
    if len(first17) != 17:
        raise ValueError(f"credit code body must have 17 characters; got {len(first17)} ({first17!r})")
    try:
        total = sum(_CHAR_VALUE[c] * w for c, w in zip(first17, CREDIT_CODE_WEIGHTS, strict=True))
    except KeyError as exc:
        raise ValueError(f"credit code body {first17!r} has a character outside {CREDIT_CODE_CHARSET}: {exc}") from None
    return CREDIT_CODE_CHARSET[(31 - total % 31) % 31]


def is_valid_credit_code(code: str) -> bool:
    """True when ``code`` has 18 characters of the GB 32100-2015 charset and a correct check char."""
    if not isinstance(code, str) or len(code) != 18 or any(c not in _CHAR_VALUE for c in code):
        return False
    return credit_code_check_char(code[:17]) == code[17]


def valid_credit_codes(codes: pd.Series) -> np.ndarray:
    """Vectorised :func:`is_valid_credit_code` over a string Series; returns a bool array."""
    s = codes.astype("string").fillna("")
    ok_len = (s.str.len() == 18).to_numpy(dtype=bool)
    out = np.zeros(len(s), dtype=bool)
    if not ok_len.any():
        return out
    arr = np.frombuffer("".join(s[ok_len].tolist()).encode("ascii", errors="replace"), dtype=np.uint8)
    vals = _CODE_POINT_VALUE[arr.reshape(-1, 18)]
    charset_ok = (vals >= 0).all(axis=1)
    out[np.flatnonzero(ok_len)] = charset_ok & (_check_index(vals[:, :17]) == vals[:, 17])
    return out


def make_credit_codes(bodies: np.ndarray) -> np.ndarray:
    """Each 17-character body with its check character appended: a vectorised :func:`credit_code_check_char`
    (the sample generator makes its codes with it).

    Args:
        bodies: 1-D array (or list) of 17-character strings of :data:`CREDIT_CODE_CHARSET`; a ``<U17``
            array is used without a copy.

    Returns:
        An object array of the 18-character codes.

    Raises:
        ValueError: as :func:`credit_code_check_char`, for the first body of another length or with a
            character outside the charset.
    """
    text = np.asarray(bodies, dtype=str).reshape(-1)
    if text.dtype.itemsize > 17 * 4:
        too_long = np.flatnonzero(np.char.str_len(text) > 17)
        if len(too_long):
            credit_code_check_char(str(text[too_long[0]]))
    n = len(text)
    points = np.ascontiguousarray(text.astype("<U17", copy=False)).view(np.uint32).reshape(n, 17)
    # -1 outside the charset: code points over 255 clamp to ÿ, a short body is padded with code point 0
    vals = _CODE_POINT_VALUE[np.minimum(points, 255)]
    wrong = np.flatnonzero((vals < 0).any(axis=1))
    if len(wrong):
        credit_code_check_char(str(text[wrong[0]]))
    codes = np.empty((n, 18), dtype=np.uint32)
    codes[:, :17] = points
    codes[:, 17] = _CHARSET_POINTS[_check_index(vals)]
    return codes.view("<U18").reshape(n).astype(object)


def _check_index(vals: np.ndarray) -> np.ndarray:
    """GB 32100-2015 check character, as a charset index, of an (n, 17) array of charset indices."""
    total = (vals * np.asarray(CREDIT_CODE_WEIGHTS)).sum(axis=1)
    return (31 - total % 31) % 31


# ---------------------------------------------------------------- dates
def _zone() -> tzinfo:
    try:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        return ZoneInfo(S.DATE_TIMEZONE)
    except (ImportError, ZoneInfoNotFoundError, ValueError):  # no tz database: China has kept UTC+8 since 1991
        return timezone(timedelta(hours=8), S.DATE_TIMEZONE)


def today_in_zone(now: datetime | None = None) -> date:
    """Today's calendar date in ``features.schema.DATE_TIMEZONE`` (Asia/Shanghai), read when called.

    ``now`` replaces the clock (tests); a naive ``now`` is taken as UTC.
    """
    moment = datetime.now(UTC) if now is None else now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return moment.astimezone(_zone()).date()


def date_bounds(table: str, column: str, today: date | None = None) -> tuple[date, date]:
    """``(earliest, latest)`` accepted for a date column: event dates (``EVENT_DATE_COLUMNS``) from
    ``EVENT_DATE_MIN``, other dates (``founded``) from ``FOUNDED_DATE_MIN``; both up to ``today``."""
    earliest = S.EVENT_DATE_MIN if column in S.EVENT_DATE_COLUMNS.get(table, ()) else S.FOUNDED_DATE_MIN
    return earliest, today_in_zone() if today is None else today


def date_bound_problem(value: date, earliest: date, today: date) -> str | None:
    """Why ``value`` (a date, datetime or Timestamp; its day counts) is outside ``earliest`` … ``today``, else None."""
    day = value.date() if isinstance(value, datetime) else value
    if day < earliest:
        return f"before {earliest.isoformat()}"
    if day > today:
        return f"after today ({today.isoformat()}, {S.DATE_TIMEZONE})"
    return None


def event_date_problem(value: date, today: date | None = None) -> str | None:
    """Why an event date (an outcome, signal, relation or feedback date) is not acceptable, else None.

    >>> event_date_problem(date(9999, 12, 31), today=date(2026, 12, 3))
    'after today (2026-12-03, Asia/Shanghai)'
    """
    return date_bound_problem(value, S.EVENT_DATE_MIN, today_in_zone() if today is None else today)


# ---------------------------------------------------------------- registered capital
# Fixed conversion rates to CNY used for registered capital, documented in docs/data.md. They are
# deliberately constants (approximate 2024–2025 levels), not live quotes: registered capital is a
# size signal, and a fixed table keeps ingest reproducible. Change them here only.
FX_RATES_CNY: Final[dict[str, float]] = {
    "CNY": 1.0,
    "USD": 7.1,
    "EUR": 7.8,
    "HKD": 0.91,
    "JPY": 0.048,
    "GBP": 9.0,
    "TWD": 0.22,
    "MOP": 0.88,
    "SGD": 5.3,
    "AUD": 4.7,
    "CAD": 5.2,
    "CHF": 8.1,
    "KRW": 0.0052,
}
CURRENCY_ALIASES: Final[dict[str, str]] = {
    "": "CNY", "元": "CNY", "人民币": "CNY", "人民币元": "CNY", "元人民币": "CNY", "rmb": "CNY", "cny": "CNY", "¥": "CNY",
    "美元": "USD", "美金": "USD", "usd": "USD", "us$": "USD", "$": "USD",
    "欧元": "EUR", "eur": "EUR", "€": "EUR",
    "港元": "HKD", "港币": "HKD", "hkd": "HKD", "hk$": "HKD",
    "日元": "JPY", "jpy": "JPY", "円": "JPY",
    "英镑": "GBP", "gbp": "GBP", "£": "GBP",
    "新台币": "TWD", "台币": "TWD", "twd": "TWD",
    "澳门元": "MOP", "澳门币": "MOP", "mop": "MOP",
    "新加坡元": "SGD", "sgd": "SGD",
    "澳元": "AUD", "澳大利亚元": "AUD", "aud": "AUD",
    "加元": "CAD", "加拿大元": "CAD", "cad": "CAD",
    "瑞士法郎": "CHF", "chf": "CHF",
    "韩元": "KRW", "krw": "KRW",
}  # fmt: skip
UNIT_MULTIPLIERS: Final[dict[str, float]] = {
    "": 1.0, "千": 1e3, "万": 1e4, "十万": 1e5, "百万": 1e6, "千万": 1e7, "亿": 1e8, "万亿": 1e12,
}  # fmt: skip
# Values meaning "not given" in registry exports; they parse to None rather than an error.
MISSING_TOKENS: Final = frozenset(
    {
        "",
        "-",
        "--",
        "—",
        "/",
        "无",
        "暂无",
        "未知",
        "不详",
        "待定",
        "未公开",
        "未公示",
        "未披露",
        "见章程",
        "null",
        "none",
        "nan",
        "n/a",
    }
)
_CAPITAL_RE = re.compile(
    r"^(?P<pre>[^\d.]*?)(?P<num>\d+(?:\.\d*)?|\.\d+)(?P<unit>万亿|十万|百万|千万|千|万|亿)?(?P<post>[^\d]*)$"
)
_CAPITAL_STRIP = str.maketrans("", "", " ,()[]（）【】\u3000\t")


_CN_DIGITS: Final = {
    "零": 0, "〇": 0, "一": 1, "壹": 1, "二": 2, "贰": 2, "两": 2, "三": 3, "叁": 3, "四": 4, "肆": 4,
    "五": 5, "伍": 5, "六": 6, "陆": 6, "七": 7, "柒": 7, "八": 8, "捌": 8, "九": 9, "玖": 9,
}  # fmt: skip
_CN_SMALL_UNITS: Final = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_CN_NUMBER_RE = re.compile(
    "(?=[^万亿]*[" + "".join(_CN_DIGITS) + "])[" + "".join(_CN_DIGITS) + "".join(_CN_SMALL_UNITS) + "万亿]+"
)


def chinese_number(text: str) -> int:
    """The value of a Chinese numeral such as ``壹仟万`` or ``一亿二千万`` (digits and units only).

    >>> chinese_number("壹仟万"), chinese_number("一亿二千万"), chinese_number("两百五十")
    (10000000, 120000000, 250)
    """
    total, section, num = 0, 0, 0
    for ch in text:
        if ch in _CN_DIGITS:
            num = _CN_DIGITS[ch]
        elif ch in _CN_SMALL_UNITS:
            section += (num or 1) * _CN_SMALL_UNITS[ch]
            num = 0
        elif ch == "万":
            total += (section + num) * 10_000
            section = num = 0
        elif ch == "亿":
            total = (total + section + num) * 100_000_000
            section = num = 0
        else:
            raise ValueError(f"{ch!r} is not a Chinese numeral character")
    return total + section + num


def _cn_number_digits(m: re.Match[str]) -> str:
    return str(chinese_number(m[0]))


def parse_capital_cny(value: str | None) -> float | None:
    """Registered capital in CNY (yuan) from a registry string, or ``None`` when not given.

    A number, an optional unit (千/万/百万/千万/亿/万亿) and an optional currency before or after it
    (人民币, 元, 美元, 港元, 欧元, 日元, 英镑, … or ISO codes), with or without brackets, thousands
    separators and full-width characters; the number may also be written in Chinese numerals,
    including the financial forms (``壹仟万元``, ``五千万美元``). A plain number is yuan. Foreign currencies are converted
    with the fixed rates in :data:`FX_RATES_CNY`.

    >>> parse_capital_cny("5000万人民币"), parse_capital_cny("300万(美元)"), parse_capital_cny("")
    (50000000.0, 21300000.0, None)

    Raises:
        ValueError: an unknown currency or text that is not an amount; the message names the value.
    """
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = normalize_text(value).lower()
    if text in MISSING_TOKENS:
        return None
    text = _CN_NUMBER_RE.sub(_cn_number_digits, text.translate(_CAPITAL_STRIP).removesuffix("整"))
    m = _CAPITAL_RE.match(text)
    if m is None:
        raise ValueError(f"registered capital {value!r} is not an amount such as '5000万人民币' or '1.2亿美元'")
    currency = m["pre"] + m["post"]
    code = CURRENCY_ALIASES.get(currency) or CURRENCY_ALIASES.get(currency.removesuffix("元"))
    if code is None:
        raise ValueError(
            f"registered capital {value!r} has unknown currency {currency!r}; known: {sorted(set(CURRENCY_ALIASES.values()))}"
        )
    amount = float(m["num"]) * UNIT_MULTIPLIERS[m["unit"] or ""] * FX_RATES_CNY[code]
    if not math.isfinite(amount):
        raise ValueError(f"registered capital {value!r} is not a finite amount")
    return amount


def parse_capital_series(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Vectorised :func:`parse_capital_cny`: each distinct string is parsed once.

    Returns:
        ``(amounts, errors)``, both with ``values``' index: float64 CNY (NaN when missing or bad)
        and the error message for bad values (missing elsewhere).
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    parsed = np.full(len(uniques) + 1, np.nan)  # last slot: the NA sentinel -1
    messages = np.full(len(uniques) + 1, None, dtype=object)
    for i, u in enumerate(uniques):
        try:
            amount = parse_capital_cny(u)
        except ValueError as exc:
            messages[i] = str(exc)
        else:
            parsed[i] = np.nan if amount is None else amount
    amounts = pd.Series(parsed[codes], index=values.index, dtype="float64", name=values.name)
    errors = pd.Series(messages[codes], index=values.index, dtype="str", name=values.name)
    return amounts, errors
