"""The body of every 4xx for bad input: ``{"detail": [{"field", "problem", "got"}]}``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import HTTPException

from recommender.web.serialize import clean

MAX_GOT_CHARS = 200  # what a problem echoes of the value sent is cut to this many characters
NOT_JSON = "the body must be a JSON object (Content-Type: application/json, UTF-8)"
# FastAPI's own 400 for a body it cannot decode; the handlers answer it as a 422 naming the body
FASTAPI_BODY_PARSE_ERROR = "There was an error parsing the body"


def got(value: Any) -> Any:
    """The value a client sent, JSON-safe, and cut to :data:`MAX_GOT_CHARS` when it is long text."""
    value = clean(value)
    if isinstance(value, str) and len(value) > MAX_GOT_CHARS:
        return value[:MAX_GOT_CHARS] + "…"
    return value


def _problem(e: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    loc = tuple(e["loc"])
    if loc == ("body",) and isinstance(e.get("input"), (bytes, bytearray)):
        return {"field": "body", "problem": NOT_JSON, "got": got(e["input"])}  # sent as text, form or bytes
    if e.get("type") == "json_invalid":  # FastAPI puts the character offset in the location
        reason = (e.get("ctx") or {}).get("error", "JSON decode error")
        return {"field": "body", "problem": f"not valid JSON: {reason} (at character {loc[-1]})", "got": None}
    message = str(e["msg"]).removeprefix("Value error, ")
    return {"field": prefix + ".".join(str(p) for p in loc), "problem": message, "got": got(e.get("input"))}


def problems(errors: Iterable[Mapping[str, Any]], prefix: str = "") -> list[dict[str, Any]]:
    """Pydantic's errors as ``{field, problem, got}`` (``field`` is the dotted location after ``prefix``)."""
    return [_problem(e, prefix) for e in errors]


def bad(field: str, problem: str, got_value: Any) -> HTTPException:
    """A 422 naming one field."""
    return HTTPException(status_code=422, detail=[{"field": field, "problem": problem, "got": got(got_value)}])


def not_found(field: str, problem: str, got_value: Any) -> HTTPException:
    """A 404 naming the field whose well-formed id does not exist."""
    return HTTPException(status_code=404, detail=[{"field": field, "problem": problem, "got": got(got_value)}])
