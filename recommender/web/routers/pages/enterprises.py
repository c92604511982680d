"""An enterprise's page, its feedback form (recording needs the analyst role) and the withdrawal of
a feedback row by its author or an admin."""

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from features.validate import today_in_zone
from recommender import store
from recommender.web import views
from recommender.web.deps import PageUser, State, page_form
from recommender.web.problems import not_found, problems
from recommender.web.routers.pages.render import render
from recommender.web.schemas import FeedbackIn, WithdrawIn

router = APIRouter()
PageAnalystForm = Annotated[store.Principal, Depends(page_form("analyst"))]


@router.get("/enterprises/{enterprise_id}", response_class=HTMLResponse, response_model=None)
def enterprise_page(
    request: Request,
    who: PageUser,
    st: State,
    enterprise_id: str,
    saved: int = 0,
    withdrawn: int = 0,
    node_id: str | None = None,
) -> Response:
    detail = views.enterprise_detail(st, enterprise_id)
    came_from = [node_id] if node_id in st.node_index else []
    nodes_for = list(dict.fromkeys(came_from + [t["node_id"] for t in detail["targets"]]))
    names = st.node_names()
    return render(
        request,
        st,
        "enterprise.html",
        who,
        d=detail,
        node_names=names,
        all_nodes=list(names.items()),
        stages=store.FEEDBACK_STAGES,
        nodes_for=nodes_for,
        saved=saved,
        withdrawn=withdrawn,
        can_write=who.allows("analyst"),
        may_withdraw=lambda h: h.get("source") == "feedback" and (h.get("author") == who.name or who.allows("admin")),
        today=today_in_zone().isoformat(),  # the store's calendar day (Asia/Shanghai), not the server's
        **views.pick_scores(st, detail["targets"]),
        max_lists=st.settings.ranking.max_lists_per_firm,
    )


@router.post("/enterprises/{enterprise_id}/feedback", response_model=None)
def enterprise_feedback(
    who: PageAnalystForm,
    st: State,
    enterprise_id: str,
    node_id: Annotated[str, Form()],
    stage: Annotated[str, Form()],
    note: Annotated[str, Form()] = "",
    date: Annotated[str, Form()] = "",
) -> Response:
    try:
        body = FeedbackIn.model_validate(
            {"enterprise_id": enterprise_id, "node_id": node_id, "stage": stage, "note": note.strip() or None,
             "date": date or None}
        )  # fmt: skip
    except ValidationError as exc:
        raise HTTPException(status_code=422, detail=problems(exc.errors(), "form.")) from None
    views.record_feedback(st, body, who.name, "form", "path.enterprise_id")
    # back to the form with the same node chosen: the next entry goes to it too
    return RedirectResponse(
        f"/enterprises/{enterprise_id}?{urlencode({'saved': 1, 'node_id': body.node_id})}#history", status_code=303
    )


@router.post("/enterprises/{enterprise_id}/feedback/{outcome_id}/withdraw", response_model=None)
def enterprise_feedback_withdraw(
    who: PageAnalystForm,
    st: State,
    enterprise_id: str,
    outcome_id: str,
    reason: Annotated[str, Form()] = "",
    node_id: Annotated[str, Form()] = "",
) -> Response:
    """Withdraw one's own row (an admin: any row) with a reason; back to the page, the node kept."""
    try:
        body = WithdrawIn.model_validate({"reason": reason.strip() or "在页面撤回（未填原因）"})
        store.withdraw_feedback(st.engine, outcome_id, who, body.reason)
    except ValidationError as exc:
        raise HTTPException(status_code=422, detail=problems(exc.errors(), "form.")) from None
    except store.FeedbackNotFoundError:
        raise not_found("path.outcome_id", "no active feedback row", outcome_id) from None
    except store.FeedbackPermissionError:
        raise HTTPException(status_code=403, detail="not the author") from None
    query = {"withdrawn": 1, **({"node_id": node_id} if node_id in st.node_index else {})}
    return RedirectResponse(f"/enterprises/{enterprise_id}?{urlencode(query)}#history", status_code=303)
