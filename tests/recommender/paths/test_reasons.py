"""Explanations: reasons from contributions with facts and evidence ids; sums; heuristic mode."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from recommender.paths.reasons import FEATURE_GROUPS, Explainer, contributions_of, explain
from recommender.settings import PathsConfig

AS_OF = pd.Timestamp("2025-07-01")
NODE = "optical_comm.optical_chip"


def tables() -> dict[str, pd.DataFrame]:
    enterprises = pd.DataFrame(
        {
            "enterprise_id": ["T", "LEAD", "U"],
            "name": ["苏州光芯科技", "长飞光纤", "无名公司"],
            "province": ["江苏省", "湖北省", "广东省"],
            "industry_code": ["3976", "3832", "5211"],
            "industry_name": ["光电子器件制造", "光纤制造", "百货零售"],
            "registered_capital_cny": [2.3e8, 1e9, 5e5],
            "employees": [320.0, 5000.0, 3.0],
            "listed": [False, True, False],
            "financing_round": ["B轮", None, "C轮"],
            "financing_date": pd.to_datetime(["2025-03-23", None, "2025-09-01"]),
        }
    )
    signals = pd.DataFrame(
        {
            "signal_id": ["S1", "S2", "S3", "S4", "S5"],
            "enterprise_id": ["T", "T", "T", "T", "T"],
            "signal_type": ["financing", "new_branch", "land_purchase", "financing", "financing"],
            "date": pd.to_datetime(["2025-03-23", "2024-03-15", "2025-05-01", "2022-06-01", "2025-08-01"]),
            "amount_cny": [1.2e8, None, 3e7, 5e7, 9e9],
            "province": [None, "湖北省", "江苏省", None, None],
        }
    )
    relations = pd.DataFrame(
        {
            "relation_id": ["R1", "R2", "R3", "R4"],
            "src_id": ["T", "F1", "U1", "T"],
            "dst_id": ["LEAD", "T", "T", "LEAD"],
            "relation_type": ["supplier", "fund_portfolio", "alumni", "supplier"],
            "date": pd.to_datetime(["2024-06-30", "2023-06-30", "2022-01-01", "2026-01-01"]),
        }
    )
    assets = pd.DataFrame(
        {"asset_id": ["F1", "U1"], "asset_type": ["fund", "university"], "name": ["光谷产业基金", "华中科技大学"]}
    )
    presence = pd.DataFrame({"enterprise_id": ["LEAD"], "node_id": ["x.y"], "year": [2025], "is_chain_leader": [True]})
    outcomes = pd.DataFrame(
        {
            "outcome_id": ["O1", "O2"],
            "enterprise_id": ["T", "T"],
            "node_id": [NODE, NODE],
            "stage": ["接洽", "终止"],
            "date": pd.to_datetime(["2024-09-01", "2024-11-15"]),
        }
    )
    return {
        "enterprises": enterprises,
        "signals": signals,
        "relations": relations,
        "assets": assets,
        "presence": presence,
        "outcomes": outcomes,
    }


def nodes() -> pd.DataFrame:
    return pd.DataFrame({"node_id": [NODE], "name": ["光芯片"], "industry_codes": [["3976", "3973"]]})


def map_df() -> pd.DataFrame:
    return pd.DataFrame({"node_id": [NODE], "colour": ["red"], "gap": [0.85]})


ROW = {
    "enterprise_id": "T",
    "node_id": NODE,
    "dense_score": 0.8123,
    "dense_rank": 3.0,
    "lexical_score": float("nan"),
    "distance_km": 840.4,
    "neighbour_province": 0.0,
    "age_years": 8.24,
}
CONTRIB = {
    "dense_score": 0.30,
    "dense_rank": 0.05,
    "financing_round": 0.20,
    "signals_financing_180d": 0.22,
    "ties_leader": 0.25,
    "path_length": 0.05,
    "branches_in_zone_province": 0.12,
    "distance_km": -0.04,
    "industry_exact": 0.06,
    "log_capital": 0.01,
    "age_years": -0.02,
    "prior_contacts": -0.03,
    "terminated_365d": -0.015,
    "some_new_feature": 0.004,
    "bias": -0.1,
}


def test_explain_reasons_carry_facts_evidence_and_contributions():
    cfg = PathsConfig(explain_top_reasons=5)
    reasons = explain(ROW, CONTRIB, tables(), nodes(), map_df(), AS_OF, cfg, zone_province="湖北省")
    got = [(r.group, r.text, round(r.contribution or 0, 6), r.evidence) for r in reasons]
    assert got == [
        (
            "financing",
            "近180天完成B轮融资（金额1.20亿元）",
            0.42,
            {"signal_id": ["S1"]},
        ),
        ("similarity", "与节点描述相似度0.81（语义检索第3名）", 0.35, {}),
        (
            "ties",
            "为本地链主〈长飞光纤〉的上游供应商；为园区基金〈光谷产业基金〉的投资组合企业；创始人或高管为高校〈华中科技大学〉校友",
            0.3,
            {"relation_id": ["R1", "R2", "R3"]},
        ),
        ("geography", "已在湖北设立分支机构（2024-03）", 0.08, {"signal_id": ["S2"]}),
        ("industry", "国标行业3976（光电子器件制造）与节点行业代码一致", 0.06, {}),
        ("other", "其余5项特征合计", round(0.01 - 0.02 - 0.03 - 0.015 + 0.004, 6), {}),
    ]
    assert reasons[-1].features == ["age_years", "log_capital", "prior_contacts", "some_new_feature", "terminated_365d"]


def test_explain_reasons_sum_to_score_minus_bias(random_seed):
    rng = np.random.default_rng(random_seed)
    names = [f for fs in FEATURE_GROUPS.values() for f in fs] + ["unknown_a"]
    contrib = dict(zip(names, rng.normal(0, 0.3, len(names)).tolist(), strict=True))
    contrib["bias"] = 0.7
    score = math.fsum(contrib.values())
    for top in (1, 3, 20):
        reasons = explain(
            ROW,
            contrib,
            tables(),
            nodes(),
            map_df(),
            AS_OF,
            PathsConfig(explain_top_reasons=top),
            zone_province="湖北省",
        )
        assert math.fsum(r.contribution or 0.0 for r in reasons) + contrib["bias"] == pytest.approx(score, abs=1e-12)
        shown = [abs(r.contribution or 0.0) for r in reasons if r.group != "other"]
        assert shown == sorted(shown, reverse=True)


def test_explain_uses_only_records_before_as_of():
    reasons = explain(
        ROW,
        CONTRIB,
        tables(),
        nodes(),
        map_df(),
        "2024-01-01",
        PathsConfig(explain_top_reasons=20),
        zone_province="湖北省",
    )
    by_group = {r.group: r for r in reasons}
    assert by_group["financing"].text == "近一年无融资记录"  # S1 and the B round come later; S4 is too old
    assert by_group["ties"].evidence == {"relation_id": ["R2", "R3"]}
    assert by_group["history"].text == "此前无接洽记录"


def test_explain_history_and_negative_facts():
    contrib = {"prior_contacts": -0.3, "terminated_365d": -0.2, "distance_km": -0.1, "bias": 0.0}
    reasons = explain(ROW, contrib, tables(), nodes(), map_df(), AS_OF, zone_province="湖北省")
    assert [(r.group, r.text, r.evidence) for r in reasons] == [
        ("history", "此前有2条接洽记录（最近：2024-11 终止），近一年曾终止", {"outcome_id": ["O2", "O1"]}),
        ("geography", "已在湖北设立分支机构（2024-03）", {"signal_id": ["S2"]}),
    ]


def test_explain_heuristic_mode_lists_notable_facts():
    reasons = (
        Explainer(PathsConfig(explain_top_reasons=10), "湖北省")
        .fit(tables(), nodes(), map_df(), AS_OF)
        .explain(ROW, None)
    )
    assert [(r.group, r.text, r.contribution) for r in reasons] == [
        ("similarity", "与节点描述相似度0.81（语义检索第3名）", None),
        (
            "ties",
            "为本地链主〈长飞光纤〉的上游供应商；为园区基金〈光谷产业基金〉的投资组合企业；创始人或高管为高校〈华中科技大学〉校友",
            None,
        ),
        ("financing", "近180天完成B轮融资（金额1.20亿元）", None),
        ("expansion", "近一年有扩张动作：购地1次", None),
        ("geography", "已在湖北设立分支机构（2024-03）", None),
        ("industry", "国标行业3976（光电子器件制造）与节点行业代码一致", None),
        ("size", "注册资本2.30亿元，参保320人", None),
        ("history", "此前有2条接洽记录（最近：2024-11 终止），近一年曾终止", None),
    ]


def test_explain_future_financing_round_is_not_known():
    row = {**ROW, "enterprise_id": "U"}
    reasons = explain(
        row, {"financing_round": 0.1, "bias": 0.0}, tables(), nodes(), map_df(), AS_OF, zone_province="湖北省"
    )
    assert reasons[0].text == "近一年无融资记录"  # U's C round is dated after as_of


def test_contributions_of_reads_mapping_json_and_prefixed_columns():
    assert contributions_of({"contributions": {"a": 1, "bias": 0.5}}) == {"a": 1.0, "bias": 0.5}
    assert contributions_of({"contributions": '{"a": 2}'}) == {"a": 2.0}
    assert contributions_of({"contrib_a": 0.25, "contrib_bias": 0.1, "score": 1}) == {"a": 0.25, "bias": 0.1}
    assert contributions_of({"score": 1.0}) is None


def test_explain_sums_to_a_real_lightgbm_prediction(random_seed):
    """pred_contrib of a small LightGBM lambdarank model over the real feature names: the reasons of
    every row sum to the model's score minus its bias."""
    ranker_mod = pytest.importorskip("models.ranker")
    pairs = pytest.importorskip("features.pairs")
    rng = np.random.default_rng(random_seed)
    n = 120
    X = pd.DataFrame(rng.normal(size=(n, len(pairs.FEATURE_NAMES))), columns=pairs.FEATURE_NAMES)
    y = (X["dense_score"] + X["ties_leader"] + rng.normal(0, 0.5, n) > 0.5).astype(int).to_numpy()
    ranker = ranker_mod.Ranker(n_estimators=20, random_state=random_seed).fit(X, y, [30, 30, 30, 30])
    contrib = ranker.contributions(X)
    score = ranker.predict(X)
    ex = Explainer(PathsConfig(explain_top_reasons=4), "湖北省").fit(tables(), nodes(), map_df(), AS_OF)
    for i in range(n):
        c = contrib.iloc[i].to_dict()
        reasons = ex.explain({**ROW, **X.iloc[i].to_dict()}, c)
        assert len(reasons) <= 5
        total = math.fsum(r.contribution or 0.0 for r in reasons) + c["bias"]
        assert total == pytest.approx(score[i], abs=1e-9)
