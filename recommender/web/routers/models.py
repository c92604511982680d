"""Registered model versions (viewer); training in the background and promotion (admin)."""

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from fastapi import Path as FPath

from recommender import store
from recommender.web import views
from recommender.web.deps import Admin, State, Viewer
from recommender.web.problems import responses
from recommender.web.schemas import MAX_ID
from recommender.web.serialize import clean

router = APIRouter(tags=["models"], responses=responses(401))


@router.get("/api/models")
def api_models(_: Viewer, st: State) -> dict[str, Any]:
    """Registered versions (newest first) with aliases and test metrics, and the last training job."""
    reg = views.registry_or_none(st)
    versions = reg.list_versions() if reg is not None else []
    return {
        "model": st.settings.training.registered_model,
        "versions": clean(versions),
        "training": st.trainer.status(),
    }


@router.post(
    "/api/models/train",
    status_code=202,
    responses=responses(403, 409, 422, e409="a training run is already in progress"),
)
def api_train(who: Admin, st: State, promote_if_better: bool = False) -> dict[str, Any]:
    """Train on the workspace's tables plus every feedback row, in the background (one at a time)."""
    if not st.trainer.start(who.name, promote_if_better):
        raise HTTPException(status_code=409, detail="a training run is already in progress; see GET /api/models")
    store.record_audit(st.engine, who.name, "model.train", {"promote_if_better": promote_if_better})
    return st.trainer.status()


@router.post(
    "/api/models/{version}/promote", responses=responses(403, 404, 422, e404="no model registered, or no such version")
)
def api_promote(version: Annotated[int, FPath(ge=1, le=MAX_ID)], who: Admin, st: State) -> dict[str, Any]:
    from training.registry import RegistryError

    reg = views.registry_or_none(st)
    if reg is None:
        raise HTTPException(status_code=404, detail="no model registered yet: train one first (POST /api/models/train)")
    try:
        out = reg.promote(str(version))
    except RegistryError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    store.record_audit(st.engine, who.name, "model.promote", {"version": version, **out})
    return dict(out)
