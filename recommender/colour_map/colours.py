"""The three-colour map (三色图): each chain node coloured red / blue / green from the zone's data.

Pure functions only: DataFrames in, DataFrames out (``recommender/map_store.py`` does the I/O).

Per node, for the map year ``Y`` (the latest year of ``presence``, or ``as_of_year``):

* ``n_local`` — distinct enterprises present in the zone at the node in year ``Y``;
* ``output_value_cny`` — their summed output value (NaN when none was reported);
* ``has_leader`` / ``leaders`` — whether any of them is flagged 链主, and their names;
* ``growth`` — output value of ``Y`` against ``Y-1`` at the node, ``(o_Y - o_{Y-1}) / o_{Y-1}``;
  NaN when year ``Y-1`` has no positive output at the node;
* ``lq`` — location quotient (区位熵) of the node in the zone against the universe::

      lq = (n_local / N_local) / (n_universe / N_universe)

  ``N_local`` = the sum of ``n_local`` over the map's nodes, so the zone's node shares sum to 1.
  ``n_universe`` = the node's mass in the universe: every universe enterprise whose
  ``industry_code`` is listed by ``k`` nodes adds ``1 / k`` to each of them (one GB/T class such as
  3976 feeds several nodes; splitting keeps shared codes from inflating those nodes), and a local
  enterprise at the node that is not covered that way (not in the universe, or registered under
  another code) adds 1. ``N_universe`` = the sum of ``n_universe`` over the map's nodes, so both
  sides compare shares of the chain economy and the enterprises of unrelated industries drop out.
  The universe is the ``enterprises`` table (operating ones only when
  ``MapConfig.exclude_non_operating``). A node with local enterprises always has
  ``n_universe > 0``, so the ratio is defined whenever ``n_local > 0``; ``lq = 0`` otherwise.
* ``gap`` — how far the node is from green, in [0, 1]: one minus the mean attainment of the green
  conditions in force (``min(n_local / green_min_enterprises, 1)``, ``min(lq / green_min_lq, 1)``,
  leader present, ``min(output / green_min_output_cny, 1)``, growth condition met). Green is 0.
* ``priority`` — NaN here; gap priority is computed by ``recommender.colour_map.priority``.

Colour rules (``MapConfig``, defaults in docs/colour_map.md), checked in this order:

1. red   — ``n_local <= red_max_enterprises``, or ``lq <= red_max_lq`` without a chain leader (需补链);
2. green — ``n_local >= green_min_enterprises`` and ``lq >= green_min_lq`` and a chain leader (when
   ``green_requires_leader``) and output ``>= green_min_output_cny`` and (when
   ``green_min_growth`` is set) growth unknown or ``>= green_min_growth`` (需延链固链);
3. blue  — everything else (需强链).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Final

import numpy as np
import pandas as pd

from features.schema import (
    COL_ENTERPRISE_ID,
    COL_INDUSTRY_CODE,
    COL_IS_CHAIN_LEADER,
    COL_IS_OPERATING,
    COL_NAME,
    COL_NODE_ID,
    COL_OUTPUT_VALUE_CNY,
    COL_YEAR,
    check_columns,
)

if TYPE_CHECKING:
    from recommender.settings import MapConfig

MAP_COLUMNS: Final = [
    "chain_id",
    "node_id",
    "name",
    "stage",
    "colour",
    "reason",
    "n_local",
    "output_value_cny",
    "has_leader",
    "lq",
    "growth",
    "gap",
    "priority",
    "year",
    "n_universe",
    "leaders",
]
DIFF_COLUMNS: Final = ["chain_id", "node_id", "name", "change", "colour_before", "colour_after", "reason"]
NODE_REQUIRED: Final = ["chain_id", "node_id", "name", "stage", "industry_codes"]
COLOUR_ACTION: Final = {"red": "需补链", "blue": "需强链", "green": "需延链固链"}
COLOUR_LABEL: Final = {"red": "红", "blue": "蓝", "green": "绿"}
_MAX_LEADER_NAMES: Final = 2


# ---------------------------------------------------------------- public API
def compute_map(
    nodes: pd.DataFrame,
    presence: pd.DataFrame,
    enterprises: pd.DataFrame,
    config: MapConfig,
    as_of_year: int | None = None,
) -> pd.DataFrame:
    """Colour every chain node from the zone's presence and the enterprise universe.

    Args:
        nodes: one row per node (``features.chains.nodes_frame``); needs ``NODE_REQUIRED``.
        presence: the presence table (``enterprise_id, node_id, year`` required; output value and
            chain-leader flag optional).
        enterprises: the universe (``enterprise_id`` required; ``industry_code``, ``name`` and
            ``is_operating`` used when present).
        config: colour rules.
        as_of_year: map year; default the latest year in ``presence``.

    Returns:
        One row per node, in the order of ``nodes``, with the columns ``MAP_COLUMNS``.
    """
    check_columns(list(nodes.columns), NODE_REQUIRED, "nodes")
    check_columns(list(presence.columns), [COL_ENTERPRISE_ID, COL_NODE_ID, COL_YEAR], "presence")
    check_columns(list(enterprises.columns), [COL_ENTERPRISE_ID], "enterprises")
    year = _map_year(presence, as_of_year)
    stats = node_stats(nodes, presence, enterprises, year, config.exclude_non_operating)
    out = pd.concat([nodes[["chain_id", "node_id", "name", "stage"]].reset_index(drop=True), stats], axis=1)
    out["colour"] = [colour_of(r, config) for r in out.itertuples(index=False)]
    out["gap"] = [gap_of(r, config) for r in out.itertuples(index=False)]
    out["reason"] = [reason_of(r, config) for r in out.itertuples(index=False)]
    out["priority"] = np.nan
    out["year"] = pd.array([year] * len(out), dtype="Int64")
    return out[MAP_COLUMNS]


def diff_maps(previous: pd.DataFrame | None, current: pd.DataFrame) -> pd.DataFrame:
    """Nodes whose colour changed between two maps, plus nodes added to or removed from the map.

    ``change`` is ``changed``, ``added`` (``colour_before`` empty) or ``removed``
    (``colour_after`` empty); ``reason`` is the current reason (the last one for removed nodes).
    Without a previous map there is nothing to compare: the result is empty. Rows are sorted by
    ``chain_id, node_id``.
    """
    check_columns(list(current.columns), ["chain_id", "node_id", "name", "colour", "reason"], "current map")
    if previous is None:
        return pd.DataFrame(columns=DIFF_COLUMNS)
    check_columns(list(previous.columns), ["chain_id", "node_id", "name", "colour", "reason"], "previous map")
    cols = ["chain_id", "node_id", "name", "colour", "reason"]
    merged = previous[cols].merge(current[cols], on="node_id", how="outer", suffixes=("_b", "_a"), indicator=True)
    change = np.select(
        [merged["_merge"] == "right_only", merged["_merge"] == "left_only"], ["added", "removed"], default="changed"
    )
    merged["change"] = change
    keep = (merged["change"] != "changed") | (merged["colour_b"] != merged["colour_a"])
    m = merged[keep]
    out = pd.DataFrame(
        {
            "chain_id": m["chain_id_a"].fillna(m["chain_id_b"]),
            "node_id": m["node_id"],
            "name": m["name_a"].fillna(m["name_b"]),
            "change": m["change"],
            "colour_before": m["colour_b"].astype(object).where(m["colour_b"].notna(), None),
            "colour_after": m["colour_a"].astype(object).where(m["colour_a"].notna(), None),
            "reason": m["reason_a"].fillna(m["reason_b"]),
        }
    )
    return out.sort_values(["chain_id", "node_id"], kind="stable").reset_index(drop=True)[DIFF_COLUMNS]


# ---------------------------------------------------------------- per-node statistics
def _map_year(presence: pd.DataFrame, as_of_year: int | None) -> int | None:
    years = sorted({int(y) for y in presence[COL_YEAR].dropna().unique()})
    if as_of_year is None:
        return years[-1] if years else None
    if years and as_of_year not in years:
        raise ValueError(f"as_of_year {as_of_year} has no presence rows; presence covers years {years}")
    return as_of_year


def node_stats(
    nodes: pd.DataFrame,
    presence: pd.DataFrame,
    enterprises: pd.DataFrame,
    year: int | None,
    exclude_non_operating: bool = True,
) -> pd.DataFrame:
    """Per-node numbers behind the colours, aligned with ``nodes`` (positional index).

    Columns: ``n_local, output_value_cny, has_leader, leaders, growth, lq, n_universe``.
    """
    node_ids = nodes["node_id"].tolist()
    cur = _presence_of_year(presence, year)
    prev = _presence_of_year(presence, None if year is None else year - 1)
    # Only the local enterprises need per-id lookups: keep the million-row universe vectorised.
    local_ent = enterprises[enterprises[COL_ENTERPRISE_ID].isin(cur[COL_ENTERPRISE_ID].unique())]
    local_ent = local_ent.drop_duplicates(COL_ENTERPRISE_ID, keep="last")
    names = _names(local_ent)
    per_node = _local_aggregates(cur, names).reindex(node_ids)
    prev_out = _output_by_node(prev).reindex(node_ids)
    n_local = per_node["n_local"].fillna(0).astype(int).to_numpy()
    output = per_node["output_value_cny"].to_numpy(dtype=float)
    n_universe, n_total_universe = _universe_counts(nodes, cur, enterprises, local_ent, exclude_non_operating)
    n_total_local = int(n_local.sum())  # local shares sum to 1 over the map's nodes
    return pd.DataFrame(
        {
            "n_local": n_local,
            "output_value_cny": output,
            "has_leader": per_node["has_leader"].fillna(False).astype(bool).to_numpy(),
            "leaders": [x if isinstance(x, list) else [] for x in per_node["leaders"]],
            "growth": _growth(output, prev_out.to_numpy(dtype=float)),
            "lq": location_quotient(n_local, n_total_local, n_universe, n_total_universe),
            "n_universe": n_universe,
        }
    )


def location_quotient(
    n_local: np.ndarray, n_total_local: float, n_universe: np.ndarray, n_total_universe: float
) -> np.ndarray:
    """``(n_local / N_local) / (n_universe / N_universe)``, 0 where a count is zero.

    Shapes: ``n_local`` and ``n_universe`` are ``(n_nodes,)``; the result is ``(n_nodes,)``.
    """
    n_local = np.asarray(n_local, dtype=float)
    n_universe = np.asarray(n_universe, dtype=float)
    ok = (n_local > 0) & (n_universe > 0) & (n_total_local > 0) & (n_total_universe > 0)
    out = np.zeros(len(n_local), dtype=float)
    out[ok] = (n_local[ok] / n_total_local) / (n_universe[ok] / n_total_universe)
    return out


def _presence_of_year(presence: pd.DataFrame, year: int | None) -> pd.DataFrame:
    if year is None:
        return presence.iloc[0:0]
    return presence[presence[COL_YEAR] == year]


def _names(enterprises: pd.DataFrame) -> pd.Series:
    if COL_NAME not in enterprises.columns:
        return pd.Series(dtype=object)
    return pd.Series(enterprises[COL_NAME].to_numpy(), index=enterprises[COL_ENTERPRISE_ID].to_numpy())


def _output_by_node(rows: pd.DataFrame) -> pd.Series:
    if COL_OUTPUT_VALUE_CNY not in rows.columns:
        return pd.Series(np.nan, index=pd.Index(rows[COL_NODE_ID].unique()), dtype=float)
    return rows.groupby(COL_NODE_ID)[COL_OUTPUT_VALUE_CNY].sum(min_count=1)


def _local_aggregates(cur: pd.DataFrame, names: pd.Series) -> pd.DataFrame:
    """Per node: n_local, output_value_cny, has_leader, leaders (names, by descending output)."""
    cols = ["n_local", "output_value_cny", "has_leader", "leaders"]
    if cur.empty:
        return pd.DataFrame(columns=cols)
    leader = cur[COL_IS_CHAIN_LEADER] if COL_IS_CHAIN_LEADER in cur.columns else pd.Series(False, index=cur.index)
    leader = leader.astype("boolean").fillna(False).astype(bool)
    out = pd.DataFrame(
        {
            "n_local": cur.groupby(COL_NODE_ID)[COL_ENTERPRISE_ID].nunique(),
            "output_value_cny": _output_by_node(cur),
            "has_leader": leader.groupby(cur[COL_NODE_ID]).any(),
        }
    )
    out["leaders"] = pd.Series({k: v for k, v in _leader_names(cur[leader], names).items()}, dtype=object)
    return out[cols]


def _leader_names(leaders: pd.DataFrame, names: pd.Series) -> dict[str, list[str]]:
    if leaders.empty:
        return {}
    out_col = leaders[COL_OUTPUT_VALUE_CNY] if COL_OUTPUT_VALUE_CNY in leaders.columns else 0.0
    d = pd.DataFrame({"node": leaders[COL_NODE_ID], "eid": leaders[COL_ENTERPRISE_ID], "out": out_col}).drop_duplicates(
        ["node", "eid"]
    )
    d["label"] = [str(names.get(e, e)) if pd.notna(names.get(e, e)) else str(e) for e in d["eid"]]
    d = d.sort_values(["node", "out", "label"], ascending=[True, False, True], na_position="last", kind="stable")
    return {str(k): g["label"].tolist() for k, g in d.groupby("node", sort=False)}


def _growth(current: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Year-on-year output growth; NaN where the previous output is missing or not positive."""
    cur = np.where(np.isnan(current), 0.0, current)
    ok = ~np.isnan(previous) & (previous > 0)
    out = np.full(len(current), np.nan)
    out[ok] = (cur[ok] - previous[ok]) / previous[ok]
    return out


def _universe_counts(
    nodes: pd.DataFrame,
    cur: pd.DataFrame,
    enterprises: pd.DataFrame,
    local_ent: pd.DataFrame,
    exclude_non_operating: bool,
) -> tuple[np.ndarray, float]:
    """Universe mass per node (aligned with ``nodes``) and its total; see the module docstring.

    A universe enterprise with code ``c`` adds ``1 / k_c`` to each of the ``k_c`` nodes listing
    ``c``; a local enterprise at a node that this does not already cover (not in the universe, or
    registered under another code) adds 1 to that node. ``enterprises`` is unique by id (ingest
    resolves duplicates); ``local_ent`` is its rows for the local enterprises.
    """

    def operating(e: pd.DataFrame) -> pd.DataFrame:
        if not exclude_non_operating or COL_IS_OPERATING not in e.columns:
            return e
        return e[e[COL_IS_OPERATING].astype("boolean").fillna(True).to_numpy(dtype=bool)]

    has_codes = COL_INDUSTRY_CODE in enterprises.columns
    cols = [c for c in (COL_INDUSTRY_CODE, COL_IS_OPERATING) if c in enterprises.columns]  # no full-frame copy
    code_counts = operating(enterprises[cols])[COL_INDUSTRY_CODE].value_counts() if has_codes else pd.Series(dtype=int)
    code_counts.index = code_counts.index.astype(str)
    ent = operating(local_ent)
    in_universe = set(ent[COL_ENTERPRISE_ID].astype(str))
    code_of = (
        pd.Series(ent[COL_INDUSTRY_CODE].astype(object).to_numpy(), index=ent[COL_ENTERPRISE_ID].astype(str).to_numpy())
        if has_codes
        else pd.Series(dtype=object)
    )
    node_codes = [sorted({str(c) for c in cs}) for cs in nodes["industry_codes"]]
    sharing = Counter(c for cs in node_codes for c in cs)
    by_code = np.array([sum(code_counts.get(c, 0) / sharing[c] for c in cs) for cs in node_codes], dtype=float)
    pairs = cur[[COL_ENTERPRISE_ID, COL_NODE_ID]].drop_duplicates().astype(str)
    codes_of_node = dict(zip(nodes["node_id"], node_codes, strict=True))
    extra: Counter[str] = Counter()
    for eid, nid in zip(pairs[COL_ENTERPRISE_ID], pairs[COL_NODE_ID], strict=True):
        code = code_of.get(eid)
        if not (eid in in_universe and code is not None and str(code) in codes_of_node.get(nid, ())):
            extra[nid] += 1
    mass = by_code + np.array([extra.get(n, 0) for n in nodes["node_id"]], dtype=float)
    return mass, float(mass.sum())


# ---------------------------------------------------------------- rules and reasons
def colour_of(row: object, config: MapConfig) -> str:
    """Colour of one node from its statistics (attributes ``n_local, lq, has_leader, ...``)."""
    n, lq, leader = int(row.n_local), float(row.lq), bool(row.has_leader)  # type: ignore[attr-defined]
    if n <= config.red_max_enterprises or (lq <= config.red_max_lq and not leader):
        return "red"
    return "green" if not _green_shortfalls(row, config) else "blue"


def _green_shortfalls(row: object, config: MapConfig) -> list[str]:
    """The green conditions the node misses, as short Chinese phrases (empty = green)."""
    n, lq, leader = int(row.n_local), float(row.lq), bool(row.has_leader)  # type: ignore[attr-defined]
    output, growth = float(row.output_value_cny), float(row.growth)  # type: ignore[attr-defined]
    miss = []
    if n < config.green_min_enterprises:
        miss.append(f"企业数≥{config.green_min_enterprises}家")
    if config.green_requires_leader and not leader:
        miss.append("链主")
    if lq < config.green_min_lq:
        miss.append(f"区位熵≥{config.green_min_lq:.2f}")
    if config.green_min_output_cny > 0 and not (output >= config.green_min_output_cny):
        miss.append(f"产值≥{format_cny(config.green_min_output_cny)}")
    if config.green_min_growth is not None and not math.isnan(growth) and growth < config.green_min_growth:
        miss.append(f"产值增速≥{_pct(config.green_min_growth)}")
    return miss


def gap_of(row: object, config: MapConfig) -> float:
    """How far a node is from green, in [0, 1] (mean shortfall over the green conditions in force)."""
    n, lq, leader = int(row.n_local), float(row.lq), bool(row.has_leader)  # type: ignore[attr-defined]
    output, growth = float(row.output_value_cny), float(row.growth)  # type: ignore[attr-defined]
    parts = [min(n / config.green_min_enterprises, 1.0), min(lq / config.green_min_lq, 1.0)]
    if config.green_requires_leader:
        parts.append(1.0 if leader else 0.0)
    if config.green_min_output_cny > 0:
        parts.append(0.0 if math.isnan(output) else min(output / config.green_min_output_cny, 1.0))
    if config.green_min_growth is not None:
        parts.append(1.0 if math.isnan(growth) or growth >= config.green_min_growth else 0.0)
    return round(1.0 - sum(parts) / len(parts), 6)


def reason_of(row: object, config: MapConfig) -> str:
    """A concrete Chinese sentence with the numbers behind the node's colour."""
    colour = str(row.colour)  # type: ignore[attr-defined]
    n, lq = int(row.n_local), float(row.lq)  # type: ignore[attr-defined]
    if n == 0:
        return f"本地无企业布局（区位熵{lq:.2f}），{COLOUR_ACTION['red']}"
    facts = _facts(row)
    if colour == "red" and n <= config.red_max_enterprises:
        return f"本地仅{n}家企业（补链线{config.red_max_enterprises}家），{facts}，{COLOUR_ACTION['red']}"
    if colour == "red":
        return f"本地仅{n}家企业，{facts}（补链线{config.red_max_lq:.2f}），{COLOUR_ACTION['red']}"
    if colour == "blue":
        miss = "、".join(_green_shortfalls(row, config))
        return f"本地{n}家企业，{facts}；距绿色尚缺：{miss}，{COLOUR_ACTION['blue']}"
    return f"本地{n}家企业，{facts}，{COLOUR_ACTION['green']}"


def _facts(row: object) -> str:
    """'产值2.1亿元（同比增长12.0%），含链主〈A〉，区位熵1.85'."""
    output, growth = float(row.output_value_cny), float(row.growth)  # type: ignore[attr-defined]
    leaders: list[str] = list(row.leaders)  # type: ignore[attr-defined]
    out = "产值未填报" if math.isnan(output) else f"产值{format_cny(output)}"
    if not math.isnan(growth):
        out += f"（{_growth_phrase(growth)}）"
    return f"{out}，{_leader_phrase(leaders)}，区位熵{float(row.lq):.2f}"  # type: ignore[attr-defined]


def _leader_phrase(leaders: list[str]) -> str:
    if not leaders:
        return "无链主"
    shown = "、".join(f"〈{x}〉" for x in leaders[:_MAX_LEADER_NAMES])
    return f"含链主{shown}" + (f"等{len(leaders)}家" if len(leaders) > _MAX_LEADER_NAMES else "")


def _growth_phrase(growth: float) -> str:
    if round(growth * 100, 1) == 0:
        return "同比持平"
    return f"同比增长{_pct(growth)}" if growth > 0 else f"同比下降{_pct(-growth)}"


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def format_cny(value: float) -> str:
    """Yuan as analysts read it: '2.1亿元' from 1e8 up, else '350万元'.

    >>> format_cny(2.1e8), format_cny(3.5e6), format_cny(0.0)
    ('2.1亿元', '350万元', '0万元')
    """
    if value >= 1e8:
        return f"{value / 1e8:.1f}亿元"
    return f"{value / 1e4:.0f}万元"
