"""The chains and their published three-colour map (viewer)."""

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from recommender.web import security, views
from recommender.web.deps import State, require
from recommender.web.lookups import chain_or_404, run_or_404
from recommender.web.problems import responses
from recommender.web.serialize import records

router = APIRouter(tags=["map"], dependencies=[Depends(require("viewer"))], responses=responses(401))


@router.get("/api/chains")
def api_chains(st: State) -> list[dict[str, Any]]:
    return views.chain_records(st)


@router.get("/api/map", responses=responses(404, 422, e404="unknown chain_id, or no run published yet"))
def api_map(st: State, chain_id: str | None = None) -> list[dict[str, Any]]:
    view = run_or_404(st)
    m = view.map
    if chain_id is not None:
        chain_or_404(st, chain_id, "query.chain_id")
        m = m[m["chain_id"] == chain_id]
    return records(m)


@router.get(
    "/api/chains/{chain_id}/map.svg", response_class=views.SvgResponse, responses=views.SVG_200 | responses(404, 422)
)
def api_map_svg(chain_id: str, st: State) -> Response:
    chain_or_404(st, chain_id)
    view = run_or_404(st)
    rows = view.map[view.map["chain_id"] == chain_id] if not view.map.empty else view.map
    svg = views.chain_svg(st.chain_index[chain_id], rows)
    return views.SvgResponse(svg, headers={"Content-Security-Policy": security.svg_policy(svg)})
