"""recommender.retrieval.fit: the fit features of constructed candidate lists and the accessors."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from features.words import WordSegmenter, chain_user_words
from recommender.retrieval.fit import FIT_FEATURES, FitModel, fit, fit_features, fit_scores


def make_nodes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "node_id": ["n1", "n2"],
            "name": ["光模块", "激光器"],
            "products": [["光模块", "光引擎"], ["激光器芯片"]],
            "keywords": [["硅光", "数通"], ["泵浦"]],
            "industry_codes": [["3976"], ["3976", "3562"]],
        }
    )


def make_enterprises() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "enterprise_id": ["a", "b", "c"],
            "name": ["武汉甲光模块有限公司", "乙激光器有限公司", "丙餐饮有限公司"],
            "products": ["光模块、光引擎", "激光器芯片", "火锅"],
            "business_scope": ["光模块研发；硅光技术服务", "激光器芯片制造", "餐饮服务"],
            "description": ["", "泵浦激光器", "数通"],
            "industry_code": ["3976", "3562", None],
        }
    )


def make_candidates() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "node_id": ["n1", "n1", "n1", "n2", "n2"],
            "enterprise_id": ["a", "b", "c", "b", "a"],
            "dense_rank": np.nan,
            "words_rank": [1.0, 2.0, np.nan, 1.0, 3.0],
            "lexical_rank": [2.0, np.nan, 3.0, 1.0, np.nan],
            "similarity": [0.9, 0.4, 0.1, 1.0, 0.2],
        }
    )


@pytest.fixture(scope="module")
def segmenter() -> WordSegmenter:
    return WordSegmenter(chain_user_words(make_nodes()))


def features(segmenter: WordSegmenter) -> pd.DataFrame:
    return fit_features(make_candidates(), make_nodes(), make_enterprises(), segmenter)


def test_fit_features_turn_ranks_into_bounded_log_ranks(segmenter: WordSegmenter) -> None:
    f = features(segmenter)
    assert list(f.columns) == ["node_id", "enterprise_id", *FIT_FEATURES]
    # n1: words list of 2 (a 1st, b 2nd), lexical list of 3 (a 2nd, c 3rd); n2: words of 3, lexical of 1
    np.testing.assert_allclose(f["words_logrank"], [0.0, np.log(2) / np.log(3), 1.0, 0.0, np.log(3) / np.log(4)])
    np.testing.assert_allclose(f["lexical_logrank"], [np.log(2) / np.log(4), 1.0, np.log(3) / np.log(4), 0.0, 1.0])
    np.testing.assert_allclose(f["dense_logrank"], 1.0)  # not in use
    np.testing.assert_allclose(
        f["best_logrank"], [0.0, np.log(2) / np.log(3), np.log(3) / np.log(4), 0.0, np.log(3) / np.log(4)]
    )
    np.testing.assert_allclose(f["retrieved_share"], [1.0, 0.5, 0.5, 1.0, 0.5])  # dense is not in use: 2 retrievers


def test_fit_features_count_whole_products_keywords_and_codes(segmenter: WordSegmenter) -> None:
    f = features(segmenter)
    np.testing.assert_allclose(f["product_share"], [1.0, 0.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(
        f["keyword_share"], [0.5, 0.0, 0.0, 0.0, 0.0]
    )  # 硅光 in a's scope; 泵浦 only in b's description
    np.testing.assert_allclose(f["name_hit"], [1.0, 0.0, 0.0, 1.0, 0.0])
    assert f["word_cover_full"].iloc[3] >= f["word_cover"].iloc[3] > 0
    assert f["word_cover"].iloc[0] > f["word_cover"].iloc[1] == 0.0
    assert f["code"].tolist() == ["agree", "disagree", "unknown", "agree", "agree"]


def test_fit_features_reject_missing_columns_and_unknown_nodes(segmenter: WordSegmenter) -> None:
    with pytest.raises(ValueError, match=re.escape("candidates is missing required columns ['enterprise_id']")):
        fit_features(make_candidates().drop(columns="enterprise_id"), make_nodes(), make_enterprises(), segmenter)
    with pytest.raises(ValueError, match=re.escape("nodes is missing required columns ['keywords', 'industry_codes']")):
        fit_features(make_candidates(), make_nodes().drop(columns=["keywords", "industry_codes"]), make_enterprises())
    with pytest.raises(ValueError, match=re.escape("candidates name nodes that nodes does not list: ['n2']")):
        fit_features(make_candidates(), make_nodes().iloc[:1], make_enterprises(), segmenter)


def toy_model() -> FitModel:
    grid = tuple(np.linspace(0.0, 1.0, 11))
    return FitModel(
        features=("best_logrank", "product_share"),
        coefficients=(-4.0, 5.0),
        intercept=-1.0,
        alpha=0.9,
        grid=grid,
        agree=grid,
        disagree=tuple(0.5 * g for g in grid),
    )


def test_fit_scores_order_by_rank_with_everything_else_equal(segmenter: WordSegmenter) -> None:
    cands = pd.DataFrame(
        {"node_id": "n1", "enterprise_id": ["a", "a2", "a3"], "words_rank": [1.0, 5.0, 20.0], "similarity": 0.5}
    )
    ents = pd.concat([make_enterprises().iloc[:1].assign(enterprise_id=e) for e in ("a", "a2", "a3")])
    got = fit_scores(cands, make_nodes(), ents, toy_model(), segmenter)
    assert got.is_monotonic_decreasing and got.iloc[0] > got.iloc[2]
    assert got.between(0, 1).all() and got.index.equals(cands.index)


def test_fit_of_one_pair_uses_the_same_path(segmenter: WordSegmenter) -> None:
    all_scores = fit_scores(make_candidates(), make_nodes(), make_enterprises(), toy_model(), segmenter)
    one = fit("n1", "b", make_candidates(), make_nodes(), make_enterprises(), toy_model(), segmenter)
    assert one == pytest.approx(all_scores.iloc[1])
    absent = fit("n2", "c", make_candidates(), make_nodes(), make_enterprises(), toy_model(), segmenter)
    assert absent < one  # not retrieved and no product: scored as such, not an error


def test_unknown_code_scores_as_agreeing_and_above_disagreeing(segmenter: WordSegmenter) -> None:
    ents = make_enterprises()
    cands = make_candidates().iloc[:1]
    scores = {
        code: fit_scores(cands, make_nodes(), ents.assign(industry_code=code), toy_model(), segmenter).iloc[0]
        for code in ("3976", None, "3562")
    }
    assert scores["3976"] == scores[None] > scores["3562"]


def test_the_default_model_in_configs_loads_and_scores(segmenter: WordSegmenter) -> None:
    from pathlib import Path

    import yaml

    data = yaml.safe_load((Path(__file__).parents[3] / "configs" / "fit_model.yaml").read_text(encoding="utf-8"))
    model = FitModel.from_dict(data)
    got = fit_scores(make_candidates(), make_nodes(), make_enterprises(), model, segmenter)
    assert got.between(0, 1).all()
    assert got.iloc[0] > got.iloc[2]  # a: first hit, both products, code agrees; c: a restaurant


def make_feature_world(n_firms: int = 400, random_state: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Fit features (``TEXT_FEATURES``, ``code``) of code families with a known truth: each chain firm
    is a candidate at three sibling nodes that share its code class and makes the products of one of
    them, where its texts match better; a quarter of the firms are outside industries (none fits,
    the code disagrees). Returns (features, truth)."""
    from recommender.retrieval.fit import TEXT_FEATURES

    rng = np.random.default_rng(random_state)
    rows, truth = [], []
    for f in range(n_firms):
        chain = rng.random() < 0.75
        true = int(rng.integers(0, 3)) if chain else -1
        for k in range(3):
            fits = k == true
            good = rng.uniform(0.5, 1.0, len(TEXT_FEATURES)) if fits else rng.uniform(0.0, 0.6, len(TEXT_FEATURES))
            row = dict(zip(TEXT_FEATURES, good, strict=True))
            for name in ("best_logrank", "mean_logrank"):  # a better match is a smaller log rank
                row[name] = 1.0 - row[name]
            rows.append({"node_id": f"n{(f + k) % 30:02d}", "enterprise_id": f"f{f}", **row,
                         "code": "agree" if chain else "disagree"})  # fmt: skip
            truth.append(float(fits))
    return pd.DataFrame(rows), np.asarray(truth)


def test_zone_fit_model_refits_on_the_universe_when_its_codes_allow_and_says_why_not_otherwise() -> None:
    from recommender.retrieval.fit import zone_fit_model

    features, truth = make_feature_world()
    default = toy_model()
    n_agree, n_disagree = int((features["code"] == "agree").sum()), int((features["code"] == "disagree").sum())

    same, info = zone_fit_model(features, default, refit=False, min_pairs=10)
    assert same is default and info["model"] == "default" and "fit_refit is off" in str(info["why"])

    same, info = zone_fit_model(features, default, refit=True, min_pairs=n_disagree + 1)
    assert same is default and info["model"] == "default"
    assert str(info["why"]) == (
        f"{n_agree} pairs whose code agrees and {n_disagree} whose code disagrees; a refit needs {n_disagree + 1} of each"
    )
    same, info = zone_fit_model(features.assign(code="unknown"), default, refit=True, min_pairs=10)
    assert same is default and (info["n_agree"], info["n_disagree"]) == (0, 0)  # no codes: nothing to refit on

    model, info = zone_fit_model(features, default, refit=True, min_pairs=100)
    assert info["model"] == "refit" and (info["n_agree"], info["n_disagree"]) == (n_agree, n_disagree)
    assert str(info["why"]).startswith(f"refitted on {n_agree} pairs whose code agrees and {n_disagree} whose")
    assert model.features == default.features and model.manifest["fitted_on"] == "the universe's own candidates"
    assert np.mean((model.predict(features) >= 0.5) == (truth == 1)) > 0.95  # the sibling that fits, not all three
    again, _ = zone_fit_model(features, default, refit=True, min_pairs=100)
    assert again.to_dict() == model.to_dict()  # deterministic


def test_zone_fit_scores_with_the_model_it_chose(segmenter: WordSegmenter) -> None:
    from recommender.retrieval.fit import zone_fit

    cands, nodes, ents = make_candidates(), make_nodes(), make_enterprises()
    got, model, info = zone_fit(cands, nodes, ents, toy_model(), refit=True, min_pairs=200, segmenter=segmenter)
    assert info["model"] == "default" and model is not None  # five pairs cannot refit
    pd.testing.assert_series_equal(got, fit_scores(cands, nodes, ents, model, segmenter))
