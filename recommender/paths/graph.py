"""The relation graph of the zone: enterprises and the zone's assets, with typed, dated, weighted edges.

The graph is a :class:`networkx.MultiDiGraph` (several relations may join the same pair):

* nodes are enterprise ids (统一社会信用代码) and asset ids; attributes ``kind`` (one of
  :data:`NODE_KINDS`), ``name``, ``node_id`` (the chain node of a local enterprise or an asset, else
  ``None``) and ``entity`` (``"enterprise"`` | ``"asset"``);
* edges run ``src -> dst`` exactly as in the relations table (``src supplies dst``, ``src is the
  parent of dst`` …), keyed by ``relation_id``, with attributes ``relation_type``, ``weight``,
  ``date`` (``pandas.Timestamp``) and ``relation_id``.

``kind`` of an enterprise: ``chain_leader`` when the zone's presence flags it 链主 in the reference
year, ``local_enterprise`` when it is present in the zone, ``enterprise`` otherwise. Assets take
their ``asset_type`` (``fund``, ``university``, ``lab``, ``scenario``, ``alumni_network``).

Point in time: with ``as_of`` the graph holds only relations dated on or before ``as_of`` and the
presence of the latest year not after ``as_of.year``. Graph attribute ``as_of`` is the reference
date used for recency (``as_of`` if given, else the newest relation date; never the clock).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal

import numpy as np
import pandas as pd

from features.schema import (
    ASSET_TYPES,
    COL_ASSET_ID,
    COL_ASSET_TYPE,
    COL_DATE,
    COL_DST_ID,
    COL_ENTERPRISE_ID,
    COL_IS_CHAIN_LEADER,
    COL_NAME,
    COL_NODE_ID,
    COL_RELATION_ID,
    COL_RELATION_TYPE,
    COL_SRC_ID,
    COL_WEIGHT,
    COL_YEAR,
    check_columns,
)

if TYPE_CHECKING:
    import networkx as nx

NodeKind = Literal[
    "chain_leader", "local_enterprise", "enterprise", "fund", "university", "lab", "scenario", "alumni_network"
]
NODE_KINDS: Final[tuple[str, ...]] = ("chain_leader", "local_enterprise", "enterprise", *ASSET_TYPES)
ZONE_KINDS: Final[frozenset[str]] = frozenset({"chain_leader", "local_enterprise", *ASSET_TYPES})
"""Kinds that belong to the zone: a route starts at one of these."""

DEFAULT_WEIGHT: Final = 0.5
"""Strength of a relation whose ``weight`` is missing."""

_RELATION_COLUMNS = [COL_RELATION_ID, COL_SRC_ID, COL_DST_ID, COL_RELATION_TYPE, COL_DATE]
_ASSET_COLUMNS = [COL_ASSET_ID, COL_ASSET_TYPE, COL_NAME]
_PRESENCE_COLUMNS = [COL_ENTERPRISE_ID, COL_NODE_ID, COL_YEAR]


def build_graph(
    relations: pd.DataFrame,
    assets: pd.DataFrame,
    presence: pd.DataFrame,
    enterprises: pd.DataFrame | None = None,
    as_of: pd.Timestamp | None = None,
) -> nx.MultiDiGraph:
    """Build the zone's relation graph.

    Args:
        relations: relations table (``relation_id, src_id, dst_id, relation_type, weight, date``).
        assets: assets table (``asset_id, asset_type, name``, optional ``node_id, description, owner``).
        presence: presence table (``enterprise_id, node_id, year``, optional ``is_chain_leader``).
        enterprises: optional enterprises table, for names (``enterprise_id, name``).
        as_of: drop relations dated after this day and presence after its year.

    Returns:
        A ``networkx.MultiDiGraph`` as described in the module docstring; every asset and every
        enterprise named in relations or presence is a node.
    """
    import networkx as nx

    check_columns(list(relations.columns), _RELATION_COLUMNS, "relations")
    check_columns(list(assets.columns), _ASSET_COLUMNS, "assets")
    check_columns(list(presence.columns), _PRESENCE_COLUMNS, "presence")
    cutoff = None if as_of is None else pd.Timestamp(as_of)
    rel = _relations_until(relations, cutoff)
    graph = nx.MultiDiGraph(as_of=cutoff if cutoff is not None else _newest_date(rel))
    names = _enterprise_names(enterprises)
    local = local_kinds(presence, cutoff)
    graph.add_nodes_from(_asset_nodes(assets))
    enterprise_ids = pd.unique(pd.concat([rel[COL_SRC_ID], rel[COL_DST_ID], local.index.to_series()]).astype(str))
    asset_ids = set(assets[COL_ASSET_ID].astype(str))
    graph.add_nodes_from((e, _enterprise_attrs(e, names, local)) for e in enterprise_ids if e not in asset_ids)
    graph.add_edges_from(_edges(rel))
    return graph


def local_kinds(presence: pd.DataFrame, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """Local enterprises of the reference year: index ``enterprise_id``, columns ``kind, node_id``.

    The reference year is the latest presence year (not after ``as_of.year``). An enterprise flagged
    链主 at any node that year is a ``chain_leader``; its ``node_id`` is that node (the first by id
    when several), otherwise the first node by id.
    """
    pres = presence
    if as_of is not None:
        pres = pres[pres[COL_YEAR].astype(int) <= as_of.year]
    if pres.empty:
        return pd.DataFrame({"kind": pd.Series(dtype=object), COL_NODE_ID: pd.Series(dtype=object)})
    pres = pres[pres[COL_YEAR].astype(int) == int(pres[COL_YEAR].astype(int).max())].copy()
    leader = pres.get(COL_IS_CHAIN_LEADER, pd.Series(False, index=pres.index))
    pres["_leader"] = leader.fillna(False).astype(bool)
    pres = pres.sort_values(["_leader", COL_NODE_ID], ascending=[False, True], kind="stable")
    first = pres.drop_duplicates(COL_ENTERPRISE_ID)
    first.index = pd.Index(first[COL_ENTERPRISE_ID].astype(str), name=COL_ENTERPRISE_ID)
    kind = np.where(first["_leader"].to_numpy(), "chain_leader", "local_enterprise")
    return pd.DataFrame({"kind": kind, COL_NODE_ID: first[COL_NODE_ID].astype(str).to_numpy()}, index=first.index)


def _relations_until(relations: pd.DataFrame, cutoff: pd.Timestamp | None) -> pd.DataFrame:
    rel = relations.copy()
    rel[COL_DATE] = pd.to_datetime(rel[COL_DATE])
    if cutoff is not None:
        rel = rel[rel[COL_DATE] <= cutoff]
    return rel


def _newest_date(relations: pd.DataFrame) -> pd.Timestamp | None:
    if relations.empty:
        return None
    return pd.Timestamp(relations[COL_DATE].max())


def _enterprise_names(enterprises: pd.DataFrame | None) -> dict[str, str]:
    if enterprises is None or enterprises.empty:
        return {}
    check_columns(list(enterprises.columns), [COL_ENTERPRISE_ID, COL_NAME], "enterprises")
    return dict(zip(enterprises[COL_ENTERPRISE_ID].astype(str), enterprises[COL_NAME].astype(str), strict=True))


def _enterprise_attrs(eid: str, names: dict[str, str], local: pd.DataFrame) -> dict[str, object]:
    if eid in local.index:
        kind, node = local.at[eid, "kind"], local.at[eid, COL_NODE_ID]
    else:
        kind, node = "enterprise", None
    return {"kind": kind, "name": names.get(eid, eid), COL_NODE_ID: node, "entity": "enterprise"}


def _asset_nodes(assets: pd.DataFrame) -> list[tuple[str, dict[str, object]]]:
    out: list[tuple[str, dict[str, object]]] = []
    for rec in assets.to_dict("records"):
        node = rec.get(COL_NODE_ID)
        out.append(
            (
                str(rec[COL_ASSET_ID]),
                {
                    "kind": str(rec[COL_ASSET_TYPE]),
                    "name": str(rec[COL_NAME]),
                    COL_NODE_ID: None if _missing(node) else str(node),
                    "entity": "asset",
                    "description": _text(rec.get("description")),
                    "owner": _text(rec.get("owner")),
                },
            )
        )
    return out


def _edges(rel: pd.DataFrame) -> list[tuple[str, str, str, dict[str, object]]]:
    weight = rel[COL_WEIGHT] if COL_WEIGHT in rel else pd.Series(np.nan, index=rel.index)
    weight = pd.to_numeric(weight, errors="coerce").fillna(DEFAULT_WEIGHT).clip(0.0, 1.0)
    cols = zip(
        rel[COL_RELATION_ID].astype(str),
        rel[COL_SRC_ID].astype(str),
        rel[COL_DST_ID].astype(str),
        rel[COL_RELATION_TYPE].astype(str),
        weight.to_numpy(dtype=float),
        rel[COL_DATE],
        strict=True,
    )
    return [
        (s, d, rid, {"relation_id": rid, "relation_type": rt, "weight": float(w), "date": pd.Timestamp(dt)})
        for rid, s, d, rt, w, dt in cols
    ]


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v == ""


def _text(v: object) -> str:
    return "" if _missing(v) else str(v)
