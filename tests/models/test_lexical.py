"""LexicalIndex: identical to scikit-learn's char TF-IDF, exact top-k against a naive search, persistence."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.feature_extraction.text import TfidfVectorizer

from models.lexical import LexicalIndex, key_to_ngram, ngram_keys
from models.manifest import Manifest, ManifestMismatchError

CORPUS = [
    "武汉光迅科技股份有限公司 光模块 光器件",
    "光纤  激光器\t芯片  研发与制造",
    "ABC Photonics 光通信 公司",
    "",
    "生物医药 创新药 临床试验",
    "光模块 光模块 光芯片 封装测试",
    "锂电池隔膜 湿法 产线",
    "硅光芯片 与 光模块 设计",
]
IDS = [f"e{i:02d}" for i in range(len(CORPUS))]
QUERIES = ["光模块公司", "激光芯片", "创新药", "xyz", "光"]


def make_corpus(n: int, random_state: int) -> list[str]:
    rng = np.random.default_rng(random_state)
    chars = np.array(list("光模块芯片激光器武汉科技公司电池材料生物医药软件制造通信器件研发"))
    return ["".join(rng.choice(chars, rng.integers(0, 30))) for _ in range(n)]


def sklearn_matrix(texts: list[str], index: LexicalIndex, **kwargs: object) -> tuple[np.ndarray, TfidfVectorizer]:
    sk = TfidfVectorizer(analyzer="char", ngram_range=index.ngram_range, **kwargs).fit(texts)  # type: ignore[arg-type]
    cols = [sk.vocabulary_[n] for n in index.get_feature_names_out()]
    return sk.transform(texts).toarray()[:, cols], sk


def naive_search(X: np.ndarray, Q: np.ndarray, ids: list[str], k: int) -> list[list[tuple[str, float]]]:
    out = []
    for q in Q:
        s = X @ q
        order = sorted((i for i in range(len(ids)) if s[i] > 0), key=lambda i: (-s[i], i))[:k]
        out.append([(ids[i], float(s[i])) for i in order])
    return out


@pytest.mark.parametrize("kwargs", [{}, {"ngram_range": (2, 3)}, {"sublinear_tf": True}, {"ngram_range": (1, 1)}])
def test_lexical_weights_equal_sklearn(kwargs: dict[str, object]) -> None:
    index = LexicalIndex(chunk_size=3, **kwargs).fit(CORPUS, IDS)  # type: ignore[arg-type]
    sk_kwargs = {k: v for k, v in kwargs.items() if k != "ngram_range"}
    expected, sk = sklearn_matrix(CORPUS, index, **sk_kwargs)
    assert sorted(sk.vocabulary_) == sorted(index.get_feature_names_out().tolist())
    assert_allclose(index.matrix_t_.T.toarray(), expected, rtol=1e-5, atol=1e-7)
    q_expected = sk.transform(QUERIES).toarray()[:, [sk.vocabulary_[n] for n in index.get_feature_names_out()]]
    assert_allclose(index.transform(QUERIES).toarray(), q_expected, rtol=1e-5, atol=1e-7)


def test_lexical_search_matches_naive_reference(random_seed: int) -> None:
    corpus = make_corpus(300, random_seed)
    ids = [f"e{i:03d}" for i in range(300)]
    queries = make_corpus(10, random_seed + 1) + ["光模块", "无关"]
    index = LexicalIndex(chunk_size=64).fit(corpus, ids)
    got_ids, got_scores = index.search(queries, 15)
    X = index.matrix_t_.T.toarray()
    want = naive_search(X, index.transform(queries).toarray(), ids, 15)
    for r, w in enumerate(want):
        assert got_ids[r, : len(w)].tolist() == [i for i, _ in w]
        assert_allclose(got_scores[r, : len(w)], [s for _, s in w], rtol=1e-5)
        assert got_ids[r, len(w) :].tolist() == [None] * (15 - len(w))
        assert np.isneginf(got_scores[r, len(w) :]).all()
    assert got_ids.dtype == object and got_scores.dtype == np.float32


def test_lexical_search_pads_and_skips_non_matching() -> None:
    ids, scores = LexicalIndex().fit(CORPUS, IDS).search(["创新药", "xyz"], 3)
    assert ids.tolist() == [["e04", None, None], [None, None, None]]
    assert scores[0, 0] > 0 and np.isneginf(scores[0, 1:]).all()


def test_lexical_max_features_keeps_most_frequent() -> None:
    full = LexicalIndex().fit(CORPUS, IDS)
    capped = LexicalIndex(max_features=10).fit(CORPUS, IDS)
    counts = np.asarray((full.matrix_t_.T.toarray() > 0).sum(axis=0))  # not used for ranking, only sanity
    assert capped.n_features_ == 10 and counts.size == full.n_features_
    raw = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), use_idf=False, norm=None).fit(CORPUS)
    totals = dict(zip(raw.get_feature_names_out(), np.asarray(raw.transform(CORPUS).sum(axis=0)).ravel(), strict=True))
    kept = capped.get_feature_names_out().tolist()
    threshold = min(totals[n] for n in kept)
    assert all(totals[n] <= threshold for n in totals if n not in kept)
    assert LexicalIndex(min_df=2).fit(CORPUS, IDS).n_features_ == sum(
        1 for n in full.get_feature_names_out() if sum(n in c.lower() for c in CORPUS) >= 2
    )


def test_ngram_keys_round_trip() -> None:
    doc, keys = ngram_keys(["光模a", "b"], (1, 3))
    assert doc.tolist() == [0, 0, 0, 0, 0, 0, 1]
    assert [key_to_ngram(int(k)) for k in keys] == ["光", "光模", "光模a", "模", "模a", "a", "b"]


def test_lexical_save_load_round_trip(tmp_path: Path) -> None:
    index = LexicalIndex(chunk_size=4).fit(CORPUS, IDS)
    before = index.search(QUERIES, 4)
    index.save(tmp_path / "lexical")
    for mmap in (False, True):
        loaded = LexicalIndex.load(tmp_path / "lexical", mmap=mmap)
        after = loaded.search(QUERIES, 4)
        assert_array_equal(after[0], before[0])
        assert_array_equal(after[1], before[1])
        assert loaded.get_params() == index.get_params()
    manifest = Manifest.read(tmp_path / "lexical")
    assert (manifest.component, manifest.count, manifest.data_sha256) == ("LexicalIndex", 8, index.data_sha256_)
    with pytest.raises(
        ManifestMismatchError, match=re.escape("LexicalIndex manifest does not match: count: expected 9, found 8.")
    ):
        LexicalIndex.load(tmp_path / "lexical", expected={"count": 9})


def test_lexical_empty_corpus() -> None:
    index = LexicalIndex().fit([], [])
    ids, scores = index.search(["光模块"], 2)
    assert ids.tolist() == [[None, None]]
    assert index.search([], 2)[0].shape == (0, 2)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"ngram_range": (1, 4)},
            "The 'ngram_range' parameter of LexicalIndex must be a pair (min_n, max_n) with 1 <= min_n <= max_n <= 3. Got (1, 4) instead.",
        ),
        (
            {"max_features": 0},
            "The 'max_features' parameter of LexicalIndex must be an int in the range [1, inf) or None. Got 0 instead.",
        ),
        (
            {"min_df": None},
            "The 'min_df' parameter of LexicalIndex must be an int in the range [1, inf). Got None instead.",
        ),
    ],
)
def test_lexical_rejects_bad_parameters(params: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        LexicalIndex(**params).fit(CORPUS, IDS)  # type: ignore[arg-type]


def test_lexical_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match=re.escape("ids must be unique; duplicated: ['e00'].")):
        LexicalIndex().fit(CORPUS[:2], ["e00", "e00"])
    with pytest.raises(
        ValueError, match=re.escape("ids must be a 1-d sequence with one id per text (8); got shape (2,).")
    ):
        LexicalIndex().fit(CORPUS, IDS[:2])
    with pytest.raises(
        TypeError,
        match=re.escape("The 'queries' parameter of LexicalIndex must be a list of str. Got a single str instead."),
    ):
        LexicalIndex().fit(CORPUS, IDS).search("光模块", 3)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError,
        match=re.escape("The 'top_k' parameter of LexicalIndex must be an int in the range [1, inf). Got 0 instead."),
    ):
        LexicalIndex().fit(CORPUS, IDS).search(["光模块"], 0)
    with pytest.raises(
        RuntimeError,
        match=re.escape("This LexicalIndex is not fitted yet; call fit(texts, ids) or LexicalIndex.load(dir) first."),
    ):
        LexicalIndex().search(["光模块"], 3)


# ---------------------------------------------------------------- incremental updates
def assert_same_index(a: LexicalIndex, b: LexicalIndex) -> None:
    """Bit-for-bit the same documents, order and weights."""
    assert a.ids_.tolist() == b.ids_.tolist()
    assert a.matrix_t_.shape == b.matrix_t_.shape
    assert_array_equal(a.matrix_t_.indptr, b.matrix_t_.indptr)
    assert_array_equal(a.matrix_t_.indices, b.matrix_t_.indices)
    assert_array_equal(a.matrix_t_.data, b.matrix_t_.data)


def edit_corpus(texts: list[str], random_state: int) -> tuple[dict[int, str], list[str], list[str]]:
    """Edits of a few rows (some with n-grams unseen at fit time), new texts and removed row ids."""
    rng = np.random.default_rng(random_state)
    rows = rng.choice(len(texts), 12, replace=False)
    changed = {int(r): texts[int(r)][::-1] + ("量子雷达" if i % 2 else "") for i, r in enumerate(rows[:8])}
    removed = [f"d{int(r):03d}" for r in rows[8:]]
    new = make_corpus(5, random_state + 1)
    return changed, new, removed


@pytest.mark.parametrize("random_seed", [0, 1, 2])
def test_lexical_update_equals_refit_with_frozen_vocabulary(random_seed: int) -> None:
    texts = make_corpus(120, random_seed)
    ids = [f"d{i:03d}" for i in range(len(texts))]
    index = LexicalIndex(chunk_size=16).fit(texts, ids)
    vocabulary, idf = index.vocabulary_keys_.copy(), index.idf_.copy()
    changed, new, removed = edit_corpus(texts, random_seed)
    index.update([changed[r] for r in changed], [ids[r] for r in changed])
    index.update(new, [f"n{i}" for i in range(len(new))])
    assert index.remove([*removed, "unknown"]) == 4
    # the same corpus indexed afresh with the frozen vocabulary: edits in place, new ids at the end
    final = {ids[i]: changed.get(i, t) for i, t in enumerate(texts)} | {f"n{i}": t for i, t in enumerate(new)}
    for r in removed:
        del final[r]
    reference = LexicalIndex(chunk_size=7).fit(texts, ids).refit_documents(list(final.values()), list(final))
    assert_same_index(index, reference)
    assert_array_equal(index.vocabulary_keys_, vocabulary)
    assert_array_equal(index.idf_, idf)
    queries = [*QUERIES, "量子雷达", texts[3][:5]]
    got, want = index.search(queries, 10), reference.search(queries, 10)
    assert_array_equal(got[0], want[0])
    assert_array_equal(got[1], want[1])
    assert index.changed_since_fit_ == 8 + 5 + 4
    assert index.drift_ == pytest.approx(17 / 120)


def test_lexical_update_with_unchanged_texts_equals_fit() -> None:
    texts = make_corpus(60, 5)
    ids = [f"d{i:03d}" for i in range(len(texts))]
    fitted = LexicalIndex(chunk_size=9).fit(texts, ids)
    index = LexicalIndex(chunk_size=9).fit(texts, ids)
    index.update([texts[i] for i in (3, 40, 7)], [ids[i] for i in (3, 40, 7)])
    assert_same_index(index, fitted)


def test_lexical_update_ignores_ngrams_outside_the_vocabulary() -> None:
    index = LexicalIndex().fit(CORPUS, IDS)
    index.update(["量子雷达", "光模块 量子"], ["e02", "new"])
    assert index.search(["量子雷达"], 3)[0].tolist() == [[None, None, None]]
    ids, scores = index.search(["光模块"], 10)
    assert "new" in ids[0].tolist() and "e02" not in ids[0].tolist()
    assert index.ids_.tolist() == [*IDS, "new"]
    assert index.matrix_t_[:, 2].nnz == 0  # e02 now has no known n-gram: an empty row, still indexed


def test_lexical_drift_triggers_refit() -> None:
    texts = make_corpus(50, 3)
    ids = [f"d{i:03d}" for i in range(len(texts))]
    index = LexicalIndex(max_drift=0.1).fit(texts, ids)
    index.update(texts[:5], ids[:5])
    assert (index.drift_, index.needs_refit) == (0.1, False)
    index.remove(ids[5:6])
    assert (index.drift_, index.needs_refit) == (pytest.approx(0.12), True)
    index.fit(texts, ids)
    assert (index.changed_since_fit_, index.n_fit_docs_, index.needs_refit) == (0, 50, False)


def test_lexical_update_save_load_keeps_state(tmp_path: Path) -> None:
    index = LexicalIndex(chunk_size=4, max_drift=0.5).fit(CORPUS, IDS)
    fingerprint = index.data_sha256_
    index.update(["光模块 封装", "激光雷达"], ["e05", "e99"])
    index.remove(["e00"])
    assert index.data_sha256_ != fingerprint
    index.save(tmp_path / "lexical")
    for mmap in (False, True):
        loaded = LexicalIndex.load(tmp_path / "lexical", mmap=mmap)
        assert_same_index(loaded, index)
        assert (loaded.n_fit_docs_, loaded.changed_since_fit_, loaded.max_drift) == (8, 3, 0.5)
        assert loaded.data_sha256_ == index.data_sha256_
        loaded.update(["光纤 激光器"], ["e01"])  # a memory-mapped index updates into fresh arrays
        assert loaded.search(["光纤"], 1)[0].tolist() == [["e01"]]
    manifest = Manifest.read(tmp_path / "lexical")
    assert (manifest.count, manifest.extra["n_fit_docs"], manifest.extra["changed_since_fit"]) == (8, 8, 3)


def test_lexical_update_rejects_bad_inputs() -> None:
    index = LexicalIndex().fit(CORPUS, IDS)
    with pytest.raises(ValueError, match=re.escape("ids must be unique; duplicated: ['e01'].")):
        index.update(["a", "b"], ["e01", "e01"])
    with pytest.raises(
        ValueError,
        match=re.escape(
            "The 'max_drift' parameter of LexicalIndex must be a float in the range [0, inf). Got -0.1 instead."
        ),
    ):
        LexicalIndex(max_drift=-0.1).fit(CORPUS, IDS)
    with pytest.raises(
        RuntimeError,
        match=re.escape("This LexicalIndex is not fitted yet; call fit(texts, ids) or LexicalIndex.load(dir) first."),
    ):
        LexicalIndex().update(["光"], ["x"])
    assert index.update([], []) is index and index.remove([]) == 0
