"""What keeps the pages from being forged or framed: the session cookie, CSRF tokens, the
same-origin check of form posts, and the security headers of every response.

- The browser holds a **server-side session id** (``store.create_session``), never the API token:
  HttpOnly, ``SameSite=Strict``, ``Secure`` when the request came over TLS (``request.url.scheme``
  is ``https``: uvicorn sets it from ``X-Forwarded-Proto`` only for the proxies in
  ``--forwarded-allow-ips``, by default 127.0.0.1), for ``serve.session_hours``.
- Every form carries a CSRF token. Logged in, it is an HMAC of the session id (unknowable without
  the HttpOnly cookie); on the login form, a random value also set as a cookie (double submit).
  ``SameSite`` does not separate two ports of one host (same site), and a page there can set
  cookies for this host too, so a form post must also come from this origin (``Origin`` and
  ``Sec-Fetch-Site``, which browsers send and pages cannot change).
- Every response says ``X-Frame-Options: DENY`` and a CSP without inline code
  (:data:`CONTENT_SECURITY_POLICY`); an SVG on its own allows only its own ``<style>`` by hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Any, Final

from fastapi import Request, Response
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE: Final = "sansetu_session"
LOGIN_COOKIE: Final = "sansetu_login"
CSRF_FIELD: Final = "csrf_token"
LOGIN_FORM_SECONDS: Final = 3600  # the login form's token lives this long
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS: Final = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
)
_STYLE = re.compile(r"<style>(.*?)</style>", re.DOTALL)
NONE: Final = "'none'"
_FETCH_SITES_OK: Final = frozenset({"same-origin", "none"})


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def session_csrf(session_id: str) -> str:
    """The CSRF token of a session's forms: an HMAC keyed by the session id (which pages cannot read)."""
    return hmac.new(session_id.encode("utf-8"), b"sansetu-csrf-v1", hashlib.sha256).hexdigest()


def new_login_csrf() -> str:
    return secrets.token_urlsafe(32)


def tokens_match(sent: str | None, expected: str | None) -> bool:
    return bool(sent) and bool(expected) and hmac.compare_digest(str(sent), str(expected))


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another origin (another port counts)."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        return False
    site = request.headers.get("sec-fetch-site")
    return site is None or site in _FETCH_SITES_OK


def _cookie_options(request: Request, path: str) -> dict[str, Any]:
    """Every cookie of the pages: HttpOnly, SameSite=Strict, Secure over TLS."""
    return {"path": path, "httponly": True, "samesite": "strict", "secure": is_https(request)}


def set_session_cookie(response: Response, request: Request, session_id: str, hours: float) -> None:
    response.set_cookie(SESSION_COOKIE, session_id, max_age=int(hours * 3600), **_cookie_options(request, "/"))


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(SESSION_COOKIE, **_cookie_options(request, "/"))


def set_login_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(LOGIN_COOKIE, value, max_age=LOGIN_FORM_SECONDS, **_cookie_options(request, "/login"))


def clear_login_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(LOGIN_COOKIE, **_cookie_options(request, "/login"))


def svg_policy(svg: str) -> str:
    """The CSP of an SVG served on its own: nothing but its own ``<style>`` elements (by hash)."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode("utf-8")).digest()).decode() + "'"
        for s in _STYLE.findall(svg)
    )
    return f"default-src 'none'; style-src {hashes or NONE}; frame-ancestors 'none'"


def without_style(svg: str) -> str:
    """An SVG to inline in a page: its ``<style>`` rules are in ``static/style.css`` (the CSP blocks inline ones)."""
    return _STYLE.sub("", svg)


class SecurityHeaders:
    """ASGI middleware: the :data:`HEADERS` on every response (a route's own value wins), HSTS over
    TLS, and ``Cache-Control: no-store`` on everything but the static files."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS:
                    headers.setdefault(name, value)
                if https:
                    headers.setdefault("strict-transport-security", "max-age=31536000")
                if not static:
                    headers.setdefault("cache-control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)
