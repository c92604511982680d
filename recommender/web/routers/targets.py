"""Targets (filtered, paged, as Excel) and free-text search (viewer)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from recommender.web import views
from recommender.web.deps import State, require
from recommender.web.filters import ListFilters
from recommender.web.lookups import chain_or_404, node_or_404, run_or_404
from recommender.web.problems import bad, responses
from recommender.web.schemas import SEARCH_PATTERN
from recommender.web.serialize import records

router = APIRouter(tags=["targets"], dependencies=[Depends(require("viewer"))], responses=responses(401))

Filters = Annotated[ListFilters, Query()]
NO_NODE = "unknown node_id, or no run published yet"


@router.get("/api/nodes/{node_id}/targets", responses=responses(404, 422, e404=NO_NODE))
def api_targets(
    node_id: str,
    st: State,
    filters: Filters,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=200)] = 20,
) -> dict[str, Any]:
    node_or_404(st, node_id)
    f = filters.checked()
    return views.target_page(st, run_or_404(st), node_id, f, page, page_size)


@router.get(
    "/api/nodes/{node_id}/targets.xlsx",
    response_class=views.XlsxResponse,
    responses=views.XLSX_200 | responses(404, 422, e404=NO_NODE),
)
def api_targets_xlsx(node_id: str, st: State, filters: Filters) -> Response:
    """The (filtered) list as the refresh's workbook: same sheets, formula-injection safe."""
    node_or_404(st, node_id)
    f = filters.checked()
    return views.xlsx_response(views.node_workbook(st, run_or_404(st), node_id, f), node_id)


@router.get(
    "/api/chains/{chain_id}/targets.xlsx",
    response_class=views.XlsxResponse,
    responses=views.XLSX_200 | responses(404, 422, e404="unknown chain_id, or no run published yet"),
)
def api_chain_xlsx(chain_id: str, st: State) -> Response:
    """Every list of one chain (the chain's sheet of the refresh's workbook)."""
    chain_or_404(st, chain_id)
    return views.xlsx_response(views.chain_workbook(st, run_or_404(st), chain_id), chain_id)


@router.get("/api/search", responses=responses(422))
def api_search(
    st: State,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=500,
            description="free text, e.g. 硅光芯片 封装; at least one character that is not a space or control",
            json_schema_extra={"pattern": SEARCH_PATTERN},
        ),
    ],
    top: Annotated[int, Query(ge=1, le=200)] = 20,
) -> dict[str, Any]:
    try:
        found = st.retrieval.search(q, top)
    except ValueError as exc:
        raise bad("query.q", str(exc), q) from None
    return {"q": q, "total": int(len(found)), "items": records(found.assign(rank=range(1, len(found) + 1)))}
