"""The API's OpenAPI document, as the server really answers: the bearer security scheme on every
operation but ``/health``, every status an operation can return with the error bodies the server
sends (``recommender.web.problems``), the real media types of the SVG and Excel downloads, and no
catch-all ``default`` response. Served at ``/openapi.json`` (with ``serve.openapi_requires_token``,
to a viewer token); there is no ``/docs`` or ``/redoc`` page, which would load Swagger UI or ReDoc
from a CDN.

A feedback date's schema is the pattern of the calendar dates the store accepts, 1949-10-01 …
today in Asia/Shanghai (:func:`date_pattern`), so the document is rebuilt once a day.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import threading
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from recommender.web.schemas import EVENT_DATE_MARK

_COMMON_DAYS = (
    "(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8])"
)


def _alt(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


def _two_digits(lo: int, hi: int) -> str:
    """A pattern of the zero-padded numbers lo … hi (0 ≤ lo ≤ hi ≤ 99)."""
    parts = []
    for tens in range(lo // 10, hi // 10 + 1):
        a, b = max(lo, tens * 10) % 10, min(hi, tens * 10 + 9) % 10
        parts.append(f"{tens}{a}" if a == b else f"{tens}[{a}-{b}]")
    return _alt(parts)


def _within_year(start: dt.date, end: dt.date) -> str:
    """The dates start … end of one year, month by month."""
    months = []
    for m in range(start.month, end.month + 1):
        first = start.day if m == start.month else 1
        last = end.day if m == end.month else calendar.monthrange(start.year, m)[1]
        months.append(f"{m:02d}-{_two_digits(first, last)}")
    return f"{start.year}-{_alt(months)}"


def date_pattern(earliest: dt.date, latest: dt.date) -> str:
    """A regular expression matching exactly the ``YYYY-MM-DD`` calendar dates from ``earliest`` to ``latest``."""
    if earliest.year == latest.year:
        return f"^{_within_year(earliest, latest)}$"
    parts = [_within_year(earliest, dt.date(earliest.year, 12, 31))]
    full = list(range(earliest.year + 1, latest.year))
    if full:
        parts.append(f"{_alt([str(y) for y in full])}-(?:{_COMMON_DAYS})")
        leap = [str(y) for y in full if calendar.isleap(y)]
        if leap:
            parts.append(f"{_alt(leap)}-02-29")
    parts.append(_within_year(dt.date(latest.year, 1, 1), latest))
    return "^(?:" + "|".join(parts) + ")$"


def _walk(node: Any, visit: Any) -> None:
    if isinstance(node, dict):
        visit(node)
        for v in node.values():
            _walk(v, visit)
    elif isinstance(node, list):
        for v in node:
            _walk(v, visit)


def _dates_bounded(doc: dict[str, Any], pattern: str) -> None:
    def visit(schema: dict[str, Any]) -> None:
        if schema.pop(EVENT_DATE_MARK, False):
            schema["pattern"] = pattern

    _walk(doc, visit)


def _real_error_bodies(doc: dict[str, Any]) -> None:
    """FastAPI's own 422 body (``HTTPValidationError``) is never sent: wherever it is left, the real one."""

    def visit(node: dict[str, Any]) -> None:
        if node.get("$ref") == "#/components/schemas/HTTPValidationError":
            node["$ref"] = "#/components/schemas/Problems"

    _walk(doc, visit)
    for name in ("HTTPValidationError", "ValidationError"):
        doc.get("components", {}).get("schemas", {}).pop(name, None)


def _errors_are_json(doc: dict[str, Any]) -> None:
    """FastAPI files an error's model under the route's media type (an SVG's 404 as ``image/svg+xml``):
    errors are always sent as JSON."""
    for ops in doc["paths"].values():
        for op in ops.values():
            for status, response in op.get("responses", {}).items():
                content = response.get("content")
                if not status.startswith("2") and content and "application/json" not in content:
                    response["content"] = {"application/json": next(iter(content.values()))}


def build(app: FastAPI, today: dt.date) -> dict[str, Any]:
    """The document for the routes of ``app`` on ``today``."""
    from features.schema import EVENT_DATE_MIN

    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    _dates_bounded(doc, date_pattern(EVENT_DATE_MIN, today))
    _real_error_bodies(doc)
    _errors_are_json(doc)
    doc["paths"]["/health"]["get"]["security"] = []  # the one operation without a token
    return doc


class Contract:
    """The document of one app, built on the first request of each day (the date bound moves)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._day: dt.date | None = None
        self._doc: dict[str, Any] = {}

    def document(self) -> dict[str, Any]:
        from features.validate import today_in_zone

        today = today_in_zone()
        with self._lock:
            if today != self._day:
                self._doc, self._day = build(self.app, today), today
            return self._doc

    def methods(self, path: str) -> set[str]:
        """The methods the document lists for a concrete path (``/api/feedback/fb-…`` → GET, PATCH)."""
        found: set[str] = set()
        for template, ops in self.document()["paths"].items():
            if re.fullmatch(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)), path):
                found |= {m.upper() for m in ops}
        return found
