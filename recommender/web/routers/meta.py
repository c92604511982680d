"""``/health`` (no token), the API's OpenAPI document and the pages' stylesheet."""

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from recommender import store
from recommender.web.deps import State, cookie_user
from recommender.web.state import STATIC_DIR

router = APIRouter()


@router.get("/health", tags=["meta"])
def health(st: State) -> dict[str, Any]:
    """Up, the published run, and whether search is ready (``recommender.web.state.Retrieval.status``)."""
    view = st.published.get()
    return {"status": "ok", "published_run": view.run_id if view else None, "search": st.retrieval.status()}


def _header_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    return token or request.headers.get("x-api-token")


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, st: State) -> JSONResponse:
    """The OpenAPI document (``recommender.web.contract``): a viewer token (header, or the page session) unless
    ``serve.openapi_requires_token`` is off."""
    if st.settings.serve.openapi_requires_token:
        who = store.authenticate(st.engine, _header_token(request)) or cookie_user(request, st)
        if who is None:
            raise HTTPException(
                status_code=401, detail="a valid API token is required", headers={"WWW-Authenticate": "Bearer"}
            )
    return JSONResponse(request.app.state.contract.document())


@router.get("/static/style.css", include_in_schema=False)
def style() -> Response:
    return Response((STATIC_DIR / "style.css").read_text(encoding="utf-8"), media_type="text/css")
