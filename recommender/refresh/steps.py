"""The production steps of the refresh (:func:`default_steps`), each writing into the staging dir.

    ingest    new raw files from --inputs through features.io.ingest_file; fingerprints of the
              current table snapshots, chains and settings -> inputs.json          (always runs)
    map       recommender.colour_map.colours.compute_map (+ gap priority) of the presence known
              at the as-of date (years up to and including its year)              -> map.parquet
    embed     profile texts through the embedding cache: only changed profiles are encoded,
              distributed on the executor                                          -> embed.json
    index     recommender.retrieval.index.build_profile_index (updates or reuses the saved index)
                                                                                   -> index.json
    retrieve  recommender.retrieval.candidates.retrieve_candidates                 -> candidates.parquet
    features  features.pairs.build_pair_features by node partitions               -> features.parquet
    score     the MLflow champion (recommender.ranking.scoring), heuristic fallback -> scored.parquet
    paths     top-N per node with reasons, routes and theme                        -> targets.parquet
    diff      against the previous complete run (recommender.runs.directory.diff_runs) -> diff.json
    export    targets/<node_id>.csv (UTF-8-BOM) and workbook.xlsx

What one step computes, a later step of the same process takes from ``ctx.cache`` (the loaders
``_tables``, ``_map``, ``_candidates``, ...); a resumed run reads it back from the staging dir.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any, Final

import pandas as pd

from features.chains import nodes_frame
from features.embeddings import EmbeddingCache, embed_with_cache
from features.io import default_mode, ingest_file, load_tables
from features.pairs import build_pair_features
from features.profiles import enterprise_texts
from features.schema import COL_YEAR, RAW_TABLES, TABLES
from features.words import chain_user_words
from models.embedder import load_embedder
from recommender.colour_map.colours import compute_map
from recommender.colour_map.priority import gap_priority
from recommender.paths.graph import build_graph
from recommender.paths.targets import build_targets
from recommender.ranking.lists import build_lists, list_overlap
from recommender.ranking.scoring import load_champion, score_candidates
from recommender.refresh.context import HEURISTIC, InputError, RunContext, Step, StepResult
from recommender.refresh.executor import PartitionedEncoder, node_partitions
from recommender.retrieval.candidates import retrieve_candidates, word_retriever
from recommender.retrieval.fit import FIT_MODEL_FILE, apply_fit_marks, zone_fit
from recommender.retrieval.index import build_profile_index, model_key
from recommender.runs import directory as runs
from recommender.runs.export import LIST_FRAMES, export_workbook, list_sheets, write_node_csvs
from recommender.settings import ConfigError, load_chains, load_fit_model

# raw file stem -> (table, built-in column map); any of .csv / .xlsx / .parquet
RAW_INPUTS: Final[dict[str, tuple[str, str]]] = {
    "enterprises": ("enterprises", "registry-cn"),
    "presence": ("presence", "zone-presence"),
    "assets": ("assets", "zone-assets"),
    "relations": ("relations", "zone-relations"),
    "signals": ("signals", "zone-signals"),
    "outcomes": ("outcomes", "zone-outcomes"),
    "fit_marks": ("fit_marks", "zone-fit_marks"),  # the analysts' 待核实 checks (merged into the earlier ones)
}
RAW_SUFFIXES: Final = (".csv", ".xlsx", ".parquet")


def default_steps() -> list[Step]:
    """The production pipeline (see the module docstring)."""
    return [
        Step("ingest", step_ingest, _ingest_inputs, always=True),
        Step("map", step_map, _map_inputs),
        Step("embed", step_embed, _embed_inputs),
        Step("index", step_index, _embed_inputs),
        Step(
            "retrieve", step_retrieve, lambda c: {"retrieval": c.settings.retrieval.model_dump(), "as_of": str(c.as_of)}
        ),
        Step("features", step_features, lambda c: {"zone_province": c.settings.zone_province}),
        Step("score", step_score, _score_inputs),
        Step("paths", step_paths, _paths_inputs),
        Step("diff", step_diff, lambda c: {"previous": c.previous.name if c.previous else None}),
        Step("export", step_export, lambda c: {"format": 2}),  # 2: the 待核实 sheet with its check columns
    ]


def _score_inputs(ctx: RunContext) -> Any:
    return {"model_version": _model_version(ctx), "top_n": ctx.settings.refresh.top_n, "fit": fit_source(ctx)}


def _paths_inputs(ctx: RunContext) -> Any:
    s = ctx.settings
    return {"paths": s.paths.model_dump(), "ranking": s.ranking.model_dump(), "top_n": s.refresh.top_n}


def _map_inputs(ctx: RunContext) -> Any:
    # the as-of year picks the presence year; the key also keeps runs mapped before that rule from counting as unchanged
    return {"map": ctx.settings.map.model_dump(), "chains": _chains_fp(ctx), "presence_up_to": ctx.as_of.year}


def _raw_files(inputs: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for stem in RAW_INPUTS:
        for suffix in RAW_SUFFIXES:
            if (inputs / f"{stem}{suffix}").is_file():
                found[stem] = inputs / f"{stem}{suffix}"
                break
    if not found:
        expected = [f"{s}{RAW_SUFFIXES[0]}" for s in RAW_INPUTS if s in RAW_TABLES]  # fit_marks is optional
        raise InputError(f"--inputs {inputs} holds none of the raw files {expected} (.csv, .xlsx or .parquet)")
    return found


def _ingest_inputs(ctx: RunContext) -> Any:
    if ctx.inputs is None:
        return None
    return {stem: runs.sha256_file(p) for stem, p in sorted(_raw_files(ctx.inputs).items())}


def current_snapshots(snapshots_dir: Path) -> dict[str, Path]:
    """The newest snapshot file of each table (``snapshots/<table>/<stamp>.parquet``)."""
    out: dict[str, Path] = {}
    for table in TABLES:
        files = sorted((snapshots_dir / table).glob("*.parquet"))
        if files:
            out[table] = files[-1]
    return out


def step_ingest(ctx: RunContext) -> StepResult:
    """Ingest raw files not ingested before; fingerprint the current snapshots, chains and settings."""
    ingested = _ingest_new(ctx) if ctx.inputs is not None else []
    snaps = current_snapshots(ctx.workspace.snapshots)
    if "enterprises" not in snaps or _parquet_rows(snaps["enterprises"]) == 0:
        what = (
            "no enterprises snapshot"
            if "enterprises" not in snaps
            else f"no enterprises in {snaps['enterprises'].name}"
        )
        raise InputError(f"{what} in {ctx.workspace.snapshots}: run 'sansetu ingest' or pass --inputs with raw files")
    fps = {t: {"file": p.name, "sha256": runs.sha256_file(p)} for t, p in snaps.items()}
    # only what the later steps read: a rerun that ingests nothing new must fingerprint the same
    doc = {"snapshots": fps, "chains": _chains_fp(ctx)}
    return StepResult((ctx.write_json(doc, "inputs.json"),), {"inputs": fps, "ingested": ingested})


def _ingest_new(ctx: RunContext) -> list[str]:
    assert ctx.inputs is not None
    state_path = ctx.workspace.runs / "ingested.json"
    state = runs.read_json(state_path) if state_path.is_file() else {}
    done = []
    for stem, path in _raw_files(ctx.inputs).items():
        digest = runs.sha256_file(path)
        table, column_map = RAW_INPUTS[stem]
        if state.get(stem) == digest and (ctx.workspace.snapshots / table).is_dir():
            continue
        ctx.log.info("ingest %s as %s (%s)", path.name, table, column_map, extra={"event": "ingest", "file": str(path)})
        try:
            report = ingest_file(
                path, table, column_map, ctx.workspace.snapshots, ctx.workspace.rejects, mode=default_mode(table),
                **ctx.settings.ingest_options(),
            )  # fmt: skip
        except (ValueError, KeyError) as exc:
            raise InputError(f"ingest of {path} as table '{table}' failed: {exc}") from exc
        if report.snapshot is None and default_mode(table) == "upsert" and not report.n_rejected:
            # nothing to merge (fit_marks: a returned 待核实 sheet with no verdict filled in yet): nothing wrong
            ctx.log.info("no rows to merge in %s: %s unchanged", path.name, table, extra={"event": "ingested"})
        elif report.snapshot is None:  # nothing valid in the file: the table is unchanged, a person must look
            reasons = "; ".join(report.messages) or "no valid rows"
            raise InputError(
                f"ingest of {path} as table '{table}' stored nothing ({reasons}); see {ctx.workspace.rejects}"
            )
        ctx.log.info("ingested %s: %s", path.name, report, extra={"event": "ingested", "table": table})
        state[stem] = digest
        runs.write_json_atomic(state_path, state)
        done.append(stem)
    return done


def _parquet_rows(path: Path) -> int:
    """Rows of a Parquet snapshot, read from its footer."""
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def _chains_fp(ctx: RunContext) -> str:
    folder = ctx.settings.resolve(ctx.settings.chains_dir)
    return runs.sha256_json({p.name: runs.sha256_file(p) for p in sorted(folder.glob("*.yaml"))})


def _tables(ctx: RunContext) -> dict[str, pd.DataFrame]:
    if "tables" not in ctx.cache:
        ctx.cache["tables"] = load_tables(ctx.workspace.snapshots)
    tables: dict[str, pd.DataFrame] = ctx.cache["tables"]
    return tables


def _nodes(ctx: RunContext) -> pd.DataFrame:
    if "nodes" not in ctx.cache:
        ctx.cache["nodes"] = nodes_frame(load_chains(ctx.settings))
    nodes: pd.DataFrame = ctx.cache["nodes"]
    return nodes


def _map(ctx: RunContext) -> pd.DataFrame:
    if "map" not in ctx.cache:
        ctx.cache["map"] = ctx.read_parquet("map.parquet")
    m: pd.DataFrame = ctx.cache["map"]
    return m


def presence_known(presence: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """The presence rows known at ``as_of``: years up to and including its year.

    Before the first recorded year the earliest year stands in (the registry records who is local,
    not when they arrived; ``recommender.ranking.jobs.yearly_maps`` clamps the same way).
    """
    years = presence[COL_YEAR]
    known = presence[years <= as_of.year]
    return presence[years == years.min()] if known.empty else known


def step_map(ctx: RunContext) -> StepResult:
    """The colour map with gap priority, of the latest presence year not after the as-of year."""
    tables, nodes = _tables(ctx), _nodes(ctx)
    presence, enterprises = presence_known(tables["presence"], ctx.as_of), tables["enterprises"]
    map_df = compute_map(nodes, presence, enterprises, ctx.settings.map)
    map_df["priority"] = gap_priority(map_df, nodes, enterprises, presence, ctx.settings.paths)
    ctx.cache["map"] = map_df
    counts = {f"nodes_{c}": int((map_df["colour"] == c).sum()) for c in ("red", "blue", "green")}
    return StepResult((ctx.write_parquet(map_df, "map.parquet"),), {"counts": {"nodes": len(map_df), **counts}})


def _embed_inputs(ctx: RunContext) -> Any:
    r = ctx.settings.retrieval
    enc = ctx.encoder
    model = f"{enc.model_id}@{enc.revision}" if enc is not None else r.embedder
    return {"embedder": model, "max_chars": getattr(r, "profile_max_chars", None)}


def _encoder(ctx: RunContext) -> Any:
    """The dense encoder (None for ``embedder: tfidf``), loaded once per process."""
    if ctx.encoder is not None:
        return ctx.encoder
    if "encoder" not in ctx.cache:
        name = ctx.settings.retrieval.embedder
        if name == "tfidf":
            ctx.cache["encoder"] = None
        else:
            ctx.cache["encoder"] = load_embedder(name, ctx.workspace.model_cache)
    return ctx.cache["encoder"]


def step_embed(ctx: RunContext) -> StepResult:
    """Encode only the profiles whose text is not in the embedding cache (changed or new)."""
    encoder = _encoder(ctx)
    enterprises = _tables(ctx)["enterprises"]
    if encoder is None:
        info = {"encoder_calls": 0, "changed_profiles": 0, "n_profiles": len(enterprises)}
        return StepResult((ctx.write_json(info, "embed.json"),), info)
    r = ctx.settings.retrieval
    texts = enterprise_texts(enterprises, max_chars=r.profile_max_chars).tolist()
    cache = EmbeddingCache(ctx.workspace.embedding_cache / model_key(r.embedder, encoder), encoder.model_id,
                           encoder.revision, encoder.dim)  # fmt: skip
    dask = ctx.executor.kind == "dask"
    enc = PartitionedEncoder(encoder, ctx.executor, chunk_size=2048) if dask else encoder
    _, stats = embed_with_cache(texts, enc, cache, "passage", r.batch_size, 8192 if dask else 2048, ctx.progress)
    info = {"encoder_calls": stats.n_encoded, "changed_profiles": stats.n_misses, "n_profiles": len(texts),
            "cache_hits": stats.n_hits, "encode_batches": stats.n_encoder_calls}  # fmt: skip
    return StepResult((ctx.write_json(info, "embed.json"),), info)


def _index(ctx: RunContext) -> Any:
    if "index" not in ctx.cache:
        ws = ctx.workspace
        ctx.cache["index"] = build_profile_index(
            _tables(ctx)["enterprises"], _encoder(ctx), ws.index, ws.embedding_cache, ctx.settings.retrieval,
            progress=ctx.progress, user_words=chain_user_words(_nodes(ctx)),
        )  # fmt: skip
    return ctx.cache["index"]


def step_index(ctx: RunContext) -> StepResult:
    """Build or reuse the dense + lexical profile index (every vector comes from the cache by now)."""
    b = _index(ctx)
    extra = b.embed_stats.n_encoded if b.embed_stats is not None else 0
    info = {"model_key": b.model_key, "fingerprint": b.fingerprint, "n_profiles": b.n_profiles, "reused": b.reused}
    return StepResult((ctx.write_json(info, "index.json"),), {"index_reused": b.reused, "index_encoded": extra})


def step_retrieve(ctx: RunContext) -> StepResult:
    """Candidates of every red and blue node."""
    b = _index(ctx)
    cands = retrieve_candidates(
        _nodes(ctx), _map(ctx), _tables(ctx), _encoder(ctx), b.dense, b.lexical, ctx.settings.retrieval,
        as_of=ctx.as_of_ts, words=word_retriever(b),
    )  # fmt: skip
    ctx.cache["candidates"] = cands
    n_nodes = int(cands["node_id"].nunique())
    return StepResult(
        (ctx.write_parquet(cands, "candidates.parquet"),),
        {"counts": {"candidates": len(cands), "target_nodes": n_nodes}},
    )


def _candidates(ctx: RunContext) -> pd.DataFrame:
    if "candidates" not in ctx.cache:
        ctx.cache["candidates"] = ctx.read_parquet("candidates.parquet")
    c: pd.DataFrame = ctx.cache["candidates"]
    return c


def _partitions(ctx: RunContext, df: pd.DataFrame) -> list[pd.DataFrame]:
    n = 1 if ctx.executor.kind == "local" else max(2, 2 * int(ctx.executor.describe().get("threads", 2)))
    return node_partitions(df, n)


def step_features(ctx: RunContext) -> StepResult:
    """Point-in-time pair features, computed by node partitions on the executor."""
    # the tables go to each worker once (``shared``), the node partitions as tasks
    shared = (_tables(ctx), _nodes(ctx), _map(ctx), ctx.as_of_ts, ctx.settings.zone_province)

    def one(state: tuple[Any, ...], part: pd.DataFrame) -> pd.DataFrame:
        tables, nodes, map_df, as_of, zone = state
        return build_pair_features(part, tables, nodes, map_df, as_of, zone_province=zone).set_axis(part.index)

    cands = _candidates(ctx)
    parts = ctx.executor.map(one, _partitions(ctx, cands), shared=shared, desc="特征" if ctx.progress else "")
    feats = pd.concat(parts).loc[cands.index] if parts else one(shared, cands)
    ctx.cache["features"] = feats
    return StepResult((ctx.write_parquet(feats.reset_index(drop=True), "features.parquet"),), {})


def _features(ctx: RunContext) -> pd.DataFrame:
    if "features" not in ctx.cache:
        ctx.cache["features"] = ctx.read_parquet("features.parquet").set_axis(_candidates(ctx).index)
    f: pd.DataFrame = ctx.cache["features"]
    return f


def _champion(ctx: RunContext) -> Any:
    if "champion" not in ctx.cache:
        ctx.cache["champion"] = load_champion(ctx.settings)
    return ctx.cache["champion"]


def _model_version(ctx: RunContext) -> str:
    bundle = _champion(ctx)
    if bundle is None:
        return HEURISTIC
    return str(getattr(bundle, "version", None) or getattr(bundle, "model_version", None) or "champion")


def step_score(ctx: RunContext) -> StepResult:
    """Score candidates with the champion by node partitions; the heuristic when there is none (logged)."""
    bundle = _champion(ctx)
    if bundle is None:
        ctx.log.warning("no champion model in the registry: scoring with the heuristic", extra={"event": "heuristic"})
    shared = (_tables(ctx), _nodes(ctx), _map(ctx), ctx.as_of_ts, bundle, ctx.settings.zone_province)
    cands, feats = _candidates(ctx), _features(ctx)
    cands = marked_fit(ctx, cands.assign(fit=pair_fit(ctx, cands).to_numpy()))  # before scoring: the champion reads fit
    items = [(part, feats.loc[part.index]) for part in _partitions(ctx, cands)]

    def one(state: tuple[Any, ...], item: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
        tables, nodes, map_df, as_of, model, zone = state
        return score_candidates(item[0], tables, nodes, map_df, as_of, model, zone_province=zone, features=item[1])

    parts = ctx.executor.map(one, items, shared=shared, desc="打分" if ctx.progress else "")
    scored = pd.concat(parts, ignore_index=True) if parts else _candidates(ctx).assign(score=[], rank=[])
    scored = scored.sort_values(["node_id", "rank", "enterprise_id"], kind="stable").reset_index(drop=True)
    if "contributions" in scored.columns:
        scored["contributions"] = scored["contributions"].map(_json_text)
    ctx.cache["scored"] = scored
    version = _model_version(ctx)
    info = {"model_version": version, "scorer": HEURISTIC if bundle is None else "model", "fit": fit_source(ctx),
            "fit_model": ctx.cache.get("fit_model_info", {}), "fit_marks": ctx.cache.get("fit_marks_info", {})}  # fmt: skip
    written = (ctx.write_parquet(scored, "scored.parquet"),)
    return StepResult(written + ((FIT_MODEL_FILE,) if (ctx.staging / FIT_MODEL_FILE).is_file() else ()), info)


def fit_source(ctx: RunContext) -> str:
    """The fit model the run starts from: ``ranking.fit_model`` with the sha256 of its file, and
    whether it is refitted on the run's candidates (step key, manifest)."""
    cfg = ctx.settings.ranking
    path = ctx.settings.resolve(cfg.fit_model)
    source = f"{cfg.fit_model}@{runs.sha256_file(path)[:16]}" if path.is_file() else str(path)
    return f"{source}, refit ≥ {cfg.fit_refit_min_pairs}" if cfg.fit_refit else source


def pair_fit(ctx: RunContext, scored: pd.DataFrame) -> pd.Series:
    """The fit of each scored (node, firm) pair in [0, 1] — P(the firm makes what the node needs) —
    from ``recommender.retrieval.fit.zone_fit``: ``ranking.fit_model``, refitted on these candidates
    when ``ranking.fit_refit`` is on and their codes allow it. The model used is written to the run
    (``fit_model.json``: the enterprise page's live fit reads it) and what it was goes to the log."""
    if scored.empty:
        return pd.Series(dtype=float, index=scored.index, name="fit")
    try:
        default = load_fit_model(ctx.settings)
    except ConfigError as exc:
        raise InputError(str(exc)) from None
    cfg = ctx.settings.ranking
    fit, model, info = zone_fit(
        scored, _nodes(ctx), _tables(ctx)["enterprises"], default, cfg.fit_refit, cfg.fit_refit_min_pairs
    )
    ctx.write_json(model.to_dict(), FIT_MODEL_FILE)
    ctx.cache["fit_model_info"] = info
    ctx.log.info("fit model: %s (%s)", info["model"], info["why"], extra={"event": "fit_model", **info})
    return fit


def marked_fit(ctx: RunContext, scored: pd.DataFrame) -> pd.DataFrame:
    """The analysts' checks (table ``fit_marks``) over the model's fit
    (:func:`recommender.retrieval.fit.apply_fit_marks`); the counts go to the log and the manifest."""
    out, counts = apply_fit_marks(scored, _tables(ctx).get("fit_marks"))
    ctx.cache["fit_marks_info"] = counts
    if counts["applied"] or counts["not_candidates"]:
        ctx.log.info("fit marks: %s", counts, extra={"event": "fit_marks", **counts})
    return out


def _json_text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=float)


def step_paths(ctx: RunContext) -> StepResult:
    """The published lists (``recommender.ranking.lists``): the targets of each node (fitting outside
    firms, history exclusions left out, no firm in more than the cap) and its 本地延链 list, each with
    name, reasons, routes and theme; the excluded pairs with their reason; the lists' overlap."""
    scored = ctx.cache.get("scored")
    if scored is None:
        scored = ctx.read_parquet("scored.parquet")
    legacy = "fit" not in scored.columns  # scored by a run from before the fit column: the fit is computed here
    if legacy:
        scored = marked_fit(ctx, scored.assign(fit=pair_fit(ctx, scored)))
    tables, top_n = _tables(ctx), ctx.settings.refresh.top_n
    presence = presence_known(tables["presence"], ctx.as_of) if not tables["presence"].empty else None
    lists = build_lists(scored, tables["outcomes"], presence, ctx.settings.ranking, top_n, ctx.as_of_ts)
    graph = build_graph(tables["relations"], tables["assets"], tables["presence"], tables["enterprises"], ctx.as_of_ts)
    targets, local = (_explained(ctx, rows, graph) for rows in (lists.targets, lists.local_extension))
    excluded, near = (_named(rows, tables["enterprises"]) for rows in (lists.excluded, lists.near_fit))
    ctx.cache.update(targets=targets, local_extension=local, excluded=excluded, near_fit=near)
    overlap = list_overlap(targets)
    ctx.log.info("lists: %s", overlap, extra={"event": "lists", **{k: v for k, v in overlap.items() if v is not None}})
    counts = {
        "targets": len(targets), "target_nodes_listed": int(targets["node_id"].nunique()),
        "local_extension": len(local), "excluded_signed": int((excluded["reason_code"] == "signed").sum()),
        "excluded_terminated": int((excluded["reason_code"] == "terminated").sum()),
        "below_fit": int(lists.node_counts["n_below_fit"].sum()), "capped": len(lists.capped),
        "near_fit": int(lists.node_counts["n_near_fit"].sum()), "near_fit_shown": len(near),
    }  # fmt: skip
    outputs: tuple[str, ...] = (ctx.write_parquet(targets, "targets.parquet"), ctx.write_parquet(local, "local_extension.parquet"),
               ctx.write_parquet(excluded, "excluded.parquet"), ctx.write_parquet(lists.node_counts, "lists.parquet"),
               ctx.write_parquet(near, "near_fit.parquet"))  # fmt: skip
    if legacy and (ctx.staging / FIT_MODEL_FILE).is_file():  # the model pair_fit used is this step's output then
        outputs += (FIT_MODEL_FILE,)
    return StepResult(outputs, {"counts": counts, "lists": overlap})


def _explained(ctx: RunContext, rows: pd.DataFrame, graph: Any) -> pd.DataFrame:
    """Listed rows with reasons, routes and theme, in the contract's columns (empty: the columns only)."""
    if rows.empty:
        empty = rows.assign(**{c: pd.Series(dtype=object) for c in TARGET_COLUMNS if c not in rows.columns})
        return normalise_targets(empty, _map(ctx))
    out = build_targets(
        rows, _tables(ctx), _nodes(ctx), _map(ctx), ctx.settings.paths, as_of=ctx.as_of_ts,
        top_n=int(rows["rank"].max()), graph=graph, zone_province=ctx.settings.zone_province,
    )  # fmt: skip
    return normalise_targets(out, _map(ctx))


def _named(excluded: pd.DataFrame, enterprises: pd.DataFrame) -> pd.DataFrame:
    names = enterprises.drop_duplicates("enterprise_id").set_index("enterprise_id")["name"]
    return excluded.assign(name=excluded["enterprise_id"].map(names).fillna(excluded["enterprise_id"]))


TARGET_COLUMNS: Final = [
    "chain_id", "node_id", "rank", "enterprise_id", "name", "score", "reasons", "routes", "theme", "sources",
]  # fmt: skip


def normalise_targets(targets: pd.DataFrame, map_df: pd.DataFrame) -> pd.DataFrame:
    """The targets in the contract's columns (extra columns kept after them), sorted."""
    out = targets.copy()
    if "chain_id" not in out.columns:
        out["chain_id"] = out["node_id"].map(dict(zip(map_df["node_id"], map_df["chain_id"], strict=True)))
    for col in ("reasons", "routes"):
        out[col] = out[col].map(_json_text) if col in out.columns else "[]"
    for col in ("theme", "sources", "name"):
        if col not in out.columns:
            out[col] = ""
    missing = [c for c in TARGET_COLUMNS if c not in out.columns]
    if missing:
        raise ValueError(f"targets is missing required columns {missing}; got columns {list(targets.columns)}.")
    out["rank"] = out["rank"].astype(int)
    cols = TARGET_COLUMNS + [c for c in out.columns if c not in TARGET_COLUMNS]
    return out[cols].sort_values(["chain_id", "node_id", "rank"], kind="stable").reset_index(drop=True)


def _targets(ctx: RunContext) -> pd.DataFrame:
    if "targets" not in ctx.cache:
        ctx.cache["targets"] = ctx.read_parquet("targets.parquet")
    t: pd.DataFrame = ctx.cache["targets"]
    return t


def step_diff(ctx: RunContext) -> StepResult:
    """Targets new / dropped / moved and colour changes since the previous complete run."""
    prev_targets = prev_map = None
    since = None
    if ctx.previous is not None:
        since = ctx.previous.name
        prev_targets = _read_optional(ctx.previous.path / "targets.parquet")
        prev_map = _read_optional(ctx.previous.path / "map.parquet")
    d = runs.diff_runs(prev_targets, _targets(ctx), prev_map, _map(ctx), since=since, run_id=ctx.run_id)
    ctx.cache["diff"] = d
    return StepResult((ctx.write_json(d, "diff.json"),), {"diff_totals": d["totals"]})


def _read_optional(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path.is_file() else None


def step_export(ctx: RunContext) -> StepResult:
    """Per-node CSVs (UTF-8-BOM) and the analysts' workbook."""
    targets = _targets(ctx)
    d = ctx.cache.get("diff") or runs.read_json(ctx.staging / "diff.json")
    node_names = dict(zip(_map(ctx)["node_id"], _map(ctx)["name"], strict=True))
    csvs = write_node_csvs(targets, ctx.staging / "targets", node_names)
    names = {c.id: c.name for c in load_chains(ctx.settings)}
    frames = {name: _optional(ctx, name) for name in LIST_FRAMES}
    sheets = list_sheets(**frames, node_names=node_names, fit_threshold=ctx.settings.ranking.fit_threshold)
    export_workbook(_map(ctx), targets, ctx.staging / "workbook.xlsx", diff=d, chain_names=names, extra_sheets=sheets)
    outputs = tuple(str(p.relative_to(ctx.staging)) for p in csvs) + ("workbook.xlsx",)
    return StepResult(outputs, {"counts": {"csv_files": len(csvs)}})


def _optional(ctx: RunContext, name: str) -> pd.DataFrame | None:
    """A frame the paths step wrote (``<name>.parquet``), or None when this pipeline has none."""
    if name in ctx.cache:
        got: pd.DataFrame = ctx.cache[name]
        return got
    path = ctx.staging / f"{name}.parquet"
    return pd.read_parquet(path) if path.is_file() else None
