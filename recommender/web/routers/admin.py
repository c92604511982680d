"""Token management and the audit log (admin)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi import Path as FPath

from recommender import store
from recommender.web.deps import Admin, State, require
from recommender.web.problems import responses
from recommender.web.schemas import MAX_ID, NewToken, TokenIn
from recommender.web.serialize import iso

router = APIRouter(tags=["tokens"], dependencies=[Depends(require("admin"))], responses=responses(401, 403))


@router.get("/api/tokens")
def api_tokens(st: State) -> list[dict[str, Any]]:
    return [iso(t) for t in store.list_tokens(st.engine)]


@router.post("/api/tokens", status_code=201, response_model=NewToken, responses=responses(422))
def api_token_create(body: TokenIn, who: Admin, st: State) -> dict[str, Any]:
    return {
        "name": body.name,
        "role": body.role,
        "token": store.create_token(st.engine, body.name, body.role, actor=who.name),
    }


@router.delete("/api/tokens/{token_id}", responses=responses(404, 422, e404="no such token, or it is already revoked"))
def api_token_revoke(token_id: Annotated[int, FPath(ge=1, le=MAX_ID)], who: Admin, st: State) -> dict[str, Any]:
    if not store.revoke_token(st.engine, token_id, who.name):  # DELETE twice: the second finds nothing to revoke
        known = {t["id"]: t for t in store.list_tokens(st.engine)}
        detail = f"token {token_id} is already revoked" if token_id in known else f"unknown token id {token_id}"
        raise HTTPException(status_code=404, detail=detail)
    return {"revoked": token_id}


@router.get("/api/audit", responses=responses(422))
def api_audit(st: State, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    return [iso(r) for r in store.audit_rows(st.engine, limit)]
