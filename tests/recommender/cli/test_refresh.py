"""sansetu refresh / diff / runs / schedule: exit codes, messages and outputs."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from recommender.cli import app
from recommender.runs import directory as runs

runner = CliRunner()


def _run_dir(ws: Path, name: str, targets: list[tuple[str, str, int]], colours: dict[str, str]) -> Path:
    d = ws / "runs" / name
    d.mkdir(parents=True)
    t = pd.DataFrame(
        {
            "chain_id": "c",
            "node_id": [r[0] for r in targets],
            "rank": [r[2] for r in targets],
            "enterprise_id": [r[1] for r in targets],
            "name": [f"公司{r[1]}" for r in targets],
        }
    )
    m = pd.DataFrame(
        {"chain_id": "c", "node_id": list(colours), "name": list(colours), "colour": list(colours.values())}
    )
    t.to_parquet(d / "targets.parquet")
    m.to_parquet(d / "map.parquet")
    diff = runs.diff_runs(None, t, None, m, None, name)
    runs.write_json_atomic(d / "diff.json", diff)
    manifest = {"run_id": name[:10], "as_of": name[:10], "model_version": "heuristic", "counts": {"targets": len(t)}}
    runs.write_json_atomic(d / runs.MANIFEST, manifest | {"encoder_calls": 0, "seconds": 1.5, "finished": "x"})
    return d


@pytest.fixture
def two_runs(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    _run_dir(ws, "2026-11-21", [("c.a", "E1", 1), ("c.a", "E2", 2)], {"c.a": "red"})
    new = _run_dir(ws, "2026-11-28", [("c.a", "E2", 1), ("c.a", "E3", 2)], {"c.a": "blue"})
    runs.publish(ws, new)
    return ws


def test_runs_lists_runs_as_json(two_runs: Path) -> None:
    (two_runs / "runs" / "2026-11-29.staging").mkdir()
    res = runner.invoke(app, ["runs", "--format", "json", "--workspace", str(two_runs)])
    assert res.exit_code == 0, res.output
    got = [(r["run"], r["state"], r["n_targets"]) for r in json.loads(res.stdout)]
    assert got == [("2026-11-29.staging", "staging", ""), ("2026-11-28", "published", 2), ("2026-11-21", "complete", 2)]


def test_diff_since_is_exact_json(two_runs: Path) -> None:
    res = runner.invoke(app, ["diff", "--since", "2026-11-21", "--format", "json", "--workspace", str(two_runs)])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["totals"] == {"new": 1, "dropped": 1, "moved": 1, "colour_changes": 1}
    assert d["nodes"][0]["new"] == [{"enterprise_id": "E3", "name": "公司E3", "rank": 2}]
    assert d["nodes"][0]["moved"] == [
        {"enterprise_id": "E2", "name": "公司E2", "rank_before": 2, "rank": 1, "change": 1}
    ]
    assert d["colour_changes"] == [{"node_id": "c.a", "chain_id": "c", "name": "c.a", "before": "red", "after": "blue"}]


def test_diff_default_reads_the_published_diff_as_a_table(two_runs: Path) -> None:
    res = runner.invoke(app, ["diff", "--workspace", str(two_runs)])
    assert res.exit_code == 0, res.output
    assert "2026-11-28 相比 （无）：新增 2，移出 0，排名变化 0，颜色变化 0" in res.stdout.replace("\n", "")


def test_diff_since_unknown_run_exits_2(two_runs: Path) -> None:
    res = runner.invoke(app, ["diff", "--since", "2020-01-01", "--workspace", str(two_runs)])
    assert res.exit_code == 2
    assert "--since '2020-01-01' is not a complete run; runs are ['2026-11-28', '2026-11-21']" in res.output


def test_diff_without_published_run_exits_2(tmp_path: Path) -> None:
    res = runner.invoke(app, ["diff", "--workspace", str(tmp_path)])
    assert res.exit_code == 2
    assert f"no published run in {tmp_path}; run 'sansetu refresh' first" in res.output


def test_refresh_exits_3_when_another_refresh_holds_the_lock(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    lock = tmp_path / runs.LOCK_NAME
    holder = {"pid": os.getpid(), "hostname": socket.gethostname(), "started": "2026-11-28T02:30:00+00:00"}
    lock.write_text(json.dumps(holder))
    res = runner.invoke(app, ["refresh", "--as-of", "2026-11-28", "--workspace", str(tmp_path)])
    assert res.exit_code == 3
    expected = (
        f"refresh failed (exit 3): another refresh is running (pid {os.getpid()} on {socket.gethostname()}, "
        f"started 2026-11-28T02:30:00+00:00); lock file {lock}."
    )
    assert expected in res.output.replace("\n", "")
    assert not (tmp_path / "published").exists()


def test_refresh_without_data_exits_2_and_logs_json(tmp_path: Path) -> None:
    res = runner.invoke(app, ["refresh", "--as-of", "2026-11-28", "--log-json", "--workspace", str(tmp_path)])
    assert res.exit_code == 2
    msg = f"no enterprises snapshot in {tmp_path / 'snapshots'}: run 'sansetu ingest' or pass --inputs with raw files"
    assert msg in res.output.replace("\n", "")
    events = [json.loads(x) for x in (tmp_path / "logs" / "refresh.jsonl").read_text(encoding="utf-8").splitlines()]
    assert events[-1]["event"] == "bad_input" and events[-1]["msg"] == msg
    assert not (tmp_path / runs.LOCK_NAME).exists()


def test_refresh_with_an_empty_enterprises_table_exits_2(tmp_path: Path) -> None:
    """A 0-row enterprises snapshot (an earlier release stored one for a header-only file) is 'no enterprises'."""
    from features.io import write_snapshot
    from features.schema import SCHEMAS

    snap = write_snapshot(
        pd.DataFrame(columns=SCHEMAS["enterprises"].column_names), tmp_path / "snapshots", "enterprises"
    )
    res = runner.invoke(app, ["refresh", "--as-of", "2026-11-28", "--workspace", str(tmp_path)])
    assert res.exit_code == 2, res.output
    assert f"no enterprises in {snap.name} in {tmp_path / 'snapshots'}" in res.output.replace("\n", "")
    assert not (tmp_path / "published").exists()


def test_refresh_inputs_with_a_header_only_enterprises_file_exits_2_and_keeps_the_table(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "enterprises.csv").write_text("企业名称,统一社会信用代码\n", encoding="utf-8")
    ws = tmp_path / "ws"
    res = runner.invoke(app, ["refresh", "--as-of", "2026-11-28", "--inputs", str(inputs), "--workspace", str(ws)])
    assert res.exit_code == 2, res.output
    assert "as table 'enterprises' stored nothing" in res.output.replace("\n", "")
    assert not list((ws / "snapshots").glob("enterprises/*.parquet"))


def test_refresh_rejects_a_bad_as_of_date(tmp_path: Path) -> None:
    res = runner.invoke(app, ["refresh", "--as-of", "28/11/2026", "--workspace", str(tmp_path)])
    assert res.exit_code == 2
    assert re.search(r"must be a date YYYY-MM-DD; got '28/11/2026'", res.output)


def test_refresh_rejects_an_unknown_executor(tmp_path: Path) -> None:
    res = runner.invoke(app, ["refresh", "--executor", "spark", "--workspace", str(tmp_path)])
    assert res.exit_code == 2
    assert "must be one of ['local', 'dask']; got 'spark'" in res.output


def test_schedule_rejects_a_bad_cron_expression(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANSETU_REFRESH__SCHEDULE", "every night")
    res = runner.invoke(app, ["schedule", "--once", "--workspace", str(tmp_path)])
    assert res.exit_code == 2
    assert "refresh.schedule must be a cron expression like '30 2 * * *'; got 'every night'" in res.output
