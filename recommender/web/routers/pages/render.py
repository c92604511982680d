"""A page from its template, with what every page shows (the chains in the header, the user)."""

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from recommender import store
from recommender.web.state import WebState


def render(request: Request, st: WebState, name: str, user: store.Principal | None, **ctx: Any) -> HTMLResponse:
    return st.templates.TemplateResponse(request, name, {"chains": st.chains, "user": user, **ctx})
