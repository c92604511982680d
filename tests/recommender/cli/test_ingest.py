"""``sansetu ingest`` through typer's CliRunner: output, exit codes and messages."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from recommender.cli import app

A, B = "91420100MA4K0000AP", "91420100MA4K0000BT"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _assets(tmp_path: Path) -> Path:
    path = tmp_path / "assets.csv"
    path.write_text(
        "资产编号,资产类型,名称,节点编号\nF1,基金,光谷产业基金,n1\nU1,大学,华中科技大学,\n", encoding="utf-8-sig"
    )
    return path


def test_ingest_json_report(runner: CliRunner, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    result = runner.invoke(
        app, ["ingest", str(_assets(tmp_path)), "--table", "assets", "-w", str(ws), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {k: report[k] for k in ("table", "column_map", "mode", "n_read", "n_ok", "n_rejected", "n_total")} == {
        "table": "assets",
        "column_map": "zone-assets",
        "mode": "replace",
        "n_read": 2,
        "n_ok": 1,
        "n_rejected": 1,
        "n_total": 1,
    }
    assert Path(report["snapshot"]).parent == ws / "snapshots" / "assets"
    assert Path(report["rejects"]).parent == ws / "rejects"
    assert Path(report["rejects"]).read_text(encoding="utf-8-sig").splitlines()[1] == (
        "assets.csv,2,asset_type,大学,\"not one of ['fund', 'university', 'lab', 'scenario', 'alumni_network']; row rejected\""
    )


def test_ingest_table_output_shows_counts_and_paths(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", str(_assets(tmp_path)), "-t", "assets", "-w", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    assert "入库行数 rows stored" in result.stdout and "问题清单 rejects" in result.stdout
    assert "1 × asset_type: not one of" in result.stdout


def test_ingest_upsert_and_identity_map(runner: CliRunner, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    runner.invoke(app, ["ingest", str(_assets(tmp_path)), "-t", "assets", "-w", str(ws)])
    canonical = tmp_path / "more.csv"
    canonical.write_text("asset_id,asset_type,name\nL1,lab,光谷实验室\n", encoding="utf-8")
    args = ["ingest", str(canonical), "-t", "assets", "-m", "identity", "--mode", "upsert", "-w", str(ws), "-f", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_total"] == 2


def test_ingest_missing_columns_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(f"统一社会信用代码,年份\n{A},2024\n", encoding="utf-8")
    result = runner.invoke(app, ["ingest", str(path), "--table", "presence", "-w", str(tmp_path / "ws")])
    assert result.exit_code == 2
    assert result.stderr == (
        "ingest failed: p.csv cannot be loaded as presence with column map 'zone-presence': missing required columns "
        "['node_id (节点编号)', 'year (年度)']; got columns ['统一社会信用代码', '年份']\n"
    )


def test_ingest_unknown_map_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", str(_assets(tmp_path)), "-t", "assets", "-m", "nope", "-w", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "ingest failed: unknown column map 'nope'; built-in maps: ['identity', 'registry-cn',"
    )


def test_ingest_unknown_table_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", str(_assets(tmp_path)), "-t", "firms", "-w", str(tmp_path)])
    assert result.exit_code == 2
    assert (
        "must be one of ['enterprises', 'presence', 'assets', 'relations', 'signals', 'outcomes', 'fit_marks']; got 'firms'"
        in " ".join(result.stderr.replace("│", " ").split())
    )


def test_ingest_missing_file_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", str(tmp_path / "none.csv"), "-t", "assets", "-w", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr == f"ingest failed: cannot read {tmp_path / 'none.csv'}: no such file\n"


def test_ingest_map_for_another_table_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    args = ["ingest", str(_assets(tmp_path)), "-t", "assets", "-m", "zone-signals", "-w", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr == "ingest failed: column map 'zone-signals' is for table 'signals', not 'assets'\n"


def test_ingest_only_bad_rows_exit_1(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("资产编号,资产类型,名称\nX1,工厂,某工厂\n", encoding="utf-8")
    result = runner.invoke(app, ["ingest", str(path), "-t", "assets", "-w", str(tmp_path / "ws"), "-f", "json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert (report["n_ok"], report["snapshot"]) == (0, None)


def test_ingest_header_only_exit_1_table_intact_and_allow_empty_replaces(runner: CliRunner, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert runner.invoke(app, ["ingest", str(_assets(tmp_path)), "-t", "assets", "-w", str(ws)]).exit_code == 0
    header_only = tmp_path / "header_only.csv"
    header_only.write_text("资产编号,资产类型,名称,节点编号\n", encoding="utf-8")
    args = ["ingest", str(header_only), "--table", "assets", "-w", str(ws), "-f", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert (report["n_read"], report["snapshot"], report["n_total"]) == (0, None, 1)
    assert "no data rows" in report["messages"][-1]
    snaps = sorted((ws / "snapshots" / "assets").glob("*.parquet"))
    assert len(snaps) == 1 and len(pd.read_parquet(snaps[0])) == 1

    result = runner.invoke(app, [*args, "--allow-empty"])
    assert result.exit_code == 0, result.output
    assert (json.loads(result.stdout)["n_total"], json.loads(result.stdout)["n_ok"]) == (0, 0)
    snaps = sorted((ws / "snapshots" / "assets").glob("*.parquet"))
    assert len(snaps) == 2 and len(pd.read_parquet(snaps[-1])) == 0


def test_ingest_xlsx_limits_come_from_the_settings(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zipfile

    from openpyxl import Workbook

    wb = Workbook()
    wb.active.append(["资产编号", "资产类型", "名称"])
    wb.active.append(["F1", "基金", "光谷产业基金"])
    plain = tmp_path / "plain.xlsx"
    wb.save(plain)
    path = tmp_path / "assets.xlsx"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b"</sheetData>", b" " * 2_000_000 + b"</sheetData>")
            dst.writestr(info.filename, data)
    monkeypatch.setenv("SANSETU_INGEST__MAX_XLSX_COMPRESSION_RATIO", "100000")
    monkeypatch.setenv("SANSETU_INGEST__MAX_XLSX_UNCOMPRESSED_MB", "1")
    result = runner.invoke(app, ["ingest", str(path), "-t", "assets", "-w", str(tmp_path / "ws")])
    assert result.exit_code == 2, result.output
    assert "over the limit of 1.0 MB (setting ingest.max_xlsx_uncompressed_mb)" in result.stderr
    monkeypatch.setenv("SANSETU_INGEST__MAX_XLSX_UNCOMPRESSED_MB", "5")
    result = runner.invoke(app, ["ingest", str(path), "-t", "assets", "-w", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
