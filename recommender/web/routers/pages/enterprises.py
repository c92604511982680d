"""An enterprise's page and its feedback form (recording needs the analyst role)."""

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from recommender import store
from recommender.web import views
from recommender.web.deps import PageUser, State, page_form
from recommender.web.lookups import enterprise_or_404, node_or_404
from recommender.web.problems import problems
from recommender.web.routers.pages.render import render
from recommender.web.schemas import FeedbackIn

router = APIRouter()
PageAnalystForm = Annotated[store.Principal, Depends(page_form("analyst"))]


@router.get("/enterprises/{enterprise_id}", response_class=HTMLResponse, response_model=None)
def enterprise_page(
    request: Request, who: PageUser, st: State, enterprise_id: str, saved: int = 0, node_id: str | None = None
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
        can_write=who.allows("analyst"),
        today=dt.date.today().isoformat(),
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
    node_or_404(st, body.node_id, "form.node_id")
    enterprise_or_404(st, body.enterprise_id)
    store.add_feedback(
        st.engine,
        enterprise_id=body.enterprise_id,
        node_id=body.node_id,
        stage=body.stage,
        author=who.name,
        on=body.date,
        note=body.note,
    )
    return RedirectResponse(f"/enterprises/{enterprise_id}?saved=1#history", status_code=303)
