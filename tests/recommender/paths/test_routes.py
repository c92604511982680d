"""Approach routes: exact routes, themes, order and sentences on a hand-built zone; a brute-force
reference over networkx simple paths; every hop exists in the input relations."""

from __future__ import annotations

import json
import re

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from recommender.paths.graph import ZONE_KINDS, build_graph
from recommender.paths.routes import (
    ENTRY_THEMES,
    SCENARIO_MATCH,
    THEME_FOLLOW_RELATIONS,
    Hop,
    RouteFinder,
    find_routes,
    product_items,
    routes_for_targets,
    routes_json,
    scenario_overlap,
)
from recommender.paths.targets import build_targets
from recommender.paths.wording import hop_phrase
from recommender.settings import PathsConfig

AS_OF = pd.Timestamp("2025-06-30")
HALF = 730.0


def zone_tables() -> dict[str, pd.DataFrame]:
    """A small zone around target T (苏州光芯科技):

    * R1  T supplies the chain leader LEAD                       → 产业链招商, 1 hop
    * R2  fund F1 has E in its portfolio; R3 investor I invested in E; R4 I invested in T
                                                                  → 资本招商 (co-investor), 3 hops
    * R5  P is T's parent; R6 lab L1 collaborates with P          → 人才科创招商, 2 hops
    * R7  university U1: T's founders are alumni                  → 生态圈招商, 1 hop
    * R8  LEAD holds shares of X; R9 X supplies Q: Q is not a target here (noise)
    * R10 a relation dated after as_of (ignored)
    * scenario S1 asks for 800G光模块 (T's product)                → 场景招商
    """
    relations = pd.DataFrame(
        [
            ("R1", "T", "enterprise", "LEAD", "enterprise", "supplier", 0.9, "2025-06-30"),
            ("R2", "F1", "asset", "E", "enterprise", "fund_portfolio", 0.8, "2024-06-30"),
            ("R3", "I", "enterprise", "E", "enterprise", "investor", 0.5, "2025-06-30"),
            ("R4", "I", "enterprise", "T", "enterprise", "investor", 1.0, "2023-06-30"),
            ("R5", "P", "enterprise", "T", "enterprise", "parent", 1.0, "2025-06-30"),
            ("R6", "L1", "asset", "P", "enterprise", "lab_collaboration", 0.6, "2025-06-30"),
            ("R7", "U1", "asset", "T", "enterprise", "alumni", 0.4, "2025-06-30"),
            ("R8", "LEAD", "enterprise", "X", "enterprise", "shareholder", 0.7, "2025-06-30"),
            ("R9", "X", "enterprise", "Q", "enterprise", "supplier", 0.7, "2025-06-30"),
            ("R10", "F1", "asset", "T", "enterprise", "fund_portfolio", 1.0, "2025-12-31"),
        ],
        columns=["relation_id", "src_id", "src_type", "dst_id", "dst_type", "relation_type", "weight", "date"],
    )
    relations["date"] = pd.to_datetime(relations["date"])
    assets = pd.DataFrame(
        [
            ("F1", "fund", "光谷产业基金", "", None, ""),
            ("L1", "lab", "光谷实验室", "", None, ""),
            ("U1", "university", "华中科技大学", "", None, ""),
            (
                "S1",
                "scenario",
                "数据中心光互联示范",
                "采购800G光模块用于智算中心",
                "optical_comm.optical_module",
                "光谷智算中心",
            ),
            ("S2", "scenario", "智慧园区", "园区安防摄像头", None, "园区管委会"),
        ],
        columns=["asset_id", "asset_type", "name", "description", "node_id", "owner"],
    )
    presence = pd.DataFrame(
        {"enterprise_id": ["LEAD"], "node_id": ["optical_comm.fiber_cable"], "year": [2025], "is_chain_leader": [True]}
    )
    enterprises = pd.DataFrame(
        {
            "enterprise_id": ["T", "LEAD", "E", "I", "P", "X", "Q"],
            "name": ["苏州光芯科技", "长飞光纤", "武汉甲科技", "红杉资本", "光芯控股", "乙公司", "丙公司"],
            "products": ["800G光模块、DFB激光器芯片", "光纤", "", "", "", "", "摄像头"],
            "business_scope": ["", "", "", "", "", "", ""],
        }
    )
    return {"relations": relations, "assets": assets, "presence": presence, "enterprises": enterprises}


def zone_graph(as_of: pd.Timestamp | None = AS_OF) -> nx.MultiDiGraph:
    t = zone_tables()
    return build_graph(t["relations"], t["assets"], t["presence"], t["enterprises"], as_of=as_of)


def rec(days: float, floor: float = 0.2) -> float:
    return float(floor + (1 - floor) * 0.5 ** (days / HALF))


def test_find_routes_exact_routes_themes_order_sentences():
    t = zone_tables()
    cfg = PathsConfig(routes_per_target=10, recency_half_life_days=HALF, length_decay=0.8)
    routes = find_routes(zone_graph(), "T", "optical_comm.optical_module", tables=t, config=cfg, zone_province="湖北省")
    got = [(r.theme, r.entry_id, [h.relation_id for h in r.hops], r.sentence) for r in routes]
    assert got == [
        ("产业链招商", "LEAD", ["R1"], "经本地链主〈长飞光纤〉（〈苏州光芯科技〉为其上游供应商）对接"),
        (
            "场景招商",
            "S1",
            [None],
            "经应用场景〈数据中心光互联示范〉（发布方：光谷智算中心；〈苏州光芯科技〉主营产品“800G光模块”"
            "与场景需求匹配，字符重合度1.00）对接",
        ),
        (
            "人才科创招商",
            "L1",
            ["R6", "R5"],
            "经实验室〈光谷实验室〉（〈光芯控股〉与其开展产学研合作，〈苏州光芯科技〉为〈光芯控股〉的子公司）对接",
        ),
        ("生态圈招商", "U1", ["R7"], "经高校〈华中科技大学〉（〈苏州光芯科技〉的创始人或高管为其校友）对接"),
        (
            "资本招商",
            "F1",
            ["R2", "R3", "R4"],
            "经园区基金〈光谷产业基金〉（〈武汉甲科技〉为其投资组合企业，〈红杉资本〉为〈武汉甲科技〉的投资方，"
            "〈苏州光芯科技〉为〈红杉资本〉投资的企业）对接",
        ),
    ]
    scores = [r.score for r in routes]
    expected = [
        0.9,
        0.6,
        0.6 * 1.0 * 0.8,
        0.4,
        0.8 * rec(365) * 0.5 * 1.0 * rec(731) * 0.8**2,
    ]
    np.testing.assert_allclose(scores, expected, rtol=1e-12)
    assert routes[0].hops == [Hop("T", "supplier", "LEAD", "R1", "2025-06-30")]
    assert routes[1].hops == [Hop("S1", SCENARIO_MATCH, "T", None, None)]
    assert routes[1].evidence == {
        "matched_product": "800G光模块",
        "overlap": 1.0,
        "scenario_node_id": "optical_comm.optical_module",
    }


def test_find_routes_scenario_for_other_node_is_discounted_and_k_applies():
    t = zone_tables()
    cfg = PathsConfig(routes_per_target=2, recency_half_life_days=HALF)
    routes = find_routes(zone_graph(), "T", "optical_comm.optical_chip", tables=t, config=cfg, zone_province="湖北省")
    assert [(r.theme, round(r.score, 6)) for r in routes] == [("产业链招商", 0.9), ("场景招商", 0.48)]


def test_find_routes_respects_max_hops_and_as_of():
    t = zone_tables()
    cfg = PathsConfig(max_hops=2, routes_per_target=10, recency_half_life_days=HALF)
    routes = find_routes(zone_graph(), "T", tables=t, config=cfg, zone_province="湖北省")
    assert [r.entry_id for r in routes] == ["LEAD", "S1", "L1", "U1"]  # the 3-hop capital route is gone
    later = find_routes(zone_graph(as_of=None), "T", tables=t, config=cfg, zone_province="湖北省")
    assert later[0].hops == [Hop("F1", "fund_portfolio", "T", "R10", "2025-12-31")]  # R10 now counts


def test_find_routes_unknown_target_has_no_graph_routes():
    assert find_routes(zone_graph(), "NOPE", tables=zone_tables(), zone_province="湖北省") == []


def test_find_routes_hub_is_no_introducer():
    t = zone_tables()
    cfg = PathsConfig(routes_per_target=10, max_intermediate_degree=1)
    routes = find_routes(zone_graph(), "T", tables=t, config=cfg, zone_province="湖北省")
    assert "F1" not in [r.entry_id for r in routes]  # E and I have degree 2 > 1


def test_routes_for_targets_aligns_with_rows_and_serialises():
    t = zone_tables()
    targets = pd.DataFrame({"node_id": ["n1", "n1", "n2"], "enterprise_id": ["T", "Q", "T"]}, index=[10, 11, 12])
    cfg = PathsConfig(routes_per_target=1, recency_half_life_days=HALF)
    out = routes_for_targets(zone_graph(), targets, tables=t, config=cfg, zone_province="湖北省")
    assert list(out.index) == [10, 11, 12]
    assert [[r.entry_id for r in rs] for rs in out] == [["LEAD"], ["S2"], ["LEAD"]]
    payload = json.loads(routes_json(out[11]))  # Q makes 摄像头, scenario S2 asks for 安防摄像头
    assert payload == [
        {
            "theme": "场景招商",
            "score": 0.6,
            "hops": [{"src": "S2", "relation_type": "scenario_match", "dst": "Q", "relation_id": None, "date": None}],
            "sentence": "经应用场景〈智慧园区〉（发布方：园区管委会；〈丙公司〉主营产品“摄像头”与场景需求匹配，字符重合度1.00）对接",
            "entry_id": "S2",
            "entry_kind": "scenario",
            "evidence": {"matched_product": "摄像头", "overlap": 1.0, "scenario_node_id": None},
        }
    ]


def test_routes_for_targets_rejects_missing_columns():
    msg = "targets is missing required columns ['node_id']; got columns ['enterprise_id']."
    with pytest.raises(ValueError, match=re.escape(msg)):
        routes_for_targets(zone_graph(), pd.DataFrame({"enterprise_id": ["T"]}), zone_province="湖北省")


def test_hop_phrase_rejects_unknown_relation():
    msg = "relation_type must be one of the relation types of features.schema; got 'friend'"
    with pytest.raises(ValueError, match=re.escape(msg)):
        hop_phrase("friend", True, "其", "〈A〉")


def test_scenario_overlap_needs_two_shared_bigrams():
    items = product_items("设备、８００Ｇ光模块")  # full-width input; 设备 has one bigram only
    grams = frozenset({"80", "00", "0g", "g光", "光模", "模块"})
    assert items == (("800G光模块", grams),)
    assert scenario_overlap(items, frozenset({"设备", "光模", "模块"})) == (2 / 6, "800G光模块")
    assert scenario_overlap(items, frozenset({"设备", "光模"})) == (0.0, "")


# ---------------------------------------------------------------- reference and hop walk


def reference_routes(g: nx.MultiDiGraph, target: str, cfg: PathsConfig) -> list[tuple[str, str, float]]:
    """Brute force: every simple path (networkx) from every zone entry to the target, filtered by the
    documented rules; best route per entry, then the top k — (entry, theme, score)."""
    u = nx.MultiGraph(g)
    degree = dict(u.degree())
    best: dict[str, tuple[str, float]] = {}
    for entry, kind in g.nodes(data="kind"):
        if kind not in {k for k, _ in ENTRY_THEMES} or entry == target or target not in g:
            continue
        for path in nx.all_simple_edge_paths(u, entry, target, cutoff=cfg.max_hops):
            nodes = [entry] + [e[1] for e in path]
            data = [g.edges[(e[0], e[1], e[2]) if g.has_edge(e[0], e[1], e[2]) else (e[1], e[0], e[2])] for e in path]
            theme = ENTRY_THEMES.get((kind, data[0]["relation_type"]))
            if theme is None:
                continue
            if any(d["relation_type"] not in THEME_FOLLOW_RELATIONS[theme] for d in data[1:]):
                continue
            middle = nodes[1:-1]
            if any(g.nodes[m]["kind"] in ZONE_KINDS or degree[m] > cfg.max_intermediate_degree for m in middle):
                continue
            score = cfg.length_decay ** (len(data) - 1)
            for d in data:
                age = max((g.graph["as_of"] - d["date"]).days, 0)
                f = cfg.recency_floor
                score *= d["weight"] * (f + (1 - f) * 0.5 ** (age / cfg.recency_half_life_days))
            if entry not in best or score > best[entry][1]:
                best[entry] = (theme, score)
    ranked = sorted(best.items(), key=lambda kv: -kv[1][1])[: cfg.routes_per_target]
    return [(e, th, s) for e, (th, s) in ranked]


def random_zone(random_state: int, n: int = 40, m: int = 90) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(random_state)
    ents = [f"E{i:02d}" for i in range(n)]
    assets = pd.DataFrame(
        {
            "asset_id": ["F1", "F2", "U1", "L1", "A1"],
            "asset_type": ["fund", "fund", "university", "lab", "alumni_network"],
            "name": ["基金一", "基金二", "大学", "实验室", "校友会"],
        }
    )
    rows = []
    for i in range(m):
        if rng.random() < 0.3:
            src = str(rng.choice(assets["asset_id"]))
            rtype = {
                "F": "fund_portfolio",
                "U": str(rng.choice(["alumni", "lab_collaboration"])),
                "L": "lab_collaboration",
                "A": "alumni",
            }[src[0]]
            dst = str(rng.choice(ents))
        else:
            src, dst = (str(x) for x in rng.choice(ents, 2, replace=False))
            rtype = str(rng.choice(["supplier", "shareholder", "investor", "parent"]))
        date = pd.Timestamp("2020-01-01") + pd.Timedelta(days=int(rng.integers(0, 2000)))
        rows.append((f"R{i:03d}", src, dst, rtype, round(float(rng.uniform(0.1, 1.0)), 3), date))
    relations = pd.DataFrame(rows, columns=["relation_id", "src_id", "dst_id", "relation_type", "weight", "date"])
    presence = pd.DataFrame(
        {
            "enterprise_id": ents[:4],
            "node_id": ["c.a"] * 4,
            "year": [2025] * 4,
            "is_chain_leader": [True, True, False, False],
        }
    )
    return {"relations": relations, "assets": assets, "presence": presence}


@pytest.mark.parametrize("max_hops", [2, 3, 4])
def test_route_finder_matches_brute_force_reference(random_seed, max_hops):
    t = random_zone(random_seed)
    g = build_graph(t["relations"], t["assets"], t["presence"], as_of="2025-06-30")
    cfg = PathsConfig(max_hops=max_hops, routes_per_target=4, max_intermediate_degree=8)
    finder = RouteFinder(cfg, "湖北省").fit(g)
    n_routes = 0
    for target in sorted(n for n, k in g.nodes(data="kind") if k == "enterprise"):
        got = [(r.entry_id, r.theme, r.score) for r in finder.routes(target)]
        want = reference_routes(g, target, cfg)
        assert [(e, th) for e, th, _ in got] == [(e, th) for e, th, _ in want], target
        np.testing.assert_allclose([s for *_, s in got], [s for *_, s in want], rtol=1e-12)
        n_routes += len(got)
    assert n_routes > 20  # the reference is not vacuous


def walk_hops(route_hops: list[Hop], target: str, relations: pd.DataFrame, assets: pd.DataFrame) -> None:
    """Every hop exists in the input (relations row with the same ends, type and date; a scenario hop
    starts at a scenario asset) and consecutive hops share a node, ending at the target."""
    by_id = relations.set_index("relation_id")
    scenarios = set(assets.loc[assets["asset_type"] == "scenario", "asset_id"])
    for h in route_hops:
        if h.relation_type == SCENARIO_MATCH:
            assert h.src in scenarios and h.dst == target
            continue
        row = by_id.loc[h.relation_id]
        assert (row["src_id"], row["relation_type"], row["dst_id"]) == (h.src, h.relation_type, h.dst)
        assert row["date"].strftime("%Y-%m-%d") == h.date
    ends = [{h.src, h.dst} for h in route_hops]
    for a, b in zip(ends, ends[1:], strict=False):
        assert a & b
    assert target in ends[-1]


def test_every_route_hop_exists_in_input_relations(random_seed):
    t = random_zone(random_seed)
    g = build_graph(t["relations"], t["assets"], t["presence"], as_of="2025-06-30")
    finder = RouteFinder(PathsConfig(routes_per_target=5), "湖北省").fit(g)
    n = 0
    for target in sorted(g.nodes):
        for r in finder.routes(target):
            walk_hops(r.hops, target, t["relations"], t["assets"])
            n += 1
    assert n > 20


def test_build_targets_top_n_priority_order_reasons_routes():
    t = zone_tables()
    scored = pd.DataFrame(
        {
            "node_id": ["n.a", "n.a", "n.b", "n.b"],
            "enterprise_id": ["T", "Q", "Q", "T"],
            "score": [0.9, 0.2, 0.7, 0.1],
            "contributions": [
                {"ties_leader": 0.5, "dense_score": 0.3, "bias": 0.1},
                {"dense_score": 0.1, "bias": 0.1},
                {"dense_score": 0.6, "bias": 0.1},
                {"dense_score": 0.0, "bias": 0.1},
            ],
            "dense_score": [0.5, 0.4, 0.9, 0.1],
        }
    )
    map_df = pd.DataFrame({"node_id": ["n.a", "n.b"], "colour": ["blue", "red"], "priority": [0.2, 0.9]})
    cfg = PathsConfig(routes_per_target=2, recency_half_life_days=HALF)
    out = build_targets(scored, t, map_df=map_df, config=cfg, as_of="2025-07-01", top_n=1, zone_province="湖北省")
    assert out[["node_id", "enterprise_id", "rank", "theme", "n_routes", "name"]].to_dict("records") == [
        {"node_id": "n.b", "enterprise_id": "Q", "rank": 1, "theme": "场景招商", "n_routes": 1, "name": "丙公司"},
        {
            "node_id": "n.a",
            "enterprise_id": "T",
            "rank": 1,
            "theme": "产业链招商",
            "n_routes": 2,
            "name": "苏州光芯科技",
        },
    ]
    reasons = json.loads(out.loc[1, "reasons"])
    assert [(r["group"], r["text"], r["contribution"]) for r in reasons] == [
        ("ties", "为本地链主〈长飞光纤〉的上游供应商；创始人或高管为高校〈华中科技大学〉校友", 0.5),
        ("similarity", "与节点描述相似度0.50", 0.3),
    ]
    assert reasons[0]["evidence"] == {"relation_id": ["R1", "R7"]}
    routes = json.loads(out.loc[1, "routes"])
    assert [r["entry_id"] for r in routes] == ["LEAD", "S1"]
    for r in routes:
        walk_hops([Hop(**h) for h in r["hops"]], "T", t["relations"], t["assets"])


def branch_signals() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "signal_id": ["G1", "G2", "G3", "G4"],
            "enterprise_id": ["T", "T", "T", "Q"],
            "signal_type": ["new_branch", "new_branch", "new_branch", "hiring"],
            "date": pd.to_datetime(["2024-06-30", "2025-12-01", "2025-05-01", "2025-01-01"]),
            "province": ["湖北省", "湖北省", "江苏省", "湖北省"],
            "city": ["武汉市", "宜昌市", "南京市", "武汉市"],
        }
    )


def test_find_routes_regional_branch_route():
    t = {**zone_tables(), "signals": branch_signals()}
    cfg = PathsConfig(routes_per_target=10, recency_half_life_days=HALF)
    routes = find_routes(zone_graph(), "T", tables=t, config=cfg, zone_province="湖北省")
    branch = [r for r in routes if r.entry_kind == "regional_branch"]
    assert [(r.theme, r.sentence, r.hops, r.evidence) for r in branch] == [
        (
            "生态圈招商",
            "经〈苏州光芯科技〉在湖北省武汉市设立的分支机构对接（2024-06新设）",
            [Hop("T", "regional_branch", "湖北省", "G1", "2024-06-30")],
            {"signal_id": "G1", "city": "武汉市"},
        )
    ]  # G2 is after as_of, G3 is in 江苏, G4 is no branch
    assert branch[0].score == pytest.approx(0.5 * rec(365))
    assert find_routes(zone_graph(), "Q", tables=t, config=cfg, zone_province="湖北省")[0].entry_kind == "scenario"


def test_scenario_route_names_a_target_outside_the_graph():
    t = zone_tables()
    t["enterprises"] = pd.concat(
        [t["enterprises"], pd.DataFrame({"enterprise_id": ["N"], "name": ["新光模块公司"], "products": ["400G光模块"]})]
    )
    routes = find_routes(zone_graph(), "N", "optical_comm.optical_module", tables=t, zone_province="湖北省")
    assert [r.sentence for r in routes] == [
        "经应用场景〈数据中心光互联示范〉（发布方：光谷智算中心；〈新光模块公司〉主营产品“400G光模块”"
        "与场景需求匹配，字符重合度0.83）对接"
    ]


def test_sample_zone_every_route_hop_exists_in_the_inputs():
    """On the bundled sample zone (3,000 enterprises): the routes of 20 industry-matched targets per red
    or blue node all walk back to relations rows, scenario assets or branch signals."""
    sample_mod = pytest.importorskip("recommender.sample.generate")
    from features.chains import nodes_frame
    from features.ingest import apply_column_map, validate_table
    from features.io import load_column_map
    from recommender.settings import load_chains, load_settings

    settings = load_settings()
    chains = load_chains(settings)
    sample = sample_mod.generate_sample(chains, 3000, 7)
    maps = {
        "enterprises": "registry-cn",
        "presence": "zone-presence",
        "assets": "zone-assets",
        "relations": "zone-relations",
        "signals": "zone-signals",
    }
    t = {}
    for table, name in maps.items():
        raw = sample.tables()[table]
        raw = raw.astype(object).where(raw.notna(), None).map(lambda v: None if v is None else str(v))
        mapped = apply_column_map(raw, load_column_map(name, settings.resolve(settings.ingest.column_maps_dir), table))
        t[table], _ = validate_table(mapped, table, table)
    nodes = nodes_frame(chains).explode("industry_codes")
    ent = t["enterprises"][["enterprise_id", "industry_code"]]
    targets = nodes.merge(ent, left_on="industry_codes", right_on="industry_code")
    targets = targets.sort_values(["node_id", "enterprise_id"]).groupby("node_id").head(20).reset_index(drop=True)
    g = build_graph(t["relations"], t["assets"], t["presence"], t["enterprises"])
    routes = routes_for_targets(g, targets, tables=t, config=PathsConfig(routes_per_target=5), zone_province="湖北省")
    signals = t["signals"].set_index("signal_id")
    n = 0
    for eid, rs in zip(targets["enterprise_id"], routes, strict=True):
        for r in rs:
            n += 1
            if r.hops[0].relation_type == "regional_branch":
                sig = signals.loc[r.hops[0].relation_id]
                assert (sig["enterprise_id"], sig["signal_type"]) == (eid, "new_branch")
                continue
            walk_hops(r.hops, eid, t["relations"], t["assets"])
    assert n > 100
