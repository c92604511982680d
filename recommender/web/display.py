"""How the pages show values: moments in the service's time zone with the zone named; a target's
score as 签约概率 ``12.3%`` (the calibrated P(签约 | approached), × 100, one decimal), or as 启发式分
``12.3`` when the run was scored by the heuristic (no champion: no probability); search results as
a 0–100 relevance relative to the other results. The API keeps the score itself."""

from __future__ import annotations

import datetime as dt
import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any, Final
from zoneinfo import ZoneInfo

from recommender.refresh.context import HEURISTIC

ZONE_NAMES: Final = {"Asia/Shanghai": "北京时间", "Asia/Chongqing": "北京时间", "Asia/Harbin": "北京时间"}
MISSING: Final = "—"
SCORE_LABELS: Final = {False: "签约概率", True: "启发式分"}
SCORE_NOTES: Final = {
    False: "模型估计的签约概率：接洽后最终签约的可能性（经校准）",
    True: "尚无训练好的模型，按启发式规则打分（× 100，越高越优先），不是签约概率",
}


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


def heuristic_run(manifest: Mapping[str, Any]) -> bool:
    """Whether the run was scored by the heuristic: its manifest's ``scorer`` ("heuristic" or
    "model"), or for a manifest without one, its ``model_version``."""
    scorer = manifest.get("scorer")
    return (scorer if scorer is not None else manifest.get("model_version")) == HEURISTIC


def score_text(score: Any, heuristic: bool) -> str:
    """``12.3%`` for a score of 0.123 (``12.3`` from the heuristic, no probability); "—" for a missing
    or not finite score."""
    if isinstance(score, bool) or not isinstance(score, numbers.Real) or not math.isfinite(float(score)):
        return MISSING
    shown = round(100 * float(score), 1) + 0.0  # + 0.0: no "-0.0"
    return f"{shown:.1f}" if heuristic else f"{shown:.1f}%"


def score_range(scores: Iterable[Any]) -> tuple[float, float] | None:
    """(lowest, highest) of the finite scores, or None when there is none (the search page's relevance)."""
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
