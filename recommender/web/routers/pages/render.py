"""A page from its template, with what every page shows (the chains in the header, the user, the
CSRF token of the header's logout form and of every form on the page)."""

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from recommender import store
from recommender.web.deps import page_csrf
from recommender.web.state import WebState


def render(
    request: Request, st: WebState, name: str, user: store.Principal | None, status_code: int = 200, **ctx: Any
) -> HTMLResponse:
    csrf = page_csrf(request, st) if user is not None else None
    return st.templates.TemplateResponse(
        request, name, {"chains": st.chains, "user": user, "csrf": csrf, **ctx}, status_code=status_code
    )
