"""Gap priority of red and blue nodes: strategic weight × gap size × feasibility by relatedness density.

Feasibility follows the economic-complexity method of Hidalgo & Hausmann ("The Product Space
Conditions the Development of Nations", 2007; "density" in the Atlas of Economic Complexity):

1. ``X[r, n]``: enterprises of the universe in region ``r`` (province/city) assigned to node ``n`` —
   by industry code (an enterprise counts at every node that lists its 4-digit class code) or by an
   explicit assignment (e.g. the node each enterprise best matches); the zone itself is one more
   region built from its presence table (latest year).
2. Revealed comparative advantage ``RCA[r, n] = (X[r, n] / X[r, ·]) / (X[·, n] / X[·, ·])`` and the
   presence matrix ``M = RCA ≥ 1``.
3. Proximity ``φ[i, j] = min(P(i | j), P(j | i)) = C[i, j] / max(u_i, u_j)`` with co-occurrence
   ``C = Mᵀ M`` and ubiquity ``u = diag(C)``; ``φ[i, i] = 0``.
4. Density ``d_i = Σ_j φ[i, j] x_j / Σ_j φ[i, j]`` with ``x_j = 1`` for the zone's green nodes
   (0 when node ``i`` is related to nothing).

Priority of a red or blue node (green: NaN)::

    priority_i = s_i · g_i^γ · ((ε + d_i) / (1 + ε))^β

``s`` strategic weight of the chain YAML, ``g`` the map's ``gap`` (0–1; missing → 1 for red, 0.5
for blue), ``ε = priority_floor`` so that an isolated node keeps a non-zero priority, ``γ`` and ``β``
the configured exponents (``priority_gap_exponent``, ``priority_feasibility_exponent``).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from features.schema import (
    COL_CITY,
    COL_ENTERPRISE_ID,
    COL_INDUSTRY_CODE,
    COL_NODE_ID,
    COL_PROVINCE,
    COL_YEAR,
    check_columns,
)
from recommender.settings import PathsConfig

ZONE_REGION: Final = "本园区"
"""Row label of the zone's own region (from presence) in the regions × nodes matrix."""
GAP_DEFAULTS: Final[dict[str, float]] = {"red": 1.0, "blue": 0.5}


def region_node_counts(
    enterprises: pd.DataFrame,
    nodes: pd.DataFrame,
    presence: pd.DataFrame | None = None,
    by: str = "city",
    assignment: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Regions × nodes enterprise counts ``X`` (columns in ``nodes`` order, rows sorted).

    Args:
        enterprises: ``enterprise_id, province, city, industry_code``.
        nodes: ``node_id, industry_codes`` (list per node), e.g. ``features.chains.nodes_frame``.
        presence: optional zone presence (``enterprise_id, node_id, year``): adds the row ``本园区``.
        by: ``"city"`` (province/city) or ``"province"``.
        assignment: optional ``enterprise_id, node_id`` replacing the industry-code assignment.
    """
    if by not in ("city", "province"):
        raise ValueError(f"by must be one of ['city', 'province']; got {by!r}")
    check_columns(
        list(enterprises.columns), [COL_ENTERPRISE_ID, COL_PROVINCE, COL_CITY, COL_INDUSTRY_CODE], "enterprises"
    )
    check_columns(list(nodes.columns), [COL_NODE_ID, "industry_codes"], "nodes")
    node_ids = list(nodes[COL_NODE_ID])
    pairs = _assign(enterprises, nodes, assignment)
    region = enterprises[COL_PROVINCE].fillna("").astype(str)
    if by == "city":
        region = region + "/" + enterprises[COL_CITY].fillna("").astype(str)
    regions = pd.Series(region.to_numpy(), index=enterprises[COL_ENTERPRISE_ID].astype(str).to_numpy())
    regions = regions[~regions.index.duplicated()]
    pairs = pairs.assign(region=pairs[COL_ENTERPRISE_ID].map(regions)).dropna(subset=["region"])
    if presence is not None and not presence.empty:
        pairs = pd.concat([pairs, _zone_pairs(presence)], ignore_index=True)
    counts = pd.crosstab(pairs["region"], pairs[COL_NODE_ID])
    return counts.reindex(columns=node_ids, fill_value=0).sort_index()


def revealed_advantage(counts: pd.DataFrame) -> pd.DataFrame:
    """``RCA[r, n] = (X[r, n] / X[r, ·]) / (X[·, n] / X[·, ·])``; 0 where a row or column is empty."""
    x = counts.to_numpy(dtype=float)
    row, col, total = x.sum(axis=1, keepdims=True), x.sum(axis=0, keepdims=True), x.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        rca = (x / row) / (col / total)
    return pd.DataFrame(np.nan_to_num(rca, nan=0.0, posinf=0.0), index=counts.index, columns=counts.columns)


def proximity(m: np.ndarray) -> np.ndarray:
    """Node–node relatedness ``φ = C / max(u_i, u_j)`` of a binary regions × nodes matrix (diagonal 0).

    Args:
        m: shape (n_regions, n_nodes), 0/1.

    Returns:
        shape (n_nodes, n_nodes), symmetric, values in [0, 1].
    """
    m = np.asarray(m, dtype=float)
    co = m.T @ m
    u = np.diag(co).copy()
    denom = np.maximum.outer(u, u)
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.where(denom > 0, co / denom, 0.0)
    np.fill_diagonal(phi, 0.0)
    return phi


def density(phi: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``d_i = Σ_j φ_ij x_j / Σ_j φ_ij`` (0 where a node is related to nothing). Shapes (n, n), (n,) → (n,)."""
    num = phi @ np.asarray(x, dtype=float)
    den = phi.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, 0.0)


def priority_table(
    map_df: pd.DataFrame,
    nodes: pd.DataFrame,
    enterprises: pd.DataFrame,
    presence: pd.DataFrame | None = None,
    config: PathsConfig | None = None,
    assignment: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per map node: ``node_id, colour, strategic_weight, gap, density, priority`` (map order).

    Args:
        map_df: the colour map (``node_id, colour``, optional ``gap``).
        nodes: node table with ``node_id, industry_codes, strategic_weight``.
        enterprises, presence, assignment: see :func:`region_node_counts`.
    """
    cfg = config or PathsConfig()
    check_columns(list(map_df.columns), [COL_NODE_ID, "colour"], "map_df")
    check_columns(list(nodes.columns), [COL_NODE_ID, "industry_codes", "strategic_weight"], "nodes")
    counts = region_node_counts(enterprises, nodes, presence, cfg.relatedness_region, assignment)
    phi = proximity((revealed_advantage(counts).to_numpy() >= 1.0).astype(float))
    colour = map_df.set_index(COL_NODE_ID)["colour"]
    green = np.array([colour.get(n) == "green" for n in counts.columns], dtype=float)
    dens = pd.Series(density(phi, green), index=counts.columns)
    out = map_df[[COL_NODE_ID, "colour"]].copy()
    weight = nodes.set_index(COL_NODE_ID)["strategic_weight"].astype(float)
    out["strategic_weight"] = out[COL_NODE_ID].map(weight).fillna(1.0).to_numpy()
    out["gap"] = _gap(map_df)
    out["density"] = out[COL_NODE_ID].map(dens).fillna(0.0).to_numpy()
    feas = (cfg.priority_floor + out["density"]) / (1.0 + cfg.priority_floor)
    prio = out["strategic_weight"] * out["gap"] ** cfg.priority_gap_exponent * feas**cfg.priority_feasibility_exponent
    out["priority"] = prio.where(out["colour"].isin(["red", "blue"]))
    return out.reset_index(drop=True)


def gap_priority(
    map_df: pd.DataFrame,
    nodes: pd.DataFrame,
    enterprises: pd.DataFrame,
    presence: pd.DataFrame | None = None,
    config: PathsConfig | None = None,
    assignment: pd.DataFrame | None = None,
) -> pd.Series:
    """The ``priority`` column for the map: Series aligned with ``map_df.index`` (NaN for green nodes)."""
    table = priority_table(map_df, nodes, enterprises, presence, config, assignment)
    return pd.Series(table["priority"].to_numpy(), index=map_df.index, name="priority")


def order_nodes(map_df: pd.DataFrame) -> pd.DataFrame:
    """Red and blue nodes by priority (highest first; ties by node id), then the rest by node id."""
    check_columns(list(map_df.columns), [COL_NODE_ID, "priority"], "map_df")
    key = map_df["priority"].fillna(-np.inf)
    return map_df.assign(_key=-key).sort_values(["_key", COL_NODE_ID], kind="stable").drop(columns="_key")


def _assign(enterprises: pd.DataFrame, nodes: pd.DataFrame, assignment: pd.DataFrame | None) -> pd.DataFrame:
    if assignment is not None:
        check_columns(list(assignment.columns), [COL_ENTERPRISE_ID, COL_NODE_ID], "assignment")
        return assignment[[COL_ENTERPRISE_ID, COL_NODE_ID]].astype(str).drop_duplicates()
    codes = nodes[[COL_NODE_ID, "industry_codes"]].explode("industry_codes").dropna()
    codes = codes.rename(columns={"industry_codes": COL_INDUSTRY_CODE}).astype(str)
    ent = enterprises[[COL_ENTERPRISE_ID, COL_INDUSTRY_CODE]].dropna().astype(str)
    return ent.merge(codes, on=COL_INDUSTRY_CODE)[[COL_ENTERPRISE_ID, COL_NODE_ID]].drop_duplicates()


def _zone_pairs(presence: pd.DataFrame) -> pd.DataFrame:
    check_columns(list(presence.columns), [COL_ENTERPRISE_ID, COL_NODE_ID, COL_YEAR], "presence")
    latest = presence[presence[COL_YEAR] == presence[COL_YEAR].max()]
    pairs = latest[[COL_ENTERPRISE_ID, COL_NODE_ID]].astype(str).drop_duplicates()
    return pairs.assign(region=ZONE_REGION)


def _gap(map_df: pd.DataFrame) -> np.ndarray:
    default = map_df["colour"].map(GAP_DEFAULTS).astype(float)
    gap = pd.to_numeric(map_df["gap"], errors="coerce") if "gap" in map_df else default
    return gap.fillna(default).fillna(0.0).clip(0.0, 1.0).to_numpy()
