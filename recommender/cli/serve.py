"""``sansetu serve`` and ``sansetu tokens``: the analysts' service and its access tokens."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from sqlalchemy import Engine

from recommender.cli.common import ConfigOpt, FormatOpt, WorkspaceOpt, app, check_format, emit_records, settings_from

tokens_app = typer.Typer(
    help="Manage API tokens (stored hashed; roles viewer / analyst / admin).", no_args_is_help=True
)
app.add_typer(tokens_app, name="tokens")


def _engine(workspace: Path | None, config: Path | None) -> Engine:
    from recommender import store

    return store.engine_for(settings_from(workspace, config))


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (config serve.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (config serve.port).")] = None,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the HTTP API (contract: /openapi.json) and the web page for analysts."""
    import uvicorn

    from recommender.web.app import create_app

    settings = settings_from(workspace, config)
    application = create_app(settings)
    h, p = host or settings.serve.host, port or settings.serve.port
    contract = "/openapi.json, with a viewer token" if settings.serve.openapi_requires_token else "/openapi.json"
    typer.echo(
        f"sansetu serving {settings.workspace} on http://{h}:{p}  (API contract: {contract}; log in with a token)"
    )
    uvicorn.run(application, host=h, port=p, log_level="info")


@tokens_app.command("create")
def tokens_create(
    role: Annotated[str, typer.Option(help="viewer, analyst or admin.")],
    name: Annotated[str, typer.Option(help="Who or what the token is for.")] = "analyst",
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create a token and print it once (only its hash is stored)."""
    from recommender import store

    if role not in store.ROLES:
        raise typer.BadParameter(f"must be one of {list(store.ROLES)}; got {role!r}", param_hint="--role")
    token = store.create_token(_engine(workspace, config), name, role)
    typer.echo(token)


@tokens_app.command("list")
def tokens_list(workspace: WorkspaceOpt = None, config: ConfigOpt = None, fmt: FormatOpt = "table") -> None:
    """List tokens (never their values)."""
    from recommender import store

    emit_records(store.list_tokens(_engine(workspace, config)), check_format(fmt), title="API tokens")


@tokens_app.command("revoke")
def tokens_revoke(token_id: int, workspace: WorkspaceOpt = None, config: ConfigOpt = None) -> None:
    """Revoke a token by its id."""
    from recommender import store

    if not store.revoke_token(_engine(workspace, config), token_id, "cli"):
        typer.echo(f"no token with id {token_id}", err=True)
        raise typer.Exit(code=2)
    typer.echo(f"revoked token {token_id}")
