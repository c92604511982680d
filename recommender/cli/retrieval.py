"""CLI commands of the 'retrieval' group: ``sansetu query NODE_ID`` and ``sansetu search "TEXT"``.

Both load the current tables from the workspace snapshots, the configured embedder (``tfidf``:
lexical retrieval only, no transformer) and the profile indexes (built on first use, reused while
the profiles are unchanged, refreshed incrementally through the embedding cache). ``search`` needs
only the enterprises table; ``query`` also reads the chains and the colour map.

This module also holds :func:`write_target_lists`, the file writer of per-node target lists in a
run directory (``targets.parquet`` and ``targets/<node_id>.csv``), used by the refresh.
"""

from __future__ import annotations

import difflib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pandas as pd
import typer

from recommender.cli.common import ConfigOpt, FormatOpt, WorkspaceOpt, app, check_format, emit_records, settings_from
from recommender.workspace import Workspace

if TYPE_CHECKING:
    from features.embeddings import TextEncoder
    from recommender.retrieval.candidates import ProfileIndexBundle
    from recommender.settings import Settings

TopOpt = Annotated[int, typer.Option("--top", "-n", min=1, help="How many enterprises to list.")]
OUTPUT_COLUMNS = ["rank", "enterprise_id", "name", "score", "sources", "industry_name", "province", "city"]
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
    """A node's investment path list: the published, ranked list with reasons and routes when a refresh
    has published one, else (or with --live) candidates retrieved now, ordered by the day-one heuristic."""
    check_format(fmt)
    settings = settings_from(workspace, config)
    published = None if live else published_node_list(settings, node_id, top)
    if published is not None:
        records, title = published
        emit_records(records, fmt, title=title, columns=PATH_TABLE_COLUMNS if fmt == "table" else PATH_COLUMNS)
        return
    try:
        records, title = query_node(settings, node_id, top)
    except _BadInput as exc:
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
    check_format(fmt)
    settings = settings_from(workspace, config)
    try:
        records = search_universe(settings, text, top)
    except _BadInput as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None
    emit_records(records, fmt, title=f"搜索：{text}", columns=TABLE_COLUMNS if fmt == "table" else OUTPUT_COLUMNS)


class _BadInput(Exception):
    """Input the user can fix (unknown node, nothing ingested); exit code 2."""


# ------------------------------------------------------------------------------------ library
def query_node(settings: Settings, node_id: str, top_n: int) -> tuple[list[dict[str, Any]], str]:
    """Candidates of one node as output records and a table title; raises ``_BadInput`` for user errors."""
    from features.chains import nodes_frame
    from recommender.retrieval.candidates import rank_target_lists, retrieve_candidates
    from recommender.settings import ConfigError, load_chains

    try:
        nodes = nodes_frame(load_chains(settings))
    except ConfigError as exc:
        raise _BadInput(str(exc)) from None
    if node_id not in set(nodes["node_id"]):
        raise _BadInput(unknown_node_message(node_id, nodes))
    tables = _load_tables(settings)
    map_df = _colour_map(settings, nodes, tables)
    encoder, bundle = load_retrieval(settings, tables["enterprises"])
    cands = retrieve_candidates(
        nodes, map_df, tables, encoder, bundle.dense, bundle.lexical, settings.retrieval, node_ids=[node_id]
    )
    lists = rank_target_lists(cands, tables["enterprises"], nodes, top_n)
    row = nodes.set_index("node_id").loc[node_id]
    colour = "" if map_df is None else str(map_df.set_index("node_id")["colour"].get(node_id, ""))
    title = f"{row['chain_name']} · {row['name']} ({node_id}{', ' + colour if colour else ''}) — top {top_n}"
    return _records(lists), title


def published_node_list(settings: Settings, node_id: str, top_n: int) -> tuple[list[dict[str, Any]], str] | None:
    """The node's list from the published run (ranked, with reasons and routes), or None if it has none."""
    from recommender.runs.directory import published_dir
    from recommender.runs.published import load_run

    run_dir = published_dir(Workspace(settings.workspace).root)
    if run_dir is None or not (run_dir / "targets.parquet").exists():
        return None
    run = load_run(run_dir)
    rows = run.targets[run.targets["node_id"] == node_id].sort_values("rank").head(top_n)
    if rows.empty:
        return None
    records = []
    for r in rows.to_dict(orient="records"):
        reasons = _json_list(r.get("reasons"))
        routes = _json_list(r.get("routes"))
        records.append(
            {
                "rank": int(r["rank"]),
                "enterprise_id": r["enterprise_id"],
                "name": r.get("name", ""),
                "score": float(r["score"]),
                "sources": r.get("sources", ""),
                "theme": r.get("theme") or "",
                "reasons": reasons,
                "routes": routes,
                "reason": "；".join(str(x.get("text", x)) if isinstance(x, dict) else str(x) for x in reasons[:2]),
                "route": (routes[0].get("theme", "") + "：" + routes[0].get("sentence", ""))
                if routes
                else "暂无现成路径",
            }
        )
    node = run.map[run.map["node_id"] == node_id] if not run.map.empty else run.map
    label = f"{node.iloc[0]['name']} ({node_id}, {node.iloc[0]['colour']})" if not node.empty else node_id
    return records, f"{label} — 已发布名单 {run.run_id}，top {top_n}"


def _json_list(value: Any) -> list[Any]:
    if isinstance(value, str) and value:
        parsed = json.loads(value)
        return parsed if isinstance(parsed, list) else [parsed]
    return list(value) if isinstance(value, (list, tuple)) else []


def search_universe(settings: Settings, text: str, top_n: int) -> list[dict[str, Any]]:
    """Free-text search results as output records; raises ``_BadInput`` for user errors."""
    from recommender.retrieval.candidates import search_text

    tables = _load_tables(settings)
    encoder, bundle = load_retrieval(settings, tables["enterprises"])
    try:
        found = search_text(
            text, tables["enterprises"], encoder, bundle.dense, bundle.lexical, settings.retrieval, top_n=top_n
        )
    except ValueError as exc:
        raise _BadInput(str(exc)) from None
    return _records(found.assign(rank=range(1, len(found) + 1)))


def load_retrieval(settings: Settings, enterprises: pd.DataFrame) -> tuple[TextEncoder | None, ProfileIndexBundle]:
    """The configured encoder (None for ``tfidf``) and the profile indexes of ``enterprises``."""
    from recommender.retrieval.candidates import TFIDF, build_profile_index

    ws = Workspace(settings.workspace)
    encoder = None
    if settings.retrieval.embedder != TFIDF:
        from models.embedder import load_embedder

        encoder = load_embedder(settings.retrieval.embedder, ws.model_cache)
    bundle = build_profile_index(
        enterprises, encoder, ws.index, ws.embedding_cache, settings.retrieval, progress=sys.stderr.isatty()
    )
    return encoder, bundle


def unknown_node_message(node_id: str, nodes: pd.DataFrame) -> str:
    """'unknown node id' with up to 5 close matches by id or by Chinese name."""
    ids = nodes["node_id"].astype(str).tolist()
    names = dict(zip(nodes["node_id"].astype(str), nodes["name"].astype(str), strict=True))
    close = difflib.get_close_matches(node_id, ids, n=3, cutoff=0.6)
    by_name = [i for i, n in names.items() if node_id and (node_id in n or n in node_id)]
    by_name += difflib.get_close_matches(node_id, list(names.values()), n=5, cutoff=0.5)
    name_ids = [i for i, n in names.items() if n in by_name or i in by_name]
    matches = list(dict.fromkeys(close + name_ids))[:5]
    listed = ", ".join(f"{i} ({names[i]})" for i in matches) if matches else "none"
    return f"unknown node id {node_id!r}; close matches: {listed}. List all nodes with `sansetu map`."


def _load_tables(settings: Settings) -> dict[str, pd.DataFrame]:
    from features.io import load_tables

    tables = load_tables(Workspace(settings.workspace).snapshots)
    if tables["enterprises"].empty:
        raise _BadInput(f"no enterprises in workspace {settings.workspace}; run `sansetu ingest` first.")
    return tables


def _colour_map(settings: Settings, nodes: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> pd.DataFrame | None:
    """The current colour map (gap phrases in node texts); None when no presence is ingested yet."""
    if tables["presence"].empty:
        return None
    from recommender.colour_map.colours import compute_map

    return compute_map(nodes, tables["presence"], tables["enterprises"], settings.map)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = df.copy()
    for c in OUTPUT_COLUMNS:
        if c not in out.columns:
            out[c] = None
    out["score"] = out["score"].astype(float).round(6)
    extra = [c for c in ("dense_score", "lexical_score", "node_id", "chain_id") if c in out.columns]
    rows = out[OUTPUT_COLUMNS + extra].astype(object).where(out[OUTPUT_COLUMNS + extra].notna(), None)
    return [{str(k): _plain(v) for k, v in r.items()} for r in rows.to_dict(orient="records")]


def _plain(v: Any) -> Any:
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        return v.item()
    return v


# ------------------------------------------------------------------------------- target lists
def write_target_lists(df: pd.DataFrame, run_dir: Path) -> list[Path]:
    """Write per-node target lists: ``run_dir/targets.parquet`` (all nodes) and ``targets/<node_id>.csv``.

    CSVs are UTF-8 with a BOM (Excel opens Chinese text correctly); list and dict cells become JSON.
    Each file is written to a temporary name and renamed. Returns the written paths (Parquet first).
    """
    if "node_id" not in df.columns:
        raise ValueError(f"target lists need a 'node_id' column; got columns {list(df.columns)}")
    run_dir.mkdir(parents=True, exist_ok=True)
    parquet = run_dir / "targets.parquet"
    tmp = parquet.with_name(parquet.name + ".tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, parquet)
    folder = run_dir / "targets"
    folder.mkdir(exist_ok=True)
    written = [parquet]
    flat = df.apply(lambda col: col.map(_cell_text) if col.dtype == object else col)
    for node_id, group in flat.groupby("node_id", sort=True):
        path = folder / f"{node_id}.csv"
        tmp = path.with_name(path.name + ".tmp")
        group.to_csv(tmp, index=False, encoding="utf-8-sig")
        os.replace(tmp, path)
        written.append(path)
    return written


def _cell_text(v: Any) -> Any:
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v, ensure_ascii=False, default=str)
    if hasattr(v, "tolist") and not isinstance(v, str):
        return json.dumps(v.tolist(), ensure_ascii=False, default=str)
    return v
