"""The body of every 4xx for bad input: ``{"detail": [{"field", "problem", "got"}]}``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel, Field

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


# ---------------------------------------------------------------- the error bodies, as documented
class Problem(BaseModel):
    """One bad value: where it was (``body.date``, ``query.size``, ``path.node_id``), what is wrong, what was sent."""

    field: str = Field(examples=["query.size"])
    problem: str = Field(examples=["must be one of ['小型', '中型', '大型']"])
    got: Any = Field(description="the value sent (JSON-safe, text cut to 200 characters), or null")


class Problems(BaseModel):
    """Bad input (422), or a well-formed id that does not exist (404): each field and its problem."""

    detail: list[Problem]


class Message(BaseModel):
    """Any other error: 401 no valid token, 403 role too small, 404 nothing there, 409 busy."""

    detail: str


_WHY: dict[int, tuple[Any, str]] = {
    401: (Message, "no valid token: missing, unknown or revoked (a token revoked meanwhile included)"),
    403: (Message, "the token's role is too small for this operation"),
    404: (Problems | Message, "not found: a well-formed id that does not exist (naming the field), or no such path"),
    409: (Message, "conflict: the resource is busy"),
    422: (Problems, "bad input: each field and its problem"),
}


def responses(*codes: int, **why: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route for these error statuses (``why`` overrides a description: ``e404="…"``)."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        model, description = _WHY[code]
        out[code] = {"model": model, "description": why.get(f"e{code}", description)}
    if 401 in out:
        out[401]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}}
    return out
