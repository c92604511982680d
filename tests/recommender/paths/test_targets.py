"""A target's reasons show its past approaches: per node the last stage, its date and 备注, first."""

from __future__ import annotations

import json

import pandas as pd

from features.ingest import empty_table
from features.schema import TABLES
from recommender.paths.reasons import Explainer
from recommender.paths.targets import build_targets, target_reasons

AS_OF = pd.Timestamp("2026-06-30")
CHIP, LASER, FIBER, PIC = "optical_comm.optical_chip", "laser.laser_chip", "optical_comm.fiber", "optical_comm.pic"


def tables() -> dict[str, pd.DataFrame]:
    enterprises = pd.DataFrame({"enterprise_id": ["T", "N"], "name": ["苏州光芯科技", "无记录公司"]})
    outcomes = pd.DataFrame(
        {
            "outcome_id": ["O1", "O2", "O3", "O4", "O5", "O6", "O7"],
            "enterprise_id": ["T"] * 7,
            "node_id": [CHIP, CHIP, LASER, LASER, FIBER, PIC, CHIP],
            "stage": ["接洽", "洽谈", "考察", "终止", "线索", "线索", "签约"],
            "date": pd.to_datetime(
                ["2023-03-01", "2023-05-02", "2024-01-10", "2024-11-15", "2022-01-01", "2021-01-01", "2026-08-01"]
            ),
            "note": [None, "对方有意来汉考察", None, "终止:暂无扩产计划", None, None, None],
        }
    )
    out: dict[str, pd.DataFrame] = {t: empty_table(t) for t in TABLES}
    return out | {"enterprises": enterprises, "outcomes": outcomes}


def nodes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "node_id": [CHIP, LASER, FIBER, PIC],
            "name": ["光芯片", "激光芯片", "光纤", "光子集成"],
            "industry_codes": [["3976"]] * 4,
        }
    )


def explainer() -> Explainer:
    return Explainer(None, "湖北省").fit(tables(), nodes(), None, AS_OF)


def test_past_approaches_list_each_node_with_its_last_stage_date_and_note_this_node_first() -> None:
    r = explainer().past_approaches("T", CHIP)
    assert r is not None
    assert (r.group, r.label, r.contribution) == ("approaches", "历次接洽", None)
    assert r.text == (
        "历次接洽：本节点〈光芯片〉2023-05-02 洽谈（备注：对方有意来汉考察）；"
        "〈激光芯片〉2024-11-15 终止（终止原因：暂无扩产计划）；〈光纤〉2022-01-01 线索等4个节点"
    )  # the signing of 2026-08 is after the as-of date
    assert r.evidence == {"outcome_id": ["O4", "O3", "O2", "O1", "O5", "O6"]}
    other = explainer().past_approaches("T", LASER)
    assert other is not None and other.text.startswith(
        "历次接洽：本节点〈激光芯片〉2024-11-15 终止（终止原因：暂无扩产计划）；〈光芯片〉"
    )
    assert explainer().past_approaches("N", CHIP) is None


def test_target_reasons_put_the_approaches_first_and_replace_the_heuristic_history_line() -> None:
    ex = explainer()
    heuristic = target_reasons(ex, {"enterprise_id": "T", "node_id": CHIP})
    assert heuristic[0].group == "approaches"
    assert "history" not in [r.group for r in heuristic]
    model = target_reasons(
        ex, {"enterprise_id": "T", "node_id": CHIP, "contrib_prior_contacts": 0.2, "contrib_bias": 0}
    )
    assert [(r.group, r.contribution) for r in model] == [("approaches", None), ("history", 0.2)]  # the sum holds
    assert [r.group for r in target_reasons(ex, {"enterprise_id": "N", "node_id": CHIP})] == [
        r.group for r in ex.explain({"enterprise_id": "N", "node_id": CHIP})
    ]


def test_build_targets_reasons_carry_the_past_approaches() -> None:
    scored = pd.DataFrame({"node_id": [LASER], "enterprise_id": ["T"], "score": [0.4], "rank": [1]})
    out = build_targets(scored, tables(), nodes(), as_of=AS_OF, zone_province="湖北省")
    reasons = json.loads(str(out["reasons"].iloc[0]))
    assert reasons[0]["text"].startswith("历次接洽：本节点〈激光芯片〉2024-11-15 终止（终止原因：暂无扩产计划）")
    assert reasons[0]["evidence"]["outcome_id"][0] == "O4"
