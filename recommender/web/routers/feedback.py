"""Analysts' feedback: record a stage transition (analyst), read the rows (viewer)."""

from typing import Any

from fastapi import APIRouter

from recommender import store
from recommender.web.deps import Analyst, State, Viewer
from recommender.web.lookups import enterprise_or_404, node_or_404
from recommender.web.schemas import FeedbackIn
from recommender.web.serialize import iso

router = APIRouter(tags=["feedback"])


@router.post("/api/feedback", status_code=201)
def api_feedback(body: FeedbackIn, who: Analyst, st: State) -> dict[str, Any]:
    node_or_404(st, body.node_id, "body.node_id")
    enterprise_or_404(st, body.enterprise_id, "body.enterprise_id")
    row = store.add_feedback(
        st.engine,
        enterprise_id=body.enterprise_id,
        node_id=body.node_id,
        stage=body.stage,
        author=who.name,
        on=body.date,
        note=body.note,
        amount_cny=body.amount_cny,
    )
    return iso(row)


@router.get("/api/feedback")
def api_feedback_list(_: Viewer, st: State, enterprise_id: str | None = None) -> list[dict[str, Any]]:
    return [iso(r) for r in store.feedback_rows(st.engine, enterprise_id)]
