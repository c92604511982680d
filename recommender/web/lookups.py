"""The published run, a chain, a node, an enterprise — or a 404 naming the field that held the id."""

from __future__ import annotations

import difflib

from fastapi import HTTPException

from recommender.runs.published import RunView
from recommender.web.problems import not_found
from recommender.web.state import WebState


def run_or_404(st: WebState) -> RunView:
    view = st.published.get()
    if view is None:
        raise HTTPException(status_code=404, detail="no published run yet: run `sansetu refresh` first")
    return view


def chain_or_404(st: WebState, chain_id: str, field: str = "path.chain_id") -> None:
    if chain_id not in st.chain_index:
        raise not_found(field, f"unknown chain_id; known: {sorted(st.chain_index)}", chain_id)


def node_or_404(st: WebState, node_id: str, field: str = "path.node_id") -> None:
    if node_id not in st.node_index:
        close = difflib.get_close_matches(node_id, list(st.node_index), n=3, cutoff=0.6)
        hint = f"; did you mean {close}?" if close else "; see GET /api/chains for the node ids"
        raise not_found(field, f"unknown node_id{hint}", node_id)


def enterprise_or_404(st: WebState, enterprise_id: str, field: str = "path.enterprise_id") -> None:
    ent = st.tables.enterprises_by_id()
    if ent.empty or enterprise_id not in ent.index:
        raise not_found(field, "unknown enterprise_id: not in the ingested enterprises", enterprise_id)
