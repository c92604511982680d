"""features.words: jieba segmentation with domain words, field tokens and node query terms."""

from __future__ import annotations

import pandas as pd
import pytest

from features.words import (
    WordSegmenter,
    chain_user_words,
    enterprise_field_tokens,
    node_query_terms,
    text_query_terms,
)


@pytest.fixture(scope="module")
def segmenter() -> WordSegmenter:
    return WordSegmenter(["光模块", "光收发模块", "800G光模块", "硅光芯片"])


def test_domain_words_stay_whole_and_text_is_normalised(segmenter: WordSegmenter) -> None:
    words = segmenter.tokens("武漢光迅科技股份有限公司：光收發模塊、800G光模块及矽光芯片")
    assert "光收发模块" in words  # traditional → simplified, then the user word
    assert "800g光模块" in words  # lower-cased like the dictionary entry
    assert not {"公司", "股份有限公司", "、", "："} & set(words)  # stop words and punctuation dropped
    assert segmenter.tokens(None) == [] and segmenter.tokens(float("nan")) == [] and segmenter.tokens("  ") == []


def test_fingerprint_follows_the_user_words() -> None:
    a, b = WordSegmenter(["光模块", "激光器"]), WordSegmenter(["激光器", "光模块", "光模块"])
    assert a.fingerprint == b.fingerprint  # order and duplicates do not matter
    assert WordSegmenter(["光模块"]).fingerprint != a.fingerprint


def test_field_tokens_and_query_terms(segmenter: WordSegmenter) -> None:
    ents = pd.DataFrame({"enterprise_id": ["e1", "e2"], "name": ["光模块公司", None], "description": ["硅光芯片", ""]})
    fields = enterprise_field_tokens(ents, segmenter)
    assert set(fields) == {"name", "industry_name", "products", "business_scope", "description"}
    assert fields["industry_name"] == [[], []] and fields["name"][1] == []
    assert "硅光芯片" in fields["description"][0] and "光模块" in fields["name"][0]
    nodes = pd.DataFrame(
        {
            "node_id": ["n"],
            "name": ["光模块"],
            "products": [["光收发模块", "光模块"]],
            "keywords": [[]],
            "description": ["光模块封装"],
        }  # fmt: skip
    )
    (terms,) = node_query_terms(nodes, segmenter, {"name": 2.0, "products": 1.0})
    assert terms["光模块"] == pytest.approx(2.0 + 1.0)  # name (×2) + one product, description not asked for
    assert terms["光收发模块"] == pytest.approx(1.0) and "封装" not in terms
    assert text_query_terms("硅光芯片 硅光芯片", segmenter)["硅光芯片"] == 2.0
    with pytest.raises(ValueError, match="unknown query parts"):
        node_query_terms(nodes, segmenter, {"title": 1.0})
    assert chain_user_words(nodes) == ["光模块", "光收发模块", "光模块"]
