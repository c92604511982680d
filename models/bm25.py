"""Field-weighted BM25 over word tokens (BM25F): the word-level lexical retriever.

Documents come as token lists per field (``name``, ``industry_name``, ``products``, ``business_scope``,
``description`` — whatever the caller segments); queries as weighted terms ``{term: weight}``.
The score is BM25F (Robertson, Zaragoza & Taylor 2004) in its usual simplified form::

    tf~(t, d) = Σ_f  w_f · tf_f(t, d) / (1 − b + b · len_f(d) / avglen_f)
    score(q, d) = Σ_t  q_t · idf(t) · tf~ (k1 + 1) / (tf~ + k1)
    idf(t) = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))

so a term in the company name counts ``w_name`` times a term in its introduction, each field
normalised by its own average length, and saturation happens once over the combined frequency (a
term repeated in every field does not add up linearly). Scores are ≥ 0; a document that shares no
query term is never returned.

The saturated, idf-weighted matrix is kept twice: document × term (CSR: rows for pseudo-relevance
feedback and for updates) and term × document (CSC of the same data, so that a query touches only
the posting lists of its own terms).

**Incremental updates** work like :class:`models.lexical.LexicalIndex`'s: :meth:`BM25Index.update`
re-weights the given documents with the *frozen* vocabulary, idf and average field lengths of the
last :meth:`~BM25Index.fit` (terms unknown to that vocabulary are ignored until the next fit);
``drift_`` counts rows added, replaced or removed since the fit as a share of the rows it saw, and
``needs_refit`` turns true above ``max_drift``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import scipy.sparse as sp

from models.manifest import Manifest, atomic_directory, fingerprint_arrays

_COMPONENT: Final = "BM25Index"
DEFAULT_FIELD_WEIGHTS: Final = {"name": 1.0, "industry_name": 1.0, "products": 1.0, "business_scope": 1.0,
                                "description": 1.0}  # fmt: skip

Fields = Mapping[str, Sequence[Sequence[str]]]


def _param_error(name: str, expected: str, got: Any) -> ValueError:
    return ValueError(f"The {name!r} parameter of BM25Index must be {expected}. Got {got!r} instead.")


class BM25Index:
    """BM25F over per-field token lists.

    Args:
        k1: term-frequency saturation (> 0).
        b: length normalisation in [0, 1].
        field_weights: weight per field name; fields not listed are ignored. ``None``: every field
            seen at fit time with weight 1.
        max_drift: share of rows changed since the last fit above which ``needs_refit`` is true.
    """

    def __init__(
        self,
        k1: float = 1.2,
        b: float = 0.75,
        field_weights: Mapping[str, float] | None = None,
        max_drift: float = 0.2,
    ) -> None:
        self.k1 = k1
        self.b = b
        self.field_weights = field_weights
        self.max_drift = max_drift

    def get_params(self) -> dict[str, Any]:
        return {"k1": self.k1, "b": self.b, "field_weights": self.field_weights, "max_drift": self.max_drift}

    def _validate_params(self) -> None:
        if not (isinstance(self.k1, (int, float)) and self.k1 > 0):
            raise _param_error("k1", "a float in the range (0, inf)", self.k1)
        if not (isinstance(self.b, (int, float)) and 0 <= self.b <= 1):
            raise _param_error("b", "a float in the range [0, 1]", self.b)
        if self.field_weights is not None and (
            not isinstance(self.field_weights, Mapping)
            or any(not isinstance(w, (int, float)) or w < 0 for w in self.field_weights.values())
        ):
            raise _param_error("field_weights", "a mapping of field name to a weight >= 0, or None", self.field_weights)
        if not (isinstance(self.max_drift, (int, float)) and 0 < self.max_drift <= 1):
            raise _param_error("max_drift", "a float in the range (0, 1]", self.max_drift)

    # ------------------------------------------------------------------ fit / update
    def fit(self, fields: Fields, ids: Sequence[str] | np.ndarray) -> BM25Index:
        """Learn the vocabulary, idf and average field lengths from ``fields`` and index them.

        Args:
            fields: ``{field: [tokens of document 0, tokens of document 1, ...]}``, every list as
                long as ``ids``.
            ids: document ids (unique strings), in order.
        """
        self._validate_params()
        ids_arr = _check_ids(ids)
        weights = self._weights(fields)
        _check_fields(fields, weights, len(ids_arr))
        vocab: dict[str, int] = {}
        for f in weights:
            for doc in fields[f]:
                for t in doc:
                    vocab.setdefault(t, len(vocab))
        self.vocabulary_ = vocab
        self.terms_ = np.asarray(list(vocab), dtype=object)
        self.field_weights_ = weights
        counts = {f: _count_matrix(fields[f], vocab, len(ids_arr)) for f in weights}
        lengths = {f: np.asarray(m.sum(axis=1)).ravel() for f, m in counts.items()}
        self.avg_len_ = {f: float(v.mean()) if len(v) and v.mean() > 0 else 1.0 for f, v in lengths.items()}
        tf = self._pseudo_tf(counts, lengths)
        df = np.bincount(tf.indices, minlength=len(vocab)).astype(np.float64)
        n = max(len(ids_arr), 1)
        self.idf_ = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
        self.ids_ = ids_arr
        self.n_fit_ = len(ids_arr)
        self.n_changed_ = 0
        self._set_matrix(self._saturate(tf))
        return self

    def update(self, fields: Fields, ids: Sequence[str] | np.ndarray) -> BM25Index:
        """Replace (or append) the rows of ``ids`` with the frozen statistics of the last fit."""
        self._check_fitted()
        ids_arr = _check_ids(ids)
        _check_fields(fields, self.field_weights_, len(ids_arr))
        if len(ids_arr) == 0:
            return self
        counts = {f: _count_matrix(fields[f], self.vocabulary_, len(ids_arr)) for f in self.field_weights_}
        lengths = {f: np.asarray(m.sum(axis=1)).ravel() for f, m in counts.items()}
        new_rows = self._saturate(self._pseudo_tf(counts, lengths))
        position = {str(e): i for i, e in enumerate(self.ids_)}
        keep = np.ones(len(self.ids_), dtype=bool)
        for e in ids_arr:
            if e in position:
                keep[position[e]] = False
        self.n_changed_ += len(ids_arr)
        self._rows_replace(keep, new_rows, ids_arr)
        return self

    def remove(self, ids: Sequence[str] | np.ndarray) -> int:
        """Drop the rows of ``ids`` (unknown ids are ignored); returns how many were removed."""
        self._check_fitted()
        gone = set(map(str, ids))
        keep = np.asarray([str(e) not in gone for e in self.ids_], dtype=bool)
        n = int((~keep).sum())
        if n:
            self.n_changed_ += n
            self._rows_replace(keep, sp.csr_matrix((0, len(self.terms_)), dtype=np.float32), np.empty(0, dtype=object))
        return n

    @property
    def drift_(self) -> float:
        self._check_fitted()
        return self.n_changed_ / max(self.n_fit_, 1)

    @property
    def needs_refit(self) -> bool:
        return self.drift_ > self.max_drift

    def _weights(self, fields: Fields) -> dict[str, float]:
        if self.field_weights is None:
            return {str(f): 1.0 for f in fields}
        return {str(f): float(w) for f, w in self.field_weights.items() if w > 0 and f in fields}

    def _pseudo_tf(self, counts: dict[str, sp.csr_matrix], lengths: dict[str, np.ndarray]) -> sp.csr_matrix:
        total: sp.csr_matrix | None = None
        for f, w in self.field_weights_.items():
            norm = 1.0 - self.b + self.b * lengths[f] / self.avg_len_[f]
            part = sp.diags(w / np.maximum(norm, 1e-9)).dot(counts[f])
            total = part if total is None else total + part
        assert total is not None
        return sp.csr_matrix(total, dtype=np.float32)

    def _saturate(self, tf: sp.csr_matrix) -> sp.csr_matrix:
        out = tf.copy()
        out.data = out.data * (self.k1 + 1.0) / (out.data + self.k1) * self.idf_[out.indices]
        out.eliminate_zeros()
        out.sort_indices()
        return out.astype(np.float32)

    def _set_matrix(self, rows: sp.csr_matrix) -> None:
        self.matrix_ = rows
        self._postings = rows.tocsc()

    def _rows_replace(self, keep: np.ndarray, new_rows: sp.csr_matrix, new_ids: np.ndarray) -> None:
        kept = self.matrix_[np.flatnonzero(keep)]
        self.ids_ = np.concatenate([self.ids_[keep], new_ids.astype(object)])
        self._set_matrix(sp.vstack([kept, new_rows], format="csr").astype(np.float32))

    # ------------------------------------------------------------------ search
    def query_vector(self, terms: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """(column indices, weights) of the known terms of a weighted query."""
        self._check_fitted()
        cols, vals = [], []
        for t, w in terms.items():
            j = self.vocabulary_.get(t)
            if j is not None and w > 0:
                cols.append(j)
                vals.append(float(w))
        return np.asarray(cols, dtype=np.int64), np.asarray(vals, dtype=np.float32)

    def scores(self, terms: Mapping[str, float]) -> np.ndarray:
        """BM25F score of every indexed document for one weighted query, float32 of shape (n_docs,)."""
        cols, vals = self.query_vector(terms)
        if len(cols) == 0:
            return np.zeros(len(self.ids_), dtype=np.float32)
        return np.asarray(self._postings[:, cols].dot(vals), dtype=np.float32).ravel()

    def search(self, queries: Sequence[Mapping[str, float]], top_k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``top_k`` documents per weighted query: (ids object array, scores float32), padded with None / -inf.

        Only documents with a positive score are returned; ties keep fit order.
        """
        self._check_fitted()
        if isinstance(queries, Mapping):
            raise TypeError("The 'queries' parameter of BM25Index.search must be a list of {term: weight} mappings.")
        if not (isinstance(top_k, int) and top_k >= 1):
            raise _param_error("top_k", "an int in the range [1, inf)", top_k)
        out_ids = np.full((len(queries), top_k), None, dtype=object)
        out_scores = np.full((len(queries), top_k), -np.inf, dtype=np.float32)
        for i, q in enumerate(queries):
            s = self.scores(q)
            top = top_positive(s, top_k)
            out_ids[i, : len(top)] = self.ids_[top]
            out_scores[i, : len(top)] = s[top]
        return out_ids, out_scores

    def document_terms(self, positions: np.ndarray, weights: np.ndarray | None = None) -> dict[str, float]:
        """Mean of the documents' L1-normalised term weights (optionally weighted): the RM3 feedback model."""
        self._check_fitted()
        rows = self.matrix_[np.asarray(positions, dtype=np.int64)]
        sums = np.asarray(rows.sum(axis=1)).ravel()
        w = np.ones(len(sums)) if weights is None else np.asarray(weights, dtype=np.float64)
        w = w / max(float(w.sum()), 1e-12)
        scaled = sp.diags(w / np.maximum(sums, 1e-12)).dot(rows)
        dist = np.asarray(scaled.sum(axis=0)).ravel()
        nz = np.flatnonzero(dist)
        return {str(self.terms_[j]): float(dist[j]) for j in nz}

    def position(self, ids: Sequence[str]) -> np.ndarray:
        """Row positions of ``ids`` (−1 for unknown ids)."""
        index = {str(e): i for i, e in enumerate(self.ids_)}
        return np.asarray([index.get(str(e), -1) for e in ids], dtype=np.int64)

    # ------------------------------------------------------------------ persistence
    def manifest(self) -> Manifest:
        self._check_fitted()
        return Manifest.build(
            _COMPONENT,
            config={**self.get_params(), "field_weights_": self.field_weights_},
            data_sha256=fingerprint_arrays(self.ids_.astype(str), self.matrix_.data, self.matrix_.indices),
            count=len(self.ids_),
            extra={
                "n_terms": len(self.terms_),
                "n_fit": self.n_fit_,
                "n_changed": self.n_changed_,
                "avg_len": self.avg_len_,
            },  # fmt: skip
        )

    def save(self, directory: Path) -> Path:
        """Write the index into ``directory`` atomically (arrays as .npy, terms as JSON, manifest)."""
        self._check_fitted()
        directory = Path(directory)
        with atomic_directory(directory) as staging:
            np.save(staging / "ids.npy", self.ids_.astype(str), allow_pickle=False)
            np.save(staging / "idf.npy", self.idf_, allow_pickle=False)
            for name in ("data", "indices", "indptr"):
                np.save(staging / f"{name}.npy", getattr(self.matrix_, name), allow_pickle=False)
            (staging / "terms.json").write_text(json.dumps(self.terms_.tolist(), ensure_ascii=False), "utf-8")
            self.manifest().write(staging)
        return directory

    @classmethod
    def load(cls, directory: Path) -> BM25Index:
        """Read an index written by :meth:`save`; raises ``ValueError`` when it is not a BM25Index."""
        directory = Path(directory)
        manifest = Manifest.read(directory)
        if manifest.component != _COMPONENT:
            raise ValueError(f"{directory} holds a {manifest.component!r}; expected a {_COMPONENT!r}.")
        cfg = manifest.config
        index = cls(k1=cfg["k1"], b=cfg["b"], field_weights=cfg["field_weights"], max_drift=cfg["max_drift"])
        index.field_weights_ = {str(k): float(v) for k, v in cfg["field_weights_"].items()}
        terms = json.loads((directory / "terms.json").read_text("utf-8"))
        index.terms_ = np.asarray(terms, dtype=object)
        index.vocabulary_ = {t: i for i, t in enumerate(terms)}
        index.idf_ = np.load(directory / "idf.npy", allow_pickle=False)
        index.ids_ = np.load(directory / "ids.npy", allow_pickle=False).astype(object)
        arrays = [np.load(directory / f"{n}.npy", allow_pickle=False) for n in ("data", "indices", "indptr")]
        matrix = sp.csr_matrix(tuple(arrays), shape=(len(index.ids_), len(terms)))
        index.avg_len_ = {str(k): float(v) for k, v in manifest.extra["avg_len"].items()}
        index.n_fit_ = int(manifest.extra["n_fit"])
        index.n_changed_ = int(manifest.extra["n_changed"])
        index._set_matrix(matrix)
        if len(index.ids_) != int(manifest.count or 0):
            raise ValueError(f"{directory}: {len(index.ids_)} ids but the manifest says {manifest.count}.")
        return index

    @property
    def n_items(self) -> int:
        self._check_fitted()
        return len(self.ids_)

    def _check_fitted(self) -> None:
        if not hasattr(self, "matrix_"):
            raise RuntimeError("This BM25Index instance is not fitted yet. Call 'fit' with the documents first.")

    def __repr__(self) -> str:
        return f"BM25Index(k1={self.k1}, b={self.b}, field_weights={self.field_weights})"


def top_positive(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest positive scores, best first, ties by position."""
    pos = np.flatnonzero(scores > 0)
    if len(pos) > k:
        part = np.argpartition(-scores[pos], k - 1)[:k]
        cut = scores[pos[part]].min()
        pos = pos[scores[pos] >= cut]  # keep every tie at the cut, then order exactly
    order = np.lexsort((pos, -scores[pos]))
    return pos[order][:k]


def _count_matrix(docs: Sequence[Sequence[str]], vocab: dict[str, int], n: int) -> sp.csr_matrix:
    rows, cols, vals = [], [], []
    for i, doc in enumerate(docs):
        for t, c in Counter(doc).items():
            j = vocab.get(t)
            if j is not None:
                rows.append(i)
                cols.append(j)
                vals.append(c)
    return sp.csr_matrix(
        (np.asarray(vals, dtype=np.float32), (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))),
        shape=(n, len(vocab)),
    )


def _check_ids(ids: Any) -> np.ndarray:
    if isinstance(ids, str):
        raise TypeError("The 'ids' parameter of BM25Index must be a sequence of str. Got a single str instead.")
    arr = np.asarray([str(e) for e in ids], dtype=object)
    if len(set(arr.tolist())) != len(arr):
        dup = sorted(e for e, c in Counter(arr.tolist()).items() if c > 1)[:5]
        raise ValueError(f"The 'ids' parameter of BM25Index must hold unique ids. Got duplicates such as {dup}.")
    return arr


def _check_fields(fields: Fields, weights: Mapping[str, float], n: int) -> None:
    if not isinstance(fields, Mapping):
        raise TypeError(f"The 'fields' parameter of BM25Index must map field names to token lists. Got {type(fields)}.")
    for f in weights:
        if f not in fields:
            raise ValueError(f"BM25Index: field {f!r} is missing; fields given: {sorted(fields)}.")
        if len(fields[f]) != n:
            raise ValueError(f"BM25Index: field {f!r} has {len(fields[f])} documents; expected {n} (one per id).")
