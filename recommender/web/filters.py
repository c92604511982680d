"""The six filters of a node's targets (one model for the JSON list, its Excel file and the
node page) and the pure functions that apply them."""

from __future__ import annotations

from typing import Any, Final

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from features import schema as S
from recommender.paths.wording import THEMES
from recommender.web.problems import bad
from recommender.web.serialize import json_field

SIZES: Final[dict[str, tuple[float | None, float | None]]] = {
    "小型": (None, 1e7),  # registered capital below 10 million CNY
    "中型": (1e7, 1e8),
    "大型": (1e8, None),  # 100 million CNY and more
}
LIST_COLUMNS: Final = (
    "chain_id",
    "node_id",
    "rank",
    "enterprise_id",
    "name",
    "score",
    "reasons",
    "routes",
    "theme",
    "sources",
    "fit",
    "n_fit",
    "also_fits",
)
"""The columns of a listed target the API and pages show (``fit``, ``n_fit``, ``also_fits``: runs since
``recommender.ranking.lists``; a column a run lacks is left out)."""
INFO_COLUMNS: Final = (S.COL_PROVINCE, S.COL_CITY, S.COL_CAPITAL_CNY, S.COL_EMPLOYEES, S.COL_LISTED)
_PAGE_BOOL: Final = {"1": True, "0": False}


class ListFilters(BaseModel):
    """Filters of a node's targets; None means "any".

    The API reads it from the query string (``Annotated[ListFilters, Query()]``): types and ranges
    are checked there, ``size`` and ``theme`` by :meth:`checked` once the node is known to exist.
    The node page reads it leniently (:meth:`from_page`): a value it does not know means "any".
    """

    model_config = ConfigDict(frozen=True)

    province: str | None = Field(default=None, max_length=50, description="province contains, e.g. 广东")
    size: str | None = Field(default=None, description=f"registered-capital band, one of {list(SIZES)}")
    min_capital_cny: float | None = Field(default=None, ge=0, description="registered capital at least (CNY)")
    listed: bool | None = None
    has_signals: bool | None = None
    theme: str | None = Field(default=None, description=f"a route theme, one of {list(THEMES)}")

    def checked(self, where: str = "query") -> ListFilters:
        """These filters with an empty province as "any"; 422 naming ``size`` or ``theme`` when unknown."""
        if self.size is not None and self.size not in SIZES:
            raise bad(f"{where}.size", f"must be one of {list(SIZES)}", self.size)
        if self.theme is not None and self.theme not in THEMES:
            raise bad(f"{where}.theme", f"must be one of {list(THEMES)}", self.theme)
        return self.model_copy(update={"province": self.province or None})

    @classmethod
    def from_page(
        cls,
        province: str | None = None,
        size: str | None = None,
        listed: str | None = None,
        has_signals: str | None = None,
        theme: str | None = None,
    ) -> ListFilters:
        """The node page's form: ``1`` / ``0`` for yes / no; anything unknown is "any"."""
        return cls(
            province=(province or "").strip()[:50] or None,
            size=size if size in SIZES else None,
            listed=_PAGE_BOOL.get(listed or ""),
            has_signals=_PAGE_BOOL.get(has_signals or ""),
            theme=theme if theme in THEMES else None,
        )

    def form_values(self) -> dict[str, str]:
        """The node page's form fields ("" for any)."""
        yes_no = {True: "1", False: "0"}
        return {
            "province": self.province or "",
            "size": self.size or "",
            "listed": yes_no[self.listed] if self.listed is not None else "",
            "has_signals": yes_no[self.has_signals] if self.has_signals is not None else "",
            "theme": self.theme or "",
        }

    def api_params(self) -> dict[str, str]:
        """The set filters as query parameters of the API (``true`` / ``false`` for yes / no)."""
        values: dict[str, Any] = {
            "province": self.province,
            "size": self.size,
            "listed": None if self.listed is None else str(self.listed).lower(),
            "has_signals": None if self.has_signals is None else str(self.has_signals).lower(),
            "theme": self.theme,
        }
        return {k: v for k, v in values.items() if v}


def route_themes(routes: Any) -> set[str]:
    """The themes of a target's routes (``routes`` is the run's JSON text or a parsed list)."""
    parsed = json_field(routes)
    if not isinstance(parsed, list):
        return set()
    return {str(r["theme"]) for r in parsed if isinstance(r, dict) and r.get("theme")}


def with_info(targets: pd.DataFrame, ent_by_id: pd.DataFrame, signal_ids: frozenset[str]) -> pd.DataFrame:
    """The list columns of ``targets`` plus each enterprise's place, size, listing and ``has_signals``."""
    if S.COL_ENTERPRISE_ID not in targets.columns:
        return pd.DataFrame(columns=[*LIST_COLUMNS, *INFO_COLUMNS, "has_signals"])
    t = targets[[c for c in LIST_COLUMNS if c in targets.columns]].reset_index(drop=True)
    ids = t[S.COL_ENTERPRISE_ID].astype(str)
    cols = [c for c in INFO_COLUMNS if c in ent_by_id.columns]
    info = ent_by_id.reindex(ids)[cols].reset_index(drop=True) if cols else pd.DataFrame(index=t.index)
    for c in INFO_COLUMNS:
        t[c] = info[c] if c in info else pd.Series(pd.NA, index=t.index, dtype=object)
    t["has_signals"] = [i in signal_ids for i in ids]  # a list's rows, not Series.isin(set): O(rows)
    return t


def filter_targets(t: pd.DataFrame, f: ListFilters) -> pd.DataFrame:
    """Rows of :func:`with_info` output that pass every filter (pure; order kept)."""
    from features.text import normalize_text

    keep = pd.Series(True, index=t.index)
    if f.province:
        want = normalize_text(f.province)
        keep &= t[S.COL_PROVINCE].fillna("").astype(str).str.contains(want, regex=False)
    cap = pd.to_numeric(t[S.COL_CAPITAL_CNY], errors="coerce")
    if f.size:
        lo, hi = SIZES[f.size]
        keep &= cap.notna()
        if lo is not None:
            keep &= cap >= lo
        if hi is not None:
            keep &= cap < hi
    if f.min_capital_cny is not None:
        keep &= cap.fillna(-1) >= f.min_capital_cny
    if f.listed is not None:
        keep &= t[S.COL_LISTED].astype("boolean").fillna(False).astype(bool) == f.listed
    if f.has_signals is not None:
        keep &= t["has_signals"].astype(bool) == f.has_signals
    if f.theme:
        theme = f.theme
        parsed = t["_route_themes"] if "_route_themes" in t else t["routes"].map(route_themes)
        keep &= pd.Series([theme in r for r in parsed], index=t.index) | (t["theme"].fillna("") == theme)
    return t[keep]
