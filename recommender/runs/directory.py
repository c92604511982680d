"""Run directories of the nightly refresh: staging, checkpoints, lock, atomic publish, retention, diffs.

Layout under ``<workspace>/runs/``::

    <run_id>.staging/                  a run being built (resumable)
      .checkpoints/<step>.json         one marker per completed step: input fingerprint, outputs + sha256
      ...                              the step outputs
    <run_id>/                          a complete run (renamed from staging in one ``os.replace``)
    <run_id>-r2/                       a later revision of the same as-of date (inputs changed)
    ingested.json                      sha256 of the raw files the refresh has already ingested
    <workspace>/published -> runs/<dir>   what every reader sees; switched by ``os.replace`` of a temp link

The run id is the as-of date (``YYYY-MM-DD``): one run per as-of date. A lock file
``<workspace>/refresh.lock`` (``O_CREAT | O_EXCL``; pid, hostname, start time) stops two refreshes at
once; a lock whose pid is dead on this host is stale and taken over.

The diff functions at the end are pure.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

STAGING_SUFFIX = ".staging"
CHECKPOINTS = ".checkpoints"
MANIFEST = "manifest.json"
LOCK_NAME = "refresh.lock"
_REVISION = re.compile(r"^(?P<run_id>\d{4}-\d{2}-\d{2})(?:-r(?P<rev>\d+))?$")


class RunLockedError(RuntimeError):
    """Another refresh holds the lock (exit code 3)."""


# ---------------------------------------------------------------- fingerprints and atomic writes
def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj`` (sorted keys, no whitespace); stable across processes."""
    data = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def write_json_atomic(path: Path, obj: Any) -> Path:
    """Write JSON to ``path`` through a temp file, fsync and ``os.replace``: readers see old or new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2, sort_keys=True, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read_json(path: Path) -> Any:
    """Read a JSON file; the error names the file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except json.JSONDecodeError as exc:
        raise ValueError(f"Failed while loading JSON from {path}: {exc}") from None


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------- run ids
def run_id_for(as_of: date) -> str:
    """The run id of an as-of date: ``YYYY-MM-DD``."""
    return as_of.isoformat()


def parse_run_dir(name: str) -> tuple[str, int] | None:
    """``'2026-11-28-r2'`` -> ``('2026-11-28', 2)``; a first revision has number 1; None if not a run."""
    m = _REVISION.match(name)
    if not m:
        return None
    return m.group("run_id"), int(m.group("rev") or 1)


def staging_dir(runs_dir: Path, run_id: str) -> Path:
    return runs_dir / f"{run_id}{STAGING_SUFFIX}"


# ---------------------------------------------------------------- lock
@dataclass(frozen=True)
class LockInfo:
    """Who holds the refresh lock."""

    pid: int
    hostname: str
    started: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.hostname}, started {self.started}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_lock(path: Path) -> LockInfo | None:
    """The lock's holder, or None when there is no lock (an unreadable lock reads as pid 0)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return LockInfo(int(raw["pid"]), str(raw["hostname"]), str(raw["started"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return LockInfo(0, "?", "?")


def is_stale(info: LockInfo, hostname: str | None = None) -> bool:
    """A lock is stale when it was taken on this host by a process that no longer runs."""
    here = hostname or socket.gethostname()
    if info.hostname != here:
        return False  # cannot see another host's processes; an operator removes it by hand
    return info.pid <= 0 or not _pid_alive(info.pid)


def acquire_lock(path: Path, now: datetime) -> LockInfo:
    """Create the lock file atomically; take over a stale one; raise RunLockedError when held."""
    me = LockInfo(os.getpid(), socket.gethostname(), now.isoformat(timespec="seconds"))
    payload = json.dumps({"pid": me.pid, "hostname": me.hostname, "started": me.started}).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = read_lock(path)
            if holder is None:
                continue  # released between our open and read
            if not is_stale(holder):
                raise RunLockedError(
                    f"another refresh is running ({holder.describe()}); lock file {path}. "
                    "Wait for it to finish, or delete the lock file if that process is gone."
                ) from None
            _remove_stale(path, holder)
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        return me
    raise RunLockedError(f"could not take the refresh lock {path}: another process took it first")


def _remove_stale(path: Path, stale: LockInfo) -> None:
    """Move a stale lock aside under a unique name; give it back if a live taker got there first."""
    aside = path.with_name(f"{path.name}.stale.{os.getpid()}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return
    moved = read_lock(aside)
    if moved != stale:  # another process replaced the stale lock with its own between our read and move
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
        os.unlink(aside)
        holder = moved or stale
        raise RunLockedError(f"another refresh is running ({holder.describe()}); lock file {path}.")
    os.unlink(aside)


def release_lock(path: Path, me: LockInfo) -> None:
    """Remove the lock if we still hold it."""
    holder = read_lock(path)
    if holder is not None and holder.pid == me.pid and holder.hostname == me.hostname:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def refresh_lock(path: Path, now: datetime) -> Iterator[LockInfo]:
    """``with refresh_lock(ws.root / LOCK_NAME, now):`` holds the lock for the block."""
    me = acquire_lock(path, now)
    try:
        yield me
    finally:
        release_lock(path, me)


# ---------------------------------------------------------------- checkpoints
def write_checkpoint(staging: Path, step: str, fingerprint: str, outputs: Sequence[str], info: dict[str, Any]) -> Path:
    """Mark ``step`` complete: its input fingerprint and the sha256 of each output (paths relative to staging)."""
    missing = [o for o in outputs if not (staging / o).is_file()]
    if missing:
        raise FileNotFoundError(f"step '{step}' declared outputs that it did not write: {missing} (in {staging})")
    marker = {
        "step": step,
        "fingerprint": fingerprint,
        "outputs": {o: sha256_file(staging / o) for o in outputs},
        "info": info,
    }
    return write_json_atomic(staging / CHECKPOINTS / f"{step}.json", marker)


def read_checkpoint(staging: Path, step: str) -> dict[str, Any] | None:
    path = staging / CHECKPOINTS / f"{step}.json"
    if not path.is_file():
        return None
    try:
        data = read_json(path)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def valid_checkpoint(staging: Path, step: str, fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint of ``step`` if its fingerprint matches and every output is intact; else None."""
    cp = read_checkpoint(staging, step)
    if cp is None or cp.get("fingerprint") != fingerprint:
        return None
    for rel, digest in cp.get("outputs", {}).items():
        p = staging / rel
        if not p.is_file() or sha256_file(p) != digest:
            return None
    return cp


def clear_checkpoints(staging: Path, steps: Sequence[str]) -> None:
    """Drop the markers of ``steps`` (the steps after one that re-ran)."""
    for s in steps:
        with contextlib.suppress(FileNotFoundError):
            (staging / CHECKPOINTS / f"{s}.json").unlink()


# ---------------------------------------------------------------- complete runs, publish, retention
@dataclass(frozen=True)
class RunInfo:
    """One run directory as listed by ``sansetu runs``."""

    name: str
    run_id: str
    revision: int
    path: Path
    state: str  # staging | complete | published
    manifest: dict[str, Any]

    def record(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "run": self.name,
            "as_of": self.run_id,
            "state": self.state,
            "finished": m.get("finished", ""),
            "model": m.get("model_version", ""),
            "n_targets": m.get("counts", {}).get("targets", ""),
            "encoder_calls": m.get("encoder_calls", ""),
            "seconds": m.get("seconds", ""),
        }


def published_dir(workspace_root: Path) -> Path | None:
    """The run directory the ``published`` link points at, or None."""
    link = workspace_root / "published"
    if not link.is_symlink() and not link.exists():
        return None
    target = link.resolve()
    return target if target.is_dir() else None


def read_manifest(run_dir: Path) -> dict[str, Any]:
    data = read_json(run_dir / MANIFEST)
    if not isinstance(data, dict):
        raise ValueError(f"{run_dir / MANIFEST} must hold a JSON object; got {type(data).__name__}")
    return data


def list_runs(runs_dir: Path, workspace_root: Path) -> list[RunInfo]:
    """Every run (complete, published or staging), newest as-of first."""
    if not runs_dir.is_dir():
        return []
    pub = published_dir(workspace_root)
    out: list[RunInfo] = []
    for p in runs_dir.iterdir():
        if not p.is_dir():
            continue
        name = p.name
        staging = name.endswith(STAGING_SUFFIX)
        parsed = parse_run_dir(name[: -len(STAGING_SUFFIX)] if staging else name)
        if parsed is None:
            continue
        manifest: dict[str, Any] = {}
        if not staging and (p / MANIFEST).is_file():
            with contextlib.suppress(ValueError):
                manifest = read_manifest(p)
        elif not staging:
            continue  # not a complete run (no manifest): ignore
        state = "staging" if staging else ("published" if pub is not None and p.resolve() == pub else "complete")
        out.append(RunInfo(name, parsed[0], parsed[1], p, state, manifest))
    return sorted(out, key=lambda r: (r.run_id, r.revision, r.state != "staging"), reverse=True)


def complete_runs(runs_dir: Path, workspace_root: Path) -> list[RunInfo]:
    return [r for r in list_runs(runs_dir, workspace_root) if r.state != "staging"]


def find_complete(runs_dir: Path, workspace_root: Path, run_id: str) -> RunInfo | None:
    """The newest complete revision of ``run_id``, or None."""
    for r in complete_runs(runs_dir, workspace_root):
        if r.run_id == run_id:
            return r
    return None


def next_run_dir(runs_dir: Path, run_id: str) -> Path:
    """``runs/<run_id>`` for the first revision, ``runs/<run_id>-rN`` for later ones."""
    revs = [parse_run_dir(p.name) for p in runs_dir.iterdir()] if runs_dir.is_dir() else []
    used = [r[1] for r in revs if r is not None and r[0] == run_id]
    n = max(used, default=0) + 1
    return runs_dir / (run_id if n == 1 else f"{run_id}-r{n}")


def finalize_run(staging: Path, runs_dir: Path, run_id: str) -> Path:
    """Turn a finished staging dir into a complete run by one rename (checkpoints are dropped first)."""
    shutil.rmtree(staging / CHECKPOINTS, ignore_errors=True)
    final = next_run_dir(runs_dir, run_id)
    os.replace(staging, final)
    _fsync_dir(runs_dir)
    return final


def publish(workspace_root: Path, run_dir: Path) -> None:
    """Point ``<workspace>/published`` at ``run_dir`` atomically (temp symlink + ``os.replace``)."""
    if not (run_dir / MANIFEST).is_file():
        raise FileNotFoundError(f"refusing to publish {run_dir}: it has no {MANIFEST} (not a complete run)")
    link = workspace_root / "published"
    tmp = workspace_root / f".published.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(os.path.relpath(run_dir, workspace_root), tmp)
    os.replace(tmp, link)
    _fsync_dir(workspace_root)


def prune_runs(runs_dir: Path, workspace_root: Path, keep: int) -> list[Path]:
    """Delete superseded revisions and all but the ``keep`` newest complete runs; never the published one.

    Staging dirs of as-of dates older than the newest complete run are removed too (abandoned).
    """
    if keep < 1:
        raise ValueError(f"keep_runs must be >= 1; got {keep}")
    runs = list_runs(runs_dir, workspace_root)
    complete = [r for r in runs if r.state != "staging"]
    newest_rev: dict[str, RunInfo] = {}
    for r in complete:  # sorted newest first
        newest_rev.setdefault(r.run_id, r)
    kept_ids = sorted(newest_rev, reverse=True)[:keep]
    doomed = [
        r for r in complete if r.state != "published" and (r.run_id not in kept_ids or newest_rev[r.run_id] is not r)
    ]
    newest = max(newest_rev, default="")
    doomed += [r for r in runs if r.state == "staging" and r.run_id < newest]
    for r in doomed:
        shutil.rmtree(r.path, ignore_errors=True)
    return [r.path for r in doomed]


# ---------------------------------------------------------------- diffs (pure)
_DIFF_TARGET_COLS = ["node_id", "enterprise_id", "rank"]


def _targets_frame(targets: pd.DataFrame | None) -> pd.DataFrame:
    if targets is None or targets.empty:
        return pd.DataFrame({"node_id": [], "enterprise_id": [], "rank": [], "name": []})
    missing = [c for c in _DIFF_TARGET_COLS if c not in targets.columns]
    if missing:
        raise ValueError(f"targets is missing required columns {missing}; got columns {list(targets.columns)}.")
    cols = _DIFF_TARGET_COLS + (["name"] if "name" in targets.columns else [])
    out = targets[cols].copy()
    if "name" not in out.columns:
        out["name"] = ""
    out["rank"] = out["rank"].astype(int)
    return out


def diff_runs(
    previous_targets: pd.DataFrame | None,
    current_targets: pd.DataFrame,
    previous_map: pd.DataFrame | None,
    current_map: pd.DataFrame,
    since: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Per node: targets new / dropped / moved (rank change) since the previous run; colour changes.

    Returns a JSON-able dict ``{since, run_id, nodes: [...], colour_changes: [...], totals: {...}}``;
    nodes are listed in ``current_map`` order (then nodes only in the previous run), only those
    with any change. Each ``moved`` entry has ``rank_before``, ``rank`` and ``change``
    (``rank_before - rank``: positive = moved up). With no previous run, every target is new.
    """
    prev, cur = _targets_frame(previous_targets), _targets_frame(current_targets)
    merged = prev.merge(cur, on=["node_id", "enterprise_id"], how="outer", suffixes=("_before", ""), indicator=True)
    merged["name"] = merged["name"].where(merged["name"].notna(), merged["name_before"]).fillna("")
    names = _node_names(previous_map, current_map)
    colours_before = _colours(previous_map)
    colours_after = _colours(current_map)
    order = list(dict.fromkeys(list(names) + sorted(set(merged["node_id"]) - set(names))))
    nodes, totals = [], {"new": 0, "dropped": 0, "moved": 0, "colour_changes": 0}
    groups = {k: g for k, g in merged.groupby("node_id", sort=False)}
    for node in order:
        g = groups.get(node)
        entry = _node_diff(g) if g is not None else {"new": [], "dropped": [], "moved": []}
        before, after = colours_before.get(node), colours_after.get(node)
        colour_changed = previous_map is not None and before is not None and after is not None and before != after
        if not (entry["new"] or entry["dropped"] or entry["moved"] or colour_changed):
            continue
        chain_id, node_name = names.get(node, ("", ""))
        nodes.append(
            {"node_id": node, "chain_id": chain_id, "name": node_name, "colour_before": before, "colour": after} | entry
        )
        for k in ("new", "dropped", "moved"):
            totals[k] += len(entry[k])
    changes = _colour_changes(previous_map, current_map, names)
    totals["colour_changes"] = len(changes)
    return {"since": since, "run_id": run_id, "nodes": nodes, "colour_changes": changes, "totals": totals}


def _node_diff(g: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    new = g[g["_merge"] == "right_only"].sort_values("rank").to_dict("records")
    dropped = g[g["_merge"] == "left_only"].sort_values("rank_before").to_dict("records")
    both = g[(g["_merge"] == "both") & (g["rank_before"] != g["rank"])].sort_values("rank").to_dict("records")
    return {
        "new": [{"enterprise_id": r["enterprise_id"], "name": r["name"], "rank": int(r["rank"])} for r in new],
        "dropped": [
            {"enterprise_id": r["enterprise_id"], "name": r["name"], "rank_before": int(r["rank_before"])}
            for r in dropped
        ],
        "moved": [
            {
                "enterprise_id": r["enterprise_id"],
                "name": r["name"],
                "rank_before": int(r["rank_before"]),
                "rank": int(r["rank"]),
                "change": int(r["rank_before"]) - int(r["rank"]),
            }
            for r in both
        ],
    }


def _node_names(previous_map: pd.DataFrame | None, current_map: pd.DataFrame) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for m in (current_map, previous_map):
        if m is None or m.empty:
            continue
        for r in m.itertuples():
            out.setdefault(str(r.node_id), (str(getattr(r, "chain_id", "")), str(getattr(r, "name", ""))))
    return out


def _colours(m: pd.DataFrame | None) -> dict[str, str]:
    if m is None or m.empty:
        return {}
    return dict(zip(m["node_id"].astype(str), m["colour"].astype(str), strict=True))


def _colour_changes(
    previous_map: pd.DataFrame | None, current_map: pd.DataFrame, names: dict[str, tuple[str, str]]
) -> list[dict[str, Any]]:
    before, after = _colours(previous_map), _colours(current_map)
    return [
        {"node_id": n, "chain_id": names[n][0], "name": names[n][1], "before": before[n], "after": after[n]}
        for n in after
        if n in before and before[n] != after[n]
    ]
