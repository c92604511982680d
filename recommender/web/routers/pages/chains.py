"""The home page (every chain's colour counts) and a chain's page (its picture and node table)."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from recommender.web import security, views
from recommender.web.deps import PageUser, State
from recommender.web.lookups import chain_or_404
from recommender.web.routers.pages.render import render
from recommender.web.serialize import records

router = APIRouter()


@router.get("/", response_class=HTMLResponse, response_model=None)
def home(request: Request, who: PageUser, st: State) -> Response:
    view = st.published.get()
    return render(request, st, "index.html", who, view=view, summary=views.chain_summary(st, view))


@router.get("/chains/{chain_id}", response_class=HTMLResponse, response_model=None)
def chain_page(request: Request, who: PageUser, st: State, chain_id: str) -> Response:
    chain_or_404(st, chain_id)
    view = st.published.get()
    rows = views.chain_map_rows(view, chain_id)
    chain = st.chain_index[chain_id]
    svg = security.without_style(views.chain_svg(chain, rows))  # its rules are in style.css
    return render(request, st, "chain.html", who, chain=chain, rows=records(rows), svg=svg, view=view)
