"""An enterprise's detail and one target's explanation (viewer)."""

from typing import Any

from fastapi import APIRouter, Depends

from recommender.web import views
from recommender.web.deps import State, require
from recommender.web.lookups import node_or_404, run_or_404
from recommender.web.problems import responses

router = APIRouter(tags=["enterprises"], dependencies=[Depends(require("viewer"))], responses=responses(401))


@router.get("/api/enterprises/{enterprise_id}", responses=responses(404, 422))
def api_enterprise(enterprise_id: str, st: State) -> dict[str, Any]:
    return views.enterprise_detail(st, enterprise_id)


@router.get(
    "/api/explain/{enterprise_id}",
    responses=responses(404, 422, e404="unknown node_id, no run published, or the enterprise is not in its list"),
)
def api_explain(enterprise_id: str, st: State, node_id: str) -> dict[str, Any]:
    node_or_404(st, node_id, "query.node_id")
    return views.explain(run_or_404(st), node_id, enterprise_id)
