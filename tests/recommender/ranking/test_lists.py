"""The published lists: fit threshold, history exclusions, local extension, the per-firm cap, overlap."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from recommender.ranking.lists import (
    EXCLUDED_COLUMNS,
    NEAR_FIT_COLUMNS,
    NODE_COUNT_COLUMNS,
    build_lists,
    cap_lists,
    list_overlap,
)
from recommender.settings import RankingConfig

AS_OF = pd.Timestamp("2026-06-30")
CFG = RankingConfig(fit_threshold=0.5, max_lists_per_firm=3, exclude_terminated_months=24)


def scored(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["node_id", "enterprise_id", "score", "fit"])


def outcomes(rows: list[tuple[str, str, str, str, str | None]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["enterprise_id", "node_id", "stage", "date", "note"])
    return df.assign(outcome_id=[f"O{i}" for i in range(len(df))], date=pd.to_datetime(df["date"]))


def listed(lists_targets: pd.DataFrame) -> dict[str, list[str]]:
    return {str(n): list(g.sort_values("rank")["enterprise_id"]) for n, g in lists_targets.groupby("node_id")}


def node_counts(counts: pd.DataFrame, node: str, cols: list[str]) -> list[int]:
    row = counts[counts["node_id"] == node].iloc[0]
    return [int(row[c]) for c in cols]


# ---------------------------------------------------------------- fit threshold
def test_build_lists_never_lists_a_firm_below_the_fit_threshold_whatever_its_score() -> None:
    s = scored([("A", "HIGH", 1e6, 0.49), ("A", "F1", 0.2, 0.9), ("A", "F2", 0.1, 0.5), ("B", "HIGH", 1e6, 0.0)])
    out = build_lists(s, None, None, CFG, top_n=10, as_of=AS_OF)
    assert "HIGH" not in set(out.targets["enterprise_id"])
    assert listed(out.targets) == {"A": ["F1", "F2"]}  # fit exactly at the threshold fits
    assert out.targets["rank"].tolist() == [1, 2]
    assert out.targets["n_fit"].tolist() == [2, 2]
    cols = ["n_candidates", "n_below_fit", "n_fit", "n_listed"]
    assert node_counts(out.node_counts, "A", cols) == [3, 1, 2, 2]
    assert node_counts(out.node_counts, "B", cols) == [1, 1, 0, 0]
    assert list(out.node_counts.columns) == NODE_COUNT_COLUMNS


def test_build_lists_lists_may_be_shorter_than_top_n_and_say_how_many_fit(random_seed: int) -> None:
    rng = np.random.default_rng(random_seed)
    rows = [(f"N{n}", f"F{i}", float(rng.normal()), float(rng.uniform())) for n in range(4) for i in range(30)]
    s = scored(rows)
    out = build_lists(s, None, None, RankingConfig(fit_threshold=0.7, max_lists_per_firm=4), 10, AS_OF)
    fits = s[s["fit"] >= 0.7].groupby("node_id").size()
    for node, g in out.targets.groupby("node_id"):
        assert (g["n_fit"] == fits[node]).all()
        assert len(g) == min(10, fits[node])
        assert (g["fit"] >= 0.7).all()
        # propensity orders the firms that fit: the list is the best scores among them
        best = s[(s["node_id"] == node) & (s["fit"] >= 0.7)].nlargest(len(g), "score")["enterprise_id"].tolist()
        assert g.sort_values("rank")["enterprise_id"].tolist() == best


# ---------------------------------------------------------------- the cap
def test_cap_keeps_a_firm_in_its_best_fitting_lists_and_the_others_refill() -> None:
    # STAR tops every list; cap 3 keeps it where its fit is highest (A, B, C); D and E refill from the next firm
    rows = [(n, "STAR", 9.0, f) for n, f in zip("ABCDE", (0.95, 0.9, 0.8, 0.7, 0.6), strict=True)]
    rows += [(n, f"{n}{i}", 5.0 - i, 0.9) for n in "ABCDE" for i in range(3)]
    out = build_lists(scored(rows), None, None, CFG, top_n=2, as_of=AS_OF)
    assert listed(out.targets) == {
        "A": ["STAR", "A0"],
        "B": ["STAR", "B0"],
        "C": ["STAR", "C0"],
        "D": ["D0", "D1"],
        "E": ["E0", "E1"],
    }
    star = out.targets[out.targets["enterprise_id"] == "STAR"]
    assert set(star["also_fits"]) == {"D|E"}  # best fit first
    assert set(out.targets.loc[out.targets["enterprise_id"] != "STAR", "also_fits"]) == {""}
    assert out.capped.sort_values("node_id")[["node_id", "enterprise_id"]].values.tolist() == [
        ["D", "STAR"],
        ["E", "STAR"],
    ]
    assert out.node_counts.set_index("node_id")["n_capped"].to_dict() == {"A": 0, "B": 0, "C": 0, "D": 1, "E": 1}


def test_cap_counts_only_the_published_lists() -> None:
    # LOW fits five nodes but makes the top 2 of only two of them: nothing to cap, its fit order is irrelevant
    rows = [(n, "LOW", 1.0 if n in "DE" else -1.0, 0.9) for n in "ABCDE"]
    rows += [(n, f"{n}{i}", 2.0 - i * 2, 0.9) for n in "ABCDE" for i in range(2)]
    out = build_lists(scored(rows), None, None, RankingConfig(max_lists_per_firm=2), top_n=2, as_of=AS_OF)
    low = out.targets[out.targets["enterprise_id"] == "LOW"]
    assert sorted(low["node_id"]) == ["D", "E"]
    assert out.capped.empty


def test_cap_ties_are_broken_by_score_then_node_id() -> None:
    rows = [(n, "T", 9.0, 0.8) for n in "CBA"] + [("D", "T", 9.5, 0.8)]
    out = build_lists(scored(rows), None, None, RankingConfig(max_lists_per_firm=2), top_n=1, as_of=AS_OF)
    assert sorted(out.targets["node_id"]) == ["A", "D"]


def naive_cap(eligible: pd.DataFrame, cap: int, top_n: int) -> set[tuple[str, str]]:
    """Reference: the same rounds in plain Python loops."""
    cols = [eligible[c].tolist() for c in ("node_id", "enterprise_id", "score", "fit")]
    alive: dict[tuple[str, str], tuple[float, float]] = {
        (str(n), str(e)): (float(s), float(f)) for n, e, s, f in zip(*cols, strict=True)
    }  # (node, firm) -> (score, fit)
    while True:
        lists: dict[str, list[tuple[str, str]]] = {}
        for key in sorted(alive, key=lambda k: (k[0], -alive[k][0], k[1])):
            lists.setdefault(key[0], []).append(key)
        members: dict[str, list[tuple[str, str]]] = {}
        for keys in lists.values():
            for key in keys[:top_n]:
                members.setdefault(key[1], []).append(key)
        drop = []
        for keys in members.values():
            if len(keys) > cap:
                keys.sort(key=lambda k: (-alive[k][1], -alive[k][0], k[0]))
                drop += keys[cap:]
        if not drop:
            return {k for keys in lists.values() for k in keys[:top_n]}
        for key in drop:
            del alive[key]


@pytest.mark.parametrize("offset", range(5))
def test_cap_lists_matches_the_naive_rounds_and_holds(random_seed: int, offset: int) -> None:
    rng = np.random.default_rng(random_seed + offset)
    n = 400
    s = pd.DataFrame(
        {
            "node_id": rng.choice([f"N{i:02d}" for i in range(12)], n),
            "enterprise_id": rng.choice([f"F{i:02d}" for i in range(40)], n),
            "score": rng.normal(size=n).round(2),  # rounded: ties on score happen
            "fit": rng.uniform(size=n).round(1),  # and on fit
        }
    ).drop_duplicates(["node_id", "enterprise_id"])
    kept, capped = cap_lists(s, 2, 5)
    assert set(zip(kept["node_id"], kept["enterprise_id"], strict=True)) == naive_cap(s, 2, 5)
    assert kept.groupby("enterprise_id").size().max() <= 2
    assert (kept.groupby("node_id").size() <= 5).all()
    fit_of = {(str(n), str(e)): float(f) for n, e, f in zip(s["node_id"], s["enterprise_id"], s["fit"], strict=True)}
    for node, firm, fit in zip(capped["node_id"], capped["enterprise_id"], capped["fit"], strict=True):
        own = kept[kept["enterprise_id"] == firm]  # capped out only by its own better-fitting lists, cap of them
        assert len(own) == 2, node
        assert all(fit_of[(str(n), str(firm))] >= fit for n in own["node_id"])
    # a list shorter than top_n has no fitting firm left to take
    for node, g in kept.groupby("node_id"):
        if len(g) < 5:
            left = set(s.loc[s["node_id"] == node, "enterprise_id"]) - set(g["enterprise_id"])
            assert left <= set(capped.loc[capped["node_id"] == node, "enterprise_id"])


# ---------------------------------------------------------------- history
def test_signed_and_recently_terminated_pairs_are_excluded_and_reported() -> None:
    s = scored([("A", f, 1.0 - i / 10, 0.9) for i, f in enumerate(["SIGNED", "LANDED", "ENDED", "OLD", "BACK", "X"])])
    s = pd.concat([s, scored([("B", "SIGNED", 0.5, 0.9)])], ignore_index=True)
    o = outcomes(
        [
            ("SIGNED", "A", "接洽", "2024-01-05", None),
            ("SIGNED", "A", "签约", "2024-09-01", "签约5亿元"),
            ("SIGNED", "A", "终止", "2025-01-01", None),  # signed once: never a target again, whatever came after
            ("LANDED", "A", "落地", "2019-03-01", None),  # long ago still counts
            ("ENDED", "A", "洽谈", "2025-02-01", None),
            ("ENDED", "A", "终止", "2025-02-01", "终止：暂无扩产计划"),  # same day: the termination is the later
            ("OLD", "A", "终止", "2024-06-29", "预算不足"),  # 24 months and 1 day before as_of: not excluded
            ("BACK", "A", "终止", "2025-06-01", None),
            ("BACK", "A", "线索", "2026-01-10", None),  # approached again after the termination
            ("X", "A", "签约", "2026-07-01", None),  # after as_of: ignored
        ]
    )
    out = build_lists(s, o, None, CFG, top_n=10, as_of=AS_OF)
    ex = out.excluded
    assert list(ex.columns) == EXCLUDED_COLUMNS
    got = ex[["node_id", "enterprise_id", "reason_code", "stage"]].values.tolist()
    assert got == [
        ["A", "LANDED", "signed", "落地"],
        ["A", "SIGNED", "signed", "签约"],
        ["A", "ENDED", "terminated", "终止"],
    ]
    reasons = dict(zip(ex["enterprise_id"], ex["reason"], strict=True))
    assert reasons == {
        "LANDED": "已于2019-03-01落地，不再作为本节点目标",
        "SIGNED": "已于2024-09-01签约（备注：签约5亿元），不再作为本节点目标",
        "ENDED": "2025-02-01终止（终止原因：暂无扩产计划），24个月内不再推荐",
    }
    assert ex["score"].tolist() == pytest.approx([0.9, 1.0, 0.8])
    assert listed(out.targets) == {"A": ["OLD", "BACK", "X"], "B": ["SIGNED"]}  # the signing was at A only
    assert node_counts(out.node_counts, "A", ["n_excluded_signed", "n_excluded_terminated", "n_fit"]) == [2, 1, 3]
    assert (out.targets.loc[out.targets["node_id"] == "A", "n_fit"] == 3).all()


def test_terminated_without_a_note_says_so_and_the_window_follows_the_setting() -> None:
    s = scored([("A", "E", 1.0, 0.9)])
    o = outcomes([("E", "A", "终止", "2023-01-01", None)])
    assert build_lists(s, o, None, CFG, 10, AS_OF).excluded.empty
    out = build_lists(s, o, None, RankingConfig(exclude_terminated_months=48), 10, AS_OF)
    assert out.excluded["reason"].tolist() == ["2023-01-01终止（未注明终止原因），48个月内不再推荐"]


# ---------------------------------------------------------------- local firms
def test_a_firm_in_the_zone_at_another_node_goes_to_the_local_extension_list() -> None:
    s = scored([("A", "LOCAL", 9.0, 0.9), ("A", "OUT", 1.0, 0.9), ("A", "LOCAL2", 2.0, 0.3), ("A", "HERE", 5.0, 0.9)])
    presence = pd.DataFrame(
        {"enterprise_id": ["LOCAL", "LOCAL", "LOCAL2", "HERE"], "node_id": ["C", "B", "B", "A"], "year": 2026}
    )
    out = build_lists(s, None, presence, CFG, top_n=10, as_of=AS_OF)
    assert listed(out.targets) == {"A": ["OUT"]}
    assert out.targets["n_fit"].tolist() == [1]
    assert out.local_extension[["node_id", "enterprise_id", "rank", "n_local_fit", "zone_nodes"]].values.tolist() == [
        ["A", "LOCAL", 1, 1, "B|C"]
    ]  # LOCAL2 does not fit
    assert out.excluded[["enterprise_id", "reason_code", "reason"]].values.tolist() == [
        ["HERE", "in_zone_at_node", "已在园区本节点布局"]
    ]
    counts = out.node_counts.set_index("node_id").loc["A"]
    assert (counts["n_local_fit"], counts["n_local_listed"]) == (1, 1)


def test_local_firms_are_not_counted_by_the_cap() -> None:
    rows = [(n, "L", 9.0, 0.9) for n in "ABCD"] + [(n, "O", 1.0, 0.9) for n in "ABCD"]
    presence = pd.DataFrame({"enterprise_id": ["L"], "node_id": ["Z"], "year": [2026]})
    out = build_lists(scored(rows), None, presence, RankingConfig(max_lists_per_firm=2), 10, AS_OF)
    assert sorted(out.local_extension["node_id"]) == ["A", "B", "C", "D"]
    assert sorted(out.targets["node_id"]) == ["A", "B"]


# ---------------------------------------------------------------- to check (待核实)
def test_near_fit_holds_the_best_outside_firms_just_below_the_threshold_and_none_is_listed() -> None:
    rows = [("A", "FIT", 1.0, 0.9), ("A", "N1", 0.1, 0.45), ("A", "N2", 99.0, 0.30), ("A", "N3", 5.0, 0.30)]
    rows += [("A", "FAR", 50.0, 0.04), ("A", "SIGNED", 9.0, 0.40), ("A", "LOCAL", 9.0, 0.40), ("B", "N1", 1.0, 0.2)]
    presence = pd.DataFrame({"enterprise_id": ["LOCAL"], "node_id": ["Z"], "year": [2026]})
    history = outcomes([("SIGNED", "A", "签约", "2025-01-02", None)])
    cfg = RankingConfig(near_fit_per_node=2, near_fit_min=0.05)
    out = build_lists(scored(rows), history, presence, cfg, 10, AS_OF)
    assert list(out.near_fit.columns) == NEAR_FIT_COLUMNS
    # best fit first, then score (N2 before N3); FAR is under near_fit_min; signed and local firms are not "to check"
    assert out.near_fit[["node_id", "near_rank", "enterprise_id"]].values.tolist() == [
        ["A", 1, "N1"], ["A", 2, "N2"], ["B", 1, "N1"],
    ]  # fmt: skip
    assert listed(out.targets) == {"A": ["FIT"]}  # never in a list, whatever the score
    assert node_counts(out.node_counts, "A", ["n_near_fit", "n_below_fit"]) == [3, 6]  # all of N1, N2, N3; cut at 2
    off = build_lists(scored(rows), history, presence, RankingConfig(near_fit_per_node=0), 10, AS_OF)
    assert off.near_fit.empty and list(off.near_fit.columns) == NEAR_FIT_COLUMNS
    assert node_counts(off.node_counts, "A", ["n_near_fit"]) == [0]
    assert off.targets.equals(out.targets)


def test_a_threshold_at_or_below_near_fit_min_loads_and_leaves_nothing_to_check() -> None:
    rows = [("A", "F", 1.0, 0.9), ("A", "N", 1.0, 0.04), ("A", "Z", 1.0, 0.0)]
    for threshold in (0.0, 0.05):  # configs that loaded before 待核实 existed still load
        out = build_lists(scored(rows), None, None, RankingConfig(fit_threshold=threshold), 10, AS_OF)
        assert out.near_fit.empty
    assert listed(build_lists(scored(rows), None, None, RankingConfig(fit_threshold=0.0), 10, AS_OF).targets) == {
        "A": ["F", "N", "Z"]
    }


# ---------------------------------------------------------------- checks, empty input
def test_build_lists_rejects_missing_columns_and_a_bad_top_n() -> None:
    s = scored([("A", "E", 1.0, 0.9)])
    with pytest.raises(ValueError, match=re.escape("scored is missing required columns ['fit']; got columns")):
        build_lists(s.drop(columns="fit"), None, None, CFG, 10, AS_OF)
    with pytest.raises(ValueError, match=re.escape("top_n must be an int in the range [1, inf); got 0 instead.")):
        build_lists(s, None, None, CFG, 0, AS_OF)


def test_build_lists_of_no_candidates_is_empty_with_the_columns() -> None:
    out = build_lists(scored([]), outcomes([]), None, CFG, 10, AS_OF)
    assert out.targets.empty and out.local_extension.empty and out.excluded.empty
    assert list(out.excluded.columns) == EXCLUDED_COLUMNS
    assert {"rank", "n_fit", "also_fits"} <= set(out.targets.columns)
    assert out.near_fit.empty and list(out.near_fit.columns) == NEAR_FIT_COLUMNS


# ---------------------------------------------------------------- overlap
def test_list_overlap_counts_distinct_firms_and_mean_jaccard() -> None:
    t = pd.DataFrame(
        {
            "node_id": ["A", "A", "B", "B", "C"],
            "enterprise_id": ["x", "y", "y", "z", "q"],
            "rank": [1, 2, 1, 2, 1],
        }
    )
    got = list_overlap(t, k=20)
    # Jaccard: A-B 1/3, A-C 0, B-C 0 -> mean 1/9
    assert got == {
        "n_places": 5,
        "n_firms": 4,
        "firms_per_100_places": 80.0,
        "max_lists_per_firm": 2,
        "mean_jaccard_top20": round(1 / 9, 4),
    }
    assert list_overlap(t, k=1)["mean_jaccard_top1"] == 0.0
    assert list_overlap(t[t["node_id"] == "A"])["mean_jaccard_top20"] is None


# ---------------------------------------------------------------- settings
def test_ranking_settings_are_checked_once_and_name_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from recommender.settings import ConfigError, load_settings

    assert load_settings().ranking == RankingConfig()  # configs/default.yaml says the defaults
    monkeypatch.setenv("SANSETU_RANKING__FIT_THRESHOLD", "1.5")
    with pytest.raises(ConfigError, match=re.escape("ranking.fit_threshold: Input should be less than or equal to 1")):
        load_settings()
    monkeypatch.setenv("SANSETU_RANKING__FIT_THRESHOLD", "0.6")
    monkeypatch.setenv("SANSETU_RANKING__MAX_LISTS_PER_FIRM", "0")
    with pytest.raises(
        ConfigError, match=re.escape("ranking.max_lists_per_firm: Input should be greater than or equal to 1")
    ):
        load_settings()
