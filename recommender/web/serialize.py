"""Frames and store rows as JSON: NaN → None, timestamps → ISO dates, numpy → Python, JSON text parsed."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import pandas as pd


def clean(value: Any) -> Any:
    """JSON-safe values: NaN and ±inf → None, timestamps → ISO dates, numpy → Python, bytes → text.

    Text that UTF-8 cannot encode (a lone surrogate sent as ``"\\ud800"``) has it replaced, so a
    response echoing what a client sent always encodes.
    """
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.date().isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        try:
            return clean(value.item())
        except (ValueError, AttributeError):
            return str(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        return [clean(v) for v in value]
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value if isinstance(value, (bool, int, float)) else str(value)


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): clean(v) for k, v in row.items()} for row in df.to_dict(orient="records")]


def json_field(value: Any) -> Any:
    """A run's JSON text (reasons, routes) parsed; anything else made JSON-safe."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return clean(value)


def target_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Records of a node's targets with ``reasons`` and ``routes`` parsed (``[]`` when empty)."""
    out = records(df)
    for r in out:
        for k in ("reasons", "routes"):
            if k in r:
                r[k] = json_field(r[k]) or []
    return out


def iso(row: dict[str, Any]) -> dict[str, Any]:
    """A store row as JSON: datetimes and dates as ISO text (the store's moments carry their UTC offset)."""
    return {k: v.isoformat() if isinstance(v, (dt.date, dt.time)) else clean(v) for k, v in row.items()}
