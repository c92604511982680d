"""Embedding through a ``TextEncoder`` with an incremental, resumable, content-addressed cache.

``features`` never imports ``models``: any object with ``model_id``, ``revision``, ``dim`` and
``encode(texts, kind=..., batch_size=..., show_progress=...)`` is an encoder (``models.embedder``'s
embedders are; tests use a counting fake).

The cache key of a text is ``sha256(model_id, revision, kind, text)``: the text is used exactly as
given (callers pass normalised profile texts from ``features.profiles``), so an unchanged profile is
never encoded twice and a changed one is encoded exactly once. ``kind`` is part of the key because
models such as e5 embed a query and a passage of the same text differently.

On disk (``<workspace>/cache/embeddings/<model_key>/``)::

    cache.json                      model_id, revision, dim, format
    chunk-000001-<rand>.vectors.npy float32 (m, dim), read memory-mapped
    chunk-000001-<rand>.keys.npy    uint8 (m, 32) sha256 digests, row i <-> vector row i

I/O at the edge: :class:`EmbeddingCache` reads and writes only inside its own directory, through
its methods (``lookup`` reads, ``append`` and ``compact`` write). Chunk names carry a random part,
so two processes filling the same cache never overwrite each other's chunks. Each chunk is written to a
temporary name and renamed, vectors first and keys last, so a chunk is visible only when complete:
a run killed halfway keeps every chunk it finished and the next run resumes from there.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd

EncodeKind = Literal["query", "passage"]
CACHE_FORMAT: Final = 1
KEY_BYTES: Final = 32
_MANIFEST = "cache.json"


@runtime_checkable
class TextEncoder(Protocol):
    """What ``features`` needs from an embedding model (``models.embedder.Embedder`` satisfies it)."""

    model_id: str
    revision: str
    dim: int

    def encode(
        self,
        texts: Sequence[str],
        kind: EncodeKind = "passage",
        batch_size: int = 64,
        show_progress: bool = False,
    ) -> np.ndarray:
        """L2-normalised float32 array of shape (len(texts), dim)."""
        ...


@dataclass(frozen=True)
class EmbedStats:
    """Exact counts of one :func:`embed_with_cache` call.

    ``n_hits`` and ``n_misses`` count distinct texts (a text repeated in the input is looked up and
    encoded once); ``n_hits + n_misses == n_unique``; ``n_encoded == n_misses``.
    """

    n_texts: int
    n_unique: int
    n_hits: int
    n_misses: int
    n_encoded: int
    n_encoder_calls: int
    n_chunks_written: int


def content_key(text: str, model_id: str, revision: str, kind: EncodeKind = "passage") -> bytes:
    """sha256 digest (32 bytes) of (model id, revision, kind, text), fields separated by U+001F."""
    payload = "\x1f".join((model_id, revision, kind, text)).encode("utf-8")
    return hashlib.sha256(payload).digest()


class EmbeddingCache:
    """Content-addressed embedding vectors of one model, stored under ``directory``.

    Args:
        directory: the cache folder of this model (created on first write).
        model_id: the encoder's model id; must match the one the folder was created with.
        revision: the encoder's pinned revision; likewise.
        dim: vector dimension; likewise.
        max_chunks: ``compact`` merges the chunks into one when there are more than this.
    """

    def __init__(self, directory: Path, model_id: str, revision: str, dim: int, max_chunks: int = 64) -> None:
        self.directory = directory
        self.model_id = model_id
        self.revision = revision
        self.dim = dim
        self.max_chunks = max_chunks
        self._index: pd.Index | None = None
        self._locations: np.ndarray | None = None  # (n, 2) int64: chunk position, row
        self._chunks: list[tuple[Path, Path]] | None = None

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self._load_index())

    def lookup(self, keys: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """Find cached vectors.

        Args:
            keys: n sha256 digests (see :func:`content_key`).

        Returns:
            ``found`` bool array (n,) and ``vectors`` float32 (n_found, dim) for the found keys, in
            the order of ``keys``.
        """
        index = self._load_index()
        if len(keys) == 0 or len(index) == 0:
            return np.zeros(len(keys), dtype=bool), np.empty((0, self.dim), dtype=np.float32)
        pos = index.get_indexer(pd.Index(list(keys), dtype=object))
        found = pos >= 0
        locations = self._locations_array()[pos[found]]
        return found, self._gather(locations)

    def _gather(self, locations: np.ndarray) -> np.ndarray:
        out = np.empty((len(locations), self.dim), dtype=np.float32)
        chunks = self._chunk_files()
        for chunk_pos in np.unique(locations[:, 0]):
            sel = np.flatnonzero(locations[:, 0] == chunk_pos)
            vectors = np.load(chunks[chunk_pos][0], mmap_mode="r")
            out[sel] = vectors[locations[sel, 1]]
        return out

    def _locations_array(self) -> np.ndarray:
        self._load_index()
        assert self._locations is not None
        return self._locations

    def _load_index(self) -> pd.Index:
        """Read every complete chunk's keys (first occurrence of a key wins)."""
        if self._index is not None:
            return self._index
        self._check_manifest()
        chunks = self._chunk_files()
        keys: list[bytes] = []
        locs: list[np.ndarray] = []
        for i, (_, keys_file) in enumerate(chunks):
            k = _keys_from_array(np.load(keys_file))
            keys.extend(k)
            locs.append(np.column_stack([np.full(len(k), i, dtype=np.int64), np.arange(len(k), dtype=np.int64)]))
        all_locs = np.concatenate(locs) if locs else np.empty((0, 2), dtype=np.int64)
        index = pd.Index(keys, dtype=object)
        keep = ~index.duplicated(keep="first")
        self._index, self._locations = index[keep], all_locs[keep]
        return self._index

    def _chunk_files(self) -> list[tuple[Path, Path]]:
        """(vectors, keys) file pairs of complete chunks, in sequence order."""
        if self._chunks is None:
            if not self.directory.is_dir():
                self._chunks = []
            else:
                pairs = []
                for keys_file in sorted(self.directory.glob("chunk-*.keys.npy")):
                    vectors_file = keys_file.with_name(keys_file.name.replace(".keys.npy", ".vectors.npy"))
                    if vectors_file.exists():
                        pairs.append((vectors_file, keys_file))
                self._chunks = pairs
        return self._chunks

    def _check_manifest(self) -> None:
        path = self.directory / _MANIFEST
        if not path.exists():
            return
        found = json.loads(path.read_text(encoding="utf-8"))
        expected = self._manifest()
        wrong = {k: (found.get(k), v) for k, v in expected.items() if found.get(k) != v}
        if wrong:
            details = ", ".join(f"{k}: cache has {a!r}, encoder has {b!r}" for k, (a, b) in wrong.items())
            raise ValueError(
                f"Embedding cache {self.directory} belongs to another model ({details}); "
                "use the cache folder of this model's key."
            )

    def _manifest(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "revision": self.revision, "dim": self.dim, "format": CACHE_FORMAT}

    # ------------------------------------------------------------------ writing
    def append(self, keys: Sequence[bytes], vectors: np.ndarray) -> Path:
        """Write one chunk (keys and their float32 vectors, shape (m, dim)); returns the keys file."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(keys), self.dim):
            raise ValueError(f"append expects vectors of shape ({len(keys)}, {self.dim}); got {vectors.shape}")
        self._check_manifest()
        self.directory.mkdir(parents=True, exist_ok=True)
        manifest = self.directory / _MANIFEST
        if not manifest.exists():
            _atomic_write_text(manifest, json.dumps(self._manifest(), indent=2))
        stem = self._new_stem()
        _atomic_save_npy(self.directory / f"{stem}.vectors.npy", vectors)
        keys_file = self.directory / f"{stem}.keys.npy"
        _atomic_save_npy(keys_file, _keys_to_array(list(keys)))
        self._index = self._locations = self._chunks = None  # re-read lazily on the next lookup
        return keys_file

    def compact(self) -> bool:
        """Merge all chunks into one when there are more than ``max_chunks``; True when it merged."""
        chunks = self._chunk_files()
        if len(chunks) <= self.max_chunks:
            return False
        index = self._load_index()
        locations = self._locations_array()
        stem = self._new_stem()
        vectors_path = self.directory / f"{stem}.vectors.npy"
        tmp = vectors_path.with_name(vectors_path.name + ".tmp")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(index), self.dim))
        step = 65536
        for start in range(0, len(index), step):
            out[start : start + step] = self._gather(locations[start : start + step])
        out.flush()
        del out
        os.replace(tmp, vectors_path)
        _atomic_save_npy(self.directory / f"{stem}.keys.npy", _keys_to_array(index.tolist()))
        for vectors_file, keys_file in chunks:  # keys first: a half-deleted chunk is invisible
            keys_file.unlink()
            vectors_file.unlink()
        self._index = self._locations = self._chunks = None
        return True

    def _new_stem(self) -> str:
        """``chunk-<sequence>-<random>``: ordered by sequence, never shared by two concurrent writers."""
        seqs = [int(p.name.split("-")[1].split(".")[0]) for p in self.directory.glob("chunk-*.npy")]
        return f"chunk-{max(seqs, default=0) + 1:06d}-{uuid.uuid4().hex[:8]}"


def embed_with_cache(
    texts: Sequence[str],
    encoder: TextEncoder,
    cache: EmbeddingCache,
    kind: EncodeKind = "passage",
    batch_size: int = 64,
    chunk_size: int = 2048,
    progress: bool = False,
) -> tuple[np.ndarray, EmbedStats]:
    """Embed ``texts``, encoding only those not in ``cache`` and appending them chunk by chunk.

    Args:
        texts: n texts (already normalised; the cache key uses them as given).
        encoder: a :class:`TextEncoder`; its model id, revision and dim must match ``cache``.
        cache: the model's :class:`EmbeddingCache`.
        kind: ``"passage"`` for profiles, ``"query"`` for node texts and searches.
        batch_size: the encoder's batch size.
        chunk_size: texts per encoder call and per cache chunk; a killed run keeps every finished chunk.
        progress: show a progress bar (stderr) over the texts to encode.

    Returns:
        vectors float32 (n, dim) in the order of ``texts``, and exact :class:`EmbedStats`.
    """
    _check_encoder_matches(encoder, cache)
    if chunk_size < 1:
        raise ValueError(
            f"The 'chunk_size' parameter must be an int in the range [1, inf). Got {chunk_size!r} instead."
        )
    keys = [content_key(t, encoder.model_id, encoder.revision, kind) for t in texts]
    codes, unique_keys = pd.factorize(pd.Index(keys, dtype=object))
    first = np.unique(codes, return_index=True)[1]  # codes number keys by first appearance
    found, found_vectors = cache.lookup(list(unique_keys))
    vectors = np.empty((len(unique_keys), encoder.dim), dtype=np.float32)
    vectors[found] = found_vectors
    missing = np.flatnonzero(~found)
    n_calls = _encode_missing(
        missing, first, texts, unique_keys, vectors, encoder, cache, kind, batch_size, chunk_size, progress
    )
    if n_calls:
        cache.compact()
    stats = EmbedStats(len(texts), len(unique_keys), int(found.sum()), len(missing), len(missing), n_calls, n_calls)
    return vectors[codes], stats


def _encode_missing(
    missing: np.ndarray,
    first: np.ndarray,
    texts: Sequence[str],
    unique_keys: pd.Index,
    vectors: np.ndarray,
    encoder: TextEncoder,
    cache: EmbeddingCache,
    kind: EncodeKind,
    batch_size: int,
    chunk_size: int,
    progress: bool,
) -> int:
    """Encode the missing unique texts chunk by chunk, store each chunk; returns the encoder calls."""
    from tqdm.auto import tqdm

    n_calls = 0
    with tqdm(
        total=len(missing),
        disable=not progress or len(missing) == 0,
        unit="text",
        desc=f"embedding with {encoder.model_id}",
    ) as bar:
        for start in range(0, len(missing), chunk_size):
            sel = missing[start : start + chunk_size]
            batch = [texts[i] for i in first[sel]]
            encoded = np.asarray(encoder.encode(batch, kind=kind, batch_size=batch_size, show_progress=False))
            n_calls += 1
            if encoded.shape != (len(batch), encoder.dim):
                raise ValueError(
                    f"encoder {encoder.model_id!r} returned shape {encoded.shape} for {len(batch)} "
                    f"texts; expected ({len(batch)}, {encoder.dim})"
                )
            vectors[sel] = encoded.astype(np.float32, copy=False)
            cache.append([unique_keys[i] for i in sel], vectors[sel])
            bar.update(len(sel))
    return n_calls


def _check_encoder_matches(encoder: TextEncoder, cache: EmbeddingCache) -> None:
    got = (encoder.model_id, encoder.revision, int(encoder.dim))
    expected = (cache.model_id, cache.revision, int(cache.dim))
    if got != expected:
        raise ValueError(f"encoder (model_id, revision, dim) {got} does not match the cache's {expected}")


def _keys_to_array(keys: list[bytes]) -> np.ndarray:
    """Digests as a uint8 (n, 32) array: numpy's ``S32`` would drop trailing NUL bytes on reading."""
    bad = [k for k in keys if len(k) != KEY_BYTES]
    if bad:
        raise ValueError(
            f"cache keys must be {KEY_BYTES}-byte sha256 digests; got lengths {sorted({len(k) for k in bad})}"
        )
    return np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), KEY_BYTES)


def _keys_from_array(array: np.ndarray) -> list[bytes]:
    """Inverse of :func:`_keys_to_array`; also reads the ``S32`` arrays of earlier caches (NULs restored)."""
    if array.dtype.kind == "S":
        return [k.ljust(KEY_BYTES, b"\0") for k in array.tolist()]
    raw = np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    return [raw[i : i + KEY_BYTES] for i in range(0, len(raw), KEY_BYTES)]


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
