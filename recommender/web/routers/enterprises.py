"""An enterprise's detail and one target's explanation (viewer)."""

from typing import Any

from fastapi import APIRouter, Depends

from recommender.web import views
from recommender.web.deps import State, require
from recommender.web.lookups import node_or_404, run_or_404

router = APIRouter(tags=["enterprises"], dependencies=[Depends(require("viewer"))])


@router.get("/api/enterprises/{enterprise_id}")
def api_enterprise(enterprise_id: str, st: State) -> dict[str, Any]:
    return views.enterprise_detail(st, enterprise_id)


@router.get("/api/explain/{enterprise_id}")
def api_explain(enterprise_id: str, st: State, node_id: str) -> dict[str, Any]:
    node_or_404(st, node_id, "query.node_id")
    return views.explain(run_or_404(st), node_id, enterprise_id)
