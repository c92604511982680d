"""Forged requests and framing: CSRF tokens on every form (login included), a server-side session
in the cookie instead of the API token, logout as a POST that ends the session, and the security
headers (X-Frame-Options, a strict CSP) on every response."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recommender import store

E1 = "91420100MA4K0000XJ"
NODE = "optical_comm.optical_chip"
TEMPLATES = Path(__file__).resolve().parents[3] / "recommender" / "web" / "templates"
CSS = Path(__file__).resolve().parents[3] / "recommender" / "web" / "static" / "style.css"


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _set_cookies(response: object) -> dict[str, SimpleCookie]:
    out: dict[str, SimpleCookie] = {}
    for header in response.headers.get_list("set-cookie"):  # type: ignore[attr-defined]
        c: SimpleCookie = SimpleCookie()
        c.load(header)
        for name in c:
            out[name] = c
    return out


def _login_form(client: TestClient, csrf_of: Callable[[str], str]) -> str:
    return csrf_of(client.get("/login").text)


def test_login_needs_the_login_forms_token(
    client: TestClient, tokens: dict[str, str], csrf_of: Callable[[str], str]
) -> None:
    """A login forged from another site (no token from our login form, or another Origin) is refused."""
    r = client.post("/login", data={"token": tokens["analyst"]}, follow_redirects=False)
    assert r.status_code == 403 and "sansetu_session" not in _set_cookies(r)
    login_csrf = _login_form(client, csrf_of)
    r = client.post("/login", data={"token": tokens["analyst"], "csrf_token": "x" + login_csrf}, follow_redirects=False)
    assert r.status_code == 403 and "sansetu_session" not in _set_cookies(r)
    r = client.post(
        "/login",
        data={"token": tokens["analyst"], "csrf_token": login_csrf},
        headers={"Origin": "http://127.0.0.1:9999"},  # a page on another port of the same host
        follow_redirects=False,
    )
    assert r.status_code == 403 and "sansetu_session" not in _set_cookies(r)
    r = client.post("/login", data={"token": tokens["analyst"], "csrf_token": login_csrf}, follow_redirects=False)
    assert r.status_code == 303 and "sansetu_session" in _set_cookies(r)


def test_login_sets_a_server_side_session_not_the_token(
    client: TestClient, tokens: dict[str, str], csrf_of: Callable[[str], str]
) -> None:
    login_csrf = _login_form(client, csrf_of)
    r = client.post("/login", data={"token": tokens["analyst"], "csrf_token": login_csrf}, follow_redirects=False)
    cookie = _set_cookies(r)["sansetu_session"]["sansetu_session"]
    assert cookie.value.startswith("ses_") and tokens["analyst"] not in r.headers.get("set-cookie", "")
    assert cookie["httponly"] and cookie["samesite"].lower() == "strict" and cookie["path"] == "/"
    assert not cookie["secure"]  # plain http here
    assert int(cookie["max-age"]) == 12 * 3600  # serve.session_hours
    assert "光通信" in client.get("/").text
    client.cookies.clear()
    client.cookies.set("sansetu_token", tokens["analyst"])  # the old cookie held the raw token: no more
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"


def test_session_cookie_is_secure_over_https(
    published_workspace: Path, make_client: Callable[..., TestClient], csrf_of: Callable[[str], str]
) -> None:
    client = make_client(published_workspace)
    client.base_url = client.base_url.copy_with(scheme="https")  # type: ignore[assignment]
    token = store.create_token(client.app.state.engine, "a", "analyst")  # type: ignore[attr-defined]
    login_csrf = csrf_of(client.get("/login").text)
    r = client.post("/login", data={"token": token, "csrf_token": login_csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert _set_cookies(r)["sansetu_session"]["sansetu_session"]["secure"]


def test_feedback_form_needs_the_sessions_csrf_token(
    client: TestClient, tokens: dict[str, str], log_in: Callable[[TestClient, str], str]
) -> None:
    """The finding: a self-submitting form on another port stored a 签约 row as the logged-in analyst."""
    csrf = log_in(client, tokens["analyst"])
    url = f"/enterprises/{E1}/feedback"
    form = {"node_id": NODE, "stage": "签约", "note": "forged"}
    r = client.post(url, data=form, follow_redirects=False)
    assert r.status_code == 403 and "text/html" in r.headers["content-type"]
    r = client.post(url, data={**form, "csrf_token": csrf[::-1]}, follow_redirects=False)
    assert r.status_code == 403
    r = client.post(url, data={**form, "csrf_token": csrf}, headers={"Origin": "http://127.0.0.1:9999"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 403
    r = client.post(url, data={**form, "csrf_token": csrf}, headers={"Sec-Fetch-Site": "same-site"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 403
    assert store.count_feedback(client.app.state.engine) == 0  # type: ignore[attr-defined]
    r = client.post(url, data={**form, "csrf_token": csrf, "note": "ok"}, headers={"Origin": "http://testserver"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    assert store.count_feedback(client.app.state.engine) == 1  # type: ignore[attr-defined]


def test_api_does_not_take_the_page_cookie(
    client: TestClient, tokens: dict[str, str], log_in: Callable[[TestClient, str], str]
) -> None:
    """Only headers authenticate the API, so no page on another origin can make the browser call it."""
    log_in(client, tokens["admin"])
    assert client.get("/api/chains").status_code == 401
    body = {"enterprise_id": E1, "node_id": NODE, "stage": "签约"}
    assert client.post("/api/feedback", json=body).status_code == 401


def test_logout_is_a_post_with_its_token_and_ends_the_session(
    client: TestClient, tokens: dict[str, str], log_in: Callable[[TestClient, str], str]
) -> None:
    csrf = log_in(client, tokens["viewer"])
    session = client.cookies["sansetu_session"]
    client.get("/logout")  # a link (or an <img> elsewhere) does not log out
    assert client.get("/", follow_redirects=False).status_code == 200
    assert client.post("/logout", follow_redirects=False).status_code == 403
    r = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    client.cookies.set("sansetu_session", session)  # the old cookie, replayed: the session is gone server-side
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"


def test_session_ends_when_its_token_is_revoked(
    client: TestClient, tokens: dict[str, str], log_in: Callable[[TestClient, str], str]
) -> None:
    log_in(client, tokens["viewer"])
    listed = client.get("/api/tokens", headers=_h(tokens["admin"])).json()
    tid = next(t["id"] for t in listed if t["name"] == "viewer-user")
    assert client.delete(f"/api/tokens/{tid}", headers=_h(tokens["admin"])).status_code == 200
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"


@pytest.mark.parametrize(
    ("serve", "wait"),
    [({"session_idle_minutes": 0.02}, 1.5), ({"session_hours": 0.0006}, 2.4)],  # 1.2 s idle; a 2.16 s life
    ids=["idle", "life"],
)
def test_session_ends_after_idle_time_and_lifetime(
    published_workspace: Path,
    make_client: Callable[..., TestClient],
    log_in: Callable[[TestClient, str], str],
    serve: dict[str, float],
    wait: float,
) -> None:
    client = make_client(published_workspace, **serve)
    log_in(client, store.create_token(client.app.state.engine, "v", "viewer"))  # type: ignore[attr-defined]
    time.sleep(wait)
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"


@pytest.mark.parametrize(
    "path", ["/", "/login", "/api/chains", "/health", "/static/style.css", "/nodes/nope.node", "/api/nope"]
)
def test_every_response_forbids_framing_and_inline_code(
    client: TestClient, tokens: dict[str, str], log_in: Callable[[TestClient, str], str], path: str
) -> None:
    log_in(client, tokens["viewer"])
    r = client.get(path, headers=_h(tokens["viewer"]))
    assert r.headers["x-frame-options"] == "DENY"
    csp = {d.split()[0]: d.split()[1:] for d in r.headers["content-security-policy"].split("; ")}
    assert csp["default-src"] == ["'self'"] and csp["frame-ancestors"] == ["'none'"]
    assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    assert r.headers["x-content-type-options"] == "nosniff"


def test_templates_have_no_inline_script_or_style() -> None:
    inline = re.compile(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=", re.IGNORECASE)
    found = [f"{p.name}: {m.group(0)}" for p in TEMPLATES.glob("*.html") for m in inline.finditer(p.read_text())]
    assert found == []


def test_chain_page_moves_the_pictures_style_to_the_stylesheet(
    client: TestClient, tokens: dict[str, str], log_in: Callable[[TestClient, str], str]
) -> None:
    """The chain picture's <style> would be blocked by the CSP: the page leaves it out and style.css has its rules."""
    log_in(client, tokens["viewer"])
    page = client.get("/chains/optical_comm").text
    assert "<svg" in page and "<style" not in page
    svg = client.get("/api/chains/optical_comm/map.svg", headers=_h(tokens["viewer"]))
    rules = re.findall(r"<style>(.*?)</style>", svg.text, flags=re.DOTALL)
    assert rules and all(rule in CSS.read_text() for rule in rules)
    csp = svg.headers["content-security-policy"]  # the picture on its own keeps its style, by hash
    assert "style-src 'sha256-" in csp and "script-src" not in csp and "'unsafe-inline'" not in csp


def test_page_download_uses_the_session(
    client: TestClient, tokens: dict[str, str], log_in: Callable[[TestClient, str], str]
) -> None:
    log_in(client, tokens["viewer"])
    page = client.get(f"/nodes/{NODE}", params={"province": "广东"}).text
    assert f'href="/nodes/{NODE}/targets.xlsx?province=%E5%B9%BF%E4%B8%9C"' in page
    r = client.get(f"/nodes/{NODE}/targets.xlsx", params={"province": "广东"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.openxmlformats")
