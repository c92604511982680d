"""Run directories: lock, checkpoints, publish, retention and the exact diff."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest

from recommender.runs import directory as runs

NOW = datetime(2026, 11, 28, 2, 30, 0)


def _complete_run(runs_dir: Path, name: str, as_of: str, extra: dict[str, object] | None = None) -> Path:
    d = runs_dir / name
    d.mkdir(parents=True)
    runs.write_json_atomic(d / runs.MANIFEST, {"run_id": as_of, "as_of": as_of, **(extra or {})})
    return d


# ---------------------------------------------------------------- ids
def test_run_id_for_is_the_iso_date() -> None:
    assert runs.run_id_for(date(2026, 11, 28)) == "2026-11-28"


def test_parse_run_dir_reads_revisions() -> None:
    assert runs.parse_run_dir("2026-11-28") == ("2026-11-28", 1)
    assert runs.parse_run_dir("2026-11-28-r3") == ("2026-11-28", 3)
    assert runs.parse_run_dir("ingested.json") is None


# ---------------------------------------------------------------- lock
def test_acquire_lock_writes_pid_host_and_start(tmp_path: Path) -> None:
    lock = tmp_path / runs.LOCK_NAME
    me = runs.acquire_lock(lock, NOW)
    assert json.loads(lock.read_text()) == {
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "started": "2026-11-28T02:30:00",
    }
    runs.release_lock(lock, me)
    assert not lock.exists()


def test_acquire_lock_refuses_a_live_holder(tmp_path: Path) -> None:
    lock = tmp_path / runs.LOCK_NAME
    runs.acquire_lock(lock, NOW)
    msg = (
        f"another refresh is running (pid {os.getpid()} on {socket.gethostname()}, started 2026-11-28T02:30:00); "
        f"lock file {lock}. Wait for it to finish, or delete the lock file if that process is gone."
    )
    with pytest.raises(runs.RunLockedError, match=re.escape(msg)):
        runs.acquire_lock(lock, NOW)


def test_acquire_lock_takes_over_a_dead_pid(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid is dead
    lock = tmp_path / runs.LOCK_NAME
    lock.write_text(json.dumps({"pid": proc.pid, "hostname": socket.gethostname(), "started": "x"}))
    me = runs.acquire_lock(lock, NOW)
    assert me.pid == os.getpid()
    assert runs.read_lock(lock) == me
    assert [p.name for p in tmp_path.iterdir()] == [runs.LOCK_NAME]


def test_is_stale_never_guesses_about_another_host() -> None:
    info = runs.LockInfo(pid=999_999_999, hostname="elsewhere", started="x")
    assert runs.is_stale(info, hostname="here") is False
    assert runs.is_stale(runs.LockInfo(999_999_999, "here", "x"), hostname="here") is True


# ---------------------------------------------------------------- checkpoints
def test_valid_checkpoint_checks_fingerprint_and_output_bytes(tmp_path: Path) -> None:
    (tmp_path / "map.parquet").write_bytes(b"abc")
    runs.write_checkpoint(tmp_path, "map", "fp1", ["map.parquet"], {"n": 3})
    cp = runs.valid_checkpoint(tmp_path, "map", "fp1")
    assert cp is not None and cp["info"] == {"n": 3}
    assert runs.valid_checkpoint(tmp_path, "map", "fp2") is None
    (tmp_path / "map.parquet").write_bytes(b"abd")  # torn or changed output
    assert runs.valid_checkpoint(tmp_path, "map", "fp1") is None


def test_write_checkpoint_rejects_missing_outputs(tmp_path: Path) -> None:
    msg = f"step 'map' declared outputs that it did not write: ['map.parquet'] (in {tmp_path})"
    with pytest.raises(FileNotFoundError, match=re.escape(msg)):
        runs.write_checkpoint(tmp_path, "map", "fp", ["map.parquet"], {})


# ---------------------------------------------------------------- finalize, publish, list, prune
def test_finalize_then_publish_switches_the_link(tmp_path: Path) -> None:
    rd = tmp_path / "runs"
    st = runs.staging_dir(rd, "2026-11-28")
    (st / runs.CHECKPOINTS).mkdir(parents=True)
    runs.write_json_atomic(st / runs.MANIFEST, {"run_id": "2026-11-28"})
    final = runs.finalize_run(st, rd, "2026-11-28")
    assert final == rd / "2026-11-28" and not st.exists() and not (final / runs.CHECKPOINTS).exists()
    runs.publish(tmp_path, final)
    assert os.readlink(tmp_path / "published") == "runs/2026-11-28"
    assert runs.published_dir(tmp_path) == final.resolve()
    # a second revision of the same date gets -r2; publishing it replaces the link in one step
    st2 = runs.staging_dir(rd, "2026-11-28")
    st2.mkdir()
    runs.write_json_atomic(st2 / runs.MANIFEST, {"run_id": "2026-11-28"})
    second = runs.finalize_run(st2, rd, "2026-11-28")
    runs.publish(tmp_path, second)
    assert second.name == "2026-11-28-r2"
    assert os.readlink(tmp_path / "published") == "runs/2026-11-28-r2"


def test_publish_refuses_a_run_without_manifest(tmp_path: Path) -> None:
    d = tmp_path / "runs" / "2026-11-28"
    d.mkdir(parents=True)
    msg = f"refusing to publish {d}: it has no manifest.json (not a complete run)"
    with pytest.raises(FileNotFoundError, match=re.escape(msg)):
        runs.publish(tmp_path, d)


def test_list_runs_states_newest_first(tmp_path: Path) -> None:
    rd = tmp_path / "runs"
    _complete_run(rd, "2026-11-26", "2026-11-26")
    pub = _complete_run(rd, "2026-11-27", "2026-11-27")
    (rd / "2026-11-28.staging").mkdir()
    (rd / "2026-11-25").mkdir()  # no manifest: not a run
    runs.publish(tmp_path, pub)
    got = [(r.name, r.state) for r in runs.list_runs(rd, tmp_path)]
    assert got == [("2026-11-28.staging", "staging"), ("2026-11-27", "published"), ("2026-11-26", "complete")]


def test_prune_runs_keeps_newest_and_never_the_published(tmp_path: Path) -> None:
    rd = tmp_path / "runs"
    old_pub = _complete_run(rd, "2026-11-20", "2026-11-20")
    for d in ("2026-11-21", "2026-11-22", "2026-11-23", "2026-11-23-r2"):
        _complete_run(rd, d, d[:10])
    (rd / "2026-11-19.staging").mkdir()
    (rd / "2026-11-24.staging").mkdir()
    runs.publish(tmp_path, old_pub)  # e.g. newer runs were backfills never published
    removed = sorted(p.name for p in runs.prune_runs(rd, tmp_path, keep=2))
    assert removed == ["2026-11-19.staging", "2026-11-21", "2026-11-23"]
    assert sorted(p.name for p in rd.iterdir()) == ["2026-11-20", "2026-11-22", "2026-11-23-r2", "2026-11-24.staging"]


# ---------------------------------------------------------------- diff
def _map(colours: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "chain_id": ["c"] * len(colours),
            "node_id": list(colours),
            "name": [f"节点{n}" for n in colours],
            "colour": list(colours.values()),
        }
    )


def _targets(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "node_id": [r[0] for r in rows],
            "enterprise_id": [r[1] for r in rows],
            "rank": [r[2] for r in rows],
            "name": [f"公司{r[1]}" for r in rows],
        }
    )


def test_diff_runs_is_exact_on_hand_made_runs() -> None:
    prev = _targets([("c.a", "E1", 1), ("c.a", "E2", 2), ("c.a", "E3", 3), ("c.b", "E4", 1), ("c.x", "E9", 1)])
    cur = _targets([("c.a", "E2", 1), ("c.a", "E1", 2), ("c.a", "E5", 3), ("c.b", "E4", 1)])
    d = runs.diff_runs(prev, cur, _map({"c.a": "red", "c.b": "blue"}), _map({"c.a": "blue", "c.b": "blue"}), "r1", "r2")
    assert d == {
        "since": "r1",
        "run_id": "r2",
        "nodes": [
            {
                "node_id": "c.a",
                "chain_id": "c",
                "name": "节点c.a",
                "colour_before": "red",
                "colour": "blue",
                "new": [{"enterprise_id": "E5", "name": "公司E5", "rank": 3}],
                "dropped": [{"enterprise_id": "E3", "name": "公司E3", "rank_before": 3}],
                "moved": [
                    {"enterprise_id": "E2", "name": "公司E2", "rank_before": 2, "rank": 1, "change": 1},
                    {"enterprise_id": "E1", "name": "公司E1", "rank_before": 1, "rank": 2, "change": -1},
                ],
            },
            {
                "node_id": "c.x",
                "chain_id": "",
                "name": "",
                "colour_before": None,
                "colour": None,
                "new": [],
                "dropped": [{"enterprise_id": "E9", "name": "公司E9", "rank_before": 1}],
                "moved": [],
            },
        ],
        "colour_changes": [{"node_id": "c.a", "chain_id": "c", "name": "节点c.a", "before": "red", "after": "blue"}],
        "totals": {"new": 1, "dropped": 2, "moved": 2, "colour_changes": 1},
    }


def test_diff_runs_without_previous_lists_everything_as_new() -> None:
    cur = _targets([("c.a", "E1", 1), ("c.a", "E2", 2)])
    d = runs.diff_runs(None, cur, None, _map({"c.a": "red"}))
    assert d["totals"] == {"new": 2, "dropped": 0, "moved": 0, "colour_changes": 0}
    assert [e["enterprise_id"] for e in d["nodes"][0]["new"]] == ["E1", "E2"]


def test_diff_runs_rejects_targets_without_rank() -> None:
    bad = pd.DataFrame({"node_id": ["a"], "enterprise_id": ["E"]})
    msg = "targets is missing required columns ['rank']; got columns ['node_id', 'enterprise_id']."
    with pytest.raises(ValueError, match=re.escape(msg)):
        runs.diff_runs(None, bad, None, _map({"a": "red"}))
