"""The FAISS profile index: inner product on L2-normalised vectors, string enterprise ids.

FAISS holds row numbers (``int64``; ``IndexIDMap2`` for flat and HNSW, native ids for IVF); the
enterprise ids live in ``ids_``, one per row ever added (``None`` once removed). Row numbers are never reused, so a removal never
shifts anybody else's id.

Kinds (``kind``):

``flat``  exact search (``IndexFlatIP``); the default, and what :func:`choose_index_kind` picks
          up to the configured size. Build is a copy (1,000,000 × 384: 22 s, 1.6 GB);
          a single top-500 query scans everything (measured 0.8 s p50 at 1,000,000 on the shared
          2-core machine under load ~12; far less on an idle one); batched queries use BLAS.
``hnsw``  ``IndexHNSWFlat`` (M = ``hnsw_m``, efConstruction = ``ef_construction``); each search
          uses efSearch = max(``ef_search``, ``ef_search_factor`` × top_k). Removals are
          tombstones filtered with an ``IDSelector`` (HNSW cannot delete). Slow to build
          (100,000 vectors: 179 s) and needs efSearch = 3 × top_k for recall@500 ≥ 0.95.
``ivf``   ``IndexIVFFlat`` with ``nlist`` inverted lists (default √n, trained by k-means on at
          most 64 points per list) probing ``nprobe`` lists (default ``nlist // 4``, or more when
          those would hold fewer than ~10 × top_k vectors). Builds fast
          (1,000,000 vectors: 119 s) and supports real deletion: the better approximate kind here.

Measured recall@500 against exact search (``benchmarks/retrieval_scale.py``, synthetic clustered
384-d embeddings, 100 held-out queries; single-query p50 latency on the loaded 2-core machine):

- 100,000 vectors, HNSW efSearch 500 / 1000 / 1500: recall 0.848 / 0.930 / 0.959; 12 / 17 / 22 ms.
- 100,000 vectors, IVF nprobe 39 / 79 of 316 lists: recall 0.946 / 0.979; 5 / 14 ms.
- 1,000,000 vectors, IVF nprobe 31 / 250 of 1000 lists: recall 1.000 / 1.000; 16 / 127 ms.

The defaults (``ef_search_factor=3``, ``nprobe=nlist // 4``) are the smallest that reached 0.95 at
every measured size; recall depends on the data, so re-measure on real embeddings with
``retrieval_scale.py --vectors FILE.npy`` before lowering them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np

from models.manifest import Manifest, atomic_directory, fingerprint_arrays, fingerprint_bytes

if TYPE_CHECKING:
    import faiss

IndexKind = Literal["flat", "hnsw", "ivf"]
INDEX_KINDS: Final = ("flat", "hnsw", "ivf")
_COMPONENT: Final = "ProfileIndex"
_NORM_TOL: Final = 1e-3


def choose_index_kind(n: int, threshold: int, approximate: Literal["hnsw", "ivf"] = "hnsw") -> IndexKind:
    """``"flat"`` (exact) for up to ``threshold`` vectors, else the approximate kind."""
    if n < 0 or threshold < 1:
        raise ValueError(f"choose_index_kind needs n >= 0 and threshold >= 1; got n={n}, threshold={threshold}.")
    return "flat" if n <= threshold else approximate


def _param_error(name: str, expected: str, got: Any) -> ValueError:
    return ValueError(f"The {name!r} parameter of ProfileIndex must be {expected}. Got {got!r} instead.")


def _check_int(name: str, value: Any, low: int, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
        suffix = " or None" if optional else ""
        raise _param_error(name, f"an int in the range [{low}, inf){suffix}", value)


class ProfileIndex:
    """Nearest-neighbour search over enterprise profile vectors.

    Args:
        kind: ``"flat"`` (exact), ``"hnsw"`` or ``"ivf"``.
        hnsw_m: HNSW neighbours per node.
        ef_construction: HNSW build-time beam width.
        ef_search: HNSW minimum search beam width.
        ef_search_factor: HNSW beam width per requested neighbour (efSearch ≥ factor × top_k).
        nlist: IVF list count; None = √n at fit time.
        nprobe: IVF lists probed per query; None = nlist // 4, raised to lists holding about
            10 × top_k vectors when the universe is small.
        model_id: the embedding model the vectors come from (recorded in the manifest).
        revision: that model's revision (recorded in the manifest).
        random_state: seed of the IVF k-means and its training sample.
    """

    def __init__(
        self,
        kind: IndexKind = "flat",
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 128,
        ef_search_factor: float = 3.0,
        nlist: int | None = None,
        nprobe: int | None = None,
        model_id: str | None = None,
        revision: str | None = None,
        random_state: int = 0,
    ) -> None:
        self.kind = kind
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.ef_search_factor = ef_search_factor
        self.nlist = nlist
        self.nprobe = nprobe
        self.model_id = model_id
        self.revision = revision
        self.random_state = random_state

    # ------------------------------------------------------------ parameters
    def get_params(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "hnsw_m": self.hnsw_m,
            "ef_construction": self.ef_construction,
            "ef_search": self.ef_search,
            "ef_search_factor": self.ef_search_factor,
            "nlist": self.nlist,
            "nprobe": self.nprobe,
            "model_id": self.model_id,
            "revision": self.revision,
            "random_state": self.random_state,
        }

    def _validate_params(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise _param_error("kind", f"one of {list(INDEX_KINDS)}", self.kind)
        _check_int("hnsw_m", self.hnsw_m, 2)
        _check_int("ef_construction", self.ef_construction, 1)
        _check_int("ef_search", self.ef_search, 1)
        if not isinstance(self.ef_search_factor, int | float) or self.ef_search_factor < 1:
            raise _param_error("ef_search_factor", "a float in the range [1, inf)", self.ef_search_factor)
        _check_int("nlist", self.nlist, 1, optional=True)
        _check_int("nprobe", self.nprobe, 1, optional=True)

    # ------------------------------------------------------------ learning
    def fit(self, X: np.ndarray, ids: Sequence[str] | np.ndarray) -> ProfileIndex:
        """Build the index from vectors ``X`` (n, dim), L2-normalised rows, and their unique ids."""
        self._validate_params()
        X = _check_vectors(X, None)
        ids_arr = _check_ids(ids, len(X), set())
        self.dim_ = int(X.shape[1])
        self.nlist_ = self.nlist or max(1, min(int(round(math.sqrt(len(X)))), len(X)))
        self.index_ = self._new_index(X)
        self.ids_ = np.empty(0, dtype=object)
        self.alive_ = np.zeros(0, dtype=bool)
        self.row_of_: dict[str, int] = {}
        self.data_sha256_ = fingerprint_arrays(X, ids_arr)
        self._append(X, ids_arr)
        return self

    def _new_index(self, X: np.ndarray) -> faiss.Index:
        import faiss

        d = X.shape[1]
        inner: Any
        if self.kind == "flat":
            inner = faiss.IndexFlatIP(d)
        elif self.kind == "hnsw":
            inner = faiss.IndexHNSWFlat(d, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.ef_construction
        else:
            quantizer = faiss.IndexFlatIP(d)
            inner = faiss.IndexIVFFlat(quantizer, d, self.nlist_, faiss.METRIC_INNER_PRODUCT)
            inner.cp.seed = self.random_state
            inner.cp.min_points_per_centroid = 1  # small universes: no "too few points" warnings
            inner.train(self._training_sample(X))
            inner.nprobe = self._nprobe()
            return inner  # IVF stores arbitrary int64 ids and deletes them itself (IndexIDMap would misnumber)
        return faiss.IndexIDMap2(inner)

    def _training_sample(self, X: np.ndarray) -> np.ndarray:
        cap = 64 * self.nlist_  # faiss wants >= 39 points per list; more only slows k-means down
        if len(X) <= cap:
            return X
        rows = np.sort(np.random.default_rng(self.random_state).choice(len(X), cap, replace=False))
        return np.ascontiguousarray(X[rows])

    def _nprobe(self) -> int:
        return int(min(self.nlist_, self.nprobe or max(1, self.nlist_ // 4)))

    def _append(self, X: np.ndarray, ids: np.ndarray) -> None:
        start = len(self.ids_)
        rows = np.arange(start, start + len(X), dtype=np.int64)
        if len(X):
            self.index_.add_with_ids(X, rows)
        self.ids_ = np.concatenate([self.ids_, ids.astype(object)])
        self.alive_ = np.concatenate([self.alive_, np.ones(len(X), dtype=bool)])
        self.row_of_.update(zip(ids.tolist(), rows.tolist(), strict=True))

    def add(self, X: np.ndarray, ids: Sequence[str] | np.ndarray) -> ProfileIndex:
        """Add vectors with new ids (an id already in the index is an error: remove it first)."""
        self._check_fitted()
        X = _check_vectors(X, self.dim_)
        ids_arr = _check_ids(ids, len(X), self.row_of_.keys())
        self._append(X, ids_arr)
        self.data_sha256_ = fingerprint_bytes(
            self.data_sha256_.encode(), b"add", fingerprint_arrays(X, ids_arr).encode()
        )
        return self

    def remove(self, ids: Sequence[str] | np.ndarray) -> int:
        """Remove the given ids; returns how many were present (unknown ids are ignored)."""
        self._check_fitted()
        rows = np.array(sorted({self.row_of_[i] for i in map(str, ids) if i in self.row_of_}), dtype=np.int64)
        if len(rows) == 0:
            return 0
        if self.kind != "hnsw":  # HNSW cannot delete: its rows stay as tombstones, filtered at search
            import faiss

            self.index_.remove_ids(faiss.IDSelectorBatch(rows))
        for r in rows.tolist():
            del self.row_of_[self.ids_[r]]
        self.ids_[rows] = None
        self.alive_[rows] = False
        self.data_sha256_ = fingerprint_bytes(self.data_sha256_.encode(), b"remove", fingerprint_arrays(rows).encode())
        return len(rows)

    # ------------------------------------------------------------ search
    @property
    def n_items(self) -> int:
        """Number of ids currently searchable."""
        self._check_fitted()
        return len(self.row_of_)

    def search(self, Q: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``top_k`` nearest profiles of each query vector, best first.

        Args:
            Q: (n_queries, dim) float32 query vectors (L2-normalised).
            top_k: neighbours per query.

        Returns:
            ``ids``: object array (n_queries, top_k) of enterprise ids, ``None`` where fewer exist;
            ``scores``: float32 (n_queries, top_k) inner products, ``-inf`` where padded. Equal
            scores are ordered by insertion (fit order), as in ``LexicalIndex``.
        """
        self._check_fitted()
        _check_int("top_k", top_k, 1)
        Q = _check_vectors(Q, self.dim_, name="Q", check_norm=False)
        nq = len(Q)
        ids = np.full((nq, top_k), None, dtype=object)
        scores = np.full((nq, top_k), -np.inf, dtype=np.float32)
        if nq == 0 or not self.row_of_:
            return ids, scores
        dist, rows = self.index_.search(Q, top_k, params=self._search_params(top_k))
        order = np.lexsort((np.where(rows >= 0, rows, np.iinfo(np.int64).max), -dist), axis=-1)  # ties: fit order
        dist, rows = np.take_along_axis(dist, order, axis=1), np.take_along_axis(rows, order, axis=1)
        found = rows >= 0
        ids[found] = self.ids_[rows[found]]
        scores[found] = dist[found]
        return ids, scores

    def _search_params(self, top_k: int) -> Any:
        import faiss as faiss_module

        faiss: Any = faiss_module  # the SWIG stubs lack the search-parameter classes

        if self.kind == "hnsw":
            ef = max(self.ef_search, int(math.ceil(self.ef_search_factor * top_k)))
            params = faiss.SearchParametersHNSW(efSearch=ef)
            if not self.alive_.all():
                self._selector = faiss.IDSelectorBitmap(np.packbits(self.alive_, bitorder="little"))
                params.sel = self._selector
            return params
        if self.kind == "ivf":
            nprobe = self._nprobe()
            if self.nprobe is None:  # small universes: probe enough lists to hold ~10 x top_k vectors
                nprobe = min(self.nlist_, max(nprobe, math.ceil(10 * top_k * self.nlist_ / max(len(self.ids_), 1))))
            return faiss.SearchParametersIVF(nprobe=nprobe)
        return None

    # ------------------------------------------------------------ persistence
    def manifest(self) -> Manifest:
        self._check_fitted()
        return Manifest.build(
            _COMPONENT,
            libraries=("faiss-cpu", "numpy"),
            config=self.get_params() | {"nlist_": self.nlist_},
            model_id=self.model_id,
            revision=self.revision,
            data_sha256=self.data_sha256_,
            dim=self.dim_,
            count=self.n_items,
            extra={"rows": len(self.ids_), "tombstones": int((~self.alive_).sum())},
        )

    def save(self, directory: Path) -> Path:
        """Write ``index.faiss``, ``ids.npy``, ``alive.npy`` and ``manifest.json``; replaces ``directory`` atomically."""
        import faiss

        self._check_fitted()
        with atomic_directory(Path(directory)) as staging:
            faiss.write_index(self.index_, str(staging / "index.faiss"))
            np.save(staging / "ids.npy", np.array(["" if i is None else i for i in self.ids_], dtype=str))
            np.save(staging / "alive.npy", self.alive_)
            self.manifest().write(staging)
        return Path(directory)

    @classmethod
    def load(cls, directory: Path, expected: Mapping[str, Any] | None = None) -> ProfileIndex:
        """Read an index written by :meth:`save`.

        Args:
            directory: the saved folder.
            expected: manifest fields that must match (e.g. ``{"model_id": ..., "dim": 384}``).

        Raises:
            models.manifest.ManifestMismatchError: the folder holds another component or fields differ.
        """
        import faiss

        directory = Path(directory)
        manifest = Manifest.read(directory)
        manifest.check({"component": _COMPONENT, **(expected or {})})
        manifest.check_libraries(["faiss-cpu"])
        params = {k: v for k, v in manifest.config.items() if not k.endswith("_")}
        self = cls(**params)
        self._validate_params()
        self.index_ = faiss.read_index(str(directory / "index.faiss"))
        self.dim_ = int(self.index_.d)
        self.nlist_ = int(manifest.config["nlist_"])
        raw_ids = np.load(directory / "ids.npy", allow_pickle=False)
        self.alive_ = np.load(directory / "alive.npy", allow_pickle=False)
        self.ids_ = np.array(
            [i if a else None for i, a in zip(raw_ids.tolist(), self.alive_, strict=True)], dtype=object
        )
        self.row_of_ = {i: r for r, i in enumerate(self.ids_.tolist()) if i is not None}
        self.data_sha256_ = str(manifest.data_sha256)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "index_"):
            raise RuntimeError("This ProfileIndex is not fitted yet; call fit(X, ids) or ProfileIndex.load(dir) first.")

    def __repr__(self) -> str:
        n = len(self.row_of_) if hasattr(self, "row_of_") else "unfitted"
        return f"ProfileIndex(kind={self.kind!r}, n={n})"


def _check_vectors(X: Any, dim: int | None, name: str = "X", check_norm: bool = True) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2 or (dim is not None and X.shape[1] != dim) or X.dtype.kind not in "fiu":
        want = f"(n, {dim})" if dim is not None else "(n, dim)"
        raise ValueError(f"{name} must be a numeric array of shape {want}; got {X.dtype} array of shape {X.shape}.")
    X = np.ascontiguousarray(X, dtype=np.float32)
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or infinite values in {int((~np.isfinite(X).all(axis=1)).sum())} rows.")
    if check_norm and len(X):
        norms = np.linalg.norm(X, axis=1)
        bad = np.flatnonzero((np.abs(norms - 1) > _NORM_TOL) & (norms > 0))
        if len(bad):
            raise ValueError(
                f"{name} rows must be L2-normalised (inner product = cosine); rows {bad[:5].tolist()} have norms "
                f"{np.round(norms[bad[:5]], 4).tolist()}."
            )
    return X


def _check_ids(ids: Any, n: int, existing: Any) -> np.ndarray:
    arr = np.asarray(ids, dtype=object)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"ids must be a 1-d sequence with one id per vector ({n}); got shape {arr.shape}.")
    bad = [i for i, v in enumerate(arr.tolist()) if not isinstance(v, str) or not v]
    if bad:
        raise ValueError(f"ids must be non-empty str; positions {bad[:5]} are {[arr[i] for i in bad[:5]]!r}.")
    values, counts = np.unique(arr.astype(str), return_counts=True)
    dup = values[counts > 1].tolist()
    if dup:
        raise ValueError(f"ids must be unique; duplicated: {dup[:5]}.")
    clash = [v for v in arr.tolist() if v in existing]
    if clash:
        raise ValueError(f"ids already in the index (remove them first): {clash[:5]}.")
    return arr
