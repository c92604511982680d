"""Point-in-time features of (node, candidate enterprise, as-of date) pairs for the ranker.

``build_pair_features`` turns retrieval's candidate rows into one feature row per pair. A feature
"as of D" uses only records dated strictly before D: signals, relations, outcomes and the latest
financing round are filtered by date; presence is yearly, so a presence row of year Y counts from
year Y on (the earliest recorded year stands in for the years before it, because the registry
records who is local, not when they came). Enterprise attributes without a date (registered
capital, employees, industry code, province) are the current registry snapshot: the only
non-historised inputs, a documented limitation (see docs/ranking.md).

Everything is vectorised: features that depend only on (enterprise, as-of date) are computed once
per unique pair of those and gathered by position; node features once per node; only the
industry-code match and the retrieval columns are computed per pair. The relation graph's
shortest paths are one sparse breadth-first search per distinct as-of date (a handful of dates
for training sets, one when scoring), never a loop per pair.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np
import pandas as pd

from features.schema import (
    COL_ASSET_ID,
    COL_ASSET_TYPE,
    COL_CAPITAL_CNY,
    COL_DATE,
    COL_DST_ID,
    COL_EMPLOYEES,
    COL_ENTERPRISE_ID,
    COL_FINANCING_DATE,
    COL_FINANCING_ROUND,
    COL_FOUNDED,
    COL_INDUSTRY_CODE,
    COL_IS_CHAIN_LEADER,
    COL_LISTED,
    COL_NODE_ID,
    COL_PROVINCE,
    COL_SIGNAL_TYPE,
    COL_SRC_ID,
    COL_STAGE,
    COL_YEAR,
    FINANCING_ROUNDS,
    SIGNAL_TYPES,
    check_columns,
)
from features.text import PROVINCE_SUFFIX

COL_AS_OF: Final = "as_of"
SIGNAL_WINDOWS: Final = (90, 180, 365)
PATH_CAP: Final = 4  # "no path within 3 hops" is encoded as 4
TERMINATED_WINDOW_DAYS: Final = 365

RETRIEVAL_FEATURES: Final = ["dense_score", "dense_rank", "lexical_score", "lexical_rank", "n_retrievers"]
INDUSTRY_FEATURES: Final = ["industry_exact", "industry_group", "industry_division"]
FIRM_FEATURES: Final = ["log_capital", "log_employees", "age_years", "listed", "financing_round", "financing_age_days"]
SIGNAL_FEATURES: Final = [f"signals_{t}_{w}d" for t in SIGNAL_TYPES for w in SIGNAL_WINDOWS]
GEO_FEATURES: Final = ["same_province", "distance_km", "neighbour_province", "branches_in_zone_province", "is_local"]
TIE_FEATURES: Final = ["ties_leader", "ties_local", "ties_fund", "ties_university", "ties_lab", "path_length"]
NODE_FEATURES: Final = ["node_colour", "node_gap", "strategic_weight"]
HISTORY_FEATURES: Final = ["prior_contacts", "terminated_365d", "contacted_node_before"]
FEATURE_NAMES: Final[list[str]] = [
    *RETRIEVAL_FEATURES,
    *INDUSTRY_FEATURES,
    *FIRM_FEATURES,
    *SIGNAL_FEATURES,
    *GEO_FEATURES,
    *TIE_FEATURES,
    *NODE_FEATURES,
    *HISTORY_FEATURES,
]
KEY_COLUMNS: Final = [COL_NODE_ID, COL_ENTERPRISE_ID, COL_AS_OF]

# financing round -> ordinal (天使轮 1 ... IPO 7); unknown or not yet known at as_of -> NaN
ROUND_ORDINAL: Final = {r: float(i + 1) for i, r in enumerate(FINANCING_ROUNDS)}
COLOUR_CODE: Final = {"green": 0.0, "blue": 1.0, "red": 2.0}

# Provincial capitals (lat, lon): the distance of a candidate to the zone is capital to capital.
PROVINCE_CAPITALS: Final[dict[str, tuple[float, float]]] = {
    "北京": (39.90, 116.40), "天津": (39.13, 117.20), "河北": (38.04, 114.51), "山西": (37.87, 112.55),
    "内蒙古": (40.84, 111.75), "辽宁": (41.80, 123.43), "吉林": (43.82, 125.32), "黑龙江": (45.80, 126.53),
    "上海": (31.23, 121.47), "江苏": (32.06, 118.80), "浙江": (30.27, 120.15), "安徽": (31.82, 117.23),
    "福建": (26.07, 119.30), "江西": (28.68, 115.86), "山东": (36.65, 117.12), "河南": (34.75, 113.62),
    "湖北": (30.59, 114.31), "湖南": (28.23, 112.94), "广东": (23.13, 113.26), "广西": (22.82, 108.37),
    "海南": (20.04, 110.35), "重庆": (29.56, 106.55), "四川": (30.57, 104.07), "贵州": (26.65, 106.63),
    "云南": (25.04, 102.71), "西藏": (29.65, 91.14), "陕西": (34.34, 108.94), "甘肃": (36.06, 103.83),
    "青海": (36.62, 101.78), "宁夏": (38.49, 106.23), "新疆": (43.83, 87.62), "香港": (22.32, 114.17),
    "澳门": (22.20, 113.54), "台湾": (25.03, 121.57),
}  # fmt: skip
_BORDERS: Final = (
    "北京-天津 北京-河北 天津-河北 河北-山西 河北-内蒙古 河北-辽宁 河北-山东 河北-河南 山西-内蒙古 山西-陕西 "
    "山西-河南 内蒙古-黑龙江 内蒙古-吉林 内蒙古-辽宁 内蒙古-陕西 内蒙古-宁夏 内蒙古-甘肃 辽宁-吉林 吉林-黑龙江 "
    "上海-江苏 上海-浙江 江苏-浙江 江苏-安徽 江苏-山东 浙江-安徽 浙江-江西 浙江-福建 安徽-江西 安徽-湖北 "
    "安徽-河南 安徽-山东 福建-江西 福建-广东 江西-湖北 江西-湖南 江西-广东 山东-河南 河南-陕西 河南-湖北 "
    "湖北-湖南 湖北-重庆 湖北-陕西 湖南-广东 湖南-广西 湖南-贵州 湖南-重庆 广东-广西 广东-香港 广东-澳门 "
    "广东-海南 广西-贵州 广西-云南 重庆-贵州 重庆-四川 重庆-陕西 四川-贵州 四川-云南 四川-西藏 四川-青海 "
    "四川-甘肃 四川-陕西 贵州-云南 云南-西藏 西藏-新疆 西藏-青海 陕西-宁夏 陕西-甘肃 甘肃-宁夏 甘肃-青海 "
    "甘肃-新疆 青海-新疆"
)
NEIGHBOURS: Final[dict[str, frozenset[str]]] = {
    p: frozenset(b for pair in _BORDERS.split() for a, b in [pair.split("-"), pair.split("-")[::-1]] if a == p)
    for p in PROVINCE_CAPITALS
}

_DAY_NS: Final = np.int64(86_400 * 10**9)


def short_province(values: pd.Series) -> pd.Series:
    """'湖北省' → '湖北', '广西壮族自治区' → '广西'; missing stays missing."""
    return values.astype("string").str.strip().str.replace(PROVINCE_SUFFIX, "", regex=True)


def _haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: float, lon2: float) -> np.ndarray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlat, dlon = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dlat / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return np.asarray(2 * 6371.0 * np.arcsin(np.sqrt(a)))


def geography_features(provinces: pd.Series, zone_province: str) -> dict[str, np.ndarray]:
    """same_province, distance_km (capital to capital; NaN when unknown) and neighbour_province."""
    zone = short_province(pd.Series([zone_province])).iloc[0]
    if zone not in PROVINCE_CAPITALS:
        raise ValueError(f"zone_province must be a province of {sorted(PROVINCE_CAPITALS)}; got {zone_province!r}")
    short = short_province(provinces)
    lat = short.map({k: v[0] for k, v in PROVINCE_CAPITALS.items()}).astype("float64").to_numpy()
    lon = short.map({k: v[1] for k, v in PROVINCE_CAPITALS.items()}).astype("float64").to_numpy()
    zlat, zlon = PROVINCE_CAPITALS[zone]
    known = short.notna().to_numpy()
    same = (short == zone).fillna(False).to_numpy(dtype=bool)
    neighbour = short.isin(NEIGHBOURS[zone]).fillna(False).to_numpy(dtype=bool)
    return {
        "same_province": np.where(known, same, np.nan),
        "distance_km": _haversine_km(lat, lon, zlat, zlon),
        "neighbour_province": np.where(known, neighbour, np.nan),
    }


# ---------------------------------------------------------------- helpers


def _dates_ns(values: pd.Series | np.ndarray) -> np.ndarray:
    """Dates as int64 nanoseconds since the epoch; missing → int64 min (NaT)."""
    return np.asarray(pd.to_datetime(pd.Series(values)).astype("datetime64[ns]").to_numpy().view("int64"))


_NAT = np.iinfo(np.int64).min


def _as_of_ns(candidates: pd.DataFrame, as_of: object) -> np.ndarray:
    if COL_AS_OF in candidates.columns:
        if as_of is not None:
            raise ValueError("Pass either an as_of argument or an 'as_of' column in candidates, not both.")
        out = _dates_ns(candidates[COL_AS_OF])
    elif as_of is None:
        raise ValueError("as_of is required when candidates have no 'as_of' column; got None.")
    else:
        out = np.full(len(candidates), pd.Timestamp(as_of).as_unit("ns").value, dtype=np.int64)  # type: ignore[arg-type]
    if (out == _NAT).any():
        raise ValueError(f"as_of must be a date for every candidate row; {int((out == _NAT).sum())} rows have none.")
    return out


def _year_of(ns: np.ndarray) -> np.ndarray:
    return np.asarray(ns.astype("datetime64[ns]").astype("datetime64[Y]").astype(np.int64) + 1970)


def _table(tables: Mapping[str, pd.DataFrame], name: str, columns: list[str]) -> pd.DataFrame:
    df = tables.get(name)
    if df is None:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    check_columns(list(df.columns), columns, name)
    return df


def _known_from_year(years: pd.Series, ids: pd.Series, index: pd.Index) -> np.ndarray:
    """First year each id of ``index`` is recorded (NaN if never); earliest year overall → -inf."""
    first = pd.Series(years.to_numpy(dtype="float64")).groupby(ids.to_numpy()).min()
    out = first.reindex(index).to_numpy(dtype="float64", copy=True)
    if len(first):
        out[out == first.min()] = -np.inf  # the earliest snapshot stands in for the years before it
    return out


# ---------------------------------------------------------------- the public function


def build_pair_features(
    candidates: pd.DataFrame,
    tables: Mapping[str, pd.DataFrame],
    nodes: pd.DataFrame,
    map_df: pd.DataFrame | None,
    as_of: pd.Timestamp | None = None,
    *,
    zone_province: str,
) -> pd.DataFrame:
    """Point-in-time features for each (node, candidate, as-of date).

    Args:
        candidates: (n_pairs, ...) with ``node_id``, ``enterprise_id`` and optionally retrieval's
            ``dense_score, dense_rank, lexical_score, lexical_rank`` (missing → NaN) and a per-row
            ``as_of`` column (training sets with many query dates).
        tables: the tables of ``features.schema`` (missing ones are treated as empty).
        nodes: ``features.chains.nodes_frame`` (``node_id, industry_codes, strategic_weight``).
        map_df: the colour map (``node_id, colour, gap``), optionally with an ``as_of`` column
            (the map known at that date; the latest one at or before a row's as_of is used); None → NaN.
        as_of: the as-of date for every row when candidates have no ``as_of`` column.
        zone_province: the zone's province, e.g. '湖北省'.

    Returns:
        (n_pairs, 3 + len(FEATURE_NAMES)) frame: ``node_id, enterprise_id, as_of`` then
        ``FEATURE_NAMES`` as float64, in the row order of ``candidates``.
    """
    check_columns(list(candidates.columns), [COL_NODE_ID, COL_ENTERPRISE_ID], "candidates")
    check_columns(list(nodes.columns), [COL_NODE_ID, "industry_codes", "strategic_weight"], "nodes")
    asof = _as_of_ns(candidates, as_of)
    enterprises = _table(tables, "enterprises", [COL_ENTERPRISE_ID])
    enterprises = enterprises.drop_duplicates(COL_ENTERPRISE_ID, keep="last")
    ent_index = _id_index(enterprises[COL_ENTERPRISE_ID])
    node_index = _id_index(nodes[COL_NODE_ID])
    # ids are hashed once per distinct value: factorize the pair columns, look up the uniques
    ent_codes, ent_known = _factorized_positions(candidates[COL_ENTERPRISE_ID], ent_index)
    ent_pos = ent_known[ent_codes]
    node_codes, node_known = _factorized_positions(candidates[COL_NODE_ID], node_index)
    node_pos = node_known[node_codes]
    ent_row = np.where(ent_pos < 0, len(ent_index), ent_pos)  # unknown enterprises → an all-NaN row

    # the (enterprise, as-of) rows that per-enterprise features are computed for, and each pair's row
    if asof.min() == asof.max():  # one scoring date: the enterprise codes are the rows
        inverse = np.where(ent_codes < 0, len(ent_known) - 1, ent_codes)
        u_ent = np.where(ent_known < 0, len(ent_index), ent_known)
        u_asof = np.full(len(u_ent), asof[0] if len(asof) else 0, dtype=np.int64)
    else:
        date_codes, date_values = pd.factorize(asof)
        key = np.where(ent_codes < 0, len(ent_known) - 1, ent_codes).astype(np.int64) * len(date_values) + date_codes
        inverse, unique_keys = pd.factorize(key)
        u_ent = np.where(ent_known < 0, len(ent_index), ent_known)[unique_keys // len(date_values)]
        u_asof = np.asarray(date_values)[unique_keys % len(date_values)].astype(np.int64)

    out = np.empty((len(candidates), len(FEATURE_NAMES)), dtype=np.float64)
    col = {name: i for i, name in enumerate(FEATURE_NAMES)}
    per_enterprise = enterprise_features(enterprises, ent_index, u_ent, u_asof, tables, zone_province)
    # one row gather of the (enterprise, as-of) matrix (cache-friendly), written as contiguous column runs
    names = sorted(per_enterprise, key=col.__getitem__)
    gathered = np.column_stack([per_enterprise[name] for name in names])[inverse]
    positions = np.array([col[name] for name in names])
    breaks = np.flatnonzero(np.diff(positions) != 1) + 1
    for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(names)], strict=True):
        out[:, positions[lo] : positions[hi - 1] + 1] = gathered[:, lo:hi]
    blocks = [
        node_features(nodes, map_df, node_pos, asof),
        retrieval_features(candidates),
        industry_features(nodes, node_pos, enterprises, ent_row),
        {"contacted_node_before": _contacted_node_before(tables, ent_index, node_index, ent_pos, node_pos, asof)},
    ]
    for block in blocks:
        for name, values in block.items():
            out[:, col[name]] = values

    keys = pd.DataFrame(
        {
            COL_NODE_ID: candidates[COL_NODE_ID],
            COL_ENTERPRISE_ID: candidates[COL_ENTERPRISE_ID],
            COL_AS_OF: pd.Series(asof.astype("datetime64[ns]"), index=candidates.index),
        }
    )
    return pd.concat([keys, pd.DataFrame(out, columns=FEATURE_NAMES, index=candidates.index, copy=False)], axis=1)


def _id_index(ids: pd.Series) -> pd.Index:
    return pd.Index(np.asarray(ids.astype("string").to_numpy(dtype=object), dtype=object))


def _factorized_positions(ids: pd.Series, index: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """(codes, positions): ``codes`` per row into the distinct ids (-1 when missing), ``positions``
    of each distinct id in ``index`` (-1 when absent) with a trailing -1, so ``positions[codes]``
    is every row's position."""
    codes, uniques = pd.factorize(ids, sort=False)
    distinct = pd.Index(np.asarray(pd.Series(uniques).astype("string").to_numpy(dtype=object), dtype=object))
    return np.asarray(codes, dtype=np.int64), np.append(index.get_indexer(distinct), -1).astype(np.int64)


def _positions(ids: pd.Series, index: pd.Index) -> np.ndarray:
    """Position of each id in ``index`` (-1 when absent), hashing each distinct id once."""
    codes, known = _factorized_positions(ids, index)
    return np.asarray(known[codes])


# ---------------------------------------------------------------- per-pair blocks


def retrieval_features(candidates: pd.DataFrame) -> dict[str, np.ndarray]:
    """Retrieval scores and ranks as given (NaN when the candidate did not come from that retriever)."""
    n = len(candidates)
    out = {}
    for name in RETRIEVAL_FEATURES[:4]:
        out[name] = (
            pd.to_numeric(candidates[name], errors="coerce").to_numpy(dtype="float64")
            if name in candidates.columns
            else np.full(n, np.nan)
        )
    out["n_retrievers"] = (~np.isnan(out["dense_rank"])).astype(float) + (~np.isnan(out["lexical_rank"])).astype(float)
    return out


def _code_ints(codes: pd.Series) -> np.ndarray:
    """4-digit GB/T 4754 class codes as ints (-1 when missing or malformed)."""
    s = codes.astype("string").str.extract(r"(\d{4})", expand=False)
    return np.asarray(pd.to_numeric(s, errors="coerce").fillna(-1).to_numpy(dtype=np.int64))


def industry_features(
    nodes: pd.DataFrame, node_pos: np.ndarray, enterprises: pd.DataFrame, ent_row: np.ndarray
) -> dict[str, np.ndarray]:
    """Whether the candidate's class code equals a node code (exact), shares its 3-digit group or 2-digit division.

    ``node_pos``: each pair's node position in ``nodes`` (-1 unknown); ``ent_row``: its enterprise
    position in ``enterprises`` (``len(enterprises)`` for unknown).
    """
    node_index = _id_index(nodes[COL_NODE_ID])
    exploded = nodes[[COL_NODE_ID, "industry_codes"]].explode("industry_codes")
    exploded_pos = _positions(exploded[COL_NODE_ID], node_index)
    node_codes = _code_ints(exploded["industry_codes"])
    if COL_INDUSTRY_CODE in enterprises.columns:
        ent_codes = np.append(_code_ints(enterprises[COL_INDUSTRY_CODE]), -1)[ent_row]
    else:
        ent_codes = np.full(len(ent_row), -1, dtype=np.int64)
    out = {}
    known = ent_codes >= 0
    ok = (node_codes >= 0) & (exploded_pos >= 0)
    for name, div in zip(INDUSTRY_FEATURES, (1, 10, 100), strict=True):
        # a (node, code prefix) lookup table: one gather per pair instead of a set-membership search
        table = np.zeros((len(node_index) + 1, 10_000 // div + 1), dtype=bool)
        table[exploded_pos[ok], node_codes[ok] // div] = True
        match = table[node_pos, np.where(known, ent_codes // div, 10_000 // div)]  # -1 / unknown → all-False
        out[name] = np.where(known, match, np.nan)
    return out


def node_features(
    nodes: pd.DataFrame, map_df: pd.DataFrame | None, node_pos: np.ndarray, asof: np.ndarray
) -> dict[str, np.ndarray]:
    """Node colour (green 0, blue 1, red 2), gap and strategic weight for each pair's node position."""
    weight = np.append(pd.to_numeric(nodes["strategic_weight"]).to_numpy(dtype="float64"), np.nan)
    out = {"strategic_weight": weight[node_pos]}  # -1 → the NaN sentinel at the end
    n = len(node_pos)
    if map_df is None or len(map_df) == 0:
        out["node_colour"] = np.full(n, np.nan)
        out["node_gap"] = np.full(n, np.nan)
        return out
    check_columns(list(map_df.columns), [COL_NODE_ID, "colour"], "map_df")
    m = pd.DataFrame(
        {
            "_node": _positions(map_df[COL_NODE_ID], _id_index(nodes[COL_NODE_ID])),
            "node_colour": map_df["colour"].map(COLOUR_CODE).astype("float64").to_numpy(),
            "node_gap": pd.to_numeric(map_df["gap"], errors="coerce").to_numpy(dtype="float64")
            if "gap" in map_df.columns
            else np.nan,
        }
    )
    m = m[m["_node"] >= 0]
    if COL_AS_OF in map_df.columns:
        m["_t"] = _dates_ns(map_df[COL_AS_OF])[m.index.to_numpy()]
        left = pd.DataFrame({"_node": node_pos, "_t": asof, "_row": np.arange(n)}).sort_values("_t", kind="stable")
        joined = pd.merge_asof(left, m.sort_values("_t", kind="stable"), on="_t", by="_node", direction="backward")
        joined = joined.sort_values("_row")
        out["node_colour"] = joined["node_colour"].to_numpy(dtype="float64")
        out["node_gap"] = joined["node_gap"].to_numpy(dtype="float64")
        return out
    m = m.drop_duplicates("_node", keep="last")
    for name in ("node_colour", "node_gap"):
        per_node = np.full(len(nodes) + 1, np.nan)
        per_node[m["_node"].to_numpy()] = m[name].to_numpy(dtype="float64")
        out[name] = per_node[node_pos]
    return out


def _contacted_node_before(
    tables: Mapping[str, pd.DataFrame],
    ent_index: pd.Index,
    node_index: pd.Index,
    ent_pos: np.ndarray,
    node_pos: np.ndarray,
    asof: np.ndarray,
) -> np.ndarray:
    """1 when an outcome record of this (enterprise, node) is dated before as_of."""
    outcomes = _table(tables, "outcomes", [COL_ENTERPRISE_ID, COL_NODE_ID, COL_DATE])
    if len(outcomes) == 0:
        return np.zeros(len(ent_pos))
    n_nodes = len(node_index) + 1
    o_ent = _positions(outcomes[COL_ENTERPRISE_ID], ent_index)
    o_node = _positions(outcomes[COL_NODE_ID], node_index)
    ok = (o_ent >= 0) & (o_node >= 0)
    first = pd.Series(_dates_ns(outcomes[COL_DATE])[ok]).groupby(o_ent[ok] * n_nodes + o_node[ok]).min()
    if len(first) == 0:
        return np.zeros(len(ent_pos))
    pair = np.where((ent_pos >= 0) & (node_pos >= 0), ent_pos * n_nodes + node_pos, -1)
    pos = pd.Index(first.index.to_numpy(dtype=np.int64)).get_indexer(pd.Index(pair))
    t = np.where(pos >= 0, first.to_numpy()[np.maximum(pos, 0)], np.iinfo(np.int64).max)
    return (t < asof).astype(float)


# ---------------------------------------------------------------- per (enterprise, as-of) blocks


def enterprise_features(
    enterprises: pd.DataFrame,
    ent_index: pd.Index,
    u_ent: np.ndarray,
    u_asof: np.ndarray,
    tables: Mapping[str, pd.DataFrame],
    zone_province: str,
) -> dict[str, np.ndarray]:
    """Features of each (enterprise position, as-of ns) pair; position len(ent_index) = unknown enterprise."""
    out = firm_features(enterprises, u_ent, u_asof)
    geo = geography_features(_column(enterprises, COL_PROVINCE, "string"), zone_province)
    for name, values in geo.items():
        out[name] = np.append(values, np.nan)[u_ent]
    out.update(signal_features(tables, ent_index, u_ent, u_asof, zone_province))
    out.update(tie_features(tables, ent_index, u_ent, u_asof))
    out.update(history_features(tables, ent_index, u_ent, u_asof))
    out["is_local"] = _is_local(tables, ent_index, u_ent, u_asof)
    return out


def _column(df: pd.DataFrame, name: str, dtype: str) -> pd.Series:
    if name in df.columns:
        return df[name].astype(dtype)  # type: ignore[call-overload,no-any-return]
    return pd.Series([None] * len(df), dtype=dtype)  # type: ignore[call-overload]


def firm_features(enterprises: pd.DataFrame, u_ent: np.ndarray, u_asof: np.ndarray) -> dict[str, np.ndarray]:
    """Size, age, listing and the latest financing round known at as_of."""

    def arr(values: np.ndarray) -> np.ndarray:
        return np.append(values.astype("float64"), np.nan)[u_ent]

    capital = pd.to_numeric(_column(enterprises, COL_CAPITAL_CNY, "float64"), errors="coerce").to_numpy()
    employees = pd.to_numeric(_column(enterprises, COL_EMPLOYEES, "float64"), errors="coerce").to_numpy()
    founded = np.append(_dates_ns(_column(enterprises, COL_FOUNDED, "datetime64[ns]")), _NAT)[u_ent]
    fin_date = np.append(_dates_ns(_column(enterprises, COL_FINANCING_DATE, "datetime64[ns]")), _NAT)[u_ent]
    rounds = _column(enterprises, COL_FINANCING_ROUND, "string").map(ROUND_ORDINAL).astype("float64").to_numpy()
    listed = _column(enterprises, COL_LISTED, "boolean").astype("float64").to_numpy()
    fin_known = (fin_date != _NAT) & (fin_date < u_asof)
    round_now = arr(rounds)
    # a round dated on/after as_of is unknown then; if it was the IPO, the listing is unknown too
    listed_now = np.where((round_now == ROUND_ORDINAL["IPO"]) & ~fin_known, 0.0, arr(listed))
    return {
        "log_capital": np.log1p(np.clip(arr(capital), 0, None)),
        "log_employees": np.log1p(np.clip(arr(employees), 0, None)),
        "age_years": np.where(founded == _NAT, np.nan, (u_asof - founded) / _DAY_NS / 365.25),
        "listed": listed_now,
        "financing_round": np.where(fin_known, round_now, np.nan),
        "financing_age_days": np.where(fin_known, (u_asof - fin_date) / _DAY_NS, np.nan),
    }


def _events_before(
    ids: pd.Series, dates: pd.Series, ent_index: pd.Index, u_ent: np.ndarray, u_asof: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Join events to the (enterprise, as_of) rows; keep those dated before as_of.

    Returns (row of the (enterprise, as_of) table, event position, age in days at as_of).
    """
    ev_ent = ent_index.get_indexer(pd.Index(ids.astype("string").to_numpy(dtype=object)))
    ev_t = _dates_ns(dates)
    ok = (ev_ent >= 0) & (ev_t != _NAT)
    left = pd.DataFrame({"e": u_ent, "row": np.arange(len(u_ent))})
    right = pd.DataFrame({"e": ev_ent[ok], "ev": np.flatnonzero(ok)})
    j = left.merge(right, on="e", how="inner")
    rows, ev = j["row"].to_numpy(), j["ev"].to_numpy()
    age = (u_asof[rows] - ev_t[ev]) / _DAY_NS
    before = age > 0
    return rows[before], ev[before], age[before]


def signal_features(
    tables: Mapping[str, pd.DataFrame], ent_index: pd.Index, u_ent: np.ndarray, u_asof: np.ndarray, zone_province: str
) -> dict[str, np.ndarray]:
    """Signal counts by type over 90/180/365 days before as_of; new branches in the zone's province ever before."""
    signals = _table(tables, "signals", [COL_ENTERPRISE_ID, COL_SIGNAL_TYPE, COL_DATE])
    n = len(u_ent)
    rows, ev, age = _events_before(signals[COL_ENTERPRISE_ID], signals[COL_DATE], ent_index, u_ent, u_asof)
    type_code = pd.Categorical(signals[COL_SIGNAL_TYPE].astype("string"), categories=list(SIGNAL_TYPES)).codes[ev]
    out = {}
    for t, stype in enumerate(SIGNAL_TYPES):
        is_t = type_code == t
        for w in SIGNAL_WINDOWS:
            out[f"signals_{stype}_{w}d"] = np.bincount(rows[is_t & (age <= w)], minlength=n).astype(float)
    zone = short_province(pd.Series([zone_province])).iloc[0]
    prov = short_province(_column(signals, COL_PROVINCE, "string")).to_numpy(dtype=object)[ev]
    branch = (type_code == SIGNAL_TYPES.index("new_branch")) & (prov == zone)
    out["branches_in_zone_province"] = np.bincount(rows[branch], minlength=n).astype(float)
    return out


def history_features(
    tables: Mapping[str, pd.DataFrame], ent_index: pd.Index, u_ent: np.ndarray, u_asof: np.ndarray
) -> dict[str, np.ndarray]:
    """Outcome records of the enterprise (any node) before as_of, and 终止 within the last 365 days."""
    outcomes = _table(tables, "outcomes", [COL_ENTERPRISE_ID, COL_STAGE, COL_DATE])
    n = len(u_ent)
    rows, ev, age = _events_before(outcomes[COL_ENTERPRISE_ID], outcomes[COL_DATE], ent_index, u_ent, u_asof)
    ended = (outcomes[COL_STAGE].astype("string") == "终止").fillna(False).to_numpy(dtype=bool)[ev]
    return {
        "prior_contacts": np.bincount(rows, minlength=n).astype(float),
        "terminated_365d": (np.bincount(rows[ended & (age <= TERMINATED_WINDOW_DAYS)], minlength=n) > 0).astype(float),
    }


def _is_local(
    tables: Mapping[str, pd.DataFrame], ent_index: pd.Index, u_ent: np.ndarray, u_asof: np.ndarray
) -> np.ndarray:
    presence = _table(tables, "presence", [COL_ENTERPRISE_ID, COL_YEAR])
    since = np.append(
        _known_from_year(presence[COL_YEAR], presence[COL_ENTERPRISE_ID].astype("string"), ent_index), np.nan
    )
    return (since[u_ent] <= _year_of(u_asof)).astype(float)


# ---------------------------------------------------------------- ties to the zone's assets


def _anchor_kinds(
    tables: Mapping[str, pd.DataFrame], entity_index: pd.Index
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per entity: asset kind code (0 none, 1 fund, 2 university, 3 lab, 4 other asset), local-since year, leader-since year."""
    assets = _table(tables, "assets", [COL_ASSET_ID, COL_ASSET_TYPE])
    kind_of = {"fund": 1, "university": 2, "alumni_network": 2, "lab": 3, "scenario": 4}
    kind = np.zeros(len(entity_index), dtype=np.int64)
    pos = entity_index.get_indexer(pd.Index(assets[COL_ASSET_ID].astype("string").to_numpy(dtype=object)))
    kind[pos[pos >= 0]] = assets[COL_ASSET_TYPE].map(kind_of).fillna(4).to_numpy(dtype=np.int64)[pos >= 0]
    presence = _table(tables, "presence", [COL_ENTERPRISE_ID, COL_YEAR])
    ids = presence[COL_ENTERPRISE_ID].astype("string")
    local_since = _known_from_year(presence[COL_YEAR], ids, entity_index)
    leaders = (
        presence[COL_IS_CHAIN_LEADER].astype("boolean").fillna(False).to_numpy(dtype=bool)
        if COL_IS_CHAIN_LEADER in presence
        else np.zeros(len(presence), bool)
    )
    leader_since = _known_from_year(presence[COL_YEAR][leaders], ids[leaders], entity_index)
    return kind, local_since, leader_since


def tie_features(
    tables: Mapping[str, pd.DataFrame], ent_index: pd.Index, u_ent: np.ndarray, u_asof: np.ndarray
) -> dict[str, np.ndarray]:
    """Direct ties (relations dated before as_of, either direction) to local chain leaders, local enterprises,
    funds, universities (incl. alumni networks) and labs; shortest path length (≤3, else 4) to any of the
    zone's assets or chain leaders."""
    relations = _table(tables, "relations", [COL_SRC_ID, COL_DST_ID, COL_DATE])
    assets = _table(tables, "assets", [COL_ASSET_ID])
    src = relations[COL_SRC_ID].astype("string").to_numpy(dtype=object)
    dst = relations[COL_DST_ID].astype("string").to_numpy(dtype=object)
    entity_index = pd.Index(
        pd.unique(
            np.concatenate(
                [ent_index.to_numpy(), assets[COL_ASSET_ID].astype("string").to_numpy(dtype=object), src, dst]
            )
        )
    )
    kind, local_since, leader_since = _anchor_kinds(tables, entity_index)
    a = entity_index.get_indexer(src)
    b = entity_index.get_indexer(dst)
    t = _dates_ns(relations[COL_DATE])
    # both directions: (candidate end, other end, date)
    ends = pd.DataFrame({"e": np.concatenate([a, b]), "other": np.concatenate([b, a]), "t": np.concatenate([t, t])})
    ends = ends[ends["t"] != _NAT]
    # enterprise positions in ent_index equal their positions in entity_index (it starts with ent_index)
    n = len(u_ent)
    known = np.where(u_ent < len(ent_index), u_ent, -1)  # unknown enterprises have no ties
    j = pd.DataFrame({"e": known, "row": np.arange(n)}).merge(ends, on="e", how="inner")
    j = j[j["t"].to_numpy() < u_asof[j["row"].to_numpy()]]
    rows, other = j["row"].to_numpy(), j["other"].to_numpy()
    year = _year_of(u_asof[rows])
    out = {
        "ties_leader": np.bincount(rows[leader_since[other] <= year], minlength=n).astype(float),
        "ties_local": np.bincount(rows[local_since[other] <= year], minlength=n).astype(float),
        "ties_fund": np.bincount(rows[kind[other] == 1], minlength=n).astype(float),
        "ties_university": np.bincount(rows[kind[other] == 2], minlength=n).astype(float),
        "ties_lab": np.bincount(rows[kind[other] == 3], minlength=n).astype(float),
    }
    out["path_length"] = _path_lengths(a, b, t, kind, leader_since, known, u_asof, len(entity_index))
    return out


def _path_lengths(
    a: np.ndarray,
    b: np.ndarray,
    t: np.ndarray,
    kind: np.ndarray,
    leader_since: np.ndarray,
    u_ent: np.ndarray,
    u_asof: np.ndarray,
    n_entities: int,
) -> np.ndarray:
    """Hops from each (enterprise, as_of) to the nearest anchor over relations dated before as_of, capped at 4."""
    from scipy import sparse

    out = np.full(len(u_ent), float(PATH_CAP))
    ok = (a >= 0) & (b >= 0) & (t != _NAT)
    a, b, t = a[ok], b[ok], t[ok]
    for date in np.unique(u_asof):
        keep = t < date
        adj = sparse.coo_matrix(
            (
                np.ones(2 * int(keep.sum()), dtype=np.float32),
                (np.concatenate([a[keep], b[keep]]), np.concatenate([b[keep], a[keep]])),
            ),
            shape=(n_entities, n_entities),
        ).tocsr()
        dist = np.full(n_entities, float(PATH_CAP))
        frontier = (kind > 0) | (leader_since <= _year_of(np.array([date]))[0])
        dist[frontier] = 0
        seen = frontier.copy()
        for hop in range(1, PATH_CAP):
            frontier = (adj @ frontier.astype(np.float32) > 0) & ~seen
            dist[frontier] = hop
            seen |= frontier
        rows = np.flatnonzero(u_asof == date)
        ent = u_ent[rows]
        valid = ent >= 0
        out[rows[valid]] = dist[ent[valid]]
    return out
