"""Word segmentation for the word-level lexical retriever (BM25 over fields), and its query terms.

Chinese has no spaces, so words come from ``jieba`` in search mode (``cut_for_search``: a long word
and the dictionary words inside it, e.g. 硅光模块 → 光模块, 模块, 硅光模块), after the same
normalisation as every other text (``features.text.normalize_text``: NFKC, traditional → simplified)
and lower-casing. The chains' own product and keyword lists are added to the dictionary
(:class:`WordSegmenter` ``user_words``), so that 光收发模块 or 800g光模块 stay whole words and a
node's product matches a company's product exactly. Punctuation, white space and a short list of
words every company profile uses (公司, 主要, 产品, 业务 …) are dropped.

Pure functions over frames; the segmenter holds jieba's dictionary (loaded lazily, ~1 s once per
process) and is deterministic for the same ``user_words``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from typing import Any, Final

import pandas as pd

from features.schema import COL_BUSINESS_SCOPE, COL_DESCRIPTION, COL_INDUSTRY_NAME, COL_NAME, COL_PRODUCTS
from features.text import normalize_text

#: Fields of an enterprise that the word index reads, in profile order.
WORD_FIELDS: Final = (COL_NAME, COL_INDUSTRY_NAME, COL_PRODUCTS, COL_BUSINESS_SCOPE, COL_DESCRIPTION)
#: Parts of a chain node that become query terms, each with the same weight by default.
QUERY_PARTS: Final = ("name", "products", "keywords", "description")
DEFAULT_FIELD_CHARS: Final = 1000
STOPWORDS: Final = frozenset(
    "公司 有限公司 有限 责任 股份 股份有限公司 集团 控股 主要 主营 业务 主营业务 产品 服务 包括 从事 提供 相关 以及 "
    "及 和 与 的 等 为 是 在 了 有 其 对 于 将 已 并 或 由 从 向 公司主要 本公司 经营 经营范围 一般 项目 许可 "
    "致力 致力于 领域 行业 企业 国内 国际 主要产品 其他 及其 方面 我国 之一".split()
)
_PUNCT: Final = re.compile(r"^[\W_]+$")
SEGMENTER_VERSION: Final = 1  # bump when the segmentation recipe changes: word indexes are rebuilt


class WordSegmenter:
    """jieba search-mode segmentation with the chains' product and keyword lists as extra words.

    Args:
        user_words: domain words added to jieba's dictionary (normalised and lower-cased here).
    """

    def __init__(self, user_words: Iterable[str] = ()) -> None:
        self.user_words = user_words

    @cached_property
    def words_(self) -> tuple[str, ...]:
        cleaned = {normalize_text(str(w)).strip().lower() for w in self.user_words}
        return tuple(sorted(w for w in cleaned if len(w) >= 2 and not _PUNCT.match(w)))

    @cached_property
    def fingerprint(self) -> str:
        """sha256 (16 hex) of the recipe: jieba's version, the stop words and the user words."""
        from importlib import metadata

        h = hashlib.sha256(f"v{SEGMENTER_VERSION}|jieba {metadata.version('jieba')}|".encode())
        h.update("\n".join(sorted(STOPWORDS)).encode() + b"\0" + "\n".join(self.words_).encode())
        return h.hexdigest()[:16]

    @cached_property
    def tokenizer_(self) -> Any:
        import logging

        import jieba

        jieba.setLogLevel(logging.WARNING)
        tokenizer = jieba.Tokenizer()
        tokenizer.initialize()
        for w in self.words_:
            tokenizer.add_word(w, freq=max(tokenizer.suggest_freq(w, tune=False), 10))
        return tokenizer

    def tokens(self, text: Any, max_chars: int = DEFAULT_FIELD_CHARS) -> list[str]:
        """The words of one text (normalised, lower-cased, stop words and punctuation dropped)."""
        if text is None or (isinstance(text, float) and pd.isna(text)):
            return []
        if isinstance(text, (list, tuple)):
            text = "；".join(str(t) for t in text)
        t = normalize_text(str(text)).lower()[:max_chars]
        if not t.strip():
            return []
        return [w for w in self.tokenizer_.cut_for_search(t) if _keep(w)]


def _keep(word: str) -> bool:
    return bool(word.strip()) and word not in STOPWORDS and not _PUNCT.match(word)


def enterprise_field_tokens(
    enterprises: pd.DataFrame, segmenter: WordSegmenter, max_chars: int = DEFAULT_FIELD_CHARS
) -> dict[str, list[list[str]]]:
    """Words of each text field of each enterprise: ``{field: [words of row 0, ...]}``, every ``WORD_FIELDS``
    key present (an absent column gives empty lists)."""
    n = len(enterprises)
    out: dict[str, list[list[str]]] = {}
    for f in WORD_FIELDS:
        values = enterprises[f].tolist() if f in enterprises.columns else [None] * n
        out[f] = [segmenter.tokens(v, max_chars) for v in values]
    return out


def node_query_terms(
    nodes: pd.DataFrame, segmenter: WordSegmenter, part_weights: Mapping[str, float] | None = None
) -> list[dict[str, float]]:
    """One weighted query per node: each word of its name, products, keywords and description gets
    the part's weight (default 1 each) per occurrence; a word in several parts adds up."""
    weights = dict.fromkeys(QUERY_PARTS, 1.0) if part_weights is None else dict(part_weights)
    unknown = sorted(set(weights) - set(QUERY_PARTS))
    if unknown:
        raise ValueError(f"unknown query parts {unknown}; expected some of {list(QUERY_PARTS)}")
    out = []
    for row in nodes.to_dict(orient="records"):
        terms: dict[str, float] = {}
        for part, w in weights.items():
            for text in as_list(row.get(part)):
                for word in segmenter.tokens(text):
                    terms[word] = terms.get(word, 0.0) + float(w)
        out.append(terms)
    return out


def text_query_terms(text: str, segmenter: WordSegmenter) -> dict[str, float]:
    """A free-text query's words, weight 1 per occurrence."""
    terms: dict[str, float] = {}
    for word in segmenter.tokens(text):
        terms[word] = terms.get(word, 0.0) + 1.0
    return terms


def chain_user_words(nodes: pd.DataFrame) -> list[str]:
    """The products and keywords of all chain nodes (and their names): the segmenter's extra words."""
    words: list[str] = []
    for col in ("name", "products", "keywords"):
        if col in nodes.columns:
            for v in nodes[col].tolist():
                words.extend(str(x) for x in as_list(v))
    return words


def as_list(value: Any) -> Sequence[Any]:
    """A cell of a list-valued column as a list: None / NaN -> [], a str -> [it], an iterable -> its items."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, float) and pd.isna(value):
        return []
    try:
        return list(value)
    except TypeError:
        return [value]
