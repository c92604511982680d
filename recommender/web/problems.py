"""The body of every 4xx for bad input: ``{"detail": [{"field", "problem", "got"}]}``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import HTTPException

from recommender.web.serialize import clean


def problems(errors: Iterable[Mapping[str, Any]], prefix: str = "") -> list[dict[str, Any]]:
    """Pydantic's errors as ``{field, problem, got}`` (``field`` is the dotted location after ``prefix``)."""
    return [
        {"field": prefix + ".".join(str(p) for p in e["loc"]), "problem": e["msg"], "got": clean(e.get("input"))}
        for e in errors
    ]


def bad(field: str, problem: str, got: Any) -> HTTPException:
    """A 422 naming one field."""
    return HTTPException(status_code=422, detail=[{"field": field, "problem": problem, "got": clean(got)}])


def not_found(field: str, problem: str, got: Any) -> HTTPException:
    """A 404 naming the field whose well-formed id does not exist."""
    return HTTPException(status_code=404, detail=[{"field": field, "problem": problem, "got": got}])
