"""The app's exception handlers: bad input as ``{"detail": [{field, problem, got}]}``, HTTP errors as
JSON for the API and as a Chinese page for the web pages (the API's English details never reach a
page), and the redirect of a page without login."""

from __future__ import annotations

import difflib
from typing import Any, Final

from fastapi import HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from recommender.web.deps import FORGED, cookie_user, login_redirect, web_state
from recommender.web.problems import FASTAPI_BODY_PARSE_ERROR, NOT_JSON, problems
from recommender.web.routers.pages.render import render
from recommender.web.state import WebState

API_PREFIXES = ("/api/", "/health", "/docs", "/openapi", "/static/")
TITLES: Final = {403: "没有权限", 404: "未找到", 405: "不支持该操作", 409: "操作冲突", 422: "输入有误"}
NO_ROLE: Final = "当前令牌的角色不能执行此操作，请联系管理员。"
NOT_FOUND: Final = {
    "node_id": "找不到该节点（{got}）。",
    "enterprise_id": "找不到该企业（{got}）：它不在已导入的企业名录中。",
    "chain_id": "找不到该产业链（{got}）。",
}
NO_RUN: Final = "尚无已发布的名单：请先运行 sansetu refresh（或 sansetu demo）。"
FIELD_NAMES: Final = {
    "node_id": "节点", "enterprise_id": "企业", "chain_id": "产业链", "stage": "阶段", "date": "日期",
    "note": "备注", "amount_cny": "金额", "token": "令牌", "q": "关键词",
}  # fmt: skip
FIELD_HINTS: Final = {
    "node_id": "请选择一个节点",
    "stage": "请选择一个跟进阶段",
    "date": "须为 1949-10-01 至今天（北京时间）之间的日期",
    "note": "最多 2000 字，且不能含控制字符",
}


async def bad_input(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    found = problems(exc.errors())
    if request.url.path.startswith(API_PREFIXES):
        return JSONResponse(status_code=422, content={"detail": found})
    return _error_page(request, HTTPException(422, found))


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
    return _error_page(request, exc)


def allowed_methods(request: Request) -> str | None:
    """Every method the API documents for this path (``Allow`` of a 405); None for a page's path."""
    methods = request.app.state.contract.methods(request.url.path)
    return ", ".join(sorted(methods)) if methods else None


def _error_page(request: Request, exc: StarletteHTTPException) -> Response:
    st = web_state(request)
    title, message = page_message(st, exc.status_code, exc.detail)
    return render(request, st, "error.html", cookie_user(request, st), exc.status_code, title=title, message=message)


def _short(field: Any) -> str:
    return str(field).rsplit(".", 1)[-1]


def _not_found(st: WebState, detail: Any) -> str:
    if not isinstance(detail, list):
        return NO_RUN if str(detail).startswith("no published run") else "页面不存在，请检查网址。"
    out = []
    for p in detail:
        field, got = _short(p.get("field")), p.get("got")
        out.append(NOT_FOUND.get(field, "找不到所要的内容（{got}）。").format(got=got))
        if field == "node_id":
            close = difflib.get_close_matches(str(got), list(st.node_index), n=3, cutoff=0.6)
            names = st.node_names()
            if close:
                out.append("您要找的是不是：" + "、".join(names[n] for n in close) + "？")
    return "".join(out)


def page_message(st: WebState, status: int, detail: Any) -> tuple[str, str]:
    """The title and Chinese message of an error page."""
    if status == 403:
        return ("请求未通过校验", FORGED) if detail == FORGED else (TITLES[403], NO_ROLE)
    if status == 404:
        return TITLES[404], _not_found(st, detail)
    if status == 422 and isinstance(detail, list):
        fields = list(dict.fromkeys(_short(p.get("field")) for p in detail))
        parts = [f"{FIELD_NAMES.get(f, f)}：{FIELD_HINTS.get(f, '取值无效')}" for f in fields]
        return TITLES[422], "；".join(parts) + "。"
    if status == 405:
        return TITLES[405], "该页面不支持这种请求方式。"
    return TITLES.get(status, "出错了"), "请求无法完成，请稍后重试或联系管理员。"


async def to_login(_: Request, exc: Exception) -> RedirectResponse:
    return login_redirect()
