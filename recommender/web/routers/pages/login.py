"""Log in with a token (an HTTP-only cookie), log out."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from recommender import store
from recommender.web.deps import COOKIE, State, cookie_user, login_redirect
from recommender.web.routers.pages.render import render

router = APIRouter()
COOKIE_DAYS = 30


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, st: State) -> HTMLResponse:
    return render(request, st, "login.html", cookie_user(request, st), error=None)


@router.post("/login", response_model=None)
def login(request: Request, st: State, token: Annotated[str, Form()]) -> Response:
    who = store.authenticate(st.engine, token.strip())
    if who is None:
        return render(request, st, "login.html", cookie_user(request, st), error="令牌无效或已停用，请向管理员申请。")
    resp = RedirectResponse("/", status_code=303)
    resp.set_cookie(COOKIE, token.strip(), httponly=True, samesite="lax", max_age=COOKIE_DAYS * 86400)
    return resp


@router.get("/logout")
def logout() -> RedirectResponse:
    resp = login_redirect()
    resp.delete_cookie(COOKIE)
    return resp
