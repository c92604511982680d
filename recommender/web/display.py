"""How the pages show values: moments in the service's time zone with the zone named, and scores
as a 0–100 score relative to the other targets of the same list (a model's score is no probability
and may be negative; the API keeps the model's own score)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import Any, Final
from zoneinfo import ZoneInfo

ZONE_NAMES: Final = {"Asia/Shanghai": "北京时间", "Asia/Chongqing": "北京时间", "Asia/Harbin": "北京时间"}


def _moment(value: Any) -> dt.datetime | None:
    """A datetime from a datetime or ISO text; naive ones are UTC (what the store writes)."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def zone_label(zone: str, at: dt.datetime) -> str:
    """北京时间 for China's zone, else the offset at that moment: ``UTC+2``, ``UTC+5:30``, ``UTC-3``."""
    if zone in ZONE_NAMES:
        return ZONE_NAMES[zone]
    offset = at.astimezone(ZoneInfo(zone)).utcoffset() or dt.timedelta()
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def local_time(value: Any, zone: str) -> str:
    """``2026-12-03 17:05（北京时间）``: a moment in ``zone``, to the minute, the zone named; "" for nothing."""
    at = _moment(value)
    if at is None:
        return "" if value is None else str(value)
    return f"{at.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M}（{zone_label(zone, at)}）"


def score_range(scores: Iterable[Any]) -> tuple[float, float] | None:
    """(lowest, highest) of the finite scores, or None when there is none."""
    finite = [float(s) for s in scores if isinstance(s, (int, float)) and math.isfinite(float(s))]
    return (min(finite), max(finite)) if finite else None


def relative_score(score: Any, bounds: tuple[float, float] | None) -> int | None:
    """0–100: where ``score`` lies between the list's lowest and highest score (100 when they are equal)."""
    if bounds is None or not isinstance(score, (int, float)) or not math.isfinite(float(score)):
        return None
    lo, hi = bounds
    if hi <= lo:
        return 100
    return round(100 * (float(score) - lo) / (hi - lo))
