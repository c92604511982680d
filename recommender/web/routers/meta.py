"""``/health`` (no token) and the pages' stylesheet."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from recommender.web.deps import State
from recommender.web.state import STATIC_DIR

router = APIRouter()


@router.get("/health", tags=["meta"])
def health(st: State) -> dict[str, Any]:
    view = st.published.get()
    return {"status": "ok", "published_run": view.run_id if view else None}


@router.get("/static/style.css", include_in_schema=False)
def style() -> Response:
    return Response((STATIC_DIR / "style.css").read_text(encoding="utf-8"), media_type="text/css")
