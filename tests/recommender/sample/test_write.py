"""Tests of the sample's raw-file writer (recommender/sample/write.py): the files, their bytes, the manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from features.chains import Chain, validate_chains
from recommender.sample.generate import SampleData, generate_sample
from recommender.sample.truth import TRUTH_FILE
from recommender.sample.write import MANIFEST_FILE, SAMPLE_FILES, sample_file_bytes, write_sample, write_sample_zone

FILES = [*SAMPLE_FILES, TRUTH_FILE, MANIFEST_FILE]

N = 500


@pytest.fixture(scope="module")
def chains() -> list[Chain]:
    nodes = []
    for i in range(8):
        stage = "upstream" if i < 3 else "midstream" if i < 6 else "downstream"
        nodes.append({
            "id": f"laser.n{i}", "name": f"激光环节{i}", "stage": stage, "description": f"生产激光环节{i}的核心产品。",
            "products": [f"激光产品{i}", f"激光组件{i}"], "keywords": [f"激光{i}"], "industry_codes": ["3976"],
            "downstream": [f"laser.n{i + 3}"] if i + 3 < 8 else [],
        })  # fmt: skip
    return validate_chains([{"id": "laser", "name": "激光", "nodes": nodes}])


@pytest.fixture(scope="module")
def sample(chains: list[Chain]) -> SampleData:
    return generate_sample(chains, N, random_state=3)


def test_sample_file_bytes_are_the_same_for_the_same_sample(chains: list[Chain], sample: SampleData) -> None:
    first = sample_file_bytes(sample)
    assert list(first) == FILES
    assert first == sample_file_bytes(generate_sample(chains, N, random_state=3))


def test_sample_manifest_lists_rows_encoding_and_sha256_of_every_file(sample: SampleData) -> None:
    files = sample_file_bytes(sample)
    manifest = json.loads(files[MANIFEST_FILE].decode("utf-8"))
    frames = {**sample.tables(), "oracle": sample.oracle}
    for name, (table, encoding) in SAMPLE_FILES.items():
        entry = manifest["files"][name]
        assert entry == {
            "table": table,
            "rows": len(frames[table]),
            "encoding": encoding or "binary",
            "sha256": hashlib.sha256(files[name]).hexdigest(),
        }
    assert manifest["files"][TRUTH_FILE] == {
        "table": "truth",
        "rows": N,
        "encoding": "binary",
        "sha256": hashlib.sha256(files[TRUTH_FILE]).hexdigest(),
    }
    assert {k: v for k, v in manifest.items() if k != "files"} == json.loads(json.dumps(sample.manifest))


def test_write_sample_writes_the_bytes_and_no_temporary_files(sample: SampleData, tmp_path: Path) -> None:
    out = tmp_path / "deep" / "sample"
    written = write_sample(sample, out)
    assert list(written) == FILES
    assert sorted(p.name for p in out.iterdir()) == sorted(written)
    for name, body in sample_file_bytes(sample).items():
        assert written[name] == out / name
        assert written[name].read_bytes() == body


def test_write_sample_zone_generates_writes_and_counts_rows(chains: list[Chain], tmp_path: Path) -> None:
    written = write_sample_zone(chains, N, 3, tmp_path / "out")
    assert written.data.manifest["random_state"] == 3
    assert written.paths == {name: tmp_path / "out" / name for name in FILES}
    assert written.rows("enterprises.csv") == len(written.data.enterprises)
    assert written.rows("oracle.parquet") == len(written.data.oracle)
    assert written.rows(MANIFEST_FILE) is None and written.rows(TRUTH_FILE) is None


def test_write_sample_zone_writes_nothing_when_the_generator_refuses(chains: list[Chain], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_enterprises must be at least"):
        write_sample_zone(chains, 20, 3, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_write_sample_zone_takes_the_process(chains: list[Chain], tmp_path: Path) -> None:
    written = write_sample_zone(chains, N, 3, tmp_path / "out", process="momentum")
    manifest = json.loads((tmp_path / "out" / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert manifest["process"]["name"] == "momentum" == written.data.manifest["process"]["name"]
