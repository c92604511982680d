"""Profile texts: what the embedder and the lexical index see for an enterprise and for a chain node.

Pure functions. An enterprise's text joins, in a fixed order, its name, industry name, products,
business scope and description — each normalised (NFKC, traditional → simplified, whitespace
collapsed, via ``features.text``), empty or repeated parts dropped — and is cut to ``max_chars``
characters. The order puts the short, specific fields first so that the cut only ever shortens the
long free-text description. A node's text is the chain name, node name, description, products and
keywords, plus the gap phrase ("本地缺失" for red, "本地薄弱" for blue nodes) when a map is given.

Both return a ``pd.Series`` of ``str`` indexed by the entity id (``enterprise_id`` / ``node_id``),
in input order; the same input always gives the same text, so the embedding cache can key on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import pandas as pd

from features.schema import (
    COL_BUSINESS_SCOPE,
    COL_DESCRIPTION,
    COL_ENTERPRISE_ID,
    COL_INDUSTRY_NAME,
    COL_NAME,
    COL_NODE_ID,
    COL_PRODUCTS,
    check_columns,
)
from features.text import normalize_text

ENTERPRISE_TEXT_FIELDS: Final = (COL_NAME, COL_INDUSTRY_NAME, COL_PRODUCTS, COL_BUSINESS_SCOPE, COL_DESCRIPTION)
NODE_TEXT_FIELDS: Final = ("chain_name", "name", "description", "products", "keywords")
GAP_PHRASES: Final = {"red": "本地缺失", "blue": "本地薄弱"}
SEPARATOR: Final = "；"
DEFAULT_MAX_CHARS: Final = 160
PROFILE_TEXT_VERSION: Final = 1  # bump when the text recipe changes: every cached vector and index is rebuilt


def enterprise_texts(enterprises: pd.DataFrame, max_chars: int = DEFAULT_MAX_CHARS) -> pd.Series:
    """One profile text per enterprise.

    Args:
        enterprises: the ``enterprises`` table; needs ``enterprise_id`` and ``name``; the other text
            columns (``industry_name``, ``products``, ``business_scope``, ``description``) are used
            when present.
        max_chars: cap on the text length in characters (>= 16).

    Returns:
        ``pd.Series`` of str, shape (n,), indexed by ``enterprise_id``, named ``text``.
    """
    _check_max_chars(max_chars)
    check_columns(list(enterprises.columns), [COL_ENTERPRISE_ID, COL_NAME], "enterprises")
    fields = [c for c in ENTERPRISE_TEXT_FIELDS if c in enterprises.columns]
    columns = [enterprises[c].tolist() for c in fields]
    texts = [_join_parts(parts, max_chars) for parts in zip(*columns, strict=True)] if columns else []
    return pd.Series(
        texts,
        index=pd.Index(enterprises[COL_ENTERPRISE_ID].astype(str), name=COL_ENTERPRISE_ID),
        name="text",
        dtype=object,
    )


def node_texts(
    nodes: pd.DataFrame, map_df: pd.DataFrame | None = None, max_chars: int = DEFAULT_MAX_CHARS
) -> pd.Series:
    """One query text per chain node.

    Args:
        nodes: ``features.chains.nodes_frame`` rows (``node_id``, ``chain_name``, ``name``,
            ``description``, ``products``, ``keywords``; list-valued columns allowed).
        map_df: the colour map (``node_id``, ``colour``); red and blue nodes get the gap phrase.
            ``None``: no gap phrase.
        max_chars: cap on the text length in characters (>= 16); the gap phrase is always kept.

    Returns:
        ``pd.Series`` of str, shape (n_nodes,), indexed by ``node_id``, named ``text``.
    """
    _check_max_chars(max_chars)
    check_columns(list(nodes.columns), [COL_NODE_ID, "name"], "nodes")
    colours = _colour_by_node(map_df)
    fields = [c for c in NODE_TEXT_FIELDS if c in nodes.columns]
    rows = zip(*[nodes[c].tolist() for c in fields], strict=True) if fields else iter(())
    texts = []
    for node_id, parts in zip(nodes[COL_NODE_ID].astype(str), rows, strict=True):
        gap = GAP_PHRASES.get(colours.get(node_id, ""), "")
        body = _join_parts(parts, max_chars - (len(gap) + len(SEPARATOR) if gap else 0))
        texts.append(body + SEPARATOR + gap if gap and body else body or gap)
    return pd.Series(texts, index=pd.Index(nodes[COL_NODE_ID].astype(str), name=COL_NODE_ID), name="text", dtype=object)


def _colour_by_node(map_df: pd.DataFrame | None) -> dict[str, str]:
    if map_df is None or map_df.empty:
        return {}
    check_columns(list(map_df.columns), [COL_NODE_ID, "colour"], "map")
    return dict(zip(map_df[COL_NODE_ID].astype(str), map_df["colour"].astype(str), strict=True))


def _join_parts(parts: Iterable[object], max_chars: int) -> str:
    """Normalise each part, drop empty and repeated ones, join with '；' and cut to ``max_chars``."""
    seen: list[str] = []
    for part in parts:
        text = _part_text(part)
        if text and not any(text in s for s in seen):
            seen.append(text)
    return SEPARATOR.join(seen)[:max_chars].strip()


def _part_text(value: object) -> str:
    """A field value as normalised text; lists (products, keywords) are joined with '、'."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist") and not isinstance(value, str):
        items = value.tolist() if hasattr(value, "tolist") else value
        if not isinstance(items, list):
            items = [items]
        return "、".join(t for t in (_part_text(v) for v in items) if t)
    if isinstance(value, float) and value != value:  # NaN
        return ""
    if value is pd.NA or value is pd.NaT:
        return ""
    return normalize_text(str(value)).strip().strip("；;。，,").strip()


def _check_max_chars(max_chars: int) -> None:
    if not isinstance(max_chars, int) or isinstance(max_chars, bool) or max_chars < 16:
        raise ValueError(f"The 'max_chars' parameter must be an int in the range [16, inf). Got {max_chars!r} instead.")
