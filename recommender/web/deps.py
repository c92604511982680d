"""Dependencies of the routes: the app's state, and who is calling.

API calls authenticate with ``Authorization: Bearer <token>`` (or ``X-API-Token``, or the page
cookie): :func:`require` answers 401 without a valid token and 403 when its role is too small
(viewer < analyst < admin). Pages authenticate with the cookie set by ``/login``: :func:`page_user`
sends a visitor without one to the login page (303), :func:`page_require` answers 403 (an error
page) when the role is too small.
"""

from collections.abc import Callable
from functools import cache
from typing import Annotated, Final

from fastapi import Depends, HTTPException, Request
from fastapi.responses import RedirectResponse

from recommender import store
from recommender.web.state import WebState

COOKIE: Final = "sansetu_token"


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


State = Annotated[WebState, Depends(web_state)]


def principal(request: Request, st: State) -> store.Principal:
    """The caller of an API endpoint; 401 without a valid, unrevoked token."""
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    token = token or request.headers.get("x-api-token") or request.cookies.get(COOKIE)
    who = store.authenticate(st.engine, token)
    if who is None:
        raise HTTPException(
            status_code=401, detail="a valid API token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    return who


@cache
def require(role: store.Role) -> Callable[[store.Principal], store.Principal]:
    """A dependency: the caller, whose token has at least ``role`` (else 403)."""

    def check(who: Annotated[store.Principal, Depends(principal)]) -> store.Principal:
        if not who.allows(role):
            raise HTTPException(status_code=403, detail=f"role '{role}' required; token has role '{who.role}'")
        return who

    return check


Viewer = Annotated[store.Principal, Depends(require("viewer"))]
Analyst = Annotated[store.Principal, Depends(require("analyst"))]
Admin = Annotated[store.Principal, Depends(require("admin"))]


class LoginRequired(Exception):
    """A page was asked for without a valid cookie: the app answers with a redirect to ``/login``."""


def login_redirect() -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


def cookie_user(request: Request, st: WebState) -> store.Principal | None:
    """Who the page cookie belongs to, if anyone (the pages' header shows it)."""
    return store.authenticate(st.engine, request.cookies.get(COOKIE))


def page_user(request: Request, st: State) -> store.Principal:
    """The logged-in visitor of a page; without one, :class:`LoginRequired` (a redirect to the login page)."""
    who = cookie_user(request, st)
    if who is None:
        raise LoginRequired
    return who


PageUser = Annotated[store.Principal, Depends(page_user)]


@cache
def page_require(role: store.Role) -> Callable[[store.Principal], store.Principal]:
    """A page dependency: the logged-in visitor, whose role is at least ``role`` (else a 403 page)."""

    def check(who: PageUser) -> store.Principal:
        if not who.allows(role):
            raise HTTPException(status_code=403, detail=f"role '{role}' required; token has role '{who.role}'")
        return who

    return check
