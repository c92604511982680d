"""A node's targets (filters, Excel link), search, and what is new in the run."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from recommender.paths.wording import THEMES
from recommender.web import views
from recommender.web.deps import PageUser, State
from recommender.web.display import relative_score, score_range
from recommender.web.filters import SIZES, ListFilters
from recommender.web.lookups import node_or_404, run_or_404
from recommender.web.routers.pages.render import render
from recommender.web.serialize import records

router = APIRouter()
SEARCH_TOP = 50


def page_filters(
    province: str | None = None,
    size: str | None = None,
    listed: str | None = None,
    has_signals: str | None = None,
    theme: str | None = None,
) -> ListFilters:
    """The node page's filter form (lenient: an unknown value means "any")."""
    return ListFilters.from_page(province, size, listed, has_signals, theme)


@router.get("/nodes/{node_id}", response_class=HTMLResponse, response_model=None)
def node_page(
    request: Request, who: PageUser, st: State, node_id: str, f: Annotated[ListFilters, Depends(page_filters)]
) -> Response:
    node_or_404(st, node_id)
    ctx = views.node_page(st, node_id, f)
    return render(request, st, "node.html", who, themes=THEMES, sizes=list(SIZES), **ctx)


@router.get("/nodes/{node_id}/targets.xlsx", response_model=None)
def node_xlsx(_: PageUser, st: State, node_id: str, f: Annotated[ListFilters, Depends(page_filters)]) -> Response:
    """The node page's 下载Excel: the API's workbook of the filtered list, behind the page login."""
    node_or_404(st, node_id)
    return views.xlsx_response(views.node_workbook(st, run_or_404(st), node_id, f), node_id)


@router.get("/search", response_class=HTMLResponse, response_model=None)
def search_page(request: Request, who: PageUser, st: State, q: str = "") -> Response:
    text = q.strip()[:500]
    items = []
    error = None
    if text:
        try:
            items = records(st.retrieval.search(text, SEARCH_TOP))
        except ValueError:
            error = "请输入要搜索的企业名称、产品或技术关键词。"
    bounds = score_range(i.get("score") for i in items)
    relative = [relative_score(i.get("score"), bounds) for i in items]
    return render(request, st, "search.html", who, q=text, items=items, relative=relative, error=error)


@router.get("/new", response_class=HTMLResponse, response_model=None)
def new_page(request: Request, who: PageUser, st: State) -> Response:
    view = st.published.get()
    return render(
        request,
        st,
        "new.html",
        who,
        view=view,
        diff=view.diff if view else {},
        node_names=st.node_names(),
        colour_names=views.COLOUR_NAMES,
    )


@router.get("/new.xlsx", response_model=None)
def new_xlsx(_: PageUser, st: State) -> Response:
    view = run_or_404(st)
    data = views.workbook_for(st, view.map, view.targets, view.diff or None, view)
    return views.xlsx_response(data, f"sansetu-{view.run_id}")
