"""HTTP API and web page for analysts (FastAPI; server-rendered Chinese pages, no external assets).

Every endpoint needs a token except ``/health``: ``Authorization: Bearer <token>`` for the API, a
cookie set by ``/login`` for the pages. Roles: viewer reads, analyst also records feedback, admin
also trains, promotes and manages tokens (``recommender.web.deps``).

:func:`create_app` wires the parts: the state and caches (``state``), the exception handlers
(``errors``) and one router per area (``routers``); what the routes answer is in ``views``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from recommender.settings import Settings, load_chains
from recommender.web import contract, errors, security
from recommender.web.deps import LoginRequired
from recommender.web.routers import admin, colour_map, enterprises, feedback, meta, models, pages, runs, targets
from recommender.web.state import build_state

ROUTERS = (meta, colour_map, targets, enterprises, feedback, runs, models, admin, pages)


@asynccontextmanager
async def warm_search(app: FastAPI) -> AsyncIterator[None]:
    """At start-up, load the search encoder and indexes in the background: the port opens at once,
    ``/health`` says when search is ready, and a search that comes earlier waits for the load."""
    app.state.web.retrieval.warm()
    yield


def create_app(settings: Settings) -> FastAPI:
    """Build the app for a workspace; nothing is read until it starts (:func:`warm_search`) or a request comes."""
    state = build_state(settings, load_chains(settings))
    app = FastAPI(
        title="sansetu 招商三色图 API",
        version="0.1.0",
        description="Chains and their three-colour map, targets per node, search, feedback.",
        openapi_url=None,  # served by routers.meta from web.contract (token, real error bodies)
        docs_url=None,  # Swagger UI and ReDoc would load from a CDN: not packaged, so off
        redoc_url=None,
        lifespan=warm_search,
    )
    app.state.contract = contract.Contract(app)
    app.state.web = state
    app.state.engine = state.engine
    app.state.trainer = state.trainer
    app.state.settings = settings
    app.add_exception_handler(RequestValidationError, errors.bad_input)
    app.add_exception_handler(StarletteHTTPException, errors.http_error)
    app.add_exception_handler(LoginRequired, errors.to_login)
    for area in ROUTERS:
        app.include_router(area.router)
    app.add_middleware(security.SecurityHeaders)
    return app
