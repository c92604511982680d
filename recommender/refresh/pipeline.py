"""The nightly refresh: staged, checkpointed, resumable, idempotent per as-of date, atomically published.

``run_refresh`` takes the workspace lock, builds ``runs/<as_of>.staging/`` step by step and
publishes it by renaming it to ``runs/<as_of>/`` and switching ``<workspace>/published`` in one
``os.replace``. Until then every reader sees the previously published run.

The steps are :func:`recommender.refresh.steps.default_steps` (ingest, map, embed, index, retrieve,
features, score, paths, diff, export), each writing into the staging dir and then a checkpoint
marker; what a step sees and returns is in :mod:`recommender.refresh.context`.

A step's fingerprint hashes its own inputs (settings, snapshots, model version) and the previous
step's fingerprint and output digests; a rerun skips every step whose checkpoint matches (resume
after a crash) and re-runs the rest. When every input matches a complete run of the same as-of
date, the rerun is a no-op that says so. The run's ``manifest.json`` (:func:`build_manifest`) says
what went in and what came out. Exit codes are :mod:`recommender.refresh.schedule`'s.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Final, Literal

from recommender.refresh.context import HEURISTIC, InputError, RunContext, Step
from recommender.refresh.executor import Executor, LocalExecutor
from recommender.refresh.steps import default_steps
from recommender.runs import directory as runs
from recommender.settings import ConfigError, Settings
from recommender.workspace import Workspace

KILL_ENV: Final = "SANSETU_TEST_KILL_AT"


class StepFailed(RuntimeError):
    """A step raised (exit code 1); the message names the step and the cause."""

    def __init__(self, step: str, cause: BaseException) -> None:
        super().__init__(f"step '{step}' failed: {type(cause).__name__}: {cause}")
        self.step = step


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
        "lists": info.get("lists", {}),
        "fit": info.get("fit"),
        "fit_model": info.get("fit_model", {}),  # refitted on the run's candidates or the configured one, and why
        "fit_marks": info.get("fit_marks", {}),  # the analysts' checks applied (fit_marks table)
        "previous_run": ctx.previous.name if ctx.previous else None,
        "steps": [{"step": r["step"], "seconds": r.get("seconds"), "resumed": r["resumed"]} for r in records],
        "executor": ctx.executor.describe(),
        "host": {"hostname": socket.gethostname(), "pid": os.getpid(), "python": platform.python_version()},
        "versions": _versions(),
        "settings": {
            "refresh": ctx.settings.refresh.model_dump(),
            "retrieval": ctx.settings.retrieval.model_dump(),
            "ranking": ctx.settings.ranking.model_dump(),
        },
    }


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("sansetu", "pandas", "numpy", "lightgbm", "faiss-cpu", "sentence-transformers", "dask"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = ""
    return out
