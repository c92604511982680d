"""Text normalisation: NFKC, traditional → simplified, whitespace; scalar and vectorised agree."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.text import (
    normalize_series,
    normalize_text,
    parse_opencc_char_table,
    province_stem,
    traditional_to_simplified_table,
    translate_arrow,
)

CASES = [
    ("  光電子器件製造（ＡＢＣ）\u3000有限公司 ", "光电子器件制造(ABC) 有限公司"),
    ("武漢長飛光纖光纜股份有限公司", "武汉长飞光纤光缆股份有限公司"),
    ("註冊資本：５０００萬元人民幣", "注册资本:5000万元人民币"),
    ("經營範圍：\n\t技術開發、技術諮詢；\r\n半導體雷射器", "经营范围: 技术开发、技术咨询; 半导体雷射器"),
    ("ｈｔｔｐｓ：／／ｗｗｗ．ｅｘａｍｐｌｅ．ｃｏｍ", "https://www.example.com"),
    ("光\u200b模\u200d块\ufeff", "光模块"),
    ("臺灣積體電路製造", "台湾积体电路制造"),
    ("", ""),
    ("   ", ""),
]


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_normalize_text_mixed_traditional_fullwidth(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_normalize_text_missing_and_non_strings() -> None:
    assert [normalize_text(v) for v in (None, float("nan"), pd.NA, 12, 1.5)] == ["", "", "", "12", "1.5"]


def test_normalize_text_keeps_traditional_when_asked() -> None:
    assert normalize_text("光電子（ＡＢＣ）", to_simplified=False) == "光電子(ABC)"


def test_normalize_series_matches_cases_and_keeps_missing() -> None:
    values = pd.Series([raw for raw, _ in CASES] + [None, np.nan], index=range(10, 10 + len(CASES) + 2), name="x")
    out = normalize_series(values)
    assert out.name == "x"
    assert list(out.index) == list(values.index)
    assert out.iloc[: len(CASES)].tolist() == [expected for _, expected in CASES]
    assert out.iloc[len(CASES) :].isna().all()
    assert out.dtype == "str"


def test_normalize_series_agrees_with_scalar_on_random_text(random_seed: int) -> None:
    rng = np.random.default_rng(random_seed)
    table = traditional_to_simplified_table()
    alphabet = np.array(
        [chr(c) for c in list(table)[:600]]  # traditional sources, some of them outside the BMP
        + list("abcXYZ019 光电子，、（）：\u3000\t\nＡ１\u200b")
        + [chr(0x4E00 + i) for i in range(200)]
        + ["\U0001f600", "\U00020000"]
    )
    values = [
        None if rng.random() < 0.05 else "".join(rng.choice(alphabet, size=int(rng.integers(0, 40))))
        for _ in range(3000)
    ]
    vectorised = normalize_series(pd.Series(values, dtype=object))
    expected = [None if v is None else normalize_text(v) for v in values]
    assert [None if pd.isna(v) else v for v in vectorised] == expected


def test_normalize_series_of_numbers() -> None:
    assert normalize_series(pd.Series([1, 2.5, None])).tolist()[:2] == ["1.0", "2.5"]


def test_parse_opencc_char_table_keeps_first_single_character_candidate() -> None:
    text = "電\t电\n乾\t干 乾\n藉\t藉 借\n後台\t后台\n"
    assert parse_opencc_char_table(text) == {ord("電"): ord("电"), ord("乾"): ord("干")}


def test_traditional_to_simplified_table_loaded_from_opencc() -> None:
    table = traditional_to_simplified_table()
    assert len(table) > 4000
    assert table[ord("電")] == ord("电") and table[ord("纖")] == ord("纤")
    assert ord("电") not in table


def test_translate_arrow_on_sliced_array_with_nulls() -> None:
    import pyarrow as pa

    arr = pa.array(["開", None, "光纖電纜", "㑮a", "x"], type=pa.large_string()).slice(1)
    out = translate_arrow(arr, traditional_to_simplified_table())
    assert out.to_pylist() == [None, "光纤电缆", "\U0002b748a", "x"]


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("湖北省", "湖北"),
        ("广西壮族自治区", "广西"),
        (" 上海市 ", "上海"),
        ("香港特别行政区", "香港"),
        ("湖北", "湖北"),
        (None, ""),
        (float("nan"), ""),
    ],
)
def test_province_stem_drops_the_administrative_suffix(name: object, stem: str) -> None:
    assert province_stem(name) == stem


def test_normalize_text_turns_c1_controls_into_spaces_like_c0() -> None:
    assert normalize_text("光\x85模\x9f块\x00器件") == "光 模 块 器件"
    assert normalize_series(pd.Series(["光\x85模\x9f块\x00器件"])).tolist() == ["光 模 块 器件"]
