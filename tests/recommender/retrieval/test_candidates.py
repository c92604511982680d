"""Candidate retrieval: union and source tags, graph sources, filters, day-one heuristic, free-text search."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from features.chains import NODE_COLUMNS
from features.profiles import enterprise_texts
from models.index import ProfileIndex
from models.lexical import LexicalIndex
from models.manifest import Manifest
from recommender.retrieval.candidates import (
    CANDIDATE_COLUMNS,
    HEURISTIC_WEIGHTS,
    RRF_K,
    adjacent_nodes,
    heuristic_score,
    retrieve_candidates,
    similarity_component,
    target_nodes,
)
from recommender.retrieval.index import (
    ProfileIndexBundle,
    build_profile_index,
    model_key,
    plan_index_update,
    profile_source_hashes,
)
from recommender.retrieval.search import search_text
from recommender.settings import RetrievalConfig

AS_OF = pd.Timestamp("2025-06-30")


class ScriptedIndex:
    """Returns fixed (id, score) lists, one per query in call order, padded like FAISS (None, -inf)."""

    def __init__(self, results: Sequence[Sequence[tuple[str, float]]]):
        self.results = results
        self.queries: list[object] = []

    def search(self, queries: object, top_k: int) -> tuple[np.ndarray, np.ndarray]:
        self.queries.append(queries)
        n = len(queries)  # type: ignore[arg-type]
        ids = np.full((n, top_k), None, dtype=object)
        scores = np.full((n, top_k), -np.inf, dtype=np.float32)
        for q in range(n):
            for j, (eid, sc) in enumerate(self.results[q][:top_k]):
                ids[q, j], scores[q, j] = eid, sc
        return ids, scores


class OneHotEncoder:
    model_id, revision, dim = "onehot", "r0", 4

    def encode(
        self, texts: Sequence[str], kind: str = "passage", batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        return np.eye(len(texts), self.dim, dtype=np.float32)


def make_nodes() -> pd.DataFrame:
    rows = [
        (
            "c",
            "光通信",
            "c.a",
            "光芯片",
            "upstream",
            "激光器芯片与探测器芯片",
            ["激光器芯片"],
            ["DFB"],
            ["3976"],
            ["c.b"],
            1.0,
        ),
        ("c", "光通信", "c.b", "光模块", "midstream", "光收发模块封装", ["光模块"], ["400G"], ["3976"], ["c.c"], 1.0),
        ("c", "光通信", "c.c", "通信设备", "downstream", "交换机与传输设备", ["交换机"], [], ["3921"], [], 1.0),
    ]
    return pd.DataFrame(rows, columns=NODE_COLUMNS)


def make_map() -> pd.DataFrame:
    return pd.DataFrame({"node_id": ["c.a", "c.b", "c.c"], "colour": ["red", "blue", "green"]})


def make_tables() -> dict[str, pd.DataFrame]:
    ids = [f"e{i}" for i in range(1, 11)]
    enterprises = pd.DataFrame(
        {
            "enterprise_id": ids,
            "name": [f"企业{i}" for i in range(1, 11)],
            "is_operating": [True] * 6 + [False, True, True, True],
            "founded": pd.to_datetime(["2010-01-01"] * 8 + ["2026-01-01", "2012-01-01"]),
            "registered_capital_cny": [1e7, 5e7, 1e8, 2e7, 3e7, 4e7, 1e6, 1e6, 1e6, np.nan],
            "employees": [100, 500, 1000, 50, 80, 90, 10, 10, 10, np.nan],
            "industry_code": ["3976", "3976", "3976", "3921", "3976", "3976", "3976", "3976", "3976", "3921"],
        }
    )
    presence = pd.DataFrame(
        {
            "enterprise_id": ["e6", "e10", "e3"],
            "node_id": ["c.a", "c.b", "c.b"],
            "year": [2024, 2024, 2024],
            "is_chain_leader": [False, True, False],
        }
    )
    relations = pd.DataFrame(
        {
            "relation_id": ["r1", "r2", "r3"],
            "src_id": ["e4", "e10", "e2"],
            "src_type": ["enterprise"] * 3,
            "dst_id": ["e10", "e1", "e10"],
            "dst_type": ["enterprise"] * 3,
            "relation_type": ["supplier", "supplier", "supplier"],
            "date": pd.to_datetime(["2023-01-01", "2023-01-01", "2026-01-01"]),
        }
    )
    signals = pd.DataFrame(
        {
            "signal_id": ["s1", "s2", "s3"],
            "enterprise_id": ["e5", "e2", "e4"],
            "signal_type": ["new_branch", "hiring", "capacity_expansion"],
            "date": pd.to_datetime(["2025-05-31", "2025-06-01", "2025-06-01"]),
        }
    )
    return {"enterprises": enterprises, "presence": presence, "relations": relations, "signals": signals}


def _run(tables: dict[str, pd.DataFrame] | None = None, **kw: object) -> tuple[pd.DataFrame, ScriptedIndex]:
    dense = ScriptedIndex([[("e1", 0.9), ("e2", 0.8), ("e6", 0.7), ("e7", 0.6)], [("e2", 0.5)]])
    lexical = ScriptedIndex([[("e2", 3.0), ("e3", 2.0), ("e8", 1.0), ("e9", 0.5), ("zz", 0.1)], [("e3", 1.0)]])
    config = RetrievalConfig(embedder="onehot", exclude_ids=["e8"], **kw)  # type: ignore[arg-type]
    out = retrieve_candidates(
        make_nodes(), make_map(), tables or make_tables(), OneHotEncoder(), dense, lexical, config, as_of=AS_OF
    )
    return out, lexical


def test_retrieve_candidates_unions_sources_with_tags() -> None:
    out, lexical = _run()
    assert list(out.columns) == CANDIDATE_COLUMNS
    a = out[out.node_id == "c.a"].set_index("enterprise_id")
    assert a["sources"].to_dict() == {
        "e1": "dense|chain_leader",
        "e2": "dense|lexical",
        "e3": "lexical",
        "e4": "chain_leader",
        "e5": "signal",
    }
    assert a.loc["e2", ["dense_score", "dense_rank", "lexical_score", "lexical_rank"]].tolist() == [
        pytest.approx(0.8),
        2.0,
        3.0,
        1.0,
    ]
    assert np.isnan(a.loc["e5", "dense_rank"]) and np.isnan(a.loc["e1", "lexical_score"])
    assert np.isnan(a.loc["e4", ["dense_score", "dense_rank", "lexical_score", "lexical_rank"]].astype(float)).all()
    assert lexical.queries[0][0].endswith("本地缺失")  # type: ignore[index]
    assert lexical.queries[0][1].endswith("本地薄弱")  # type: ignore[index]


def test_retrieve_candidates_adds_partners_of_leaders_at_adjacent_nodes() -> None:
    out, _ = _run()
    # the leader e10 sits at c.b, adjacent to c.a and c.c: e4 supplies it, e1 buys from it; e2's
    # relation is dated after as_of. c.c is green and not a target; c.b has no leader next to it.
    assert set(out.node_id) == {"c.a", "c.b"}
    leader_rows = out[out.sources.str.contains("chain_leader")]
    assert list(zip(leader_rows.node_id, leader_rows.enterprise_id, strict=True)) in (
        [("c.a", "e1"), ("c.a", "e4")],
        [("c.a", "e4"), ("c.a", "e1")],
    )
    b = out[out.node_id == "c.b"].set_index("enterprise_id")["sources"].to_dict()
    assert b == {"e2": "dense", "e5": "signal"}
    tables = make_tables()
    tables["presence"].loc[1, "node_id"] = "c.c"  # leader now next to c.b
    b2 = _run(tables)[0].query("node_id == 'c.b'").set_index("enterprise_id")["sources"].to_dict()
    assert b2 == {"e1": "chain_leader", "e2": "dense", "e4": "chain_leader", "e5": "signal"}


def test_retrieve_candidates_applies_every_filter() -> None:
    out, _ = _run()
    got = set(out.enterprise_id)
    # e6 in the zone at c.a; e7 not operating; e8 excluded; e9 founded after as_of; zz unknown;
    # e3 is in the zone at c.b but stays a candidate for c.a.
    assert got.isdisjoint({"e6", "e7", "e8", "e9", "zz"})
    assert ("c.a", "e3") in set(zip(out.node_id, out.enterprise_id, strict=True))
    assert ("c.b", "e3") not in set(zip(out.node_id, out.enterprise_id, strict=True))


def test_retrieve_candidates_respects_signal_window() -> None:
    out, _ = _run(signal_window_days=10)
    assert "e5" not in set(out.enterprise_id)  # its new_branch is 30 days before as_of


def test_retrieve_candidates_is_sorted_by_heuristic_within_node() -> None:
    out, _ = _run()
    for _, group in out.groupby("node_id"):
        assert np.all(np.diff(group["heuristic_score"].to_numpy()) <= 0)
    assert out.drop_duplicates(["node_id", "enterprise_id"]).shape[0] == len(out)


def test_target_nodes_uses_node_ids_over_the_map() -> None:
    assert target_nodes(make_nodes(), make_map()).node_id.tolist() == ["c.a", "c.b"]
    assert target_nodes(make_nodes(), make_map(), ["c.c"]).node_id.tolist() == ["c.c"]
    assert target_nodes(make_nodes(), None).node_id.tolist() == ["c.a", "c.b", "c.c"]
    with pytest.raises(
        ValueError, match=re.escape("unknown node ids ['c.x']; known node ids are ['c.a', 'c.b', 'c.c']")
    ):
        target_nodes(make_nodes(), None, ["c.x"])


def test_adjacent_nodes_are_symmetric() -> None:
    assert adjacent_nodes(make_nodes()) == {"c.a": {"c.b"}, "c.b": {"c.a", "c.c"}, "c.c": {"c.b"}}


def test_heuristic_score_matches_a_hand_computation() -> None:
    tables = make_tables()
    cands = pd.DataFrame(
        {
            "node_id": ["c.a", "c.a", "c.a"],
            "enterprise_id": ["e1", "e5", "e4"],
            "dense_rank": [1.0, np.nan, np.nan],
            "lexical_rank": [3.0, np.nan, np.nan],
            "sources": ["dense|lexical", "signal", "chain_leader"],
        }
    )
    got = heuristic_score(cands, tables, AS_OF)
    cap = pd.Series(tables["enterprises"]["registered_capital_cny"]).rank(pct=True).fillna(0)
    emp = pd.Series(tables["enterprises"]["employees"]).rank(pct=True).fillna(0)
    size = ((cap + emp) / 2).to_numpy()
    sim_e1 = (1 + (RRF_K + 1) / (RRF_K + 3)) / 2
    sig_e5 = 1 - np.exp(-np.exp(-30 / 180))
    sig_e4 = 1 - np.exp(-np.exp(-29 / 180))
    w = HEURISTIC_WEIGHTS
    expected = [
        w["similarity"] * sim_e1 + w["size"] * size[0],
        w["size"] * size[4] + w["signals"] * sig_e5,
        w["size"] * size[3] + w["signals"] * sig_e4 + w["ties"],
    ]
    assert_allclose(got.to_numpy(), expected, rtol=1e-9)
    assert_allclose(heuristic_score(cands, tables, AS_OF).to_numpy(), got.to_numpy(), rtol=0)


def test_similarity_component_uses_only_retrievers_in_use() -> None:
    cands = pd.DataFrame({"dense_rank": [np.nan, np.nan], "lexical_rank": [1.0, 61.0]})
    assert_allclose(similarity_component(cands).to_numpy(), [1.0, 61 / 121])


def test_heuristic_score_rejects_missing_columns() -> None:
    msg = "candidates is missing required columns ['sources']; got columns ['enterprise_id']."
    with pytest.raises(ValueError, match=re.escape(msg)):
        heuristic_score(pd.DataFrame({"enterprise_id": ["e1"]}), {}, None)


def test_search_text_needs_only_enterprises() -> None:
    ents = make_tables()["enterprises"][["enterprise_id", "name", "is_operating"]]
    lexical = ScriptedIndex([[("e7", 5.0), ("e2", 3.0), ("e1", 2.0)]])
    out = search_text("  光模塊  ", ents, None, None, lexical, RetrievalConfig(embedder="tfidf"), top_n=5)
    assert lexical.queries == [["光模块"]]
    assert out[["enterprise_id", "name", "sources"]].values.tolist() == [
        ["e2", "企业2", "lexical"],
        ["e1", "企业1", "lexical"],
    ]
    # fused similarity: lexical scores over the best hit before filtering (e7's 5.0), times 0.6
    assert out["score"].tolist() == pytest.approx([0.6 * 3.0 / 5.0, 0.6 * 2.0 / 5.0])


def test_search_text_rejects_empty_text() -> None:
    with pytest.raises(
        ValueError, match=re.escape("search text must contain at least one non-space character; got '  '")
    ):
        search_text("  ", pd.DataFrame({"enterprise_id": [], "name": []}), None, None, None, RetrievalConfig())


def test_model_key_is_path_safe() -> None:
    assert model_key("tfidf", None) == "tfidf"
    assert model_key("e5-small", OneHotEncoder()) == "onehot@r0"


# ---------------------------------------------------------------------------------- index updates
class HashEncoder:
    """Deterministic unit vectors from a text's sha256; counts the texts it encodes."""

    model_id, revision, dim = "hash", "r1", 16

    def __init__(self) -> None:
        self.n_texts = 0
        self._w = np.random.default_rng(0).normal(size=(32, self.dim)).astype(np.float32)

    def encode(
        self, texts: Sequence[str], kind: str = "passage", batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        self.n_texts += len(texts)
        raw = b"".join(hashlib.sha256(t.encode("utf-8")).digest() for t in texts)
        x = np.frombuffer(raw, dtype=np.uint8).reshape(len(texts), 32).astype(np.float32) - 127.5
        v = x @ self._w
        return v / np.linalg.norm(v, axis=1, keepdims=True)


WORDS = [
    "光模块",
    "激光器",
    "光纤",
    "芯片",
    "封装",
    "探测器",
    "交换机",
    "锂电池",
    "创新药",
    "显示面板",
    "传感器",
    "硅光",
]


def make_universe(n: int, random_state: int) -> pd.DataFrame:
    rng = np.random.default_rng(random_state)
    w = np.asarray(WORDS, dtype=object)[rng.integers(0, len(WORDS), size=(n, 3))]
    return pd.DataFrame(
        {
            "enterprise_id": [f"e{i:03d}" for i in range(n)],
            "name": [f"武汉{a}{b}有限公司{i}号" for i, (a, b) in enumerate(zip(w[:, 0], w[:, 1], strict=True))],
            "products": w[:, 1] + "、" + w[:, 2],
            "description": "专注于" + w[:, 2] + "的研发与生产",
        }
    )


def edited(universe: pd.DataFrame, rows: Sequence[int], new: int = 0, drop: Sequence[str] = ()) -> pd.DataFrame:
    out = universe.copy()
    out.loc[list(rows), "description"] = out.loc[list(rows), "description"] + "，新增量子雷达产线"
    extra = make_universe(len(out) + new, 99).tail(new)
    extra["enterprise_id"] = [f"n{i}" for i in range(new)]
    return pd.concat([out[~out["enterprise_id"].isin(list(drop))], extra], ignore_index=True)


def build(universe: pd.DataFrame, tmp_path: Path, encoder: HashEncoder | None, **kw: object) -> ProfileIndexBundle:
    config = RetrievalConfig(embedder="hash" if encoder else "tfidf", **kw)  # type: ignore[arg-type]
    return build_profile_index(universe, encoder, tmp_path / "index", tmp_path / "cache", config)


def build_info(tmp_path: Path, key: str) -> dict[str, object]:
    return dict(Manifest.read(tmp_path / "index" / key).extra["build"])


class FitCounter:
    """Counts full fits of the three indexes (monkeypatched ``fit``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from models.bm25 import BM25Index

        self.calls: list[str] = []
        for cls in (LexicalIndex, ProfileIndex, BM25Index):
            original = cls.fit

            def counted(self_: object, *a: object, _o: object = original, _n: str = cls.__name__) -> object:
                self.calls.append(_n)
                return _o(self_, *a)  # type: ignore[operator]

            monkeypatch.setattr(cls, "fit", counted)


def test_plan_index_update_finds_edited_new_and_removed() -> None:
    old = pd.DataFrame({"enterprise_id": ["a", "b", "c", "d"], "name": ["甲", "乙", "丙", "丁"]})
    new = pd.DataFrame({"enterprise_id": ["b", "a", "x", "d"], "name": ["乙", "甲2", "戊", "丁"]})
    plan = plan_index_update(
        old["enterprise_id"].to_numpy(object), profile_source_hashes(old),
        new["enterprise_id"].to_numpy(object), profile_source_hashes(new),
    )  # fmt: skip
    assert plan.changed.tolist() == [1, 2]
    assert plan.removed.tolist() == ["c"]
    hashes = profile_source_hashes(old)
    assert hashes.dtype == np.uint64 and hashes.tolist() == profile_source_hashes(old.copy()).tolist()
    with_missing = old.assign(products=[None, "光纤", np.nan, ""])
    assert len(set(profile_source_hashes(with_missing).tolist()) | set(hashes.tolist())) == 8


def test_build_profile_index_updates_few_changed_profiles_incrementally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    universe = make_universe(60, 0)
    encoder = HashEncoder()
    first = build(universe, tmp_path, encoder)
    key = first.model_key
    assert build_info(tmp_path, key) == {"lexical": "full: no saved index to update",
        "words": "full: no saved index to update", "dense": "full: no saved index to update", "rows_updated": 60,
        "rows_removed": 0, "lexical_drift": 0.0}  # fmt: skip
    after = edited(universe, [3, 17], new=2, drop=["e040"])
    fits = FitCounter(monkeypatch)
    encoder.n_texts = 0
    second = build(after, tmp_path, encoder)
    assert fits.calls == []  # neither index was refitted
    assert encoder.n_texts == 4  # only the edited and new profiles (no embed step ran before: cache misses)
    assert build_info(tmp_path, key) == {"lexical": "incremental", "words": "incremental", "dense": "incremental",
                                         "rows_updated": 4, "rows_removed": 1,
                                         "lexical_drift": round(5 / 60, 6)}  # fmt: skip
    # words: the edited and new rows re-segmented with the frozen statistics, the removed one gone
    assert second.words is not None and second.words.n_items == 61
    assert "e040" not in set(second.words.ids_) and {"n0", "n1"} <= set(second.words.ids_)
    assert (second.reused, second.n_profiles) == (False, 61)
    assert second.embed_stats is not None
    assert (second.embed_stats.n_texts, second.embed_stats.n_hits, second.embed_stats.n_misses) == (61, 57, 4)
    # lexical: exactly the first fit's vocabulary applied to the new corpus
    texts = enterprise_texts(after)
    reference = LexicalIndex(ngram_range=(1, 3)).fit(
        enterprise_texts(universe).tolist(), universe["enterprise_id"].tolist()
    )
    order = [*[i for i in universe["enterprise_id"] if i != "e040"], "n0", "n1"]
    reference.refit_documents(texts.loc[order].tolist(), order)
    queries = ["量子雷达 光模块", "武汉锂电池", "硅光芯片"]
    got, want = second.lexical.search(queries, 10), reference.search(queries, 10)
    assert got[0].tolist() == want[0].tolist()
    np.testing.assert_array_equal(got[1], want[1])
    # dense: each profile's own vector finds itself, the removed one is gone
    vectors = HashEncoder().encode(texts.tolist())
    ids, _ = second.dense.search(vectors, 1)  # type: ignore[union-attr]
    assert ids[:, 0].tolist() == texts.index.tolist()
    assert second.dense.n_items == 61  # type: ignore[union-attr]
    # the saved folder is what the next refresh reads: unchanged input -> reused, nothing fitted
    fits.calls.clear()
    third = build(after, tmp_path, encoder)
    assert (third.reused, fits.calls, third.fingerprint) == (True, [], second.fingerprint)


def test_build_profile_index_refits_when_drift_exceeds_the_threshold(tmp_path: Path) -> None:
    universe = make_universe(40, 1)
    build(universe, tmp_path, None, index_max_drift=0.1)
    build(edited(universe, range(3)), tmp_path, None, index_max_drift=0.1)
    assert build_info(tmp_path, "tfidf")["lexical"] == "incremental"
    bundle = build(edited(universe, range(6)), tmp_path, None, index_max_drift=0.1)
    info = build_info(tmp_path, "tfidf")
    assert info["lexical"] == "full: lexical drift 0.150 > index_max_drift 0.1"  # 3 earlier + 6 now (3 re-edited)
    assert (info["dense"], info["lexical_drift"]) == (None, 0.0)
    assert bundle.lexical.changed_since_fit_ == 0  # type: ignore[attr-defined]


def test_build_profile_index_rebuilds_a_corrupt_saved_index(tmp_path: Path) -> None:
    universe = make_universe(30, 2)
    encoder = HashEncoder()
    first = build(universe, tmp_path, encoder)
    folder = tmp_path / "index" / first.model_key
    (folder / "lexical" / "data.npy").write_bytes(b"not an array")
    (folder / "dense" / "index.faiss").write_bytes(b"")
    bundle = build(edited(universe, [1]), tmp_path, encoder)
    info = build_info(tmp_path, first.model_key)
    assert info["lexical"] == "full: saved lexical index unreadable (ValueError)"
    assert info["dense"] == "full: saved dense index unreadable (RuntimeError)"
    assert bundle.dense.n_items == 30  # type: ignore[union-attr]


def test_build_profile_index_rebuilds_when_the_dense_kind_changes(tmp_path: Path) -> None:
    universe = make_universe(30, 3)
    encoder = HashEncoder()
    kw = {"approximate_index_above": 40, "approximate_index_kind": "ivf", "index_max_drift": 0.5}
    build(universe, tmp_path, encoder, **kw)
    bundle = build(edited(universe, [], new=12), tmp_path, encoder, **kw)
    info = build_info(tmp_path, bundle.model_key)
    assert info["dense"] == "full: dense index kind flat -> ivf for 42 profiles"
    assert info["lexical"] == "incremental"


def test_build_profile_index_rebuilds_the_dense_index_with_too_many_tombstones(tmp_path: Path) -> None:
    universe = make_universe(20, 4)
    encoder = HashEncoder()
    build(universe, tmp_path, encoder, index_max_drift=0.5)
    bundle = build(edited(universe, range(6)), tmp_path, encoder, index_max_drift=0.5)
    assert build_info(tmp_path, bundle.model_key)["dense"] == "incremental"  # 6 dead rows of 26
    bundle = build(edited(universe, range(6, 12)), tmp_path, encoder, index_max_drift=0.3)
    info = build_info(tmp_path, bundle.model_key)
    # rows 0-5 edited back and 6-11 edited: 12 more rows re-added, 18 dead of 38; lexical 18 of 20 rows
    assert info["dense"] == "full: dense tombstones 0.474 > index_max_drift 0.3"
    assert info["lexical"] == "full: lexical drift 0.900 > index_max_drift 0.3"
    assert (bundle.dense.n_items, len(bundle.dense.ids_)) == (20, 20)  # type: ignore[union-attr]
