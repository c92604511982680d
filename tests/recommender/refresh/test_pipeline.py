"""The refresh job on a small fake pipeline: publish, no-op rerun, resume after real kills, lock, logs.

The fake steps use the real embedding cache with a counting encoder (calls logged to a file, so
they are counted across processes) and the real diff and export steps. Killed runs are separate
processes (this file is imported by ``python -c``) that SIGKILL themselves at a step.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender.refresh import context, logs, schedule
from recommender.refresh import pipeline as batch
from recommender.refresh import steps as real_steps
from recommender.runs import directory as runs
from recommender.settings import ConfigError, Settings, load_settings

D1, D2 = date(2026, 11, 21), date(2026, 11, 28)
NOW = datetime(2026, 11, 28, 2, 30)
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent.parent
FAKE_STEPS = ("ingest", "embed", "score", "diff", "export")


# ---------------------------------------------------------------- the fake pipeline
class CountingEncoder:
    """Deterministic vectors from a text hash; every encoded text is appended to a log file."""

    model_id = "fake-encoder"
    revision = "1"
    dim = 8

    def __init__(self, log: Path) -> None:
        self.log = log

    def encode(
        self, texts: Sequence[str], kind: str = "passage", batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        with open(self.log, "a", encoding="utf-8") as f:
            f.write(f"{len(texts)}\n")
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest()[:8], dtype=np.uint8) for t in texts]
        v = np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim) + 1.0
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def encoded_texts(ws: Path) -> int:
    log = ws / "encoder.log"
    return sum(int(x) for x in log.read_text().split()) if log.exists() else 0


def write_universe(ws: Path, changed: Sequence[int] = (), n: int = 40) -> None:
    rows = [
        {"enterprise_id": f"E{i:03d}", "name": f"公司{i}", "text": f"光纤 激光 芯片 {i} {'新' if i in changed else ''}"}
        for i in range(n)
    ]
    (ws / "src").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(ws / "src" / "universe.parquet")


def fake_ingest(ctx: context.RunContext) -> context.StepResult:
    src = ctx.workspace.root / "src" / "universe.parquet"
    doc = {"universe": runs.sha256_file(src)}
    return context.StepResult((ctx.write_json(doc, "inputs.json"),), {"inputs": doc})


def fake_embed(ctx: context.RunContext) -> context.StepResult:
    from features.embeddings import EmbeddingCache, embed_with_cache

    enc = CountingEncoder(ctx.workspace.root / "encoder.log")
    uni = pd.read_parquet(ctx.workspace.root / "src" / "universe.parquet")
    cache = EmbeddingCache(ctx.workspace.embedding_cache / "fake", enc.model_id, enc.revision, enc.dim)
    vectors, stats = embed_with_cache(uni["text"].tolist(), enc, cache, "passage", 16, 16)
    np.save(ctx.staging / "vectors.npy", vectors)
    info = {"encoder_calls": stats.n_encoded, "changed_profiles": stats.n_misses}
    return context.StepResult(("vectors.npy",), info)


def fake_score(ctx: context.RunContext) -> context.StepResult:
    uni = pd.read_parquet(ctx.workspace.root / "src" / "universe.parquet")
    vectors = np.load(ctx.staging / "vectors.npy")
    nodes = {"optical_comm.preform": 0, "optical_comm.optical_chip": 3}
    parts = []
    for node, axis in nodes.items():
        top = np.argsort(-vectors[:, axis], kind="stable")[:5]
        parts.append(
            pd.DataFrame(
                {
                    "chain_id": "optical_comm",
                    "node_id": node,
                    "rank": np.arange(1, 6),
                    "enterprise_id": uni["enterprise_id"].to_numpy()[top],
                    "name": uni["name"].to_numpy()[top],
                    "score": vectors[top, axis].astype(float),
                    "reasons": "[]",
                    "routes": "[]",
                    "theme": "",
                    "sources": "dense",
                }
            )
        )
    targets = pd.concat(parts, ignore_index=True)
    map_df = pd.DataFrame(
        {
            "chain_id": "optical_comm",
            "node_id": list(nodes),
            "name": ["光纤预制棒", "光芯片"],
            "stage": "upstream",
            "colour": ["red", "blue"],
        }
    )
    ctx.write_parquet(map_df, "map.parquet")
    ctx.write_parquet(targets, "targets.parquet")
    if os.environ.get("FAKE_WAIT_FOR"):  # hold the lock until the test says go
        while not Path(os.environ["FAKE_WAIT_FOR"]).exists():
            time.sleep(0.05)
    return context.StepResult(("map.parquet", "targets.parquet"), {"counts": {"targets": len(targets)}})


def fake_steps() -> list[context.Step]:
    return [
        context.Step("ingest", fake_ingest, always=True),
        context.Step("embed", fake_embed),
        context.Step("score", fake_score),
        context.Step("diff", real_steps.step_diff, lambda c: {"previous": c.previous.name if c.previous else None}),
        context.Step("export", real_steps.step_export),
    ]


def settings_for(ws: Path) -> Settings:
    return load_settings(workspace=ws)


def run_fake(ws: Path, as_of: date, **kw: object) -> batch.RefreshResult:
    return batch.run_refresh(settings_for(ws), as_of, steps=fake_steps(), now=NOW, **kw)  # type: ignore[arg-type]


def main(ws: str, as_of: str) -> None:
    """Entry of the subprocess runs (kill test, lock test)."""
    res = batch.run_refresh(
        settings_for(Path(ws)), date.fromisoformat(as_of), steps=fake_steps(), kill_at=os.environ.get(batch.KILL_ENV)
    )
    print(res.status, res.run_dir.name)


def spawn(ws: Path, as_of: date, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    code = f"import sys; sys.path.insert(0, {str(HERE)!r}); import test_pipeline; test_pipeline.main({str(ws)!r}, {as_of.isoformat()!r})"
    full_env = {**os.environ, **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    w = tmp_path / "ws"
    write_universe(w)
    return w


def published_targets(ws: Path) -> pd.DataFrame:
    pub = runs.published_dir(ws)
    assert pub is not None
    return pd.read_parquet(pub / "targets.parquet")


# ---------------------------------------------------------------- tests
def test_run_refresh_publishes_a_complete_run(ws: Path) -> None:
    res = run_fake(ws, D1)
    assert (res.status, res.run_dir.name, res.ran) == ("published", "2026-11-21", list(FAKE_STEPS))
    assert os.readlink(ws / "published") == "runs/2026-11-21"
    files = sorted(str(p.relative_to(res.run_dir)) for p in res.run_dir.rglob("*") if p.is_file())
    assert files == [
        "diff.json",
        "inputs.json",
        "manifest.json",
        "map.parquet",
        "targets.parquet",
        "targets/optical_comm.optical_chip.csv",
        "targets/optical_comm.preform.csv",
        "vectors.npy",
        "workbook.xlsx",
    ]
    m = runs.read_manifest(res.run_dir)
    assert (m["run_id"], m["as_of"], m["encoder_calls"], m["model_version"]) == (
        "2026-11-21",
        "2026-11-21",
        40,
        "heuristic",
    )
    assert m["counts"] == {"targets": 10, "csv_files": 2}
    assert [s["step"] for s in m["steps"]] == list(FAKE_STEPS)
    assert m["diff"] == {"new": 10, "dropped": 0, "moved": 0, "colour_changes": 0}
    assert not (ws / runs.LOCK_NAME).exists()


def test_run_refresh_rerun_with_unchanged_inputs_is_a_noop(ws: Path) -> None:
    first = run_fake(ws, D1)
    before = encoded_texts(ws)
    again = run_fake(ws, D1)
    assert again.status == "unchanged"
    assert again.message == "run 2026-11-21 is already published with the same inputs; nothing to do"
    assert encoded_texts(ws) - before == 0
    assert again.run_dir == first.run_dir
    assert [p.name for p in (ws / "runs").iterdir() if p.is_dir()] == ["2026-11-21"]


def test_run_refresh_forced_rerun_encodes_nothing_and_publishes_identical_lists(ws: Path) -> None:
    run_fake(ws, D1)
    first = published_targets(ws)
    before = encoded_texts(ws)
    res = run_fake(ws, D1, force=True)
    assert (res.status, res.run_dir.name, res.manifest["encoder_calls"]) == ("published", "2026-11-21-r2", 0)
    assert encoded_texts(ws) == before
    pd.testing.assert_frame_equal(published_targets(ws), first)
    assert sorted(p.name for p in (ws / "runs").iterdir() if p.is_dir()) == ["2026-11-21-r2"]  # superseded pruned


def test_run_refresh_encodes_exactly_the_changed_profiles_and_diffs(ws: Path) -> None:
    run_fake(ws, D1)
    write_universe(ws, changed=[3, 17, 29])
    res = run_fake(ws, D2)
    assert res.manifest["encoder_calls"] == 3
    assert res.manifest["previous_run"] == "2026-11-21"
    d = json.loads((res.run_dir / "diff.json").read_text())
    prev = pd.read_parquet(ws / "runs" / "2026-11-21" / "targets.parquet")
    cur = pd.read_parquet(res.run_dir / "targets.parquet")
    mp = pd.read_parquet(res.run_dir / "map.parquet")
    assert d == runs.diff_runs(prev, cur, mp, mp, since="2026-11-21", run_id="2026-11-28")


def test_refresh_killed_at_each_step_keeps_published_and_resumes(tmp_path: Path) -> None:
    points = [*FAKE_STEPS, "publish"]
    spaces = {p: tmp_path / p for p in points}
    before = {}
    for point, w in spaces.items():
        write_universe(w)
        run_fake(w, D1)
        before[point] = published_targets(w)
        write_universe(w, changed=[1, 2])
    # one real process per kill point, all at once (SIGKILL from inside, at the step)
    procs = {p: spawn(w, D2, {batch.KILL_ENV: p}) for p, w in spaces.items()}
    for point, proc in procs.items():
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == -9, (point, err)
    for point, w in spaces.items():
        # readers still see the old run, complete and readable
        assert os.readlink(w / "published") == "runs/2026-11-21", point
        pd.testing.assert_frame_equal(published_targets(w), before[point])
        assert runs.read_manifest(w / "published")["run_id"] == "2026-11-21"
        assert (w / runs.LOCK_NAME).exists()  # the dead process's lock stays behind ...
        res = run_fake(w, D2)  # ... and is taken over as stale
        assert os.readlink(w / "published") == "runs/2026-11-28", point
        if point == "publish":
            assert res.status == "unchanged"
            assert res.message == "run 2026-11-28 was complete with the same inputs; published it"
        else:
            k = FAKE_STEPS.index(point)
            assert (res.status, res.resumed) == ("published", list(FAKE_STEPS[1:k])), point
            assert res.ran == list(dict.fromkeys(["ingest", *FAKE_STEPS[k:]])), point
        assert encoded_texts(w) == 42, point  # the 2 changed profiles encoded once (finished cache chunks survive)
        assert runs.read_manifest(w / "published")["counts"]["targets"] == 10


def test_two_concurrent_refreshes_one_runs_one_is_locked(ws: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    proc = spawn(ws, D1, {"FAKE_WAIT_FOR": str(go)})
    deadline = time.monotonic() + 60
    while not (ws / runs.LOCK_NAME).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    holder = runs.read_lock(ws / runs.LOCK_NAME)
    assert holder is not None and holder.pid == proc.pid
    with pytest.raises(runs.RunLockedError, match=re.escape(f"another refresh is running ({holder.describe()})")):
        run_fake(ws, D1)
    go.touch()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.strip() == "published 2026-11-21"


def test_run_refresh_step_failure_names_the_step_and_keeps_published(ws: Path) -> None:
    run_fake(ws, D1)

    def boom(ctx: context.RunContext) -> context.StepResult:
        raise KeyError("node_id")

    steps = fake_steps()
    steps[2] = context.Step("score", boom)
    with pytest.raises(batch.StepFailed, match=re.escape("step 'score' failed: KeyError: 'node_id'")):
        batch.run_refresh(settings_for(ws), D2, steps=steps, now=NOW)
    assert os.readlink(ws / "published") == "runs/2026-11-21"
    assert not (ws / runs.LOCK_NAME).exists()


def test_run_refresh_backfill_does_not_replace_a_newer_published_run(ws: Path) -> None:
    run_fake(ws, D2)
    res = run_fake(ws, D1)
    assert (res.status, res.message) == ("complete", "run 2026-11-21 is complete; a later as-of date stays published")
    assert os.readlink(ws / "published") == "runs/2026-11-28"


def test_run_refresh_rejects_inputs_that_are_not_a_folder(ws: Path) -> None:
    msg = f"--inputs must be a folder of raw files; {ws / 'nope'} is not a folder"
    with pytest.raises(context.InputError, match=re.escape(msg)):
        batch.run_refresh(settings_for(ws), D1, steps=fake_steps(), inputs=ws / "nope")


def test_raw_files_error_lists_expected_files(tmp_path: Path) -> None:
    msg = (
        f"--inputs {tmp_path} holds none of the raw files ['enterprises.csv', 'presence.csv', 'assets.csv', "
        "'relations.csv', 'signals.csv', 'outcomes.csv'] (.csv, .xlsx or .parquet)"
    )
    with pytest.raises(context.InputError, match=re.escape(msg)):
        real_steps._raw_files(tmp_path)


def test_configure_logging_writes_json_lines(ws: Path) -> None:
    import io

    path = logs.configure_logging(ws / "logs", json_format=True, stream=io.StringIO())
    run_fake(ws, D1)
    logging.getLogger(logs.LOGGER_NAME).handlers[0].flush()
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    done = [x for x in lines if x.get("event") == "step_done"]
    assert [x["step"] for x in done] == list(FAKE_STEPS)
    assert lines[-1]["event"] == "published" and lines[-1]["run"] == "2026-11-21"
    assert {"ts", "level", "logger", "msg"} <= set(lines[0])
    for h in list(logging.getLogger(logs.LOGGER_NAME).handlers):
        logging.getLogger(logs.LOGGER_NAME).removeHandler(h)
        h.close()


def test_normalise_targets_orders_contract_columns() -> None:
    t = pd.DataFrame(
        {
            "node_id": ["c.b", "c.a"],
            "rank": [1, 1],
            "enterprise_id": ["E1", "E2"],
            "name": ["甲", "乙"],
            "score": [1.0, 2.0],
        }
    )
    mp = pd.DataFrame({"node_id": ["c.a", "c.b"], "chain_id": ["c", "c"]})
    out = real_steps.normalise_targets(t, mp)
    assert out.columns.tolist() == real_steps.TARGET_COLUMNS
    assert out[["node_id", "reasons", "routes"]].values.tolist() == [["c.a", "[]", "[]"], ["c.b", "[]", "[]"]]


# ---------------------------------------------------------------- schedule
def test_next_fire_follows_the_cron_expression() -> None:
    assert schedule.next_fire("30 2 * * *", datetime(2026, 11, 28, 1, 0)) == datetime(2026, 11, 28, 2, 30)
    assert schedule.next_fire("30 2 * * *", datetime(2026, 11, 28, 2, 30)) == datetime(2026, 11, 29, 2, 30)


def test_next_fire_rejects_a_bad_expression() -> None:
    msg = "refresh.schedule must be a cron expression like '30 2 * * *'; got '61 2 * * *'"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        schedule.next_fire("61 2 * * *", NOW)


def test_with_retries_retries_failed_steps_with_growing_waits() -> None:
    codes = iter([1, 1, 0])
    sleeps: list[float] = []
    out = schedule.with_retries(lambda: schedule.RefreshOutcome(next(codes), "m"), 2, 60.0, sleeps.append)
    assert (out.code, sleeps) == (0, [60.0, 120.0])


def test_with_retries_does_not_retry_a_locked_or_bad_input_run() -> None:
    for code in (2, 3):
        calls: list[int] = []

        def attempt(c: int = code, log: list[int] = calls) -> schedule.RefreshOutcome:
            log.append(1)
            return schedule.RefreshOutcome(c, "m")

        out = schedule.with_retries(attempt, 5, 1.0, lambda s: None)
        assert (out.code, len(calls)) == (code, 1)


def test_run_schedule_sleeps_until_each_fire_time_and_uses_its_date(ws: Path) -> None:
    clock = [datetime(2026, 11, 28, 1, 0)]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        clock[0] = clock[0] + pd.Timedelta(seconds=s)

    days: list[date] = []

    def attempt(day: date) -> schedule.RefreshOutcome:
        days.append(day)
        return schedule.RefreshOutcome(0, "ok")

    out = schedule.run_schedule(settings_for(ws), attempt, now=lambda: clock[0], sleep=sleep, max_cycles=2)
    assert out.code == 0
    assert days == [date(2026, 11, 28), date(2026, 11, 29)]
    assert sleeps == [5400.0, 86400.0]


# ---------------------------------------------------------------- the real pipeline on the sample zone (slow)
@pytest.mark.slow
def test_real_refresh_on_sample_zone_resumes_after_kill_and_dask_matches_local(tmp_path: Path) -> None:
    """sansetu refresh on the smallest sample zone: kill at 'features', rerun resumes and publishes, a second
    rerun is a no-op with zero encoder calls, and the Dask executor publishes the same lists."""
    from recommender.refresh.executor import DaskExecutor
    from recommender.sample.generate import generate_sample
    from recommender.settings import load_chains

    env = {"SANSETU_RETRIEVAL__EMBEDDER": "tfidf", "SANSETU_REFRESH__TOP_N": "10", "SANSETU_RANKING__FIT_REFIT": "true"}
    ws, inputs = tmp_path / "ws", tmp_path / "inputs"
    inputs.mkdir()
    os.environ.update(env)
    try:
        settings = load_settings(workspace=ws)
        data = generate_sample(load_chains(settings), 1700, 0)
        for name, df in data.tables().items():
            df.to_csv(inputs / f"{name}.csv", index=False)
        cmd = [sys.executable, "-m", "recommender.cli", "refresh", "--as-of", "2026-06-30", "--inputs", str(inputs)]
        cmd += ["--workspace", str(ws)]
        killed = subprocess.run(cmd, env={**os.environ, batch.KILL_ENV: "features"}, capture_output=True, cwd=ROOT)
        assert killed.returncode == -9
        assert not (ws / "published").exists()
        done = subprocess.run(cmd, env=dict(os.environ), capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        assert "published run 2026-06-30" in done.stdout
        manifest = runs.read_manifest(ws / "published")
        assert [s["step"] for s in manifest["steps"] if s["resumed"]] == ["map", "embed", "index", "retrieve"]
        assert manifest["fit_model"]["model"] == "refit"  # the sample's registry codes allow a refit
        assert manifest["fit_model"]["n_agree"] >= settings.ranking.fit_refit_min_pairs
        assert (ws / "published" / "fit_model.json").is_file()
        again = subprocess.run(cmd, env=dict(os.environ), capture_output=True, text=True, cwd=ROOT)
        assert again.returncode == 0 and "already published with the same inputs" in again.stdout
        local = pd.read_parquet(ws / "published" / "targets.parquet")
        sizes = local.groupby("node_id")["rank"].max()  # lists hold the firms that fit, at most top_n
        assert sizes.max() <= 10 and (sizes == local.groupby("node_id").size()).all()
        assert (local.groupby("node_id")["n_fit"].first() >= sizes).all()
        ws_dask = tmp_path / "ws-dask"
        shutil.copytree(ws, ws_dask, symlinks=True)
        ex = DaskExecutor(None, n_workers=1, threads_per_worker=2, processes=False).start()
        try:
            res = batch.run_refresh(load_settings(workspace=ws_dask), date(2026, 6, 30), executor=ex, force=True)
        finally:
            ex.close()
        assert res.manifest["executor"]["kind"] == "dask"
        dask_targets = pd.read_parquet(res.run_dir / "targets.parquet")
        cols = ["node_id", "rank", "enterprise_id", "score", "reasons", "routes", "theme"]
        pd.testing.assert_frame_equal(dask_targets[cols], local[cols])
    finally:
        for k in env:
            os.environ.pop(k, None)
