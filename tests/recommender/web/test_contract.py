"""The API contract: who may read it, what it declares (security, every status with the body the
server really sends, media types), and that it holds for answers the server gives."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

E1 = "91420100MA4K0000XJ"
NODE = "optical_comm.optical_chip"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# every operation and the statuses it can answer (2xx, then errors): 401 for all but /health
# (a token revoked meanwhile is a 401 too), 403 where the role is above viewer or the row is not
# the caller's, 404 for ids and for a run not published yet, 422 wherever there is input
STATUSES: dict[tuple[str, str], set[str]] = {
    ("get", "/health"): {"200"},
    ("get", "/api/chains"): {"200", "401"},
    ("get", "/api/map"): {"200", "401", "404", "422"},
    ("get", "/api/chains/{chain_id}/map.svg"): {"200", "401", "404", "422"},
    ("get", "/api/nodes/{node_id}/targets"): {"200", "401", "404", "422"},
    ("get", "/api/nodes/{node_id}/targets.xlsx"): {"200", "401", "404", "422"},
    ("get", "/api/chains/{chain_id}/targets.xlsx"): {"200", "401", "404", "422"},
    ("get", "/api/search"): {"200", "401", "422"},
    ("get", "/api/enterprises/{enterprise_id}"): {"200", "401", "404", "422"},
    ("get", "/api/explain/{enterprise_id}"): {"200", "401", "404", "422"},
    ("post", "/api/feedback"): {"201", "401", "403", "404", "422"},
    ("get", "/api/feedback"): {"200", "401", "403", "422"},
    ("get", "/api/feedback/{outcome_id}"): {"200", "401", "404", "422"},
    ("patch", "/api/feedback/{outcome_id}"): {"200", "401", "403", "404", "422"},
    ("post", "/api/feedback/{outcome_id}/withdraw"): {"200", "401", "403", "404", "422"},
    ("get", "/api/runs"): {"200", "401"},
    ("get", "/api/runs/{run}/diff"): {"200", "401", "404", "422"},
    ("get", "/api/models"): {"200", "401"},
    ("post", "/api/models/train"): {"202", "401", "403", "409", "422"},
    ("post", "/api/models/{version}/promote"): {"200", "401", "403", "404", "422"},
    ("get", "/api/tokens"): {"200", "401", "403"},
    ("post", "/api/tokens"): {"201", "401", "403", "422"},
    ("delete", "/api/tokens/{token_id}"): {"200", "401", "403", "404", "422"},
    ("get", "/api/audit"): {"200", "401", "403", "422"},
}


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def doc(client: TestClient, tokens: dict[str, str]) -> dict[str, Any]:
    r = client.get("/openapi.json", headers=_h(tokens["viewer"]))
    assert r.status_code == 200
    return dict(r.json())


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m, p): op for p, ops in doc["paths"].items() for m, op in ops.items()}


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return _resolve(doc, doc["components"]["schemas"][ref.split("/")[-1]]) if ref else schema


def test_openapi_needs_a_viewer_token(
    client: TestClient, tokens: dict[str, str], log_in: Callable[[TestClient, str], str]
) -> None:
    assert client.get("/openapi.json").status_code == 401
    assert client.get("/openapi.json", headers=_h("sst_wrong")).status_code == 401
    assert client.get("/openapi.json", headers={"X-API-Token": tokens["viewer"]}).status_code == 200
    log_in(client, tokens["viewer"])
    assert client.get("/openapi.json").status_code == 200  # a logged-in browser may read it too


def test_openapi_without_token_when_configured(
    published_workspace: Path, make_client: Callable[..., TestClient]
) -> None:
    client = make_client(published_workspace, openapi_requires_token=False)
    assert client.get("/openapi.json").status_code == 200


def test_no_docs_pages_that_load_code_from_a_cdn(client: TestClient, tokens: dict[str, str]) -> None:
    """Swagger UI and ReDoc are not packaged here (their pages load scripts and fonts from a CDN): off."""
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        r = client.get(path, headers=_h(tokens["viewer"]))
        assert r.status_code == 404
        assert "cdn" not in r.text.lower()


def test_openapi_lists_exactly_these_operations_and_statuses(doc: dict[str, Any]) -> None:
    found = {k: set(op["responses"]) for k, op in _operations(doc).items()}
    assert found == STATUSES


def test_openapi_declares_the_bearer_scheme_on_every_operation_but_health(doc: dict[str, Any]) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer sst_…"}
    assert schemes["apiTokenHeader"]["in"] == "header" and schemes["apiTokenHeader"]["name"] == "X-API-Token"
    for (method, path), op in _operations(doc).items():
        want = [] if path == "/health" else [{"bearerAuth": []}, {"apiTokenHeader": []}]
        assert op["security"] == want, (method, path)


def test_openapi_error_bodies_are_the_ones_sent(doc: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in str(doc) and "default" not in str(
        [op["responses"] for op in _operations(doc).values()]
    )
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"field", "problem", "got"}
    for key, op in _operations(doc).items():
        for status, response in op["responses"].items():
            if not status.startswith("4"):
                continue
            (media, body), *others = response["content"].items()
            assert media == "application/json" and not others, key
            names = {s["$ref"].split("/")[-1] for s in body["schema"].get("anyOf", [body["schema"]])}
            want = {"422": {"Problems"}, "404": {"Problems", "Message"}}.get(status, {"Message"})
            assert names == want, (key, status)


def test_openapi_media_types_of_the_downloads(doc: dict[str, Any]) -> None:
    ops = _operations(doc)
    assert list(ops[("get", "/api/chains/{chain_id}/map.svg")]["responses"]["200"]["content"]) == ["image/svg+xml"]
    for path in ("/api/nodes/{node_id}/targets.xlsx", "/api/chains/{chain_id}/targets.xlsx"):
        content = ops[("get", path)]["responses"]["200"]["content"]
        assert list(content) == [XLSX] and content[XLSX]["schema"] == {"type": "string", "format": "binary"}


def test_openapi_feedback_date_is_the_calendar_from_1949_10_01_to_today(doc: dict[str, Any]) -> None:
    from features.validate import today_in_zone

    body = _resolve(doc, doc["paths"]["/api/feedback"]["post"]["requestBody"]["content"]["application/json"]["schema"])
    date = next(s for s in body["properties"]["date"]["anyOf"] if s.get("type") == "string")
    pattern = re.compile(date["pattern"])
    today = today_in_zone()
    day = dt.date(1949, 1, 1)
    while day <= today + dt.timedelta(days=800):
        assert bool(pattern.fullmatch(day.isoformat())) == (dt.date(1949, 10, 1) <= day <= today), day
        day += dt.timedelta(days=1)
    for text in ("2023-02-29", "1951-04-31", "2026-00-10", "2026-1-01", "abcd-ef-gh", ""):
        assert not pattern.fullmatch(text), text
    assert pattern.fullmatch("2024-02-29") and "x-sansetu-event-date" not in str(doc)


def test_date_pattern_within_one_year() -> None:
    from recommender.web.contract import date_pattern

    p = re.compile(date_pattern(dt.date(2026, 2, 27), dt.date(2026, 3, 2)))
    assert [d for d in ("2026-02-26", "2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02", "2026-03-03") if p.fullmatch(d)] == [
        "2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02",
    ]  # fmt: skip


def test_token_revoked_twice_is_a_404_the_second_time(client: TestClient, tokens: dict[str, str]) -> None:
    h = _h(tokens["admin"])
    new = client.post("/api/tokens", json={"name": "临时", "role": "viewer"}, headers=h)
    tid = next(t["id"] for t in client.get("/api/tokens", headers=h).json() if t["name"] == "临时")
    assert new.status_code == 201 and set(new.json()) == {"name", "role", "token"}
    assert client.delete(f"/api/tokens/{tid}", headers=h).status_code == 200
    again = client.delete(f"/api/tokens/{tid}", headers=h)
    assert again.status_code == 404 and "already revoked" in again.json()["detail"]


def test_token_name_must_have_a_visible_character(client: TestClient, tokens: dict[str, str]) -> None:
    for name in (" ", "\u3000", "a\nb"):  # store.create_token refused a blank name with a ValueError: 500
        r = client.post("/api/tokens", json={"name": name, "role": "viewer"}, headers=_h(tokens["admin"]))
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body.name", name


def test_method_not_allowed_names_every_method_of_the_path(client: TestClient, tokens: dict[str, str]) -> None:
    """Two routes share /api/feedback (GET, POST): Starlette's 405 named only the first one's."""
    for path, allowed in [("/api/feedback", "GET, POST"), ("/api/tokens", "GET, POST"),
                          ("/api/feedback/fb-0000000000000000", "GET, PATCH")]:  # fmt: skip
        r = client.options(path, headers=_h(tokens["admin"]))
        assert (r.status_code, r.headers["allow"]) == (405, allowed), path
        assert r.json() == {"detail": "Method Not Allowed"}


def test_search_text_pattern_is_what_the_search_accepts() -> None:
    """The q pattern (what clients are told) holds a character normalize_text keeps, for every code point."""
    import sys

    from features.text import normalize_text
    from recommender.web.schemas import SEARCH_PATTERN

    pattern = re.compile(SEARCH_PATTERN)
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code <= 0xDFFF:
            continue
        c = chr(code)
        assert bool(pattern.fullmatch(f" {c}\n")) == bool(normalize_text(c).strip()), hex(code)
