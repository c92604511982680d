"""CLI commands of the 'retrieval' group: ``sansetu query NODE_ID`` and ``sansetu search "TEXT"``.

Both load the current tables from the workspace snapshots, the configured embedder (``tfidf``:
lexical retrieval only, no transformer) and the profile indexes (built on first use, reused while
the profiles are unchanged, refreshed incrementally through the embedding cache). ``search`` needs
only the enterprises table; ``query`` also reads the chains and the colour map.
"""

from __future__ import annotations

from typing import Annotated

import typer

from recommender.cli.common import ConfigOpt, FormatOpt, WorkspaceOpt, app, check_format, emit_records, settings_from

TopOpt = Annotated[int, typer.Option("--top", "-n", min=1, help="How many enterprises to list.")]
TABLE_COLUMNS = ["rank", "name", "score", "sources", "city", "enterprise_id"]  # names first; all columns in json/csv
PATH_COLUMNS = ["rank", "enterprise_id", "name", "score", "sources", "theme", "reasons", "routes"]
PATH_TABLE_COLUMNS = ["rank", "name", "score", "reason", "route"]


@app.command("query")
def query(
    node_id: Annotated[str, typer.Argument(help="Chain node id, e.g. optical_comm.optical_chip.")],
    top: TopOpt = 20,
    fmt: FormatOpt = "table",
    live: Annotated[
        bool,
        typer.Option("--live", help="Retrieve now with the day-one heuristic instead of reading the published list."),
    ] = False,
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """A node's targets: the published, ranked list with reasons and routes when a refresh
    has published one, else (or with --live) candidates retrieved now, ordered by the day-one heuristic."""
    from recommender.retrieval.search import OUTPUT_COLUMNS, SearchInputError, query_node
    from recommender.runs.published import published_node_targets

    check_format(fmt)
    settings = settings_from(workspace, config)
    published = None if live else published_node_targets(settings, node_id, top)
    if published is not None:
        records, title = published
        emit_records(records, fmt, title=title, columns=PATH_TABLE_COLUMNS if fmt == "table" else PATH_COLUMNS)
        return
    try:
        records, title = query_node(settings, node_id, top)
    except SearchInputError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None
    emit_records(records, fmt, title=title, columns=TABLE_COLUMNS if fmt == "table" else OUTPUT_COLUMNS)


@app.command("search")
def search(
    text: Annotated[str, typer.Argument(help="Free text, e.g. '硅光芯片 封装'.")],
    top: TopOpt = 20,
    fmt: FormatOpt = "table",
    workspace: WorkspaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Search the whole enterprise universe with free text (works with only enterprises ingested)."""
    from recommender.retrieval.search import OUTPUT_COLUMNS, SearchInputError, search_universe

    check_format(fmt)
    settings = settings_from(workspace, config)
    try:
        records = search_universe(settings, text, top)
    except SearchInputError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None
    emit_records(records, fmt, title=f"搜索：{text}", columns=TABLE_COLUMNS if fmt == "table" else OUTPUT_COLUMNS)
