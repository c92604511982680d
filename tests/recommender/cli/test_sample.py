"""Tests of `sansetu sample` (recommender/cli/sample.py, writing through recommender/sample/write.py): files,
encodings, identical bytes per seed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner, Result

from recommender.cli import app
from recommender.sample.truth import TRUTH_FILE, load_truth
from recommender.sample.write import MANIFEST_FILE, SAMPLE_FILES

runner = CliRunner()


def _chain(chain_id: str, name: str) -> dict[str, object]:
    nodes = []
    for i in range(8):
        stage = "upstream" if i < 3 else "midstream" if i < 6 else "downstream"
        nodes.append({
            "id": f"{chain_id}.n{i}", "name": f"{name}环节{i}", "stage": stage,
            "description": f"生产{name}环节{i}的核心产品与组件。", "products": [f"{name}产品{i}", f"{name}组件{i}"],
            "keywords": [f"{name}{i}"], "industry_codes": ["3976"],
            "downstream": [f"{chain_id}.n{i + 3}"] if i + 3 < 8 else [],
        })  # fmt: skip
    return {"id": chain_id, "name": name, "nodes": nodes}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    chains_dir = tmp_path / "chains"
    chains_dir.mkdir()
    (chains_dir / "01.yaml").write_text(yaml.safe_dump(_chain("laser", "激光"), allow_unicode=True), encoding="utf-8")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"chains_dir": str(chains_dir)}), encoding="utf-8")
    return cfg


def _run(config: Path, out: Path, *extra: str) -> Result:
    return runner.invoke(app, ["sample", "--out", str(out), "--enterprises", "500", "--config", str(config), *extra])


def test_sample_writes_identical_bytes_for_the_same_seed(config: Path, tmp_path: Path) -> None:
    first = _run(config, tmp_path / "a", "--seed", "5")
    second = _run(config, tmp_path / "b", "--seed", "5")
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    names = sorted([*SAMPLE_FILES, TRUTH_FILE, MANIFEST_FILE])
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == names
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    third = _run(config, tmp_path / "c", "--seed", "6")
    assert (tmp_path / "c" / "enterprises.csv").read_bytes() != (tmp_path / "a" / "enterprises.csv").read_bytes()
    del third


def test_sample_prints_what_it_wrote(config: Path, tmp_path: Path) -> None:
    result = _run(config, tmp_path / "out", "--seed", "1")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Sample zone (seed 1, as of 2026-06-30): ")
    assert "; process default.\n" in result.output
    for name in [*SAMPLE_FILES, TRUTH_FILE, MANIFEST_FILE]:
        assert str(tmp_path / "out" / name) in result.output


def test_sample_files_have_the_documented_encodings(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _run(config, out, "--seed", "2").exit_code == 0
    raw = (out / "enterprises.csv").read_bytes()
    assert raw.decode("gb18030").startswith("企业名称,统一社会信用代码,登记状态,成立日期,注册资本,")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert (out / "assets.csv").read_bytes().startswith(b"\xef\xbb\xbf\xe8\xb5\x84\xe4\xba\xa7\xe7\xbc\x96\xe5\x8f\xb7")
    assert (out / "relations.csv").read_text(encoding="utf-8").startswith("关系编号,源编号,源类型,目标编号,")
    presence = pd.read_excel(out / "presence.xlsx", sheet_name=0)
    assert list(presence.columns) == [
        "统一社会信用代码",
        "节点编号",
        "年度",
        "产值（万元）",
        "纳税（万元）",
        "从业人数",
        "是否链主",
    ]
    oracle = pd.read_parquet(out / "oracle.parquet")
    assert list(oracle.columns) == ["node_id", "enterprise_id", "oracle_score"]
    manifest = json.loads((out / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert manifest["random_state"] == 2 and manifest["n_enterprises"] == 500
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == hashlib.sha256((out / name).read_bytes()).hexdigest()
    assert manifest["files"]["presence.xlsx"]["rows"] == len(presence)


def test_sample_defaults_to_the_workspace_and_config_seed(config: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    result = runner.invoke(app, ["sample", "-n", "500", "--config", str(config), "--workspace", str(ws)])
    assert result.exit_code == 0, result.output
    assert json.loads((ws / "sample" / MANIFEST_FILE).read_text(encoding="utf-8"))["random_state"] == 42


def test_sample_rejects_too_few_enterprises(config: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["sample", "--out", str(tmp_path / "o"), "-n", "20", "--config", str(config)])
    assert result.exit_code == 2
    assert "n_enterprises must be at least" in result.output
    assert not (tmp_path / "o").exists()


def test_sample_xlsx_carries_the_as_of_date_not_the_clock(config: Path, tmp_path: Path) -> None:
    import zipfile

    out = tmp_path / "out"
    assert _run(config, out, "--seed", "3").exit_code == 0
    with zipfile.ZipFile(out / "presence.xlsx") as z:
        assert {i.date_time for i in z.infolist()} == {(2026, 6, 30, 0, 0, 0)}
        core = z.read("docProps/core.xml").decode("utf-8")
    assert "2026-06-30T00:00:00Z</dcterms:created>" in core
    assert "2026-06-30T00:00:00Z</dcterms:modified>" in core


def test_sample_writes_the_chosen_process(config: Path, tmp_path: Path) -> None:
    from recommender.sample.process import load_process

    result = _run(config, tmp_path / "out", "--seed", "4", "--process", "frictions")
    assert result.exit_code == 0, result.output
    assert "; process frictions.\n" in result.output
    manifest = json.loads((tmp_path / "out" / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert manifest["process"]["name"] == "frictions"
    assert manifest["process"]["sha256"] == load_process("frictions").sha256()
    assert load_truth(tmp_path / "out").process.name == "frictions"


def test_sample_rejects_an_unknown_process(config: Path, tmp_path: Path) -> None:
    result = _run(config, tmp_path / "o", "--process", "nope")
    assert result.exit_code == 2
    assert "no sample process 'nope'; the bundled ones are ['default', 'frictions', 'momentum', 'prestige']" in (
        result.output
    )
    assert not (tmp_path / "o").exists()


def test_sample_help_lists_the_processes() -> None:
    result = runner.invoke(app, ["sample", "--help"])
    assert result.exit_code == 0
    assert "--process" in result.output
    assert all(name in result.output for name in ("default", "frictions", "momentum", "prestige"))


def test_demo_rejects_an_unknown_process_before_doing_anything(config: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    result = runner.invoke(app, ["demo", "--process", "nope", "--config", str(config), "--workspace", str(ws)])
    assert result.exit_code == 2
    assert "no sample process 'nope'" in result.output
    assert not (ws / "sample").exists()
