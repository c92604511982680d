"""The runs of the workspace and their diffs (viewer)."""

from typing import Any

from fastapi import APIRouter, Depends

from recommender.web import views
from recommender.web.deps import State, require
from recommender.web.problems import responses

router = APIRouter(tags=["runs"], dependencies=[Depends(require("viewer"))], responses=responses(401))


@router.get("/api/runs")
def api_runs(st: State) -> list[dict[str, Any]]:
    return views.run_records(st)


@router.get("/api/runs/{run}/diff", responses=responses(404, 422, e404="no such complete run"))
def api_diff(run: str, st: State) -> dict[str, Any]:
    """What changed since the run before: ``{since, run_id, nodes, colour_changes, totals}``.

    ``run`` is a run directory name from ``/api/runs`` (``2026-06-30``, ``2026-06-30-r2``) or ``current``.
    """
    return views.diff_of(st, run)
