"""The profile indexes of the enterprise universe: built once, then updated in place.

:func:`build_profile_index` embeds the enterprises' profile texts through the embedding cache and
keeps three indexes under ``<workspace>/index/<model key>/``: the dense FAISS index (``models.index``),
the character n-gram index (``models.lexical``) and the word index (``models.bm25``: BM25F over the
jieba words of each text field, ``features.words``). On later calls only enterprises whose
text columns hash differently (or are new) are re-embedded and re-indexed; removed ones are dropped;
a full build happens without a usable saved index, on other text settings, a change of dense index
kind or drift above ``retrieval.index_max_drift`` (``manifest.extra.build`` says which and why).
:func:`load_retrieval` is the one call that gives a command or the service its encoder and indexes.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import numpy as np
import pandas as pd

from features.embeddings import EmbeddingCache, EmbedStats, TextEncoder, embed_with_cache
from features.profiles import ENTERPRISE_TEXT_FIELDS, PROFILE_TEXT_VERSION, enterprise_texts
from features.schema import COL_ENTERPRISE_ID, COL_NAME, check_columns
from features.words import WordSegmenter, enterprise_field_tokens
from recommender.workspace import Workspace

if TYPE_CHECKING:
    from models.manifest import Manifest
    from recommender.settings import RetrievalConfig, Settings

TFIDF: Final = "tfidf"  # embedder name meaning "no dense model: lexical retrieval only"


class SearchIndex(Protocol):
    """``models.index.ProfileIndex`` (vectors) and ``models.lexical.LexicalIndex`` (texts)."""

    def search(self, queries: Any, top_k: int) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class ProfileIndexBundle:
    """What :func:`build_profile_index` returns: the indexes and how they were obtained."""

    dense: SearchIndex | None
    lexical: SearchIndex
    model_key: str
    fingerprint: str
    n_profiles: int
    reused: bool
    embed_stats: EmbedStats | None
    words: Any = None  # models.bm25.BM25Index (None for an index built before the word index existed)
    segmenter: WordSegmenter | None = None


def model_key(embedder: str, encoder: TextEncoder | None) -> str:
    """Folder name of a model's cache and index: ``<model id>@<revision>``, path-safe.

    A revision longer than 40 characters is replaced by the first 16 hex digits of its sha256.
    """
    if encoder is None:
        return TFIDF
    rev = encoder.revision
    if len(rev) > 40:
        rev = hashlib.sha256(rev.encode("utf-8")).hexdigest()[:16]
    raw = f"{encoder.model_id}@{rev}" if rev else encoder.model_id
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", raw).strip("_") or re.sub(r"[^A-Za-z0-9]+", "_", embedder)


def build_profile_index(
    enterprises: pd.DataFrame,
    encoder: TextEncoder | None,
    index_root: Path,
    cache_root: Path,
    config: RetrievalConfig,
    progress: bool = False,
    user_words: Sequence[str] = (),
) -> ProfileIndexBundle:
    """Embed the universe through the cache and build, update or reuse the dense, lexical and word indexes.

    The folder ``<index_root>/<model_key>/`` holds ``dense/`` (``models.index.ProfileIndex``),
    ``lexical/`` (``models.lexical.LexicalIndex``), ``words/`` (``models.bm25.BM25Index``), ``profile_ids.npy`` + ``profile_hashes.npy``
    (each indexed enterprise's id and :func:`profile_source_hashes`) and a ``manifest.json`` whose
    ``data_sha256`` is :func:`index_fingerprint`; it is replaced atomically
    (``models.manifest.atomic_directory``).

    When the profiles changed, the saved indexes are **updated**: only the enterprises whose raw text
    columns hash differently, or that are new, get a profile text built; they are removed and
    re-added (their vectors come from the embedding cache, which by the refresh's ``embed`` step
    holds them already; the lexical rows are re-weighted with the frozen vocabulary and idf) and ids
    gone from the universe are removed. A full build happens only when there is nothing usable to
    update — no saved folder for this model key, other profile text settings, a missing, corrupt or
    mismatched index or hash file, a dense index kind that no longer fits the universe size — or when
    the drift exceeds ``config.index_max_drift`` (lexical: rows changed since its last fit; dense:
    tombstoned rows). ``manifest.extra["build"]`` records what happened and why.

    Args:
        enterprises: the ``enterprises`` table (the whole universe).
        encoder: the dense embedder, or ``None`` for ``embedder: tfidf`` (lexical retrieval only).
        index_root: ``<workspace>/index``.
        cache_root: ``<workspace>/cache/embeddings``; the cache lives in ``<cache_root>/<model_key>/``.
        config: the ``retrieval`` settings (index kind threshold, batch size, text length, drift).
        progress: show progress bars.
        user_words: extra dictionary words of the word segmenter (the chains' products and keywords,
            ``features.words.chain_user_words``); part of the fingerprint.

    Returns:
        A :class:`ProfileIndexBundle`; ``reused`` is True when the saved indexes matched the data
        fingerprint and nothing was embedded, fitted or updated. After an incremental dense update,
        ``embed_stats`` counts the unchanged profiles as cache hits (their vectors are reused from the
        saved index) and the changed ones as looked up in the embedding cache.
    """
    key = model_key(config.embedder, encoder)
    folder = index_root / key
    saved = _saved_manifest(folder)
    check_columns(list(enterprises.columns), [COL_ENTERPRISE_ID, COL_NAME], "enterprises")
    ids = enterprises[COL_ENTERPRISE_ID].astype(str).to_numpy(dtype=object)
    hashes = profile_source_hashes(enterprises)
    segmenter = WordSegmenter(user_words)
    text_settings = _text_settings(enterprises, config, segmenter)
    fingerprint = index_fingerprint(key, ids, hashes, text_settings)
    if saved is not None and saved.data_sha256 == fingerprint:  # nothing changed: no text building, no update
        return _load_bundle(folder, encoder, key, fingerprint, len(ids), segmenter)
    kind = _index_kind(len(ids), config) if encoder is not None else None
    previous = _previous_profiles(folder, saved, text_settings)
    plan = plan_index_update(previous[0], previous[1], ids, hashes) if previous is not None else None
    n_previous = len(previous[0]) if previous is not None else 0
    texts = _ProfileTexts(enterprises, config.profile_max_chars, plan)
    lexical, lexical_build = _update_lexical(folder, plan, n_previous, ids, texts, config)
    words, words_build = _update_words(folder, plan, n_previous, ids, enterprises, segmenter, config)
    dense, dense_build, stats = None, None, None
    if encoder is not None:
        cache = EmbeddingCache(cache_root / key, encoder.model_id, encoder.revision, encoder.dim)
        dense, dense_build, stats = _update_dense(
            folder, plan, n_previous, ids, texts, encoder, cache, kind or "flat", config, progress
        )
    build = {
        "lexical": lexical_build,
        "words": words_build,
        "dense": dense_build,
        "rows_updated": int(len(plan.changed)) if plan is not None else len(ids),
        "rows_removed": int(len(plan.removed)) if plan is not None else 0,
        "lexical_drift": round(float(lexical.drift_), 6),
    }
    manifest_config = {"embedder": config.embedder, "dense_kind": kind, "index_max_drift": config.index_max_drift}
    _save_bundle(
        folder, dense, (lexical, words), ids, hashes, encoder, fingerprint, manifest_config | text_settings, build
    )
    return ProfileIndexBundle(dense, lexical, key, fingerprint, len(ids), False, stats, words, segmenter)


def _text_settings(enterprises: pd.DataFrame, config: RetrievalConfig, segmenter: WordSegmenter) -> dict[str, Any]:
    """What the profile texts and word tokens are made with: a change rebuilds the indexes in full."""
    return {
        "profile_max_chars": config.profile_max_chars,
        "profile_text_version": str(PROFILE_TEXT_VERSION),
        "text_columns": [c for c in ENTERPRISE_TEXT_FIELDS if c in enterprises.columns],
        "words": segmenter.fingerprint,
        "word_field_chars": config.word_field_chars,
        "bm25": {"k1": config.bm25_k1, "b": config.bm25_b, "fields": dict(sorted(config.field_weights.items()))},
    }


def _save_bundle(
    folder: Path,
    dense: Any,
    lexical_and_words: tuple[Any, Any],
    ids: np.ndarray,
    hashes: np.ndarray,
    encoder: TextEncoder | None,
    fingerprint: str,
    config: dict[str, Any],
    build: dict[str, Any],
) -> None:
    """Write the indexes, the profile ids and hashes and the manifest, replacing ``folder`` atomically."""
    from models.manifest import Manifest, atomic_directory

    lexical, words = lexical_and_words
    with atomic_directory(folder) as staging:
        if dense is not None:
            dense.save(staging / "dense")
        lexical.save(staging / "lexical")
        words.save(staging / "words")
        np.save(staging / "profile_ids.npy", ids.astype(str), allow_pickle=False)
        np.save(staging / "profile_hashes.npy", hashes, allow_pickle=False)
        Manifest.build(
            "RetrievalIndexes",
            config=config,
            model_id=encoder.model_id if encoder is not None else TFIDF,
            revision=encoder.revision if encoder is not None else None,
            data_sha256=fingerprint,
            dim=encoder.dim if encoder is not None else None,
            count=len(ids),
            extra={"build": build},
        ).write(staging)


@dataclass(frozen=True)
class IndexUpdatePlan:
    """What an index update re-indexes: new or edited profiles (positions in the new table) and removed ids."""

    changed: np.ndarray  # int64 positions into the new ids, in table order
    removed: np.ndarray  # object array of ids no longer in the universe, in their old order


def profile_source_hashes(enterprises: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash per enterprise of the raw columns its profile text is built from.

    pandas' fixed-key SipHash over the text columns (vectorised: ~1 s per million rows, where
    building the profile texts takes ~90 s), stable across runs and machines.
    """
    cols = [c for c in ENTERPRISE_TEXT_FIELDS if c in enterprises.columns]
    return np.asarray(pd.util.hash_pandas_object(enterprises[cols], index=False), dtype=np.uint64)


def index_fingerprint(key: str, ids: np.ndarray, hashes: np.ndarray, text_settings: dict[str, Any]) -> str:
    """sha256 over the model key, the profile text settings and the (id, source hash) pairs in id order."""
    from models.manifest import fingerprint_arrays

    order = np.argsort(ids.astype(str), kind="stable")
    meta = np.asarray([key, json.dumps(text_settings, sort_keys=True)], dtype=object)
    return fingerprint_arrays(meta, ids[order], np.asarray(hashes, dtype=np.uint64)[order])


class _ProfileTexts:
    """Profile texts built lazily: all of them for a full build, only the changed rows for an update."""

    def __init__(self, enterprises: pd.DataFrame, max_chars: int, plan: IndexUpdatePlan | None) -> None:
        self.enterprises, self.max_chars, self.plan = enterprises, max_chars, plan
        self._all: list[str] | None = None

    def all(self) -> list[str]:
        if self._all is None:
            self._all = enterprise_texts(self.enterprises, max_chars=self.max_chars).tolist()
        return self._all

    def changed(self) -> list[str]:
        assert self.plan is not None
        if self._all is not None:
            return [self._all[i] for i in self.plan.changed]
        rows = self.enterprises.iloc[self.plan.changed]
        return enterprise_texts(rows, max_chars=self.max_chars).tolist()


def plan_index_update(
    old_ids: np.ndarray, old_hashes: np.ndarray, ids: np.ndarray, hashes: np.ndarray
) -> IndexUpdatePlan:
    """Compare the indexed (id, text hash) pairs with the current ones: which rows to re-index or remove."""
    old_index, new_index = pd.Index(np.asarray(old_ids, dtype=object)), pd.Index(np.asarray(ids, dtype=object))
    pos = old_index.get_indexer(new_index)
    same = np.zeros(len(ids), dtype=bool)
    known = pos >= 0
    same[known] = np.asarray(old_hashes, dtype=np.uint64)[pos[known]] == np.asarray(hashes, dtype=np.uint64)[known]
    removed = np.asarray(old_ids, dtype=object)[new_index.get_indexer(old_index) < 0]
    return IndexUpdatePlan(np.flatnonzero(~same).astype(np.int64), removed)


_LOAD_ERRORS: Final = (OSError, EOFError, ValueError, RuntimeError, KeyError)  # missing / corrupt / mismatched


def _previous_profiles(
    folder: Path, saved: Manifest | None, text_settings: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray] | None:
    """The (ids, source hashes) the saved indexes hold, or None when they cannot be trusted or reused."""
    if saved is None or any(saved.config.get(k) != v for k, v in text_settings.items()):
        return None
    try:
        ids = np.load(folder / "profile_ids.npy", allow_pickle=False)
        hashes = np.load(folder / "profile_hashes.npy", allow_pickle=False)
    except _LOAD_ERRORS:
        return None
    if len(ids) != len(hashes) or len(ids) != int(saved.count or 0) or hashes.dtype != np.uint64:
        return None
    return ids.astype(object), hashes


def _update_lexical(
    folder: Path, plan: IndexUpdatePlan | None, n_previous: int, ids: np.ndarray, texts: _ProfileTexts,
    config: RetrievalConfig,
) -> tuple[Any, str]:  # fmt: skip
    """The saved lexical index updated by ``plan``, or a fresh fit (with the reason) when that is not possible."""
    from models.lexical import LexicalIndex

    def full(reason: str) -> tuple[Any, str]:
        index = LexicalIndex(ngram_range=(1, 3), max_drift=config.index_max_drift).fit(texts.all(), ids)
        return index, f"full: {reason}"

    if plan is None:
        return full("no saved index to update")
    try:
        lexical = LexicalIndex.load(folder / "lexical")
    except _LOAD_ERRORS as exc:
        return full(f"saved lexical index unreadable ({type(exc).__name__})")
    if len(lexical.ids_) != n_previous:
        return full("saved lexical index does not hold the saved profiles")
    lexical.max_drift = config.index_max_drift
    lexical.update(texts.changed(), ids[plan.changed])
    lexical.remove(plan.removed)
    if lexical.needs_refit:
        return full(f"lexical drift {lexical.drift_:.3f} > index_max_drift {config.index_max_drift}")
    return lexical, "incremental"


def _update_words(
    folder: Path, plan: IndexUpdatePlan | None, n_previous: int, ids: np.ndarray, enterprises: pd.DataFrame,
    segmenter: WordSegmenter, config: RetrievalConfig,
) -> tuple[Any, str]:  # fmt: skip
    """The saved word index updated by ``plan`` (only the changed rows segmented), or a fresh fit."""
    from models.bm25 import BM25Index

    def full(reason: str) -> tuple[Any, str]:
        fields = enterprise_field_tokens(enterprises, segmenter, config.word_field_chars)
        index = BM25Index(
            k1=config.bm25_k1, b=config.bm25_b, field_weights=config.field_weights, max_drift=config.index_max_drift
        ).fit(fields, ids)
        return index, f"full: {reason}"

    if plan is None:
        return full("no saved index to update")
    try:
        words = BM25Index.load(folder / "words")
    except _LOAD_ERRORS as exc:
        return full(f"saved word index unreadable ({type(exc).__name__})")
    if words.n_items != n_previous:
        return full("saved word index does not hold the saved profiles")
    words.max_drift = config.index_max_drift
    changed = enterprises.iloc[plan.changed]
    words.update(enterprise_field_tokens(changed, segmenter, config.word_field_chars), ids[plan.changed])
    words.remove(plan.removed)
    if words.needs_refit:
        return full(f"word index drift {words.drift_:.3f} > index_max_drift {config.index_max_drift}")
    return words, "incremental"


def _update_dense(
    folder: Path, plan: IndexUpdatePlan | None, n_previous: int, ids: np.ndarray, texts: _ProfileTexts,
    encoder: TextEncoder, cache: EmbeddingCache, kind: Literal["flat", "hnsw", "ivf"], config: RetrievalConfig,
    progress: bool,
) -> tuple[Any, str, EmbedStats]:  # fmt: skip
    """The saved dense index with the changed rows replaced (vectors from the cache), or a fresh build."""
    from models.index import ProfileIndex

    def full(reason: str) -> tuple[Any, str, EmbedStats]:
        vectors, stats = embed_with_cache(texts.all(), encoder, cache, "passage", config.batch_size, progress=progress)
        index = ProfileIndex(kind=kind, model_id=encoder.model_id, revision=encoder.revision).fit(vectors, ids)
        return index, f"full: {reason}", stats

    if plan is None:
        return full("no saved index to update")
    try:
        dense = ProfileIndex.load(
            folder / "dense", expected={"model_id": encoder.model_id, "revision": encoder.revision}
        )
    except _LOAD_ERRORS as exc:
        return full(f"saved dense index unreadable ({type(exc).__name__})")
    if dense.kind != kind:
        return full(f"dense index kind {dense.kind} -> {kind} for {len(ids)} profiles")
    if dense.n_items != n_previous or dense.dim_ != encoder.dim:
        return full("saved dense index does not hold the saved profiles")
    changed_ids = ids[plan.changed]
    vectors, stats = embed_with_cache(texts.changed(), encoder, cache, "passage", config.batch_size, progress=progress)
    unchanged = len(ids) - len(plan.changed)  # their vectors are reused from the saved index: counted as hits
    stats = replace(stats, n_texts=len(ids), n_unique=stats.n_unique + unchanged, n_hits=stats.n_hits + unchanged)
    dense.remove(np.concatenate([changed_ids, plan.removed]))
    dense.add(vectors, changed_ids)
    # removed rows stay as tombstones (HNSW: in the graph, searched around; every kind: in ids_), and IVF
    # lists were trained on the old vectors: rebuild once too many rows are dead
    dead = 1.0 - dense.n_items / max(len(dense.ids_), 1)
    if dead > config.index_max_drift:
        return full(f"dense tombstones {dead:.3f} > index_max_drift {config.index_max_drift}")
    return dense, "incremental", stats


def _index_kind(n: int, config: RetrievalConfig) -> Literal["flat", "hnsw", "ivf"]:
    return "flat" if n <= config.approximate_index_above else config.approximate_index_kind


def _saved_manifest(folder: Path) -> Manifest | None:
    from models.manifest import Manifest

    try:
        return Manifest.read(folder)
    except (FileNotFoundError, ValueError):
        return None


def _load_bundle(
    folder: Path, encoder: TextEncoder | None, key: str, fingerprint: str, n: int, segmenter: WordSegmenter
) -> ProfileIndexBundle:
    from models.bm25 import BM25Index
    from models.index import ProfileIndex
    from models.lexical import LexicalIndex

    dense = None
    if encoder is not None:
        dense = ProfileIndex.load(
            folder / "dense", expected={"model_id": encoder.model_id, "revision": encoder.revision}
        )
    lexical, words = LexicalIndex.load(folder / "lexical"), BM25Index.load(folder / "words")
    return ProfileIndexBundle(dense, lexical, key, fingerprint, n, True, None, words, segmenter)


def load_retrieval(settings: Settings, enterprises: pd.DataFrame) -> tuple[TextEncoder | None, ProfileIndexBundle]:
    """The configured encoder (None for ``tfidf``) and the profile indexes of ``enterprises``."""

    ws = Workspace(settings.workspace)
    encoder = None
    if settings.retrieval.embedder != TFIDF:
        from models.embedder import load_embedder

        encoder = load_embedder(settings.retrieval.embedder, ws.model_cache)
    bundle = build_profile_index(
        enterprises,
        encoder,
        ws.index,
        ws.embedding_cache,
        settings.retrieval,
        progress=sys.stderr.isatty(),
        user_words=settings_user_words(settings),
    )
    return encoder, bundle


def settings_user_words(settings: Settings) -> list[str]:
    """The word segmenter's extra words: the configured chains' names, products and keywords (none when
    the chains cannot be read; the map and query commands report that error themselves)."""
    from features.chains import nodes_frame
    from features.words import chain_user_words
    from recommender.settings import ConfigError, load_chains

    try:
        return chain_user_words(nodes_frame(load_chains(settings)))
    except (ConfigError, OSError):
        return []
