"""`sansetu query` / `sansetu search` on a tiny workspace with the lexical (tfidf) embedder; published targets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from features.io import ingest_file, load_tables
from features.validate import make_credit_codes
from recommender.cli import app
from recommender.retrieval.index import build_profile_index
from recommender.settings import PACKAGE_ROOT, RetrievalConfig
from recommender.workspace import Workspace

COMPANIES = [
    (
        "武汉光迅科技股份有限公司",
        "存续",
        "光电子器件制造",
        "光模块、光器件",
        "400G与800G光收发模块、相干光模块的研发与封装",
    ),
    ("长飞光纤光缆股份有限公司", "存续", "光纤制造", "光纤预制棒、光纤、光缆", "光纤预制棒拉丝与光缆生产"),
    ("武汉锐科光纤激光技术股份有限公司", "存续", "光电子器件制造", "光纤激光器", "工业光纤激光器与超快激光器"),
    ("人福医药集团股份公司", "存续", "化学药品制剂制造", "创新药、麻醉药", "创新药研发与麻醉镇痛药物生产"),
    ("武汉华星光电半导体显示技术有限公司", "存续", "显示器件制造", "OLED显示面板", "柔性OLED显示面板"),
    ("已注销光模块有限公司", "注销", "光电子器件制造", "光模块", "光收发模块封装"),
]


def make_ids(n: int) -> list[str]:
    return list(make_credit_codes(np.array([f"91420100{i:09d}" for i in range(n)])))


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, Path]:
    """A workspace with only enterprises ingested, a config using the tfidf embedder and one chain."""
    ids = make_ids(len(COMPANIES))
    raw = pd.DataFrame(COMPANIES, columns=["name", "status", "industry_name", "products", "description"])
    raw.insert(0, "enterprise_id", ids)
    raw_file = tmp_path / "enterprises.csv"
    raw.to_csv(raw_file, index=False, encoding="utf-8")
    ws = Workspace(tmp_path / "ws").ensure()
    ingest_file(
        raw_file, "enterprises", "identity", ws.snapshots, ws.rejects, maps_dir=PACKAGE_ROOT / "configs" / "column_maps"
    )
    chains = tmp_path / "chains"
    chains.mkdir()
    shutil.copy(PACKAGE_ROOT / "configs" / "chains" / "01_optical_comm.yaml", chains)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"chains_dir": str(chains), "retrieval": {"embedder": "tfidf"}}), "utf-8")
    return ws.root, config


def _invoke(args: list[str]) -> object:
    return CliRunner().invoke(app, args)


def test_search_json_lists_objects_with_required_keys(workspace: tuple[Path, Path]) -> None:
    ws, config = workspace
    result = _invoke(
        ["search", "光模块 光收发", "--top", "3", "--format", "json", "-w", str(ws), "--config", str(config)]
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    records = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert 1 <= len(records) <= 3
    assert {"enterprise_id", "name", "score", "sources"} <= set(records[0])
    assert records[0]["name"] == "武汉光迅科技股份有限公司"
    assert records[0]["sources"] == "words|lexical"  # both lexical retrievers find it (tfidf: no dense model)
    assert "已注销光模块有限公司" not in [r["name"] for r in records]  # not operating
    assert [r["rank"] for r in records] == list(range(1, len(records) + 1))


def test_search_csv_has_a_header(workspace: tuple[Path, Path]) -> None:
    ws, config = workspace
    result = _invoke(["search", "光纤", "--top", "2", "--format", "csv", "-w", str(ws), "--config", str(config)])
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    lines = result.stdout.splitlines()  # type: ignore[attr-defined]
    assert lines[0] == "rank,enterprise_id,name,score,sources,industry_name,province,city"
    assert "长飞光纤光缆股份有限公司" in lines[1]


def test_query_json_lists_candidates_of_a_node(workspace: tuple[Path, Path]) -> None:
    ws, config = workspace
    args = [
        "query",
        "optical_comm.optical_module",
        "--top",
        "2",
        "--format",
        "json",
        "-w",
        str(ws),
        "--config",
        str(config),
    ]
    result = _invoke(args)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    records = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert len(records) == 2
    assert records[0]["name"] == "武汉光迅科技股份有限公司"
    assert records[0]["node_id"] == "optical_comm.optical_module"
    assert all(r["score"] >= records[-1]["score"] for r in records)


def test_query_unknown_node_exits_2_with_close_matches(workspace: tuple[Path, Path]) -> None:
    ws, config = workspace
    result = _invoke(["query", "optical_comm.optical_modul", "-w", str(ws), "--config", str(config)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (  # type: ignore[attr-defined]
        "unknown node id 'optical_comm.optical_modul'; close matches: optical_comm.optical_module (光模块), "
        "optical_comm.optical_device (光器件), optical_comm.optical_chip (光芯片). List all nodes with `sansetu map`."
    )


def test_query_by_chinese_name_suggests_the_node(workspace: tuple[Path, Path]) -> None:
    ws, config = workspace
    result = _invoke(["query", "光模块", "-w", str(ws), "--config", str(config)])
    assert result.exit_code == 2
    assert "optical_comm.optical_module (光模块)" in result.stderr  # type: ignore[attr-defined]


def test_search_without_enterprises_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"retrieval": {"embedder": "tfidf"}}), "utf-8")
    result = _invoke(["search", "光模块", "-w", str(tmp_path / "empty"), "--config", str(config)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (  # type: ignore[attr-defined]
        f"no enterprises in workspace {tmp_path / 'empty'}; run `sansetu ingest` first."
    )


def test_search_rejects_an_unknown_format(workspace: tuple[Path, Path]) -> None:
    ws, config = workspace
    result = _invoke(["search", "光模块", "--format", "xml", "-w", str(ws), "--config", str(config)])
    assert result.exit_code == 2
    flat = " ".join(result.output.replace("│", " ").split())  # type: ignore[attr-defined]
    assert "must be one of ['table', 'json', 'csv']; got 'xml'" in flat


def test_build_profile_index_reuses_until_a_profile_changes(workspace: tuple[Path, Path]) -> None:
    ws_root, _ = workspace
    ws = Workspace(ws_root)
    ents = load_tables(ws.snapshots)["enterprises"]
    config = RetrievalConfig(embedder="tfidf")
    first = build_profile_index(ents, None, ws.index, ws.embedding_cache, config)
    again = build_profile_index(ents, None, ws.index, ws.embedding_cache, config)
    changed = ents.assign(description=ents["description"].where(ents.index != 0, "改做光纤"))
    third = build_profile_index(changed, None, ws.index, ws.embedding_cache, config)
    assert (first.reused, again.reused, third.reused) == (False, True, False)
    assert first.fingerprint == again.fingerprint != third.fingerprint
    assert (ws.index / "tfidf" / "manifest.json").is_file()


class HashEncoder:
    """Deterministic fake dense encoder: unit vectors from the text's sha256; counts texts encoded."""

    model_id, revision, dim = "hash-fake", "v1", 16

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(
        self, texts: list[str], kind: str = "passage", batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        import hashlib

        self.encoded.extend(texts)
        rows = []
        for t in texts:
            seed = int.from_bytes(hashlib.sha256((kind + t).encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(self.dim)
            rows.append(v / np.linalg.norm(v))
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)


def test_build_profile_index_encodes_only_changed_profiles(workspace: tuple[Path, Path]) -> None:
    ws_root, _ = workspace
    ws = Workspace(ws_root)
    ents = load_tables(ws.snapshots)["enterprises"]
    config = RetrievalConfig(embedder="hash-fake")
    enc = HashEncoder()
    first = build_profile_index(ents, enc, ws.index, ws.embedding_cache, config)
    assert first.embed_stats is not None and first.embed_stats.n_encoded == len(ents)
    again = build_profile_index(ents, enc, ws.index, ws.embedding_cache, config)
    assert again.reused and again.embed_stats is None and len(enc.encoded) == len(ents)
    changed = ents.assign(products=ents["products"].where(ents.index != 2, "单频光纤激光器"))
    third = build_profile_index(changed, enc, ws.index, ws.embedding_cache, config)
    assert third.embed_stats is not None
    assert (third.embed_stats.n_hits, third.embed_stats.n_misses, third.reused) == (len(ents) - 1, 1, False)
    assert "单频光纤激光器" in enc.encoded[-1]
    assert third.dense is not None
    ids, _ = third.dense.search(enc.encode([enc.encoded[-1]]), 1)
    assert ids[0, 0] == changed.loc[2, "enterprise_id"]


def test_query_reads_the_published_targets(published_workspace: Path) -> None:
    result = CliRunner().invoke(
        app, ["query", "optical_comm.optical_chip", "--format", "json", "--workspace", str(published_workspace)]
    )
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    assert [(r["rank"], r["enterprise_id"], r["theme"]) for r in records] == [(1, "91420100MA4K0000XJ", "资本招商")]
    assert records[0]["reasons"] == [{"text": "近180天完成B轮融资"}]
    assert records[0]["routes"][0]["sentence"] == "经光谷基金对接"
