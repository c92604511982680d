"""Tests of the sample-zone generator (recommender/sample/generate.py): determinism, headers, dirt, outcomes, oracle."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features.chains import Chain, validate_chains
from features.ingest import ColumnMap, parse_column_map
from features.io import default_column_map, load_column_map
from features.validate import credit_code_check_char, is_valid_credit_code, valid_credit_codes
from recommender.sample import vocab as V
from recommender.sample.columns import builtin_raw_headers, raw_headers
from recommender.sample.generate import (
    DIRT,
    ORACLE_COLUMNS,
    PROGRESS_STAGES,
    SampleData,
    generate_sample,
    industry_label,
)

N = 1200
AS_OF = date(2026, 6, 30)
ROOT = Path(__file__).resolve().parents[3]
MAPS_DIR = ROOT / "configs" / "column_maps"


def make_chain(chain_id: str, name: str, n_nodes: int = 8) -> dict[str, object]:
    """A small valid chain: nodes n0..n{k-1}, stages by thirds, edges i -> i+3."""
    words = ["晶圆", "光纤", "激光器", "模组", "传感器", "芯片", "整机", "平台", "材料", "设备", "软件", "系统"]
    nodes = []
    for i in range(n_nodes):
        stage = "upstream" if i < 3 else "midstream" if i < 6 else "downstream"
        w = words[i % len(words)]
        nodes.append(
            {
                "id": f"{chain_id}.n{i}",
                "name": f"{name}{w}",
                "stage": stage,
                "description": f"研发制造{name}{w}及相关{w}组件，服务{name}产业。",
                "products": [f"{name}{w}", f"高端{w}"],
                "keywords": [w, f"{w}工艺"],
                "industry_codes": ["3976", "3979"],
                "downstream": [f"{chain_id}.n{i + 3}"] if i + 3 < n_nodes else [],
            }
        )
    return {"id": chain_id, "name": name, "nodes": nodes}


@pytest.fixture(scope="module")
def chains() -> list[Chain]:
    return validate_chains([make_chain("optic", "光通信"), make_chain("bio", "生物医药", 9)])


@pytest.fixture(scope="module")
def sample(chains: list[Chain]) -> SampleData:
    return generate_sample(chains, N, random_state=42)


def test_generate_sample_is_deterministic(chains: list[Chain], sample: SampleData) -> None:
    again = generate_sample(chains, N, random_state=42)
    for name, df in sample.tables().items():
        pd.testing.assert_frame_equal(df, again.tables()[name], obj=name)
    pd.testing.assert_frame_equal(sample.oracle, again.oracle)
    assert sample.manifest == again.manifest


def test_generate_sample_seed_changes_the_data(chains: list[Chain], sample: SampleData) -> None:
    other = generate_sample(chains, N, random_state=43)
    assert not sample.enterprises["统一社会信用代码"].equals(other.enterprises["统一社会信用代码"])


def _documented_headers() -> dict[str, list[str]]:
    """docs/design.md, "Raw formats": column map name -> the headers its bullet lists, in order."""
    section = (ROOT / "docs" / "design.md").read_text(encoding="utf-8").split("## Raw formats", 1)[1]
    out = {}
    for bullet in re.split(r"\n- ", section.split("\n## ", 1)[0]):
        found = re.search(r"map `([a-z-]+)`:(.*)", bullet, flags=re.S)
        if found is None:
            continue
        text = " ".join(found.group(2).split())
        while re.search(r"\([^()]*\)", text):  # notes like (YYYY-MM-DD), (e.g. `300万(美元)`)
            text = re.sub(r"\s*\([^()]*\)", "", text)
        text = re.split(r"[;.](?:\s|$)", text)[0]  # "; any other column → `extra`.", "`客户` rows …"
        out[found.group(1)] = [h.strip() for h in text.split(",")]
    return out


def _first_sources(cmap: ColumnMap) -> list[str]:
    """The map's source headers that fill a column no earlier header fills (its synonyms left out)."""
    filled: set[str] = set()
    out = []
    for rule in cmap.rules:
        if filled.isdisjoint(rule.targets):
            out.append(rule.source)
        filled.update(rule.targets)
    return out


def test_generate_sample_writes_the_column_maps_headers_in_the_documented_order(sample: SampleData) -> None:
    documented = _documented_headers()
    assert sorted(documented) == sorted(default_column_map(t) for t in sample.tables())
    for table, df in sample.tables().items():
        cmap = load_column_map(default_column_map(table), MAPS_DIR, table)
        first = _first_sources(cmap)
        headers = list(df.columns)
        if table == "enterprises":  # registry exports lead with the name; 曾用名 is unknown to the map (→ extra)
            assert headers == ["企业名称", *(h for h in first if h != "企业名称"), "曾用名"]
            assert headers[:-1] == documented[cmap.name]
        else:
            assert headers == first == documented[cmap.name], table
    assert list(sample.oracle.columns) == ORACLE_COLUMNS
    assert builtin_raw_headers() == raw_headers(
        {t: load_column_map(default_column_map(t), MAPS_DIR, t) for t in sample.tables()}
    )


def test_generate_sample_takes_the_headers_from_the_column_maps(chains: list[Chain], sample: SampleData) -> None:
    maps = {t: load_column_map(default_column_map(t), MAPS_DIR, t) for t in sample.tables()}
    maps["assets"] = parse_column_map(
        {"table": "assets", "columns": {"编号": "asset_id", "资产名称": "name", "类别": "asset_type", "名称": "name",
                                        "说明": "description", "环节": "node_id", "机构": "owner"}},
        name="other-assets",
    )  # fmt: skip
    other = generate_sample(chains, N, random_state=42, headers=raw_headers(maps))
    assert list(other.assets.columns) == ["编号", "资产名称", "类别", "说明", "环节", "机构"]
    pd.testing.assert_frame_equal(
        other.assets.set_axis(["资产编号", "名称", "资产类型", "简介", "节点编号", "发布方"], axis=1),
        sample.assets[["资产编号", "名称", "资产类型", "简介", "节点编号", "发布方"]],
    )
    pd.testing.assert_frame_equal(other.enterprises, sample.enterprises)


def test_generate_sample_uses_the_raw_vocabularies(sample: SampleData) -> None:
    assert set(sample.assets["资产类型"]) == {"基金", "高校", "实验室", "应用场景", "校友会"}
    assert set(sample.relations["关系类型"]) <= {
        "供应商",
        "客户",
        "股东",
        "投资方",
        "基金投资",
        "校友",
        "产学研合作",
        "母公司",
    }
    assert {"供应商", "客户", "基金投资", "校友", "产学研合作", "母公司"} <= set(sample.relations["关系类型"])
    assert set(sample.relations["源类型"]) | set(sample.relations["目标类型"]) == {"企业", "资产"}
    assert set(sample.signals["事件类型"]) == {"融资", "新设分支机构", "购地", "招聘", "扩产"}
    assert set(sample.outcomes["阶段"]) == {"线索", "接洽", "考察", "洽谈", "签约", "落地", "终止"}
    assert set(sample.enterprises["是否上市"]) == {"是", "否"}
    assert set(sample.presence["是否链主"]) == {"是", "否"}
    assert {"存续", "在业", "注销", "吊销"} <= set(sample.enterprises["登记状态"])
    weights = sample.relations["强度"]
    assert ((weights > 0) & (weights <= 1)).all()


def test_generate_sample_represents_every_node(chains: list[Chain], sample: SampleData) -> None:
    per_node = sample.manifest["enterprises_per_node"]
    assert sorted(per_node) == sorted(n.id for ch in chains for n in ch.nodes)
    assert min(per_node.values()) >= 3
    assert sample.manifest["counts"]["distractors"] / N >= 0.40


def test_generate_sample_zone_has_green_blue_and_red_nodes_per_chain(chains: list[Chain], sample: SampleData) -> None:
    colours = sample.manifest["designed_colours"]
    presence = sample.presence
    for ch in chains:
        assert {colours[n.id] for n in ch.nodes} == {"red", "blue", "green"}
    for node, colour in colours.items():
        rows = presence[presence["节点编号"] == node]
        if colour == "red":
            assert rows.empty
        elif colour == "blue":
            assert 1 <= rows["统一社会信用代码"].nunique() <= 4 and (rows["是否链主"] == "否").all()
        else:
            assert rows["统一社会信用代码"].nunique() >= 5 and (rows["是否链主"] == "是").any()
    assert set(presence["年度"]) == {2021, 2022, 2023, 2024, 2025}
    zone = sample.enterprises.set_index("统一社会信用代码").loc[presence["统一社会信用代码"].unique()]
    assert set(zone["所属省份"]) == {"湖北省"} and set(zone["所属城市"]) == {"武汉市"}


def test_generate_sample_credit_codes_are_valid_except_the_dirt(sample: SampleData) -> None:
    codes = sample.enterprises["统一社会信用代码"]
    valid = valid_credit_codes(codes)
    assert (~valid).sum() == sample.manifest["dirt"]["invalid_credit_code"] == round(DIRT["invalid_credit_code"] * N)
    good = codes[valid]
    assert all(credit_code_check_char(c[:17]) == c[17] for c in good)
    assert all(c.startswith("91") for c in good)


def test_generate_sample_region_codes_match_the_province(sample: SampleData) -> None:
    prefix = {c[0]: c[3][0][1][:2] for c in V.CITIES}
    e = sample.enterprises[valid_credit_codes(sample.enterprises["统一社会信用代码"])]
    assert (e["统一社会信用代码"].str.slice(2, 4) == e["所属省份"].map(prefix)).all()


def test_generate_sample_sprinkles_dirt_in_the_stated_proportions(sample: SampleData) -> None:
    dirt = sample.manifest["dirt"]
    for kind, rate in DIRT.items():
        assert dirt[kind] == round(rate * N), kind
    e = sample.enterprises
    assert len(e) == N + dirt["duplicate_rows"]
    assert e["统一社会信用代码"].duplicated().sum() == dirt["duplicate_rows"]
    text = e["企业简介"].fillna("") + e["主营产品"].fillna("") + e["经营范围"].fillna("")
    assert text.str.contains("[電術業產設備網]").sum() > 0
    assert text.str.contains("[０-９Ａ-Ｚａ-ｚ]").sum() > 0
    assert e["注册资本"].isin(V.UNPARSEABLE_CAPITAL).sum() == dirt["unparseable_capital"]
    assert e["成立日期"].str.contains("/").sum() == dirt["slash_dates"]
    assert e["注册资本"].str.contains("美元").any() and e["注册资本"].str.contains("亿").any()


def test_generate_sample_outcome_stages_are_valid_and_dated_increasingly(sample: SampleData) -> None:
    o = sample.outcomes
    assert o["记录编号"].is_unique
    assert (pd.to_datetime(o["日期"]) < pd.Timestamp(AS_OF)).all()
    for _, g in o.groupby(["统一社会信用代码", "节点编号"], sort=False):
        stages = list(g["阶段"])
        body = stages[:-1] if stages[-1] == "终止" else stages
        assert body == list(PROGRESS_STAGES[: len(body)]), stages
        assert "终止" not in body and not (stages[-1] == "终止" and len(body) == 6)
        assert pd.to_datetime(g["日期"]).is_monotonic_increasing and pd.to_datetime(g["日期"]).is_unique
    signed = o[o["阶段"].isin(["签约", "落地"])]
    assert signed["金额（万元）"].notna().all() and o.loc[~o.index.isin(signed.index), "金额（万元）"].isna().all()


def test_generate_sample_has_enough_history_to_learn(sample: SampleData) -> None:
    counts = sample.manifest["counts"]
    assert counts["approached_pairs"] >= 150
    assert counts["signed_pairs"] >= 8
    targets = {n for n, c in sample.manifest["designed_colours"].items() if c != "green"}
    assert set(sample.outcomes["节点编号"]) == targets


def test_generate_sample_oracle_correlates_with_signings(sample: SampleData) -> None:
    o = sample.outcomes
    key = ["统一社会信用代码", "节点编号"]
    reached = o[o["阶段"] != "终止"].groupby(key)["阶段"].agg(lambda s: max(PROGRESS_STAGES.index(x) for x in s))
    pairs = (
        reached.rename("reached")
        .reset_index()
        .rename(columns={"统一社会信用代码": "enterprise_id", "节点编号": "node_id"})
    )
    oracle = sample.oracle.astype({"node_id": str, "enterprise_id": str})
    m = pairs.merge(oracle, on=["node_id", "enterprise_id"], how="left")
    assert m["oracle_score"].notna().all()  # every approached pair is scored
    signed = m.loc[m["reached"] >= 4, "oracle_score"].mean()
    dropped = m.loc[m["reached"] == 0, "oracle_score"].mean()
    assert signed > 3 * dropped
    assert oracle[["node_id", "enterprise_id"]].duplicated().sum() == 0
    assert ((oracle["oracle_score"] > 0) & (oracle["oracle_score"] < 1)).all()


def test_generate_sample_records_are_dated_before_as_of(sample: SampleData) -> None:
    for name, col in (("signals", "日期"), ("relations", "日期"), ("outcomes", "日期")):
        assert (pd.to_datetime(sample.tables()[name][col]) < pd.Timestamp(AS_OF)).all(), name
    fin = sample.enterprises["最新融资日期"].replace("", None).dropna()
    assert (pd.to_datetime(fin) < pd.Timestamp(AS_OF)).all()


def test_generate_sample_as_of_moves_every_date(chains: list[Chain]) -> None:
    s = generate_sample(chains, 800, random_state=1, as_of=date(2024, 12, 31))
    assert s.manifest["as_of"] == "2024-12-31"
    assert (pd.to_datetime(s.outcomes["日期"]) < pd.Timestamp("2024-12-31")).all()
    assert set(s.presence["年度"]) == {2019, 2020, 2021, 2022, 2023}


def test_generate_sample_rejects_a_universe_too_small(chains: list[Chain]) -> None:
    with pytest.raises(ValueError, match=r"^n_enterprises must be at least \d+ for 17 chain nodes"):
        generate_sample(chains, 50, random_state=0)


@pytest.mark.parametrize(
    ("n", "seed", "message"),
    [
        (0, 0, "The 'n_enterprises' parameter of generate_sample must be an int in the range [1, inf). Got 0 instead."),
        (
            1.5,
            0,
            "The 'n_enterprises' parameter of generate_sample must be an int in the range [1, inf). Got 1.5 instead.",
        ),
        (
            100,
            -1,
            "The 'random_state' parameter of generate_sample must be an int in the range [0, inf). Got -1 instead.",
        ),
    ],
)
def test_generate_sample_rejects_bad_parameters(chains: list[Chain], n: object, seed: int, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        generate_sample(chains, n, random_state=seed)  # type: ignore[arg-type]


def test_generate_sample_rejects_no_chains() -> None:
    with pytest.raises(ValueError, match=re.escape("chains must hold at least one chain; got an empty list")):
        generate_sample([], 100, random_state=0)


def test_industry_label_names_class_or_division() -> None:
    assert industry_label("3976") == "C3976 光电子器件制造"
    assert industry_label("6520") == "I6520 集成电路设计"
    assert industry_label("3499") == "C3499 通用设备制造业"


def test_generate_sample_names_look_like_company_names(sample: SampleData) -> None:
    names = sample.enterprises["企业名称"].str.strip().str.replace("\u3000", "")
    assert names.str.endswith("有限公司").all()
    assert names.str.len().between(8, 40).all()
    assert is_valid_credit_code(sample.presence["统一社会信用代码"].iloc[0])


def test_generate_sample_text_names_every_node_products(chains: list[Chain], sample: SampleData) -> None:
    products = sample.enterprises["主营产品"].fillna("")
    for node in (n for ch in chains for n in ch.nodes):
        assert products.str.contains("|".join(map(re.escape, node.products))).any(), node.id


def test_generate_sample_signals_include_branches_in_hubei(sample: SampleData) -> None:
    branches = sample.signals[sample.signals["事件类型"] == "新设分支机构"]
    assert (branches["省份"] == "湖北省").any() and (branches["省份"] != "湖北省").any()
    financing = sample.signals[sample.signals["事件类型"] == "融资"]
    assert financing["金额（万元）"].gt(0).all() and financing["事件描述"].str.contains("融资").all()


def _hops_from_zone(sample: SampleData, max_hops: int) -> dict[str, int]:
    """Hops from the nearest zone asset or zone firm over the relations (either direction), up to ``max_hops``."""
    rel = sample.relations
    neighbours: dict[str, set[str]] = {}
    for a, b in zip(rel["源编号"], rel["目标编号"], strict=True):
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    frontier = set(sample.assets["资产编号"]) | set(sample.presence["统一社会信用代码"])
    dist = dict.fromkeys(frontier, 0)
    for hop in range(1, max_hops + 1):
        frontier = {b for a in frontier for b in neighbours.get(a, ())} - dist.keys()
        dist.update(dict.fromkeys(frontier, hop))
    return dist


def test_generate_sample_relations_reach_most_chain_firms_and_few_distractors(sample: SampleData) -> None:
    ents = sample.enterprises.drop_duplicates("统一社会信用代码")
    zone = set(sample.presence["统一社会信用代码"])
    outside = ents[~ents["统一社会信用代码"].isin(zone)]
    is_chain = outside["国标行业"].str[1:5].isin(["3976", "3979"])
    dist = _hops_from_zone(sample, 3)
    within = outside["统一社会信用代码"].isin(dist.keys())
    assert within[is_chain].mean() >= 0.65
    related = set(sample.relations["源编号"]) | set(sample.relations["目标编号"])
    assert outside.loc[~is_chain, "统一社会信用代码"].isin(related).mean() <= 0.10


def test_generate_sample_supply_ties_with_the_zone_stay_in_the_chain(sample: SampleData) -> None:
    from features.text import normalize_text

    chain_name = {"optic": "光通信", "bio": "生物医药"}
    zone_chain = {
        e: chain_name[n.split(".")[0]]
        for e, n in zip(sample.presence["统一社会信用代码"], sample.presence["节点编号"], strict=True)
    }
    scope = sample.enterprises.drop_duplicates("统一社会信用代码").set_index("统一社会信用代码")["经营范围"]
    supply = sample.relations[sample.relations["关系类型"].isin(["供应商", "客户"])]
    checked = 0
    for a, b in zip(supply["源编号"], supply["目标编号"], strict=True):
        if (a in zone_chain) == (b in zone_chain):
            continue
        local, other = (a, b) if a in zone_chain else (b, a)
        assert zone_chain[local] in normalize_text(scope[other]), (local, other)
        checked += 1
    assert checked >= 100


def test_generate_sample_vcs_co_invest_with_the_zone_funds(sample: SampleData) -> None:
    rel = sample.relations
    fund_backed = set(rel.loc[rel["关系类型"] == "基金投资", "目标编号"])
    zone = set(sample.presence["统一社会信用代码"])
    equity = rel[rel["关系类型"].isin(["投资方", "股东"]) & (rel["源类型"] == "企业")]
    syndicate = set(equity.loc[equity["目标编号"].isin(fund_backed - zone), "源编号"])
    co_invested = equity[equity["源编号"].isin(syndicate) & ~equity["目标编号"].isin(fund_backed | zone)]
    assert len(syndicate) >= 5 and co_invested["目标编号"].nunique() >= 20


def test_generate_sample_peripheral_industry_joins_the_node_supply_network() -> None:
    spec = make_chain("auto", "新能源汽车")
    spec["nodes"][7]["industry_codes"] = ["8111"]  # type: ignore[index]  # the class of the 汽车维修 distractors
    s = generate_sample(validate_chains([spec, make_chain("optic", "光通信")]), N, random_state=7)
    ents = s.enterprises.drop_duplicates("统一社会信用代码")
    repair = ents.loc[
        ents["国标行业"].str.startswith("O8111") & ents["主营产品"].str.contains("汽车维修|汽车美容|二手车"),
        "统一社会信用代码",
    ]
    catering = ents.loc[ents["国标行业"].str[1:5].isin(["6210", "6220", "6242"]), "统一社会信用代码"]
    supply = s.relations[s.relations["关系类型"].isin(["供应商", "客户"])]
    in_supply = set(supply["源编号"]) | set(supply["目标编号"])
    assert len(repair) >= 20 and repair.isin(in_supply).mean() >= 0.4
    assert catering.isin(in_supply).mean() == 0.0
