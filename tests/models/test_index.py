"""ProfileIndex: exact search against a numpy oracle, approximate recall, removal, save/load."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from models.index import ProfileIndex, choose_index_kind
from models.manifest import Manifest, ManifestMismatchError


def make_vectors(n: int, dim: int = 16, random_state: int = 0, n_clusters: int = 0) -> np.ndarray:
    rng = np.random.default_rng(random_state)
    if n_clusters:
        centres = rng.standard_normal((n_clusters, dim))
        X = centres[rng.integers(0, n_clusters, n)] + 0.5 * rng.standard_normal((n, dim))
    else:
        X = rng.standard_normal((n, dim))
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def make_ids(n: int, start: int = 0) -> list[str]:
    return [f"91420100MA{i:08d}" for i in range(start, start + n)]


def naive_search(X: np.ndarray, ids: list[str], Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    S = Q @ X.T
    order = np.argsort(-S, axis=1, kind="stable")[:, :k]
    return np.asarray(ids, dtype=object)[order], np.take_along_axis(S, order, axis=1)


def test_flat_search_matches_naive_oracle(random_seed: int) -> None:
    X, ids = make_vectors(60, random_state=random_seed), make_ids(60)
    Q = make_vectors(5, random_state=random_seed + 1)
    got_ids, got_scores = ProfileIndex().fit(X, ids).search(Q, 7)
    want_ids, want_scores = naive_search(X, ids, Q, 7)
    assert_array_equal(got_ids, want_ids)
    assert_allclose(got_scores, want_scores, rtol=1e-5, atol=1e-6)
    assert got_ids.dtype == object
    assert got_scores.dtype == np.float32
    assert np.all(np.diff(got_scores, axis=1) <= 0)


def test_search_pads_when_fewer_than_top_k() -> None:
    X, ids = make_vectors(3), make_ids(3)
    got_ids, got_scores = ProfileIndex().fit(X, ids).search(X[:1], 5)
    assert got_ids[0, :3].tolist() == [ids[0], *naive_search(X, ids, X[:1], 3)[0][0, 1:].tolist()]
    assert got_ids[0, 3:].tolist() == [None, None]
    assert np.isneginf(got_scores[0, 3:]).all()


def test_empty_index_and_empty_queries() -> None:
    index = ProfileIndex().fit(np.zeros((0, 4), np.float32), [])
    ids, scores = index.search(np.ones((2, 4), np.float32) / 2, 3)
    assert ids.tolist() == [[None] * 3] * 2
    assert np.isneginf(scores).all()
    assert ProfileIndex().fit(make_vectors(4, 4), make_ids(4)).search(np.zeros((0, 4)), 2)[0].shape == (0, 2)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_kinds_recall_on_clustered_vectors(kind: str, random_seed: int) -> None:
    data = make_vectors(3020, 32, random_seed, n_clusters=30)  # queries from the same clusters
    X, Q, ids = data[:3000], data[3000:], make_ids(3000)
    want, _ = naive_search(X, ids, Q, 50)
    got, scores = ProfileIndex(kind=kind).fit(X, ids).search(Q, 50)  # type: ignore[arg-type]
    recall = np.mean([len(set(g) & set(w)) / 50 for g, w in zip(got, want, strict=True)])
    assert recall >= 0.95
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_remove_then_add(kind: str) -> None:
    X, ids = make_vectors(200, random_state=3, n_clusters=5), make_ids(200)
    index = ProfileIndex(kind=kind, nprobe=10_000).fit(X, ids)  # type: ignore[arg-type]
    assert index.remove([ids[0], ids[5], "not-there"]) == 2
    assert index.n_items == 198
    got, _ = index.search(X[[0, 5]], 198)
    assert ids[0] not in got.tolist()[0] + got.tolist()[1]
    assert ids[5] not in got.tolist()[0] + got.tolist()[1]
    keep = [i for i in range(200) if i not in (0, 5)]
    want, _ = naive_search(X[keep], [ids[i] for i in keep], X[[1]], 10)
    assert_array_equal(index.search(X[[1]], 10)[0], want)
    index.add(X[[0]], [ids[0]])
    assert index.search(X[[0]], 1)[0].tolist() == [[ids[0]]]
    assert index.n_items == 199


def test_add_rejects_existing_and_duplicate_ids() -> None:
    X, ids = make_vectors(5), make_ids(5)
    index = ProfileIndex().fit(X, ids)
    with pytest.raises(ValueError, match=re.escape(f"ids already in the index (remove them first): ['{ids[1]}'].")):
        index.add(X[:1], [ids[1]])
    with pytest.raises(ValueError, match=re.escape("ids must be unique; duplicated: ['x'].")):
        index.add(X[:2], ["x", "x"])


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_save_load_round_trip_identical(kind: str, tmp_path: Path) -> None:
    X, ids = make_vectors(300, random_state=1, n_clusters=6), make_ids(300)
    index = ProfileIndex(kind=kind, model_id="e5-small", revision="r1").fit(X, ids)  # type: ignore[arg-type]
    index.remove([ids[7]])
    index.add(make_vectors(2, random_state=9), make_ids(2, start=1000))
    Q = make_vectors(4, random_state=2)
    before = index.search(Q, 20)
    index.save(tmp_path / "dense")
    loaded = ProfileIndex.load(tmp_path / "dense", expected={"model_id": "e5-small", "dim": 16})
    after = loaded.search(Q, 20)
    assert_array_equal(after[0], before[0])
    assert_array_equal(after[1], before[1])
    assert loaded.get_params() == index.get_params()
    assert loaded.n_items == 301
    assert loaded.data_sha256_ == index.data_sha256_
    manifest = Manifest.read(tmp_path / "dense")
    assert (manifest.component, manifest.dim, manifest.count, manifest.revision) == ("ProfileIndex", 16, 301, "r1")
    loaded.remove([ids[8]])  # still editable after loading
    assert ids[8] not in loaded.search(X[[8]], 5)[0].tolist()[0]


def test_save_replaces_previous_version(tmp_path: Path) -> None:
    X = make_vectors(10)
    ProfileIndex().fit(X, make_ids(10)).save(tmp_path / "ix")
    ProfileIndex().fit(X[:4], make_ids(4, start=50)).save(tmp_path / "ix")
    assert ProfileIndex.load(tmp_path / "ix").n_items == 4
    assert len(list(tmp_path.iterdir())) == 2  # the link and one version


def test_load_refuses_other_model(tmp_path: Path) -> None:
    ProfileIndex(model_id="use-multilingual").fit(make_vectors(3), make_ids(3)).save(tmp_path / "ix")
    message = "ProfileIndex manifest does not match: model_id: expected 'e5-small', found 'use-multilingual'."
    with pytest.raises(ManifestMismatchError, match=re.escape(message)):
        ProfileIndex.load(tmp_path / "ix", expected={"model_id": "e5-small"})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"kind": "lsh"},
            "The 'kind' parameter of ProfileIndex must be one of ['flat', 'hnsw', 'ivf']. Got 'lsh' instead.",
        ),
        ({"hnsw_m": 1}, "The 'hnsw_m' parameter of ProfileIndex must be an int in the range [2, inf). Got 1 instead."),
        (
            {"nprobe": 0},
            "The 'nprobe' parameter of ProfileIndex must be an int in the range [1, inf) or None. Got 0 instead.",
        ),
        (
            {"ef_search_factor": 0.5},
            "The 'ef_search_factor' parameter of ProfileIndex must be a float in the range [1, inf). Got 0.5 instead.",
        ),
    ],
)
def test_fit_rejects_bad_parameters(params: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ProfileIndex(**params).fit(make_vectors(3), make_ids(3))  # type: ignore[arg-type]


def test_fit_and_search_reject_bad_inputs() -> None:
    X = make_vectors(3)
    with pytest.raises(
        ValueError, match=re.escape("rows must be L2-normalised (inner product = cosine); rows [1] have norms [2.0].")
    ):
        ProfileIndex().fit(X * np.array([[1], [2], [1]], np.float32), make_ids(3))
    with pytest.raises(
        ValueError, match=re.escape("ids must be a 1-d sequence with one id per vector (3); got shape (2,).")
    ):
        ProfileIndex().fit(X, make_ids(2))
    with pytest.raises(ValueError, match=re.escape("ids must be non-empty str; positions [1] are [None].")):
        ProfileIndex().fit(X, ["a", None, "c"])
    index = ProfileIndex().fit(X, make_ids(3))
    with pytest.raises(
        ValueError, match=re.escape("Q must be a numeric array of shape (n, 16); got float32 array of shape (2, 8).")
    ):
        index.search(np.zeros((2, 8), np.float32), 3)
    with pytest.raises(
        ValueError,
        match=re.escape("The 'top_k' parameter of ProfileIndex must be an int in the range [1, inf). Got 0 instead."),
    ):
        index.search(X, 0)
    with pytest.raises(
        RuntimeError,
        match=re.escape("This ProfileIndex is not fitted yet; call fit(X, ids) or ProfileIndex.load(dir) first."),
    ):
        ProfileIndex().search(X, 1)


def test_choose_index_kind() -> None:
    assert choose_index_kind(200_000, 200_000) == "flat"
    assert choose_index_kind(200_001, 200_000) == "hnsw"
    assert choose_index_kind(200_001, 200_000, "ivf") == "ivf"
    with pytest.raises(
        ValueError, match=re.escape("choose_index_kind needs n >= 0 and threshold >= 1; got n=5, threshold=0.")
    ):
        choose_index_kind(5, 0)


def test_ivf_probes_more_lists_when_top_k_is_large_for_the_universe(random_seed: int) -> None:
    data = make_vectors(2010, 32, random_seed, n_clusters=20)
    X, Q, ids = data[:2000], data[2000:], make_ids(2000)
    want, _ = naive_search(X, ids, Q, 500)
    got, _ = ProfileIndex(kind="ivf").fit(X, ids).search(Q, 500)
    assert [set(g) for g in got] == [set(w) for w in want]  # every list probed: exact


def test_search_orders_ties_by_insertion() -> None:
    x = make_vectors(1, random_state=5)
    X = np.vstack([make_vectors(3, random_state=6), x, x, x])
    ids = ["a", "b", "c", "t1", "t2", "t3"]
    got, scores = ProfileIndex().fit(X, ids).search(x, 3)
    assert got.tolist() == [["t1", "t2", "t3"]]
    assert_allclose(scores, 1.0, rtol=1e-6)
