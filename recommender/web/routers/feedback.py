"""Analysts' feedback: record a stage transition (analyst), read the rows (viewer; inactive ones
admin), correct or withdraw a row (its author or an admin). Every change is audited by the store."""

import re
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as FPath

from recommender import store
from recommender.web import views
from recommender.web.deps import Analyst, State, Viewer
from recommender.web.lookups import node_or_404
from recommender.web.problems import bad, not_found, responses
from recommender.web.schemas import OUTCOME_ID_PATTERN, FeedbackChange, FeedbackIn, FeedbackRow, WithdrawIn

router = APIRouter(tags=["feedback"], responses=responses(401))
NOT_YOURS = "the token's role is too small, or the row is neither the caller's nor the caller an admin"
GONE = "no such row, or it was already corrected or withdrawn"
OutcomeId = Annotated[str, FPath(pattern=OUTCOME_ID_PATTERN, description="a feedback row's id, fb-<16 hex>")]
_FIELD = re.compile(r"^(stage|date|note|amount_cny|reason)\b")
T = TypeVar("T")


def _stored(where: str, outcome_id: str, call: Callable[[], T]) -> T:
    """``call`` (a store write) with its refusals as HTTP: 404 gone, 403 not yours, 422 naming the field."""
    try:
        return call()
    except store.FeedbackNotFoundError as exc:
        raise not_found("path.outcome_id", str(exc), outcome_id) from None
    except store.FeedbackPermissionError as exc:
        raise HTTPException(status_code=403, detail=str(exc)) from None
    except ValueError as exc:
        field = _FIELD.match(str(exc))
        raise bad(f"{where}.{field.group(1)}" if field else where, str(exc), None) from None


@router.post(
    "/api/feedback",
    status_code=201,
    response_model=FeedbackRow,
    responses=responses(403, 404, 422, e404="unknown enterprise_id or node_id"),
)
def api_feedback(body: FeedbackIn, who: Analyst, st: State) -> dict[str, Any]:
    """Record a stage transition; without ``date``, today in Asia/Shanghai."""
    row = views.record_feedback(st, body, who.name, "body", "body.enterprise_id")
    return views.feedback_json(st, row)


@router.get(
    "/api/feedback",
    response_model=list[FeedbackRow],
    responses=responses(403, 422, e403="include_inactive needs the admin role"),
)
def api_feedback_list(
    who: Viewer,
    st: State,
    enterprise_id: Annotated[str | None, Query(max_length=18)] = None,
    include_inactive: Annotated[bool, Query(description="also corrected and withdrawn rows (admin)")] = False,
    flagged: Annotated[bool, Query(description="only rows with problems")] = False,
) -> list[dict[str, Any]]:
    """Feedback rows by date, each with ``active`` and ``problems``; only active rows unless ``include_inactive``."""
    if include_inactive and not who.allows("admin"):
        raise HTTPException(
            status_code=403, detail=f"role 'admin' required to list inactive feedback; token has role '{who.role}'"
        )
    return views.feedback_list(st, enterprise_id, include_inactive, flagged)


@router.get("/api/feedback/{outcome_id}", response_model=FeedbackRow, responses=responses(404, 422))
def api_feedback_row(outcome_id: OutcomeId, _: Viewer, st: State) -> dict[str, Any]:
    """One row, active or not (a corrected row names its correction in ``superseded_by``)."""
    return views.feedback_row(st, outcome_id)


@router.patch(
    "/api/feedback/{outcome_id}",
    response_model=FeedbackRow,
    responses=responses(403, 404, 422, e403=NOT_YOURS, e404=GONE + "; or an unknown node_id"),
)
def api_feedback_correct(outcome_id: OutcomeId, body: FeedbackChange, who: Analyst, st: State) -> dict[str, Any]:
    """Correct an active row (its author or an admin): a new row with the changes replaces it.

    The answer is the new row (a new ``outcome_id``; ``corrects`` names the old one, which is kept,
    marked ``superseded_by`` and no longer read by training). ``note`` and ``amount_cny`` may be null.
    """
    changes: dict[str, Any] = dict(body)
    if not changes:
        raise bad("body", "a correction changes at least one of ['node_id', 'stage', 'date', 'note', 'amount_cny']", {})
    if "node_id" in changes:
        node_or_404(st, changes["node_id"], "body.node_id")
    row = _stored("body", outcome_id, lambda: store.correct_feedback(st.engine, outcome_id, who, changes))
    return views.feedback_json(st, row)


@router.post(
    "/api/feedback/{outcome_id}/withdraw",
    response_model=FeedbackRow,
    responses=responses(403, 404, 422, e403=NOT_YOURS, e404=GONE),
)
def api_feedback_withdraw(outcome_id: OutcomeId, body: WithdrawIn, who: Analyst, st: State) -> dict[str, Any]:
    """Withdraw an active row (its author or an admin), with a reason: kept and audited, no longer trained on."""
    row = _stored("body", outcome_id, lambda: store.withdraw_feedback(st.engine, outcome_id, who, body.reason))
    return views.feedback_json(st, row)
