"""Character n-gram TF-IDF lexical index: the lexical retrieval signal and the ``tfidf`` baseline.

The weighting is scikit-learn's ``TfidfVectorizer(analyzer="char", ngram_range=(1, 3))`` exactly
(lower-casing, runs of white space collapsed to one space, raw term counts or ``1 + log`` with
``sublinear_tf``, smooth idf ``ln((1 + n) / (1 + df)) + 1``, rows L2-normalised), so scores are
cosines in [0, 1]. The n-grams are computed with numpy instead of Python loops: each character is
its Unicode codepoint (< 2**21), and an n-gram of up to three characters is packed into one int64
key (``c1 << 42 | c2 << 21 | c3``; shorter n-grams have leading zeros, so keys of different orders
never collide). That makes a million profiles fit in memory (float32 weights, int32 indices, a
vocabulary of int64 keys instead of Python strings) and fast to build: documents are processed in
chunks, twice (document frequencies, then weights), so peak memory stays close to the final matrix.

The matrix is kept transposed (n-gram × document, CSR) so that a query touches only the posting
lists of its own n-grams. Search returns, per query, the ``top_k`` documents with a positive score
(a document sharing no n-gram with the query is never returned), best first, ties by fit order.

**Incremental updates.** :meth:`LexicalIndex.update` re-weights only the given documents with the
*frozen* vocabulary and idf of the last :meth:`~LexicalIndex.fit` (a changed id keeps its column, a
new id is appended) and :meth:`~LexicalIndex.remove` compacts removed ids away; the result is
bit-for-bit the index :meth:`~LexicalIndex.refit_documents` builds over the same corpus with that
vocabulary. N-grams that are not in the frozen vocabulary are ignored until the next full fit, and
the idf no longer counts the edited documents exactly; ``drift_`` (rows added, replaced or removed
since the last fit, as a share of the rows that fit saw) measures how stale the statistics are, and
``needs_refit`` turns true once it exceeds ``max_drift`` — the caller then fits afresh.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.manifest import Manifest, atomic_directory, fingerprint_arrays, fingerprint_bytes

_COMPONENT: Final = "LexicalIndex"
_BITS: Final = 21  # every Unicode codepoint fits in 21 bits
_WHITE_SPACES: Final = re.compile(r"\s\s+")  # scikit-learn's char analyzer collapses these
_CHUNK_DOCS: Final = 20_000


def _param_error(name: str, expected: str, got: Any) -> ValueError:
    return ValueError(f"The {name!r} parameter of LexicalIndex must be {expected}. Got {got!r} instead.")


# ---------------------------------------------------------------- n-gram keys
def _preprocess(texts: Sequence[str], lowercase: bool) -> list[str]:
    out = []
    for t in texts:
        t = t.lower() if lowercase else t
        out.append(_WHITE_SPACES.sub(" ", t.replace("\x00", " ")))
    return out


def ngram_keys(texts: Sequence[str], ngram_range: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """All character n-grams of already preprocessed ``texts`` as (document number, int64 key) pairs.

    Returns:
        ``doc`` int32 (non-decreasing) and ``key`` int64 arrays of equal length, one entry per
        n-gram occurrence, in text order (at each position: the shortest n-gram first).
    """
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    cps = np.frombuffer("".join(texts).encode("utf-32-le"), dtype="<u4").astype(np.int64)
    doc_of = np.repeat(np.arange(len(texts), dtype=np.int32), lengths)
    room = np.repeat(np.cumsum(lengths), lengths) - np.arange(len(cps))  # chars left in the document
    orders = range(ngram_range[0], ngram_range[1] + 1)
    n_chars = len(cps)
    keys = np.full((n_chars, len(orders)), -1, dtype=np.int64)
    for col, n in enumerate(orders):
        m = n_chars - n + 1  # positions where an n-gram fits in the concatenation (contiguous slices, no gathers)
        if m <= 0:
            continue
        key = cps[:m].copy()
        for j in range(1, n):
            key <<= _BITS
            key |= cps[j : m + j]
        key[room[:m] < n] = -1  # crosses into the next document
        keys[:m, col] = key
    flat = keys.ravel()
    mask = flat >= 0
    return np.repeat(doc_of, len(orders))[mask], flat[mask]


def key_to_ngram(key: int) -> str:
    """The n-gram text of a packed key (inverse of the packing in :func:`ngram_keys`)."""
    chars = []
    while key:
        chars.append(chr(key & ((1 << _BITS) - 1)))
        key >>= _BITS
    return "".join(reversed(chars))


def _chunk_counts(texts: Sequence[str], ngram_range: tuple[int, int]) -> tuple[sp.csr_matrix, np.ndarray]:
    """Term counts of a chunk: CSR (n_docs, n_local) over the chunk's unique keys (first-seen order).

    Keys are numbered by hash-based factorisation (pandas; ``np.unique(return_inverse=True)``
    argsorts and was 8x slower), then (document, key) pairs are counted by one plain sort, which
    yields the CSR arrays directly.
    """
    doc, key = ngram_keys(texts, ngram_range)
    local, uniq = pd.factorize(key)
    n_uniq = max(len(uniq), 1)
    pairs, counts = np.unique(doc.astype(np.int64) * n_uniq + local, return_counts=True)  # sorted: canonical CSR
    rows = pairs // n_uniq
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(texts)))])
    matrix = sp.csr_matrix(
        (counts.astype(np.float32), (pairs % n_uniq).astype(np.int32), indptr), shape=(len(texts), len(uniq))
    )
    return matrix, np.asarray(uniq, dtype=np.int64)


def _merge_stats(keys: np.ndarray, df: np.ndarray, tf: np.ndarray, new_keys: np.ndarray, new_df: np.ndarray,
                 new_tf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    codes, merged = pd.factorize(np.concatenate([keys, new_keys]))
    out_df = np.bincount(codes, weights=np.concatenate([df, new_df]), minlength=len(merged))
    out_tf = np.bincount(codes, weights=np.concatenate([tf, new_tf]), minlength=len(merged))
    return np.asarray(merged, dtype=np.int64), out_df, out_tf


class LexicalIndex:
    """Character n-gram TF-IDF over profile texts, with top-k search.

    Args:
        ngram_range: (min_n, max_n) character n-gram lengths, within [1, 3].
        max_features: keep only the n-grams with the highest corpus counts (None: all). With a
            million profiles, a cap of a few million bounds the vocabulary; rows keep their
            remaining n-grams.
        min_df: drop n-grams found in fewer documents.
        sublinear_tf: use ``1 + log(count)`` instead of raw counts.
        lowercase: lower-case texts first (as scikit-learn does by default).
        chunk_size: documents processed at once while fitting (memory vs. speed).
        max_drift: ``needs_refit`` turns true once the rows added, replaced or removed by
            :meth:`update` / :meth:`remove` since the last :meth:`fit` exceed this share of the rows
            that fit saw (their new n-grams are ignored and the idf is frozen until then).
    """

    def __init__(
        self,
        ngram_range: tuple[int, int] = (1, 3),
        max_features: int | None = None,
        min_df: int = 1,
        sublinear_tf: bool = False,
        lowercase: bool = True,
        chunk_size: int = _CHUNK_DOCS,
        max_drift: float = 0.2,
    ) -> None:
        self.ngram_range = ngram_range
        self.max_features = max_features
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf
        self.lowercase = lowercase
        self.chunk_size = chunk_size
        self.max_drift = max_drift

    def get_params(self) -> dict[str, Any]:
        return {
            "ngram_range": list(self.ngram_range),
            "max_features": self.max_features,
            "min_df": self.min_df,
            "sublinear_tf": self.sublinear_tf,
            "lowercase": self.lowercase,
            "chunk_size": self.chunk_size,
            "max_drift": self.max_drift,
        }

    def _validate_params(self) -> None:
        r = self.ngram_range
        if not (
            isinstance(r, tuple | list)
            and len(r) == 2
            and all(isinstance(v, int) for v in r)
            and 1 <= r[0] <= r[1] <= 3
        ):
            raise _param_error("ngram_range", "a pair (min_n, max_n) with 1 <= min_n <= max_n <= 3", r)
        for name, low, optional in (("max_features", 1, True), ("min_df", 1, False), ("chunk_size", 1, False)):
            v = getattr(self, name)
            if (v is None and not optional) or (
                v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < low)
            ):
                raise _param_error(name, f"an int in the range [{low}, inf)" + (" or None" if optional else ""), v)
        d = self.max_drift
        if not isinstance(d, int | float) or isinstance(d, bool) or not 0 <= d < float("inf"):
            raise _param_error("max_drift", "a float in the range [0, inf)", d)

    # ------------------------------------------------------------ fitting
    def fit(self, texts: Sequence[str], ids: Sequence[str] | np.ndarray) -> LexicalIndex:
        """Learn the vocabulary and idf from ``texts`` and index them under ``ids`` (unique str)."""
        self._validate_params()
        texts = _check_texts(texts, "texts")
        ids_arr = _check_ids(ids, len(texts))
        rng = (int(self.ngram_range[0]), int(self.ngram_range[1]))
        prepared = _preprocess(texts, self.lowercase)
        chunks = [prepared[s : s + self.chunk_size] for s in range(0, len(prepared), self.chunk_size)]
        self.vocabulary_keys_, df = self._fit_vocabulary(chunks, rng)
        n = len(prepared)
        self.idf_ = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
        self._set_documents(chunks, rng, ids_arr)
        self.data_sha256_ = fingerprint_arrays(ids_arr, np.asarray(texts, dtype=object))
        self.n_fit_docs_ = n
        self.changed_since_fit_ = 0
        return self

    def _set_documents(self, chunks: list[list[str]], rng: tuple[int, int], ids: np.ndarray) -> None:
        X = sp.vstack([self._weights(c, rng) for c in chunks], format="csr") if chunks else self._empty(0)
        self.matrix_t_ = X.T.tocsr()  # (n_features, n_docs): query n-grams pick their posting lists
        self.matrix_t_.indices = self.matrix_t_.indices.astype(np.int32, copy=False)
        self.ids_ = np.asarray(ids, dtype=str)

    def refit_documents(self, texts: Sequence[str], ids: Sequence[str] | np.ndarray) -> LexicalIndex:
        """Index ``texts`` under ``ids`` afresh with the frozen vocabulary and idf (no statistics relearned).

        This is the non-incremental reference of :meth:`update`: every row counts as changed for
        ``drift_``.
        """
        self._check_fitted()
        texts = _check_texts(texts, "texts")
        ids_arr = _check_ids(ids, len(texts))
        rng = (int(self.ngram_range[0]), int(self.ngram_range[1]))
        prepared = _preprocess(texts, self.lowercase)
        chunks = [prepared[s : s + self.chunk_size] for s in range(0, len(prepared), self.chunk_size)]
        self._set_documents(chunks, rng, ids_arr)
        self.data_sha256_ = fingerprint_arrays(ids_arr, np.asarray(texts, dtype=object))
        self.changed_since_fit_ = len(texts)
        return self

    # ------------------------------------------------------------ incremental updates
    def update(self, texts: Sequence[str], ids: Sequence[str] | np.ndarray) -> LexicalIndex:
        """Replace the rows of ids already indexed and append new ids, with the frozen vocabulary and idf.

        Only ``texts`` are tokenised and weighted (cost ~ the changed documents plus one pass over the
        stored matrix); n-grams outside the frozen vocabulary are ignored until the next :meth:`fit`.
        The result equals :meth:`refit_documents` over the updated corpus exactly.
        """
        self._check_fitted()
        texts = _check_texts(texts, "texts")
        ids_arr = _check_ids(ids, len(texts)).astype(str)
        if not texts:
            return self
        rng = (int(self.ngram_range[0]), int(self.ngram_range[1]))
        prepared = _preprocess(texts, self.lowercase)
        W = sp.vstack(
            [self._weights(prepared[s : s + self.chunk_size], rng) for s in range(0, len(prepared), self.chunk_size)],
            format="csr",
        )
        n_docs = len(self.ids_)
        pos = pd.Index(np.asarray(self.ids_, dtype=object)).get_indexer(ids_arr.astype(object))
        is_new = pos < 0
        target = pos.astype(np.int64)
        target[is_new] = n_docs + np.arange(int(is_new.sum()), dtype=np.int64)
        width = n_docs + int(is_new.sum())
        Wc = W.tocoo()
        added = sp.coo_matrix((Wc.data, (Wc.col, target[Wc.row])), shape=(len(self.vocabulary_keys_), width))
        self.matrix_t_ = _splice_columns(self.matrix_t_, pos[~is_new], added, width)
        self.ids_ = np.concatenate([np.asarray(self.ids_, dtype=str), ids_arr[is_new]])
        self.changed_since_fit_ += len(texts)
        self.data_sha256_ = fingerprint_bytes(
            self.data_sha256_.encode(), b"update", fingerprint_arrays(ids_arr, np.asarray(texts, dtype=object)).encode()
        )
        return self

    def remove(self, ids: Sequence[str] | np.ndarray) -> int:
        """Remove the given ids (unknown ids are ignored) and compact; returns how many were present."""
        self._check_fitted()
        wanted = np.asarray([str(i) for i in ids], dtype=object)
        pos = pd.Index(np.asarray(self.ids_, dtype=object)).get_indexer(wanted)
        pos = np.unique(pos[pos >= 0])
        if len(pos) == 0:
            return 0
        n_docs = len(self.ids_)
        alive = np.ones(n_docs, dtype=bool)
        alive[pos] = False
        empty = sp.coo_matrix((len(self.vocabulary_keys_), n_docs), dtype=np.float32)
        kept = _splice_columns(self.matrix_t_, pos, empty, n_docs)
        new_col = (np.cumsum(alive, dtype=np.int32) - 1).astype(np.int32)
        self.matrix_t_ = sp.csr_matrix(
            (kept.data, new_col[kept.indices], kept.indptr), shape=(len(self.vocabulary_keys_), n_docs - len(pos))
        )
        self.ids_ = np.asarray(self.ids_, dtype=str)[alive]
        self.changed_since_fit_ += len(pos)
        self.data_sha256_ = fingerprint_bytes(
            self.data_sha256_.encode(), b"remove", fingerprint_arrays(np.sort(wanted.astype(str))).encode()
        )
        return len(pos)

    @property
    def drift_(self) -> float:
        """Rows added, replaced or removed since the last fit, as a share of the rows that fit saw."""
        self._check_fitted()
        return self.changed_since_fit_ / max(self.n_fit_docs_, 1)

    @property
    def needs_refit(self) -> bool:
        """True once ``drift_`` exceeds ``max_drift``: fit the whole corpus again."""
        return self.drift_ > self.max_drift

    def _fit_vocabulary(self, chunks: list[list[str]], rng: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        keys, df, tf = np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
        for chunk in chunks:
            counts, uniq = _chunk_counts(chunk, rng)
            chunk_df = np.bincount(counts.indices, minlength=len(uniq))
            chunk_tf = np.asarray(counts.sum(axis=0)).ravel()
            keys, df, tf = _merge_stats(keys, df, tf, uniq, chunk_df, chunk_tf)
        order = np.argsort(keys, kind="stable")  # columns in key order
        keys, df, tf = keys[order], df[order], tf[order]
        keep = df >= self.min_df
        if self.max_features is not None and keep.sum() > self.max_features:
            order = np.argsort(-tf[keep], kind="stable")[: self.max_features]  # ties: smaller key first
            idx = np.sort(np.flatnonzero(keep)[order])
            keep = np.zeros(len(keys), bool)
            keep[idx] = True
        return keys[keep], df[keep].astype(np.float64)

    def _weights(self, texts: list[str], rng: tuple[int, int]) -> sp.csr_matrix:
        """L2-normalised tf-idf rows of preprocessed texts over the fitted vocabulary."""
        counts, uniq = _chunk_counts(texts, rng)
        cols = np.searchsorted(self.vocabulary_keys_, uniq)
        cols = np.minimum(cols, max(len(self.vocabulary_keys_) - 1, 0))
        known = (self.vocabulary_keys_[cols] == uniq) if len(self.vocabulary_keys_) else np.zeros(len(uniq), bool)
        remap = np.where(known, cols, -1).astype(np.int64)
        new_cols = remap[counts.indices]
        mask = new_cols >= 0
        data = counts.data[mask]
        if self.sublinear_tf:
            data = 1.0 + np.log(data)
        data = (data * self.idf_[new_cols[mask]]).astype(np.float32)
        rows = np.repeat(np.arange(len(texts), dtype=np.int64), np.diff(counts.indptr))[mask]
        cols = new_cols[mask]
        order = np.argsort(rows * max(len(self.vocabulary_keys_), 1) + cols, kind="stable")  # columns sorted in a row:
        data, rows, cols = data[order], rows[order], cols[order]  # the norm is summed in the same order in any chunk
        norms = np.sqrt(np.bincount(rows, weights=np.square(data, dtype=np.float64), minlength=len(texts)))
        data /= np.where(norms > 0, norms, 1.0)[rows].astype(np.float32)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(texts)))])
        return sp.csr_matrix((data, cols.astype(np.int32), indptr), shape=(len(texts), len(self.vocabulary_keys_)))

    def _empty(self, n: int) -> sp.csr_matrix:
        return sp.csr_matrix((n, len(self.vocabulary_keys_)), dtype=np.float32)

    # ------------------------------------------------------------ querying
    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """TF-IDF rows (n_texts, n_features), L2-normalised; n-grams unseen at fit time are ignored."""
        self._check_fitted()
        texts = _check_texts(texts, "queries")
        if not texts:
            return self._empty(0)
        rng = (int(self.ngram_range[0]), int(self.ngram_range[1]))
        return self._weights(_preprocess(texts, self.lowercase), rng)

    def search(self, queries: Sequence[str], top_k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``top_k`` best-matching documents of each query, best first.

        Returns:
            ``ids``: object array (n_queries, top_k), ``None`` where fewer documents match;
            ``scores``: float32 (n_queries, top_k) cosines, ``-inf`` where padded.
        """
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise _param_error("top_k", "an int in the range [1, inf)", top_k)
        Q = self.transform(queries)
        ids = np.full((Q.shape[0], top_k), None, dtype=object)
        scores = np.full((Q.shape[0], top_k), -np.inf, dtype=np.float32)
        for start in range(0, Q.shape[0], 64):  # bound the (queries × documents) score matrix
            S = (Q[start : start + 64] @ self.matrix_t_).tocsr()
            for r in range(S.shape[0]):
                cols, vals = S.indices[S.indptr[r] : S.indptr[r + 1]], S.data[S.indptr[r] : S.indptr[r + 1]]
                best = _top_k(cols, vals, top_k)
                ids[start + r, : len(best)] = self.ids_[cols[best]].tolist()
                scores[start + r, : len(best)] = vals[best]
        return ids, scores

    @property
    def n_features_(self) -> int:
        self._check_fitted()
        return len(self.vocabulary_keys_)

    def get_feature_names_out(self) -> np.ndarray:
        """The n-gram strings of the vocabulary, in column order."""
        self._check_fitted()
        return np.array([key_to_ngram(int(k)) for k in self.vocabulary_keys_], dtype=object)

    # ------------------------------------------------------------ persistence
    def manifest(self) -> Manifest:
        self._check_fitted()
        return Manifest.build(
            _COMPONENT,
            libraries=("numpy", "scipy"),
            config=self.get_params(),
            data_sha256=self.data_sha256_,
            count=len(self.ids_),
            extra={
                "n_features": self.n_features_,
                "nnz": int(self.matrix_t_.nnz),
                "n_fit_docs": self.n_fit_docs_,
                "changed_since_fit": self.changed_since_fit_,
            },
        )

    def save(self, directory: Path) -> Path:
        """Write the arrays as ``.npy`` files (memory-mappable) plus ``manifest.json``; atomic replace."""
        self._check_fitted()
        m = self.matrix_t_
        arrays = {"data": m.data, "indices": m.indices, "indptr": m.indptr, "vocabulary_keys": self.vocabulary_keys_,
                  "idf": self.idf_, "ids": self.ids_}  # fmt: skip
        with atomic_directory(Path(directory)) as staging:
            for name, arr in arrays.items():
                np.save(staging / f"{name}.npy", arr, allow_pickle=False)
            self.manifest().write(staging)
        return Path(directory)

    @classmethod
    def load(cls, directory: Path, expected: Mapping[str, Any] | None = None, mmap: bool = False) -> LexicalIndex:
        """Read an index written by :meth:`save`; ``mmap`` maps the large arrays instead of reading them."""
        directory = Path(directory)
        manifest = Manifest.read(directory)
        manifest.check({"component": _COMPONENT, **(expected or {})})
        params = dict(manifest.config)
        params["ngram_range"] = tuple(params["ngram_range"])
        self = cls(**params)
        mode: Literal["r"] | None = "r" if mmap else None

        def arr(name: str) -> np.ndarray:
            return np.load(directory / f"{name}.npy", mmap_mode=mode, allow_pickle=False)  # type: ignore[no-any-return]

        self.vocabulary_keys_, self.idf_, self.ids_ = (
            np.asarray(arr("vocabulary_keys")),
            np.asarray(arr("idf")),
            arr("ids"),
        )
        shape = (len(self.vocabulary_keys_), len(self.ids_))
        self.matrix_t_ = sp.csr_matrix((arr("data"), arr("indices"), arr("indptr")), shape=shape, copy=False)
        self.data_sha256_ = str(manifest.data_sha256)
        self.n_fit_docs_ = int(manifest.extra.get("n_fit_docs", len(self.ids_)))
        self.changed_since_fit_ = int(manifest.extra.get("changed_since_fit", 0))
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "matrix_t_"):
            raise RuntimeError(
                "This LexicalIndex is not fitted yet; call fit(texts, ids) or LexicalIndex.load(dir) first."
            )

    def __repr__(self) -> str:
        n = len(self.ids_) if hasattr(self, "ids_") else "unfitted"
        return f"LexicalIndex(ngram_range={tuple(self.ngram_range)}, n={n})"


def _splice_columns(m: sp.csr_matrix, dead: np.ndarray, added: sp.coo_matrix, width: int) -> sp.csr_matrix:
    """``m`` (n-grams × documents, CSR, sorted columns) without the entries of the ``dead`` document
    columns and with the entries of ``added`` (same rows, columns < ``width``) spliced in at their
    sorted places.

    Cost: two copies of the stored arrays (``np.delete``, ``np.insert``) plus work proportional to
    the dead and added entries; no sparse arithmetic and no sort of the whole matrix.
    """
    n_rows = m.shape[0]
    indptr = np.asarray(m.indptr, dtype=np.int64)
    dead_mask = np.zeros(max(width, m.shape[1]), dtype=bool)
    dead_mask[dead] = True
    gone = np.flatnonzero(dead_mask[m.indices]) if len(dead) else np.zeros(0, np.int64)
    removed = np.bincount(np.searchsorted(indptr, gone, side="right") - 1, minlength=n_rows)
    indptr = indptr - np.concatenate([[0], np.cumsum(removed)])
    data, indices = np.delete(m.data, gone), np.delete(m.indices, gone)
    order = np.lexsort((added.col, added.row))
    rows, cols, vals = added.row[order].astype(np.int64), added.col[order].astype(np.int32), added.data[order]
    lo, hi = indptr[rows], indptr[rows + 1]
    while True:  # vectorised binary search of each added column within its row
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) // 2
        right = np.zeros(len(lo), dtype=bool)
        right[active] = indices[mid[active]] < cols[active]
        lo = np.where(right, mid + 1, lo)
        hi = np.where(active & ~right, mid, hi)
    data, indices = np.insert(data, lo, vals), np.insert(indices, lo, cols)
    indptr = indptr + np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))])
    return sp.csr_matrix((data, indices.astype(np.int32, copy=False), indptr), shape=(n_rows, width))


def _top_k(cols: np.ndarray, vals: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest positive ``vals``, sorted by score desc then column (fit order) asc."""
    pos = np.flatnonzero(vals > 0)
    if len(pos) > k:
        kth = np.partition(vals[pos], len(pos) - k)[len(pos) - k]
        pos = pos[vals[pos] >= kth]  # keep every tie at the boundary, then cut after sorting
    order = np.lexsort((cols[pos], -vals[pos]))
    return pos[order][:k]


def _check_texts(texts: Sequence[str], name: str) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"The {name!r} parameter of LexicalIndex must be a list of str. Got a single str instead.")
    out = list(texts)
    bad = [i for i, t in enumerate(out) if not isinstance(t, str)]
    if bad:
        raise TypeError(
            f"The {name!r} parameter of LexicalIndex must hold only str; items at positions {bad[:5]} are not."
        )
    return out


def _check_ids(ids: Any, n: int) -> np.ndarray:
    arr = np.asarray(ids, dtype=object)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"ids must be a 1-d sequence with one id per text ({n}); got shape {arr.shape}.")
    bad = [i for i, v in enumerate(arr.tolist()) if not isinstance(v, str) or not v]
    if bad:
        raise ValueError(f"ids must be non-empty str; positions {bad[:5]} are {[arr[i] for i in bad[:5]]!r}.")
    values, counts = np.unique(arr.astype(str), return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"ids must be unique; duplicated: {values[counts > 1][:5].tolist()}.")
    return arr
