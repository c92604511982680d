"""What the demo prints about the gate and the first red node's list."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from recommender.cli.demo import _print_top_red, family_line


def test_family_line_names_the_winner_and_its_margin_over_the_runner_up() -> None:
    table = {"binary_ipw": {"ope_signings@20": 1.2}, "logistic": {"ope_signings@20": 0.8},
             "lambdarank": {"ope_signings@20": float("nan")}}  # fmt: skip
    line = family_line(table, "binary_ipw", 20)
    assert (
        line
        == "模型族：二分类·加权 胜出：验证期预期签约 ope_signings@20 = 1.200，次优 逻辑回归·加权 0.800，为其 1.500 倍"
    )
    assert "无其他模型族" in family_line({"binary": {"ope_signings@20": 0.5}}, "binary", 20)
    tied = {"binary": {"ope_signings@20": 1.0, "ope_signings@10": 0.9, "ope_signings@5": 0.6},
            "logistic": {"ope_signings@20": 1.0, "ope_signings@10": 0.9, "ope_signings@5": 0.5}}  # fmt: skip
    assert family_line(tied, "binary", 20).endswith(
        "ope_signings@5 = 0.600，次优 逻辑回归·加权 0.500，为其 1.200 倍（前20家打平，按前5家比较）"
    )


def test_top_red_list_says_how_many_fit_and_shows_probabilities(capsys: pytest.CaptureFixture[str]) -> None:
    map_df = pd.DataFrame({"node_id": ["n1", "n2"], "name": ["光芯片", "激光器"], "colour": ["red", "blue"],
                           "gap": [1.0, 0.5], "reason": ["本地无企业", "薄弱"]})  # fmt: skip
    reasons = json.dumps([{"text": "历次接洽：本节点 2022-10-12 终止"}], ensure_ascii=False)
    targets = pd.DataFrame({"node_id": ["n1", "n1"], "rank": [1, 2], "name": ["甲公司", "乙公司"],
                            "score": [0.501, 0.1234], "n_fit": [2, 2], "reasons": [reasons, "[]"],
                            "routes": ["[]", "[]"]})  # fmt: skip
    assert _print_top_red(map_df, targets) == "n1"
    out = capsys.readouterr().out
    assert "本节点匹配企业 2 家" in out and "50.1%" in out and "12.3%" in out and "历次接洽" in out
