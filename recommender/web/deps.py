"""Dependencies of the routes: the app's state, and who is calling.

API calls authenticate with a header only, ``Authorization: Bearer <token>`` or ``X-API-Token``
(never a cookie, so no page elsewhere can make a browser call the API): :func:`require` answers 401
without a valid, unrevoked token and 403 when its role is too small (viewer < analyst < admin).
Pages authenticate with the server-side session of the cookie set by ``/login``
(``recommender.web.security``): :func:`page_user` sends a visitor without one to the login page
(303), :func:`page_require` answers 403 (an error page) when the role is too small, and
:func:`page_form` also checks a form post's CSRF token and origin.
"""

import datetime as dt
from collections.abc import Callable
from functools import cache
from typing import Annotated, Final

from fastapi import Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from recommender import store
from recommender.web.security import CSRF_FIELD, SESSION_COOKIE, same_origin, session_csrf, tokens_match
from recommender.web.state import WebState

COOKIE: Final = SESSION_COOKIE
FORGED: Final = "表单校验未通过：请从本系统的页面重新提交（页面可能已过期，请刷新后重试）。"
_bearer = HTTPBearer(auto_error=False, scheme_name="bearerAuth", description="Authorization: Bearer sst_…")
_api_key = APIKeyHeader(
    name="X-API-Token", auto_error=False, scheme_name="apiTokenHeader", description="the same token, another header"
)


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


State = Annotated[WebState, Depends(web_state)]


def principal(
    st: State,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> store.Principal:
    """The caller of an API endpoint; 401 without a valid, unrevoked token in a header."""
    token = (bearer.credentials.strip() if bearer else None) or api_key
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
    """A page was asked for without a live session: the app answers with a redirect to ``/login``."""


def login_redirect() -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


def page_session(request: Request, st: WebState) -> store.Session | None:
    """The live session of the page cookie, if any (looked up, and touched, once per request)."""
    if not hasattr(request.state, "session"):
        serve = st.settings.serve
        idle = dt.timedelta(minutes=serve.session_idle_minutes)
        request.state.session = store.session_for(st.engine, request.cookies.get(SESSION_COOKIE), idle)
    session: store.Session | None = request.state.session
    return session


def cookie_user(request: Request, st: WebState) -> store.Principal | None:
    """Who the page session belongs to, if anyone (the pages' header shows it)."""
    session = page_session(request, st)
    return session.principal if session else None


def page_csrf(request: Request, st: WebState) -> str | None:
    """The CSRF token the forms of this visitor's pages carry (None without a session)."""
    session_id = request.cookies.get(SESSION_COOKIE)
    return session_csrf(session_id) if session_id and page_session(request, st) else None


def page_user(request: Request, st: State) -> store.Principal:
    """The logged-in visitor of a page; without one, :class:`LoginRequired` (a redirect to the login page)."""
    who = cookie_user(request, st)
    if who is None:
        raise LoginRequired
    return who


PageUser = Annotated[store.Principal, Depends(page_user)]


def _role_or_403(who: store.Principal, role: store.Role) -> store.Principal:
    if not who.allows(role):
        raise HTTPException(status_code=403, detail=f"role '{role}' required; token has role '{who.role}'")
    return who


@cache
def page_require(role: store.Role) -> Callable[[store.Principal], store.Principal]:
    """A page dependency: the logged-in visitor, whose role is at least ``role`` (else a 403 page)."""

    def check(who: PageUser) -> store.Principal:
        return _role_or_403(who, role)

    return check


@cache
def page_form(role: store.Role) -> Callable[..., store.Principal]:
    """A form post's dependency: the logged-in visitor with ``role``, the session's CSRF token in the
    form and the request from this origin; else a 403 page and nothing done."""

    def check(
        request: Request, st: State, who: PageUser, csrf_token: Annotated[str | None, Form(alias=CSRF_FIELD)] = None
    ) -> store.Principal:
        if not same_origin(request) or not tokens_match(csrf_token, page_csrf(request, st)):
            raise HTTPException(status_code=403, detail=FORGED)
        return _role_or_403(who, role)

    return check
