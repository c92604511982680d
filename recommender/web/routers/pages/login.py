"""Log in with a token (a server-side session in an HTTP-only cookie), log out (a POST)."""

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from recommender import store
from recommender.web import security
from recommender.web.deps import State, cookie_user, login_redirect, page_form
from recommender.web.routers.pages.render import render

router = APIRouter()
LOGIN_FORGED = "登录表单已过期或来自其他网站，请重新输入令牌登录。"


def _login_page(request: Request, st: State, error: str | None, status_code: int = 200) -> Response:
    """The login form with its double-submit token (the cookie's, else a new one set as the cookie)."""
    value = request.cookies.get(security.LOGIN_COOKIE) or security.new_login_csrf()
    resp = render(request, st, "login.html", cookie_user(request, st), status_code, error=error, login_csrf=value)
    security.set_login_cookie(resp, request, value)
    return resp


@router.get("/login", response_class=HTMLResponse, response_model=None)
def login_page(request: Request, st: State) -> Response:
    return _login_page(request, st, None)


@router.post("/login", response_model=None)
def login(
    request: Request, st: State, token: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = ""
) -> Response:
    """A session for a valid token, if the form is ours (its token matches the cookie; same origin)."""
    if not security.same_origin(request) or not security.tokens_match(
        csrf_token, request.cookies.get(security.LOGIN_COOKIE)
    ):
        return _login_page(request, st, LOGIN_FORGED, 403)  # the form again, with the cookie's token
    serve = st.settings.serve
    session_id = store.create_session(st.engine, token.strip()[:200], dt.timedelta(hours=serve.session_hours))
    if session_id is None:
        return _login_page(request, st, "令牌无效或已停用，请向管理员申请。")
    store.revoke_session(st.engine, request.cookies.get(security.SESSION_COOKIE))  # never two for one browser
    resp = login_redirect()
    resp.headers["location"] = "/"
    security.set_session_cookie(resp, request, session_id, serve.session_hours)
    security.clear_login_cookie(resp, request)
    return resp


@router.get("/logout", response_class=HTMLResponse, response_model=None)
def logout_page(request: Request, st: State) -> Response:
    """A link cannot log out (a GET changes nothing): the page asks, with the form's token."""
    who = cookie_user(request, st)
    if who is None:
        return login_redirect()
    return render(request, st, "logout.html", who)


@router.post("/logout", response_model=None, dependencies=[Depends(page_form("viewer"))])
def logout(request: Request, st: State) -> Response:
    """End the session on the server (its cookie is then worthless) and delete the cookie."""
    store.revoke_session(st.engine, request.cookies.get(security.SESSION_COOKIE))
    resp = login_redirect()
    security.clear_session_cookie(resp, request)
    return resp
