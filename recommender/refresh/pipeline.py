"""The nightly refresh: staged, checkpointed, resumable, idempotent per as-of date, atomically published.

``run_refresh`` takes the workspace lock, builds ``runs/<as_of>.staging/`` step by step and
publishes it by renaming it to ``runs/<as_of>/`` and switching ``<workspace>/published`` in one
``os.replace``. Until then every reader sees the previously published run.

Steps (:func:`default_steps`), each writing into the staging dir and then a checkpoint marker::

    ingest    new raw files from --inputs through features.io.ingest_file; fingerprints of the
              current table snapshots, chains and settings -> inputs.json          (always runs)
    map       recommender.colour_map.colours.compute_map (+ gap priority)                -> map.parquet
    embed     profile texts through the embedding cache: only changed profiles are encoded,
              distributed on the executor                                          -> embed.json
    index     recommender.retrieval.candidates.build_profile_index (reuses the saved index if unchanged)
    retrieve  recommender.retrieval.candidates.retrieve_candidates                            -> candidates.parquet
    features  features.pairs.build_pair_features by node partitions               -> features.parquet
    score     the MLflow champion (recommender.ranking.scoring), heuristic fallback      -> scored.parquet
    paths     top-N per node with reasons, routes and theme                        -> targets.parquet
    diff      against the previous complete run (recommender.runs.directory.diff_runs)      -> diff.json
    export    targets/<node_id>.csv (UTF-8-BOM) and workbook.xlsx

A step's fingerprint hashes its own inputs (settings, snapshots, model version) and the previous
step's fingerprint and output digests; a rerun skips every step whose checkpoint matches (resume
after a crash) and re-runs the rest. When every input matches a complete run of the same as-of
date, the rerun is a no-op that says so. Exit codes: 0 ok, 1 a step failed, 2 bad input or
config, 3 another refresh holds the lock.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import platform
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final, Literal

import pandas as pd

from recommender.refresh.executor import Executor, LocalExecutor, PartitionedEncoder, node_partitions
from recommender.runs import directory as runs
from recommender.settings import ConfigError, Settings
from recommender.workspace import Workspace

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_BAD_INPUT: Final = 2
EXIT_LOCKED: Final = 3
HEURISTIC: Final = "heuristic"
KILL_ENV: Final = "SANSETU_TEST_KILL_AT"
LOGGER_NAME: Final = "sansetu.refresh"

# raw file stem -> (table, built-in column map); any of .csv / .xlsx / .parquet
RAW_INPUTS: Final[dict[str, tuple[str, str]]] = {
    "enterprises": ("enterprises", "registry-cn"),
    "presence": ("presence", "zone-presence"),
    "assets": ("assets", "zone-assets"),
    "relations": ("relations", "zone-relations"),
    "signals": ("signals", "zone-signals"),
    "outcomes": ("outcomes", "zone-outcomes"),
}
RAW_SUFFIXES: Final = (".csv", ".xlsx", ".parquet")
TABLES: Final = ("enterprises", "presence", "assets", "relations", "signals", "outcomes")


class InputError(ValueError):
    """Bad input or configuration (exit code 2)."""


class StepFailed(RuntimeError):
    """A step raised (exit code 1); the message names the step and the cause."""

    def __init__(self, step: str, cause: BaseException) -> None:
        super().__init__(f"step '{step}' failed: {type(cause).__name__}: {cause}")
        self.step = step


# ---------------------------------------------------------------- framework
@dataclass
class RunContext:
    """What a step sees: settings, paths, the executor and an in-process cache shared by the steps."""

    settings: Settings
    workspace: Workspace
    as_of: date
    run_id: str
    staging: Path
    executor: Executor
    inputs: Path | None = None
    progress: bool = False
    encoder: Any = None  # an explicit dense encoder (tests, benchmarks); default from settings
    previous: runs.RunInfo | None = None
    log: logging.Logger = field(default_factory=lambda: logging.getLogger(LOGGER_NAME))
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def as_of_ts(self) -> pd.Timestamp:
        return pd.Timestamp(self.as_of)

    def read_parquet(self, rel: str) -> pd.DataFrame:
        return pd.read_parquet(self.staging / rel)

    def write_parquet(self, df: pd.DataFrame, rel: str) -> str:
        from recommender.runs.export import write_parquet

        write_parquet(df, self.staging / rel)
        return rel

    def write_json(self, obj: Any, rel: str) -> str:
        runs.write_json_atomic(self.staging / rel, obj)
        return rel


@dataclass(frozen=True)
class StepResult:
    """Files a step wrote (relative to the staging dir) and facts for the manifest."""

    outputs: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict)


def _no_inputs(ctx: RunContext) -> Any:
    return None


@dataclass(frozen=True)
class Step:
    """One checkpointed step: ``run`` writes outputs; ``inputs`` describes what else it reads (JSON-able)."""

    name: str
    run: Callable[[RunContext], StepResult]
    inputs: Callable[[RunContext], Any] = _no_inputs
    always: bool = False  # cheap and detects new inputs: re-runs on every refresh


@dataclass
class RefreshResult:
    """What a refresh did. ``status``: published, unchanged (no-op) or complete (backfill, not published)."""

    status: Literal["published", "unchanged", "complete"]
    run_id: str
    run_dir: Path
    message: str
    manifest: dict[str, Any]
    ran: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)


def maybe_kill(kill_at: str | None, point: str) -> None:
    """Test hook: SIGKILL this process at ``point`` (a real crash, no cleanup, no finally blocks)."""
    if kill_at == point:
        os.kill(os.getpid(), signal.SIGKILL)


def run_refresh(
    settings: Settings,
    as_of: date,
    *,
    steps: Sequence[Step] | None = None,
    inputs: Path | None = None,
    executor: Executor | None = None,
    encoder: Any = None,
    force: bool = False,
    kill_at: str | None = None,
    progress: bool = False,
    now: datetime | None = None,
) -> RefreshResult:
    """Run (or resume) the refresh of ``as_of`` and publish it.

    Args:
        settings: checked settings; ``settings.workspace`` is the workspace.
        as_of: the as-of date; the run id is its ISO form.
        steps: the steps (default :func:`default_steps`).
        inputs: a folder of raw files to ingest first (``enterprises.csv``, ``presence.xlsx``, ...).
        executor: where partitions run (default local).
        encoder: the dense encoder to use instead of ``settings.retrieval.embedder``.
        force: re-run every step even where a checkpoint or a complete run matches.
        kill_at: test hook, see :func:`maybe_kill` (a step name or ``publish``).
        progress: progress bars.
        now: the start time (default: now, UTC).

    Raises:
        RunLockedError: another refresh holds the lock (exit 3).
        InputError: bad inputs or config (exit 2).
        StepFailed: a step raised (exit 1).
    """
    if inputs is not None and not inputs.is_dir():
        raise InputError(f"--inputs must be a folder of raw files; {inputs} is not a folder")
    ws = Workspace(Path(settings.workspace)).ensure()
    started = now or datetime.now(UTC)
    with runs.refresh_lock(ws.root / runs.LOCK_NAME, started):
        run_id = runs.run_id_for(as_of)
        staging = runs.staging_dir(ws.runs, run_id)
        staging.mkdir(parents=True, exist_ok=True)
        ctx = RunContext(
            settings, ws, as_of, run_id, staging, executor or LocalExecutor(), inputs, progress, encoder,
            previous=_previous_run(ws, run_id),
        )  # fmt: skip
        return _run_steps(ctx, list(steps) if steps is not None else default_steps(), force, kill_at, started)


def _previous_run(ws: Workspace, run_id: str) -> runs.RunInfo | None:
    """The newest complete run of an earlier as-of date (the diff's baseline)."""
    earlier = [r for r in runs.complete_runs(ws.runs, ws.root) if r.run_id < run_id]
    return earlier[0] if earlier else None


def _run_steps(
    ctx: RunContext, steps: list[Step], force: bool, kill_at: str | None, started: datetime
) -> RefreshResult:
    t0 = time.perf_counter()
    upstream = runs.sha256_json({"run_id": ctx.run_id})
    records: list[dict[str, Any]] = []
    ran: list[str] = []
    resumed: list[str] = []
    run_fp: str | None = None
    own: dict[str, Any] = {}
    for i, step in enumerate(steps):
        if run_fp is None and not step.always:
            own = {s.name: _step_inputs(s, ctx) for s in steps[i:]}
            run_fp = runs.sha256_json({"upstream": upstream, "steps": own})
            done = None if force else _matching_run(ctx, run_fp)
            if done is not None:
                return _unchanged(ctx, done, ran)
        inputs = own[step.name] if step.name in own else _step_inputs(step, ctx)
        fp = runs.sha256_json({"step": step.name, "inputs": inputs, "upstream": upstream})
        cp = None if (force or step.always) else runs.valid_checkpoint(ctx.staging, step.name, fp)
        if cp is None:
            if not step.always:  # later markers chain on this step's outputs; drop them so none is trusted stale
                runs.clear_checkpoints(ctx.staging, [s.name for s in steps[i:]])
            cp = _execute(ctx, step, fp, kill_at)
            ran.append(step.name)
        else:
            resumed.append(step.name)
            ctx.log.info(
                "step %s: checkpoint matches, skipped", step.name, extra={"event": "step_resumed", "step": step.name}
            )
        records.append({"step": step.name, "resumed": step.name in resumed, **cp["info"]})
        upstream = runs.sha256_json({"fp": fp, "outputs": cp["outputs"]})
    manifest = build_manifest(ctx, records, run_fp or upstream, started, time.perf_counter() - t0)
    return _publish(ctx, manifest, kill_at, ran, resumed)


def _step_inputs(step: Step, ctx: RunContext) -> Any:
    try:
        return step.inputs(ctx)
    except (InputError, ConfigError):
        raise
    except FileNotFoundError as exc:
        raise InputError(f"step '{step.name}': {exc}") from exc


def _execute(ctx: RunContext, step: Step, fp: str, kill_at: str | None) -> dict[str, Any]:
    ctx.log.info("step %s: started", step.name, extra={"event": "step_started", "step": step.name})
    t0 = time.perf_counter()
    try:
        result = step.run(ctx)
    except (InputError, ConfigError, runs.RunLockedError):
        raise
    except Exception as exc:
        ctx.log.error("step %s failed: %s", step.name, exc, extra={"event": "step_failed", "step": step.name})
        raise StepFailed(step.name, exc) from exc
    seconds = round(time.perf_counter() - t0, 3)
    maybe_kill(kill_at, step.name)  # outputs written, checkpoint not yet: the worst moment to die
    info = {"seconds": seconds, **result.info}
    runs.write_checkpoint(ctx.staging, step.name, fp, result.outputs, info)
    ctx.log.info(
        "step %s: done in %.2fs", step.name, seconds, extra={"event": "step_done", "step": step.name, **_flat(info)}
    )
    cp = runs.read_checkpoint(ctx.staging, step.name)
    assert cp is not None
    return cp


def _flat(info: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in info.items() if isinstance(v, (int, float, str, bool)) and k not in ("step", "msg")}


def _matching_run(ctx: RunContext, run_fp: str) -> runs.RunInfo | None:
    done = runs.find_complete(ctx.workspace.runs, ctx.workspace.root, ctx.run_id)
    if done is not None and done.manifest.get("inputs_fingerprint") == run_fp:
        return done
    return None


def _unchanged(ctx: RunContext, done: runs.RunInfo, ran: list[str]) -> RefreshResult:
    """Inputs match a complete run of this date: nothing to rebuild; publish it if it is the newest."""
    import shutil

    shutil.rmtree(ctx.staging, ignore_errors=True)
    published = runs.published_dir(ctx.workspace.root)
    if done.state == "published":
        msg = f"run {done.name} is already published with the same inputs; nothing to do"
    elif _may_publish(ctx, published):
        runs.publish(ctx.workspace.root, done.path)
        msg = f"run {done.name} was complete with the same inputs; published it"
    else:
        msg = f"run {done.name} is complete with the same inputs; a newer run stays published"
    ctx.log.info(msg, extra={"event": "unchanged", "run": done.name})
    return RefreshResult("unchanged", ctx.run_id, done.path, msg, done.manifest, ran=ran)


def _may_publish(ctx: RunContext, published: Path | None) -> bool:
    """Publish unless the published run is of a later as-of date (this one is a backfill)."""
    if published is None:
        return True
    parsed = runs.parse_run_dir(published.name)
    return parsed is None or parsed[0] <= ctx.run_id


def _publish(
    ctx: RunContext, manifest: dict[str, Any], kill_at: str | None, ran: list[str], resumed: list[str]
) -> RefreshResult:
    ws = ctx.workspace
    runs.write_json_atomic(ctx.staging / runs.MANIFEST, manifest)
    final = runs.finalize_run(ctx.staging, ws.runs, ctx.run_id)
    maybe_kill(kill_at, "publish")  # complete but not yet published: the rerun publishes it
    if _may_publish(ctx, runs.published_dir(ws.root)):
        runs.publish(ws.root, final)
        status: Literal["published", "complete"] = "published"
        msg = f"published run {final.name}"
    else:
        status, msg = "complete", f"run {final.name} is complete; a later as-of date stays published"
    pruned = runs.prune_runs(ws.runs, ws.root, ctx.settings.refresh.keep_runs)
    if pruned:
        ctx.log.info("pruned %d old runs", len(pruned), extra={"event": "pruned", "runs": [p.name for p in pruned]})
    ctx.log.info(msg, extra={"event": status, "run": final.name})
    return RefreshResult(status, ctx.run_id, final, msg, manifest, ran=ran, resumed=resumed)


def build_manifest(
    ctx: RunContext, records: list[dict[str, Any]], inputs_fp: str, started: datetime, seconds: float
) -> dict[str, Any]:
    """The run manifest: fingerprints, model version, counts, step timings, encoder calls, versions."""
    info: dict[str, Any] = {}
    counts: dict[str, Any] = {}
    for r in records:
        info.update({k: v for k, v in r.items() if k not in ("step", "resumed", "seconds", "counts")})
        counts.update(r.get("counts", {}))
    return {
        "run_id": ctx.run_id,
        "as_of": ctx.as_of.isoformat(),
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 3),
        "inputs_fingerprint": inputs_fp,
        "inputs": info.get("inputs", {}),
        "ingested": info.get("ingested", []),
        "model_version": info.get("model_version", HEURISTIC),
        "scorer": info.get("scorer", HEURISTIC),
        "embedder": ctx.settings.retrieval.embedder,
        "encoder_calls": int(info.get("encoder_calls", 0)),
        "counts": counts,
        "diff": info.get("diff_totals", {}),
        "previous_run": ctx.previous.name if ctx.previous else None,
        "steps": [{"step": r["step"], "seconds": r.get("seconds"), "resumed": r["resumed"]} for r in records],
        "executor": ctx.executor.describe(),
        "host": {"hostname": socket.gethostname(), "pid": os.getpid(), "python": platform.python_version()},
        "versions": _versions(),
        "settings": {"refresh": ctx.settings.refresh.model_dump(), "retrieval": ctx.settings.retrieval.model_dump()},
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("sansetu", "pandas", "numpy", "lightgbm", "faiss-cpu", "sentence-transformers", "dask"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = ""
    return out


# ---------------------------------------------------------------- logging
class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg and the record's ``extra`` fields."""

    _SKIP = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update({k: v for k, v in record.__dict__.items() if k not in self._SKIP})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(logs_dir: Path, json_format: bool, name: str = "refresh", stream: Any = None) -> Path:
    """Log the refresh to stderr and to ``logs_dir/<name>.log`` (``.jsonl`` with ``json_format``)."""
    logs_dir.mkdir(parents=True, exist_ok=True)
    path = logs_dir / f"{name}.{'jsonl' if json_format else 'log'}"
    text = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    fmt: logging.Formatter = JsonFormatter() if json_format else text
    logger = logging.getLogger(LOGGER_NAME)
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(fmt)
    console = logging.StreamHandler(stream or sys.stderr)
    console.setFormatter(fmt)
    logger.addHandler(file_handler)
    logger.addHandler(console)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return path


# ---------------------------------------------------------------- the real steps
def default_steps() -> list[Step]:
    """The production pipeline (see the module docstring)."""
    return [
        Step("ingest", step_ingest, _ingest_inputs, always=True),
        Step("map", step_map, lambda c: {"map": c.settings.map.model_dump(), "chains": _chains_fp(c)}),
        Step("embed", step_embed, _embed_inputs),
        Step("index", step_index, _embed_inputs),
        Step(
            "retrieve", step_retrieve, lambda c: {"retrieval": c.settings.retrieval.model_dump(), "as_of": str(c.as_of)}
        ),
        Step("features", step_features, lambda c: {"zone_province": c.settings.zone_province}),
        Step("score", step_score, lambda c: {"model_version": _model_version(c), "top_n": c.settings.refresh.top_n}),
        Step(
            "paths", step_paths, lambda c: {"paths": c.settings.paths.model_dump(), "top_n": c.settings.refresh.top_n}
        ),
        Step("diff", step_diff, lambda c: {"previous": c.previous.name if c.previous else None}),
        Step("export", step_export, lambda c: {"format": 1}),
    ]


def _need(module: str, attr: str, part: str) -> Any:
    """A function of another part, or a clear error naming what is missing."""
    import importlib

    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise RuntimeError(f"needs {module}.{attr} ({part}), which is not available: {exc}") from exc


def _raw_files(inputs: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for stem in RAW_INPUTS:
        for suffix in RAW_SUFFIXES:
            if (inputs / f"{stem}{suffix}").is_file():
                found[stem] = inputs / f"{stem}{suffix}"
                break
    if not found:
        expected = [f"{s}{RAW_SUFFIXES[0]}" for s in RAW_INPUTS]
        raise InputError(f"--inputs {inputs} holds none of the raw files {expected} (.csv, .xlsx or .parquet)")
    return found


def _ingest_inputs(ctx: RunContext) -> Any:
    if ctx.inputs is None:
        return None
    return {stem: runs.sha256_file(p) for stem, p in sorted(_raw_files(ctx.inputs).items())}


def current_snapshots(snapshots_dir: Path) -> dict[str, Path]:
    """The newest snapshot file of each table (``snapshots/<table>/<stamp>.parquet``)."""
    out = {}
    for table in TABLES:
        files = sorted((snapshots_dir / table).glob("*.parquet"))
        if files:
            out[table] = files[-1]
    return out


def step_ingest(ctx: RunContext) -> StepResult:
    """Ingest raw files not ingested before; fingerprint the current snapshots, chains and settings."""
    ingested = _ingest_new(ctx) if ctx.inputs is not None else []
    snaps = current_snapshots(ctx.workspace.snapshots)
    if "enterprises" not in snaps:
        raise InputError(
            f"no enterprises snapshot in {ctx.workspace.snapshots}: run 'sansetu ingest' or pass --inputs with raw files"
        )
    fps = {t: {"file": p.name, "sha256": runs.sha256_file(p)} for t, p in snaps.items()}
    # only what the later steps read: a rerun that ingests nothing new must fingerprint the same
    doc = {"snapshots": fps, "chains": _chains_fp(ctx)}
    return StepResult((ctx.write_json(doc, "inputs.json"),), {"inputs": fps, "ingested": ingested})


def _ingest_new(ctx: RunContext) -> list[str]:
    assert ctx.inputs is not None
    ingest_file = _need("features.io", "ingest_file", "ingest")
    state_path = ctx.workspace.runs / "ingested.json"
    state = runs.read_json(state_path) if state_path.is_file() else {}
    done = []
    for stem, path in _raw_files(ctx.inputs).items():
        digest = runs.sha256_file(path)
        table, column_map = RAW_INPUTS[stem]
        if state.get(stem) == digest and (ctx.workspace.snapshots / table).is_dir():
            continue
        ctx.log.info("ingest %s as %s (%s)", path.name, table, column_map, extra={"event": "ingest", "file": str(path)})
        cfg = ctx.settings.ingest
        try:
            report = ingest_file(
                path, table, column_map, ctx.workspace.snapshots, ctx.workspace.rejects, mode="replace",
                maps_dir=ctx.settings.resolve(cfg.column_maps_dir), to_simplified=cfg.traditional_to_simplified,
                max_text_chars=cfg.max_text_chars,
            )  # fmt: skip
        except (ValueError, KeyError) as exc:
            raise InputError(f"ingest of {path} as table '{table}' failed: {exc}") from exc
        ctx.log.info("ingested %s: %s", path.name, report, extra={"event": "ingested", "table": table})
        state[stem] = digest
        runs.write_json_atomic(state_path, state)
        done.append(stem)
    return done


def _chains_fp(ctx: RunContext) -> str:
    folder = ctx.settings.resolve(ctx.settings.chains_dir)
    return runs.sha256_json({p.name: runs.sha256_file(p) for p in sorted(folder.glob("*.yaml"))})


def _tables(ctx: RunContext) -> dict[str, pd.DataFrame]:
    if "tables" not in ctx.cache:
        load_tables = _need("features.io", "load_tables", "ingest")
        ctx.cache["tables"] = load_tables(ctx.workspace.snapshots)
    tables: dict[str, pd.DataFrame] = ctx.cache["tables"]
    return tables


def _nodes(ctx: RunContext) -> pd.DataFrame:
    if "nodes" not in ctx.cache:
        from features.chains import nodes_frame
        from recommender.settings import load_chains

        ctx.cache["nodes"] = nodes_frame(load_chains(ctx.settings))
    nodes: pd.DataFrame = ctx.cache["nodes"]
    return nodes


def _map(ctx: RunContext) -> pd.DataFrame:
    if "map" not in ctx.cache:
        ctx.cache["map"] = ctx.read_parquet("map.parquet")
    m: pd.DataFrame = ctx.cache["map"]
    return m


def step_map(ctx: RunContext) -> StepResult:
    """The colour map, with gap priority when the paths part provides it."""
    compute_map = _need("recommender.colour_map.colours", "compute_map", "map")
    tables, nodes = _tables(ctx), _nodes(ctx)
    map_df = compute_map(nodes, tables["presence"], tables["enterprises"], ctx.settings.map, as_of_year=None)
    try:
        gap_priority = _need("recommender.colour_map.priority", "gap_priority", "paths")
        map_df["priority"] = gap_priority(map_df, nodes, tables["enterprises"], tables["presence"], ctx.settings.paths)
    except RuntimeError as exc:
        ctx.log.warning("map without gap priority: %s", exc, extra={"event": "no_priority"})
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
            load_embedder = _need("models.embedder", "load_embedder", "retrieval")
            ctx.cache["encoder"] = load_embedder(name, ctx.workspace.model_cache)
    return ctx.cache["encoder"]


def step_embed(ctx: RunContext) -> StepResult:
    """Encode only the profiles whose text is not in the embedding cache (changed or new)."""
    from features.embeddings import EmbeddingCache, embed_with_cache
    from features.profiles import enterprise_texts

    encoder = _encoder(ctx)
    enterprises = _tables(ctx)["enterprises"]
    if encoder is None:
        info = {"encoder_calls": 0, "changed_profiles": 0, "n_profiles": len(enterprises)}
        return StepResult((ctx.write_json(info, "embed.json"),), info)
    model_key = _need("recommender.retrieval.index", "model_key", "retrieval")
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
        build = _need("recommender.retrieval.index", "build_profile_index", "retrieval")
        ws = ctx.workspace
        ctx.cache["index"] = build(
            _tables(ctx)["enterprises"], _encoder(ctx), ws.index, ws.embedding_cache, ctx.settings.retrieval,
            progress=ctx.progress,
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
    retrieve = _need("recommender.retrieval.candidates", "retrieve_candidates", "retrieval")
    b = _index(ctx)
    cands = retrieve(
        _nodes(ctx), _map(ctx), _tables(ctx), _encoder(ctx), b.dense, b.lexical, ctx.settings.retrieval,
        as_of=ctx.as_of_ts,
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
    build = _need("features.pairs", "build_pair_features", "ranking")
    # the tables go to each worker once (``shared``), the node partitions as tasks
    shared = (_tables(ctx), _nodes(ctx), _map(ctx), ctx.as_of_ts, ctx.settings.zone_province)

    def one(state: tuple[Any, ...], part: pd.DataFrame) -> pd.DataFrame:
        tables, nodes, map_df, as_of, zone = state
        return build(part, tables, nodes, map_df, as_of, zone_province=zone).set_axis(part.index)

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
        load_champion = _need("recommender.ranking.scoring", "load_champion", "ranking")
        ctx.cache["champion"] = load_champion(ctx.settings)
    return ctx.cache["champion"]


def _model_version(ctx: RunContext) -> str:
    bundle = _champion(ctx)
    if bundle is None:
        return HEURISTIC
    return str(getattr(bundle, "version", None) or getattr(bundle, "model_version", None) or "champion")


def step_score(ctx: RunContext) -> StepResult:
    """Score candidates with the champion by node partitions; the heuristic when there is none (logged)."""
    score = _need("recommender.ranking.scoring", "score_candidates", "ranking")
    bundle = _champion(ctx)
    if bundle is None:
        ctx.log.warning("no champion model in the registry: scoring with the heuristic", extra={"event": "heuristic"})
    shared = (_tables(ctx), _nodes(ctx), _map(ctx), ctx.as_of_ts, bundle, ctx.settings.zone_province)
    cands, feats = _candidates(ctx), _features(ctx)
    items = [(part, feats.loc[part.index]) for part in _partitions(ctx, cands)]

    def one(state: tuple[Any, ...], item: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
        tables, nodes, map_df, as_of, model, zone = state
        return score(item[0], tables, nodes, map_df, as_of, model, zone_province=zone, features=item[1])

    parts = ctx.executor.map(one, items, shared=shared, desc="打分" if ctx.progress else "")
    scored = pd.concat(parts, ignore_index=True) if parts else _candidates(ctx).assign(score=[], rank=[])
    scored = scored.sort_values(["node_id", "rank", "enterprise_id"], kind="stable").reset_index(drop=True)
    if "contributions" in scored.columns:
        scored["contributions"] = scored["contributions"].map(_json_text)
    ctx.cache["scored"] = scored
    version = _model_version(ctx)
    info = {"model_version": version, "scorer": HEURISTIC if bundle is None else "model"}
    return StepResult((ctx.write_parquet(scored, "scored.parquet"),), info)


def _json_text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=float)


def step_paths(ctx: RunContext) -> StepResult:
    """The investment path lists: top-N per node with name, reasons, routes and theme."""
    build_path_list = _need("recommender.paths.targets", "build_path_list", "paths")
    scored = ctx.cache.get("scored")
    if scored is None:
        scored = ctx.read_parquet("scored.parquet")
    top_n = ctx.settings.refresh.top_n
    top = scored[scored["rank"] <= top_n]
    targets = build_path_list(
        top, _tables(ctx), _nodes(ctx), _map(ctx), ctx.settings.paths, as_of=ctx.as_of_ts, top_n=top_n,
        zone_province=ctx.settings.zone_province,
    )  # fmt: skip
    targets = normalise_targets(targets, _map(ctx))
    ctx.cache["targets"] = targets
    counts = {"targets": len(targets), "target_nodes_listed": int(targets["node_id"].nunique())}
    return StepResult((ctx.write_parquet(targets, "targets.parquet"),), {"counts": counts})


TARGET_COLUMNS: Final = [
    "chain_id", "node_id", "rank", "enterprise_id", "name", "score", "reasons", "routes", "theme", "sources",
]  # fmt: skip


def normalise_targets(targets: pd.DataFrame, map_df: pd.DataFrame) -> pd.DataFrame:
    """The investment path list in the contract's columns (extra columns kept after them), sorted."""
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
    from recommender.runs.export import export_workbook, write_node_csvs
    from recommender.settings import load_chains

    targets = _targets(ctx)
    d = ctx.cache.get("diff") or runs.read_json(ctx.staging / "diff.json")
    node_names = dict(zip(_map(ctx)["node_id"], _map(ctx)["name"], strict=True))
    csvs = write_node_csvs(targets, ctx.staging / "targets", node_names)
    names = {c.id: c.name for c in load_chains(ctx.settings)}
    export_workbook(_map(ctx), targets, ctx.staging / "workbook.xlsx", diff=d, chain_names=names)
    outputs = tuple(str(p.relative_to(ctx.staging)) for p in csvs) + ("workbook.xlsx",)
    return StepResult(outputs, {"counts": {"csv_files": len(csvs)}})


# ---------------------------------------------------------------- entry points: one refresh, the schedule
@dataclass(frozen=True)
class RefreshOutcome:
    """A refresh as a scheduler sees it: an exit code, a message, the result when there is one."""

    code: int
    message: str
    result: RefreshResult | None = None


def refresh_once(
    settings: Settings,
    as_of: date,
    *,
    inputs: Path | None = None,
    executor_kind: Literal["local", "dask"] | None = None,
    scheduler: str | None = None,
    force: bool = False,
    progress: bool = False,
    kill_at: str | None = None,
    encoder: Any = None,
) -> RefreshOutcome:
    """Run one refresh and map its outcome to an exit code (0 ok, 1 step failed, 2 bad input, 3 locked)."""
    from recommender.refresh.executor import make_executor

    log = logging.getLogger(LOGGER_NAME)
    kind = executor_kind or settings.refresh.executor
    try:
        executor = make_executor(kind, scheduler or settings.refresh.dask_scheduler)
    except (OSError, TimeoutError, ValueError) as exc:
        return RefreshOutcome(EXIT_BAD_INPUT, f"cannot start the {kind} executor: {exc}")
    try:
        res = run_refresh(
            settings, as_of, inputs=inputs, executor=executor, force=force, progress=progress, kill_at=kill_at,
            encoder=encoder,
        )  # fmt: skip
        return RefreshOutcome(EXIT_OK, res.message, res)
    except runs.RunLockedError as exc:
        log.warning(str(exc), extra={"event": "locked"})
        return RefreshOutcome(EXIT_LOCKED, str(exc))
    except (InputError, ConfigError) as exc:
        log.error(str(exc), extra={"event": "bad_input"})
        return RefreshOutcome(EXIT_BAD_INPUT, str(exc))
    except StepFailed as exc:
        return RefreshOutcome(EXIT_FAILED, f"{exc}; the published run is unchanged; rerun to resume")
    finally:
        executor.close()


def next_fire(cron: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` that matches the cron expression."""
    from croniter import croniter

    if not croniter.is_valid(cron):
        raise ConfigError(f"refresh.schedule must be a cron expression like '30 2 * * *'; got {cron!r}")
    nxt: datetime = croniter(cron, after).get_next(datetime)
    return nxt


def with_retries(
    attempt: Callable[[], RefreshOutcome], retries: int, delay_s: float, sleep: Callable[[float], None]
) -> RefreshOutcome:
    """Run ``attempt``; retry failed steps (code 1) up to ``retries`` times, waiting ``n * delay_s``.

    A locked workspace (3) or bad input (2) is not retried: another run is busy, or a person must act.
    """
    log = logging.getLogger(LOGGER_NAME)
    out = attempt()
    for n in range(1, retries + 1):
        if out.code != EXIT_FAILED:
            break
        log.warning("attempt %d failed (%s); retry in %.0fs", n, out.message, n * delay_s, extra={"event": "retry"})
        sleep(n * delay_s)
        out = attempt()
    return out


def run_schedule(
    settings: Settings,
    attempt: Callable[[date], RefreshOutcome],
    now: Callable[[], datetime],
    sleep: Callable[[float], None],
    once: bool = False,
    max_cycles: int | None = None,
) -> RefreshOutcome:
    """Run refresh on ``settings.refresh.schedule`` forever (or ``max_cycles`` times), with retries.

    With ``once`` the refresh runs now, with the retry policy, and the outcome is returned (for cron
    or a systemd timer that does the timing). Each cycle's as-of date is the fire time's date.
    """
    cfg, log = settings.refresh, logging.getLogger(LOGGER_NAME)
    out = RefreshOutcome(EXIT_OK, "no cycle ran")
    cycles = 0
    while max_cycles is None or cycles < max_cycles:
        if once:
            fire = now()
        else:
            fire = next_fire(cfg.schedule, now())
            log.info("next refresh at %s", fire.isoformat(), extra={"event": "scheduled", "at": fire.isoformat()})
            sleep(max(0.0, (fire - now()).total_seconds()))
        out = with_retries(functools.partial(attempt, fire.date()), cfg.retries, cfg.retry_delay_s, sleep)
        log.info("refresh exit %d: %s", out.code, out.message, extra={"event": "cycle_done", "code": out.code})
        cycles += 1
        if once:
            break
    return out
