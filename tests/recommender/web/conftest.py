"""The web app's test setup: an app on the hand-made published workspace, a token per role, and a
logged-in page client (a server-side session and its CSRF token, as a browser gets them)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from features.chains import Chain
from recommender import store
from recommender.settings import Settings, load_chains, load_settings
from recommender.web.app import create_app

E1 = "91420100MA4K0000XJ"  # same ids as the published_workspace fixture in tests/conftest.py
NODE = "optical_comm.optical_chip"

_CHAINS: dict[str, list[Chain]] = {}


def cached_chains(settings: Settings) -> list[Chain]:
    """load_chains once per chains dir: parsing the 11 chain YAMLs takes ~1 s per app otherwise."""
    key = str(settings.chains_dir)
    if key not in _CHAINS:
        _CHAINS[key] = load_chains(settings)
    return _CHAINS[key]


@pytest.fixture
def make_client(monkeypatch: pytest.MonkeyPatch) -> Callable[..., TestClient]:
    """``make_client(workspace, **serve)``: a test client of an app on ``workspace`` (``serve`` settings overridden)."""
    monkeypatch.setenv("SANSETU_RETRIEVAL__EMBEDDER", "tfidf")  # lexical search only: no model to load
    monkeypatch.setattr("recommender.web.app.load_chains", cached_chains)

    def make(workspace: Path, **serve: object) -> TestClient:
        settings = load_settings(workspace=workspace)
        if serve:
            settings = settings.model_copy(update={"serve": settings.serve.model_copy(update=serve)})
        return TestClient(create_app(settings))

    return make


@pytest.fixture
def client(published_workspace: Path, make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(published_workspace)


@pytest.fixture
def tokens(client: TestClient) -> dict[str, str]:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    return {r: store.create_token(engine, f"{r}-user", r) for r in store.ROLES}


CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = CSRF_FIELD.search(html)
    assert found, "the page has no form with a csrf_token field"
    return found.group(1)


def log_in(client: TestClient, token: str) -> str:
    """Log in through the login form (its double-submit token included); returns the session's CSRF token."""
    form = client.get("/login").text
    form = form[form.index('action="/login"') :]  # logged in already, the header's logout form comes first
    r = client.post("/login", data={"token": token, "csrf_token": csrf_of(form)}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return csrf_of(client.get("/").text)


@pytest.fixture(name="log_in")
def log_in_fixture() -> Callable[[TestClient, str], str]:
    """``log_in(client, token)``: log in through the form; returns the session's CSRF token."""
    return log_in


@pytest.fixture(name="csrf_of")
def csrf_of_fixture() -> Callable[[str], str]:
    return csrf_of
