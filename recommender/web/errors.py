"""The app's exception handlers: bad input as ``{"detail": [{field, problem, got}]}``, HTTP errors as
JSON for the API and as a Chinese page for the web pages, and the redirect of a page without login."""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from recommender.web.deps import FORGED, cookie_user, login_redirect, web_state
from recommender.web.problems import FASTAPI_BODY_PARSE_ERROR, NOT_JSON, problems
from recommender.web.routers.pages.render import render

API_PREFIXES = ("/api/", "/health", "/docs", "/openapi", "/static/")
TITLES = {403: "没有权限", 404: "未找到", 422: "输入有误"}
MESSAGES = {403: "当前令牌的角色不能执行此操作，请联系管理员。"}


async def bad_input(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(status_code=422, content={"detail": problems(exc.errors())})


async def http_error(request: Request, exc: Exception) -> Response:
    """JSON for the API; a Chinese page for the web pages (unknown node, enterprise, no role)."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == FASTAPI_BODY_PARSE_ERROR:  # bytes that are not UTF-8 JSON
        exc = HTTPException(422, [{"field": "body", "problem": NOT_JSON, "got": None}])
    allow = allowed_methods(request) if exc.status_code == 405 else None
    if allow:  # Starlette names only the methods of the first route of the path: name them all
        exc = HTTPException(405, exc.detail, headers={**(exc.headers or {}), "Allow": allow})
    if request.url.path.startswith(API_PREFIXES):
        return await http_exception_handler(request, exc)
    detail = exc.detail
    if isinstance(detail, list):
        detail = "；".join(f"{d.get('field')}: {d.get('problem')}（{d.get('got')}）" for d in detail)
    st = web_state(request)
    return render(
        request, st, "error.html", cookie_user(request, st), exc.status_code,
        title=TITLES.get(exc.status_code, "出错了"),
        message=detail if detail == FORGED else MESSAGES.get(exc.status_code, str(detail)),
    )  # fmt: skip


def allowed_methods(request: Request) -> str | None:
    """Every method the API documents for this path (``Allow`` of a 405); None for a page's path."""
    methods = request.app.state.contract.methods(request.url.path)
    return ", ".join(sorted(methods)) if methods else None


async def to_login(_: Request, exc: Exception) -> RedirectResponse:
    return login_redirect()
