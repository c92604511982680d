"""Requests no client should send still get a 4xx in the documented error shape, never a 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

E1 = "91420100MA4K0000XJ"
NODE = "optical_comm.optical_chip"


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _is_problem_body(body: object) -> bool:
    return (
        isinstance(body, dict)
        and isinstance(body.get("detail"), list)
        and all(isinstance(p, dict) and set(p) == {"field", "problem", "got"} for p in body["detail"])
    )


@pytest.mark.parametrize(
    ("path", "role"), [("/api/feedback", "analyst"), ("/api/tokens", "admin")], ids=["feedback", "tokens"]
)
@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        ("text/plain", b'{"enterprise_id": "x"}'),
        ("application/x-www-form-urlencoded", b"name=x&role=viewer"),
        ("application/octet-stream", b"\xff\xfe\x00binary"),
        (None, b"\x00\x01"),
    ],
    ids=["text", "form", "octets", "no-content-type"],
)
def test_api_non_json_body_is_a_422_naming_the_body(
    client: TestClient, tokens: dict[str, str], path: str, role: str, content_type: str | None, content: bytes
) -> None:
    headers = _h(tokens[role]) | ({"Content-Type": content_type} if content_type else {})
    r = client.post(path, content=content, headers=headers)
    assert r.status_code == 422, r.text
    assert _is_problem_body(r.json()), r.text
    assert r.json()["detail"][0]["field"] == "body"


def test_api_json_body_that_is_not_utf8_json_is_a_422_naming_the_body(
    client: TestClient, tokens: dict[str, str]
) -> None:
    r = client.post(
        "/api/tokens", content=b"\xd7\xd4\xc0v\xff", headers=_h(tokens["admin"]) | {"Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text  # FastAPI says 400 "There was an error parsing the body"
    assert _is_problem_body(r.json()) and r.json()["detail"][0]["field"] == "body"
    r = client.post("/api/tokens", content=b"{", headers=_h(tokens["admin"]) | {"Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "body" and r.json()["detail"][0]["problem"].startswith("not valid JSON")


@pytest.mark.parametrize("token_id", [2**63, 2**64 + 5, 2**31])
def test_api_token_id_out_of_range_is_a_422(client: TestClient, tokens: dict[str, str], token_id: int) -> None:
    r = client.delete(f"/api/tokens/{token_id}", headers=_h(tokens["admin"]))
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == "path.token_id"


def test_api_model_version_out_of_range_is_a_422(client: TestClient, tokens: dict[str, str]) -> None:
    r = client.post(f"/api/models/{2**63}/promote", headers=_h(tokens["admin"]))
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == "path.version"


def test_api_bad_input_echo_is_json_safe_and_short(client: TestClient, tokens: dict[str, str]) -> None:
    """``got`` echoes what was sent: bytes become text, a lone surrogate does not break the encoder, long values are cut."""
    h = _h(tokens["analyst"]) | {"Content-Type": "application/json"}
    r = client.post(
        "/api/feedback", content=b'{"enterprise_id": "\\ud800", "node_id": "x", "stage": "\\u63a5\\u6d3d"}', headers=h
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == "body.enterprise_id"
    r = client.get("/api/search", params={"q": "光" * 600}, headers=_h(tokens["viewer"]))
    assert r.status_code == 422
    assert len(r.json()["detail"][0]["got"]) <= 210
