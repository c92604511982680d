"""Embedding cache: exact hit/miss counts, re-encoding of changed texts, resume after a killed run."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from features.embeddings import EmbeddingCache, EmbedStats, TextEncoder, content_key, embed_with_cache


class CountingEncoder:
    """Deterministic fake: a text's vector comes from its sha256; counts calls and texts encoded."""

    def __init__(self, dim: int = 8, model_id: str = "fake", revision: str = "r1", fail_after_calls: int | None = None):
        self.model_id = model_id
        self.revision = revision
        self.dim = dim
        self.fail_after_calls = fail_after_calls
        self.calls = 0
        self.encoded: list[str] = []

    def encode(
        self, texts: Sequence[str], kind: str = "passage", batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        if self.fail_after_calls is not None and self.calls >= self.fail_after_calls:
            raise KeyboardInterrupt("killed")
        self.calls += 1
        self.encoded.extend(texts)
        return np.stack([_vector(kind + t, self.dim) for t in texts]) if texts else np.empty((0, self.dim), np.float32)


def _vector(text: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def _cache(tmp_path: Path, enc: CountingEncoder, **kw: int) -> EmbeddingCache:
    return EmbeddingCache(tmp_path / "cache", enc.model_id, enc.revision, enc.dim, **kw)


def test_counting_encoder_is_a_text_encoder() -> None:
    assert isinstance(CountingEncoder(), TextEncoder)


def test_embed_with_cache_counts_hits_and_misses_exactly(tmp_path: Path) -> None:
    enc = CountingEncoder()
    texts = [f"企业{i}" for i in range(10)]
    vectors, stats = embed_with_cache(texts, enc, _cache(tmp_path, enc), chunk_size=4)
    assert stats == EmbedStats(
        n_texts=10, n_unique=10, n_hits=0, n_misses=10, n_encoded=10, n_encoder_calls=3, n_chunks_written=3
    )
    assert_allclose(vectors, np.stack([_vector("passage" + t, 8) for t in texts]))
    enc2 = CountingEncoder()
    again, stats2 = embed_with_cache(texts + ["新企业"], enc2, _cache(tmp_path, enc2), chunk_size=4)
    assert stats2 == EmbedStats(
        n_texts=11, n_unique=11, n_hits=10, n_misses=1, n_encoded=1, n_encoder_calls=1, n_chunks_written=1
    )
    assert enc2.encoded == ["新企业"]
    assert_allclose(again[:10], vectors)


def test_embed_with_cache_never_encodes_an_unchanged_text_twice(tmp_path: Path) -> None:
    enc = CountingEncoder()
    cache = _cache(tmp_path, enc)
    embed_with_cache(["甲", "乙", "丙"], enc, cache)
    _, stats = embed_with_cache(["丙", "乙", "甲"], enc, cache)
    assert (stats.n_hits, stats.n_misses, stats.n_encoder_calls) == (3, 0, 0)
    assert enc.encoded == ["甲", "乙", "丙"]


def test_embed_with_cache_encodes_a_changed_text_exactly_once(tmp_path: Path) -> None:
    enc = CountingEncoder()
    cache = _cache(tmp_path, enc)
    embed_with_cache(["光模块企业", "激光器企业"], enc, cache)
    for _ in range(3):
        _, stats = embed_with_cache(["光模块企业（更新）", "激光器企业"], enc, cache)
    assert enc.encoded == ["光模块企业", "激光器企业", "光模块企业（更新）"]
    assert (stats.n_hits, stats.n_misses) == (2, 0)


def test_embed_with_cache_encodes_duplicates_in_one_call_once(tmp_path: Path) -> None:
    enc = CountingEncoder()
    vectors, stats = embed_with_cache(["甲", "乙", "甲", "甲"], enc, _cache(tmp_path, enc))
    assert (stats.n_texts, stats.n_unique, stats.n_misses) == (4, 2, 2)
    assert enc.encoded == ["甲", "乙"]
    assert_allclose(vectors[0], vectors[2])


def test_embed_with_cache_resumes_after_a_killed_run(tmp_path: Path) -> None:
    texts = [f"t{i}" for i in range(10)]
    killed = CountingEncoder(fail_after_calls=2)
    with pytest.raises(KeyboardInterrupt):
        embed_with_cache(texts, killed, _cache(tmp_path, killed), chunk_size=3)
    assert killed.encoded == texts[:6]
    enc = CountingEncoder()
    vectors, stats = embed_with_cache(texts, enc, _cache(tmp_path, enc), chunk_size=3)
    assert enc.encoded == texts[6:]
    assert (stats.n_hits, stats.n_misses, stats.n_encoder_calls) == (6, 4, 2)
    assert_allclose(vectors, np.stack([_vector("passage" + t, 8) for t in texts]))


def test_embed_with_cache_keys_on_kind_and_revision(tmp_path: Path) -> None:
    enc = CountingEncoder()
    cache = _cache(tmp_path, enc)
    embed_with_cache(["光纤"], enc, cache, kind="passage")
    _, stats = embed_with_cache(["光纤"], enc, cache, kind="query")
    assert stats.n_misses == 1
    assert content_key("光纤", "fake", "r1") != content_key("光纤", "fake", "r2")


def test_embedding_cache_compact_keeps_every_vector(tmp_path: Path) -> None:
    enc = CountingEncoder()
    texts = [f"t{i}" for i in range(7)]
    cache = _cache(tmp_path, enc, max_chunks=2)
    vectors, _ = embed_with_cache(texts, enc, cache, chunk_size=2)
    assert len(list((tmp_path / "cache").glob("chunk-*.keys.npy"))) == 1
    again, stats = embed_with_cache(texts, enc, _cache(tmp_path, enc))
    assert stats.n_hits == 7
    assert_allclose(again, vectors)
    assert len(cache) == 7


def test_embedding_cache_is_memory_mappable(tmp_path: Path) -> None:
    enc = CountingEncoder()
    embed_with_cache(["甲", "乙"], enc, _cache(tmp_path, enc))
    (vectors_file,) = (tmp_path / "cache").glob("chunk-*.vectors.npy")
    mm = np.load(vectors_file, mmap_mode="r")
    assert (mm.shape, mm.dtype) == ((2, 8), np.float32)


def test_embedding_cache_rejects_another_model(tmp_path: Path) -> None:
    enc = CountingEncoder()
    embed_with_cache(["甲"], enc, _cache(tmp_path, enc))
    other = EmbeddingCache(tmp_path / "cache", "fake", "r2", 8)
    msg = (
        f"Embedding cache {tmp_path / 'cache'} belongs to another model (revision: cache has 'r1', encoder has "
        "'r2'); use the cache folder of this model's key."
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        other.lookup([content_key("甲", "fake", "r2")])


def test_embed_with_cache_rejects_an_encoder_of_another_model(tmp_path: Path) -> None:
    enc = CountingEncoder(revision="r2")
    cache = EmbeddingCache(tmp_path, "fake", "r1", 8)
    msg = "encoder (model_id, revision, dim) ('fake', 'r2', 8) does not match the cache's ('fake', 'r1', 8)"
    with pytest.raises(ValueError, match=re.escape(msg)):
        embed_with_cache(["甲"], enc, cache)


def test_embed_with_cache_rejects_a_wrong_encoder_shape(tmp_path: Path) -> None:
    enc = CountingEncoder()
    enc.encode = lambda texts, **kw: np.zeros((len(texts), 3), np.float32)  # type: ignore[method-assign]
    msg = "encoder 'fake' returned shape (1, 3) for 1 texts; expected (1, 8)"
    with pytest.raises(ValueError, match=re.escape(msg)):
        embed_with_cache(["甲"], enc, _cache(tmp_path, enc))


def test_embed_with_cache_handles_no_texts(tmp_path: Path) -> None:
    enc = CountingEncoder()
    vectors, stats = embed_with_cache([], enc, _cache(tmp_path, enc))
    assert vectors.shape == (0, 8)
    assert stats == EmbedStats(0, 0, 0, 0, 0, 0, 0)


def test_embedding_cache_two_writers_never_overwrite_each_other(tmp_path: Path) -> None:
    enc = CountingEncoder()
    a, b = _cache(tmp_path, enc), _cache(tmp_path, enc)
    a.append([content_key("甲", "fake", "r1")], np.stack([_vector("甲", 8)]))
    b.append([content_key("乙", "fake", "r1")], np.stack([_vector("乙", 8)]))  # b has not seen a's chunk
    found, vectors = _cache(tmp_path, enc).lookup([content_key(t, "fake", "r1") for t in ("甲", "乙")])
    assert found.tolist() == [True, True]
    assert_allclose(vectors, np.stack([_vector("甲", 8), _vector("乙", 8)]))


def test_embedding_cache_keeps_digests_that_end_in_nul_bytes(tmp_path: Path) -> None:
    # numpy's bytes dtype drops trailing NULs; about 1 key in 256 ends with one
    texts = [f"t{i}" for i in range(2000) if content_key(f"t{i}", "fake", "r1")[-1] == 0][:3]
    assert len(texts) == 3
    enc = CountingEncoder()
    embed_with_cache(texts, enc, _cache(tmp_path, enc))
    _, stats = embed_with_cache(texts, enc, _cache(tmp_path, enc))
    assert (stats.n_hits, stats.n_misses) == (3, 0)


def test_embedding_cache_reads_keys_of_the_earlier_bytes_format(tmp_path: Path) -> None:
    enc = CountingEncoder()
    texts = [f"t{i}" for i in range(2000) if content_key(f"t{i}", "fake", "r1")[-1] == 0][:2] + ["甲"]
    embed_with_cache(texts, enc, _cache(tmp_path, enc))
    (keys_file,) = (tmp_path / "cache").glob("chunk-*.keys.npy")
    old = np.asarray([content_key(t, "fake", "r1") for t in texts], dtype="S32")  # NULs stripped on read
    np.save(keys_file, old)
    _, stats = embed_with_cache(texts, enc, _cache(tmp_path, enc))
    assert (stats.n_hits, stats.n_misses) == (3, 0)
