"""Credit-code check character (property tests) and registered-capital parsing."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.validate import (
    CREDIT_CODE_CHARSET,
    FX_RATES_CNY,
    chinese_number,
    credit_code_check_char,
    is_valid_credit_code,
    make_credit_codes,
    parse_capital_cny,
    parse_capital_series,
    valid_credit_codes,
)

bodies = st.text(alphabet=CREDIT_CODE_CHARSET, min_size=17, max_size=17)


@given(bodies)
@settings(max_examples=200, deadline=None)
def test_is_valid_credit_code_accepts_generated_codes(body: str) -> None:
    assert is_valid_credit_code(body + credit_code_check_char(body))


@given(bodies, st.integers(0, 17), st.text(alphabet=CREDIT_CODE_CHARSET + "IOSVZa -", min_size=1, max_size=1))
@settings(max_examples=300, deadline=None)
def test_is_valid_credit_code_rejects_any_one_character_change(body: str, pos: int, char: str) -> None:
    code = body + credit_code_check_char(body)
    if code[pos] == char:
        return
    changed = code[:pos] + char + code[pos + 1 :]
    assert not is_valid_credit_code(changed)
    assert not valid_credit_codes(pd.Series([changed]))[0]


@given(st.lists(bodies, min_size=1, max_size=20), st.lists(st.text(max_size=20), max_size=10))
@settings(max_examples=50, deadline=None)
def test_valid_credit_codes_matches_scalar(good: list[str], other: list[str]) -> None:
    codes = list(make_credit_codes(np.array(good))) + other
    expected = [is_valid_credit_code(c) for c in codes]
    assert valid_credit_codes(pd.Series(codes)).tolist() == expected


def test_credit_code_check_char_known_code() -> None:
    assert credit_code_check_char("91420100MA4K0000X") == "J"


def test_credit_code_check_char_rejects_wrong_length() -> None:
    with pytest.raises(ValueError, match=re.escape("credit code body must have 17 characters; got 3 ('914')")):
        credit_code_check_char("914")


@given(st.lists(bodies, max_size=30))
@settings(max_examples=100, deadline=None)
def test_make_credit_codes_appends_the_scalar_check_character(good: list[str]) -> None:
    codes = make_credit_codes(np.array(good, dtype=object))
    assert codes.dtype == object
    assert codes.tolist() == [b + credit_code_check_char(b) for b in good]
    assert make_credit_codes(np.array(good, dtype="<U17")).tolist() == codes.tolist()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("914", "credit code body must have 17 characters; got 3 ('914')"),
        ("91420100MA4K0000XJ", "credit code body must have 17 characters; got 18 ('91420100MA4K0000XJ')"),
        ("91420100MA4K0000I", "credit code body '91420100MA4K0000I' has a character outside"),
        ("91420100MA4K0000光", "credit code body '91420100MA4K0000光' has a character outside"),
    ],
)
def test_make_credit_codes_rejects_a_bad_body_as_the_scalar_function(body: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        make_credit_codes(np.array(["91420100MA4K0000X", body], dtype=object))


CAPITAL = [
    ("5000万人民币", 5e7),
    ("1.2亿美元", 1.2e8 * 7.1),
    ("300万(美元)", 3e6 * 7.1),
    ("300万（美元）", 3e6 * 7.1),
    ("500万元", 5e6),
    ("1,000万元人民币", 1e7),
    ("50万港元", 5e5 * 0.91),
    ("50万港幣", 5e5 * 0.91),
    ("100万欧元", 1e6 * 7.8),
    ("2000万日元", 2e7 * 0.048),
    ("10万英镑", 1e5 * 9.0),
    ("５０００萬元人民幣", 5e7),
    ("人民币5000万元", 5e7),
    ("USD 300万", 3e6 * 7.1),
    ("100万元整", 1e6),
    ("123456", 123456.0),
    ("0.5亿", 5e7),
    ("12.5", 12.5),
    ("壹仟万元人民币", 1e7),
    ("五千万美元", 5e7 * 7.1),
    ("一亿二千万元", 1.2e8),
    ("贰佰伍拾万港元", 2.5e6 * 0.91),
    ("5百万美元", 5e6 * 7.1),
]


@pytest.mark.parametrize(("text", "expected"), CAPITAL)
def test_parse_capital_cny_table(text: str, expected: float) -> None:
    assert parse_capital_cny(text) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("text", ["", "  ", "-", "--", "未公开", None, float("nan")])
def test_parse_capital_cny_missing_is_none(text: str | None) -> None:
    assert parse_capital_cny(text) is None


def test_parse_capital_cny_unknown_currency_names_value() -> None:
    known = sorted(FX_RATES_CNY)
    msg = f"registered capital '100万卢布' has unknown currency '卢布'; known: {known}"
    with pytest.raises(ValueError, match=re.escape(msg)):
        parse_capital_cny("100万卢布")


@pytest.mark.parametrize("text", ["abc", "万元", "5000万-1亿", "1.2.3万"])
def test_parse_capital_cny_garbage_names_value(text: str) -> None:
    msg = f"registered capital {text!r} is not an amount such as '5000万人民币' or '1.2亿美元'"
    with pytest.raises(ValueError, match=re.escape(msg)):
        parse_capital_cny(text)


def test_chinese_number_values() -> None:
    assert [chinese_number(t) for t in ("十", "十五", "一百零五", "三千零五万", "壹仟万", "一亿二千万", "一万亿")] == [
        10, 15, 105, 30_050_000, 10_000_000, 120_000_000, 10**12,
    ]  # fmt: skip


def test_parse_capital_series_values_and_errors() -> None:
    values = pd.Series(["5000万人民币", None, "abc", "5000万人民币", "-"], index=[5, 6, 7, 8, 9])
    amounts, errors = parse_capital_series(values)
    assert list(amounts.index) == [5, 6, 7, 8, 9]
    np.testing.assert_array_equal(amounts.to_numpy(), [5e7, np.nan, np.nan, 5e7, np.nan])
    assert [None if pd.isna(e) else e for e in errors] == [
        None,
        None,
        "registered capital 'abc' is not an amount such as '5000万人民币' or '1.2亿美元'",
        None,
        None,
    ]


# ---------------------------------------------------------------- date bounds
def test_event_date_bounds_are_importable_constants() -> None:
    from datetime import date

    from features.schema import DATE_TIMEZONE, EVENT_DATE_COLUMNS, EVENT_DATE_MIN, FOUNDED_DATE_MIN

    assert (EVENT_DATE_MIN, FOUNDED_DATE_MIN, DATE_TIMEZONE) == (date(1949, 10, 1), date(1800, 1, 1), "Asia/Shanghai")
    assert EVENT_DATE_COLUMNS == {
        "enterprises": ("financing_date",),
        "relations": ("date",),
        "signals": ("date",),
        "outcomes": ("date",),
        "fit_marks": ("date",),
    }


def test_today_in_zone_is_the_shanghai_calendar_day() -> None:
    from datetime import UTC, date, datetime

    from features.validate import today_in_zone

    assert today_in_zone(datetime(2026, 12, 3, 15, 59, tzinfo=UTC)) == date(2026, 12, 3)
    assert today_in_zone(datetime(2026, 12, 3, 16, 0, tzinfo=UTC)) == date(2026, 12, 4)
    assert isinstance(today_in_zone(), date)


def test_event_date_problem_names_the_bound() -> None:
    from datetime import date, datetime

    from features.validate import event_date_problem

    today = date(2026, 12, 3)
    assert event_date_problem(date(9999, 12, 31), today=today) == "after today (2026-12-03, Asia/Shanghai)"
    assert event_date_problem(datetime(1949, 9, 30, 23, 0), today=today) == "before 1949-10-01"
    assert event_date_problem(pd.Timestamp("1949-10-01"), today=today) is None
    assert event_date_problem(today, today=today) is None
