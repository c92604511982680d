"""Frames and store rows as JSON: NaN → None, timestamps → ISO dates, numpy → Python, JSON text parsed."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd


def clean(value: Any) -> Any:
    """JSON-safe scalars (NaN → None, timestamps → ISO dates, numpy → Python)."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.date().isoformat()
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        try:
            return clean(value.item())
        except (ValueError, AttributeError):
            return str(value)
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


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
    """A store row as JSON: datetimes and dates as ISO text."""
    return {k: (v.isoformat() if hasattr(v, "isoformat") else clean(v)) for k, v in row.items()}
