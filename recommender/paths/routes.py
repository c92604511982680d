"""Approach routes from the zone's own assets to a target enterprise, in five themes.

A route starts at a zone asset (a local chain leader or enterprise, a fund, a university, a lab, an
alumni network or an open application scenario) and ends at the target. Its theme follows from
the entry and the first relation (see :data:`ENTRY_THEMES`); every further hop must be of a relation
type the theme allows (:data:`THEME_FOLLOW_RELATIONS`), and every node between entry and target is a
non-zone enterprise (a zone node in the middle would itself be the better entry) whose degree is at
most ``max_intermediate_degree`` (a hub that touches thousands of companies is no warm introduction).

Score of a route with hops ``h_1 … h_L`` (documented in docs/paths.md)::

    score = Π_i w_i · (f + (1 − f) · 2^(−age_i / half_life)) · length_decay^(L − 1)        ∈ (0, 1]

with ``w_i`` the relation's strength (0–1; missing → 0.5), ``age_i`` its age in days at the
graph's reference date and ``f = recency_floor`` (an old supplier tie is still a tie). A
scenario route has one hop whose factor is 0.6 × the text overlap (see :func:`scenario_overlap`;
an open scenario is an opening, not yet a tie, hence 0.6), times 0.8 when the scenario is published
for a different chain node. A regional route (生态圈招商: the target's own ``new_branch`` signal in the
zone's province) scores 0.5 × the recency factor of that signal. Per target the best route of each entry asset is kept, then the best ``k`` by score (ties: theme
order, then hop ids).

Search (:class:`RouteFinder`): routes of up to ``max_hops`` hops are joined in the middle. ``fit``
precomputes once, from every zone entry, the partial routes of up to ``A = ceil(max_hops / 2)``
hops (asset side); for each target only the target's own neighbourhood up to ``max_hops − A`` hops is
walked and joined with the partial routes ending at the meeting node. The split of a route of
length ``L`` is unique (asset side ``min(A, L)`` hops), so every route is found exactly once.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import pandas as pd

from features.schema import (
    COL_BUSINESS_SCOPE,
    COL_ENTERPRISE_ID,
    COL_NODE_ID,
    COL_PRODUCTS,
    check_columns,
)
from features.text import PROVINCE_SUFFIX, normalize_text, province_stem
from recommender.paths.graph import ZONE_KINDS
from recommender.paths.wording import (
    CAPITAL,
    CHAIN,
    ECOSYSTEM,
    SCENARIO,
    TALENT,
    THEMES,
    bracketed,
    route_sentence,
    scenario_sentence,
)
from recommender.settings import PathsConfig

if TYPE_CHECKING:
    import networkx as nx


ENTRY_THEMES: Final[dict[tuple[str, str], str]] = {
    ("chain_leader", "supplier"): CHAIN,
    ("chain_leader", "parent"): CHAIN,
    ("chain_leader", "investor"): CAPITAL,
    ("chain_leader", "shareholder"): CAPITAL,
    ("fund", "fund_portfolio"): CAPITAL,
    ("fund", "investor"): CAPITAL,
    ("fund", "shareholder"): CAPITAL,
    ("lab", "lab_collaboration"): TALENT,
    ("university", "lab_collaboration"): TALENT,
    ("university", "alumni"): ECOSYSTEM,
    ("alumni_network", "alumni"): ECOSYSTEM,
    ("local_enterprise", "supplier"): ECOSYSTEM,
    ("local_enterprise", "parent"): ECOSYSTEM,
    ("local_enterprise", "investor"): ECOSYSTEM,
    ("local_enterprise", "shareholder"): ECOSYSTEM,
}
"""(entry kind, relation type of the first hop) → theme. Pairs not listed start no route."""

THEME_FOLLOW_RELATIONS: Final[dict[str, frozenset[str]]] = {
    CHAIN: frozenset({"supplier", "parent"}),  # up/downstream of the target or of its parent
    CAPITAL: frozenset({"fund_portfolio", "investor", "shareholder", "parent"}),  # co-investors
    TALENT: frozenset({"lab_collaboration", "parent"}),
    ECOSYSTEM: frozenset({"parent", "shareholder", "supplier"}),
}
"""Relation types allowed after the first hop of a route of each theme."""

SCENARIO_MATCH: Final = "scenario_match"
"""``relation_type`` of a scenario hop: a text match, not a row of the relations table."""
SCENARIO_STRENGTH: Final = 0.6
REGIONAL_BRANCH: Final = "regional_branch"
"""``relation_type`` of a regional hop: the target's ``new_branch`` signal in the zone's province
(``relation_id`` is the ``signal_id``, ``dst`` the province)."""
BRANCH_STRENGTH: Final = 0.5
OTHER_NODE_SCENARIO_FACTOR: Final = 0.8
MIN_SHARED_BIGRAMS: Final = 2
_ITEM_SPLIT = re.compile(r"[、,，;；/|｜\s]+")


class Hop(NamedTuple):
    """One hop as stored in the relations table: ``src <relation_type> dst``."""

    src: str
    relation_type: str
    dst: str
    relation_id: str | None
    date: str | None  # ISO day


@dataclass(frozen=True)
class Route:
    """One approach route from a zone asset (``hops[0]``'s entry side) to the target."""

    theme: str
    score: float
    hops: list[Hop]
    sentence: str
    entry_id: str = ""
    entry_kind: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``theme, score, sentence, hops`` (each hop a dict), entry and evidence."""
        d = asdict(self)
        d["hops"] = [h._asdict() for h in self.hops]
        d["score"] = round(self.score, 6)
        return d


class _Edge(NamedTuple):
    other: str
    src: str
    dst: str
    relation_id: str
    relation_type: str
    date: pd.Timestamp | None
    factor: float


class _Partial(NamedTuple):
    """A partial route from a zone entry to ``nodes[-1]``."""

    entry: str
    theme: str
    nodes: tuple[str, ...]
    edges: tuple[_Edge, ...]
    strength: float


# ---------------------------------------------------------------- route search


class RouteFinder:
    """Best approach routes for many targets over one graph.

    Args:
        config: the ``paths`` settings (``max_hops``, ``routes_per_target``, ``recency_half_life_days``,
            ``length_decay``, ``max_intermediate_degree``, ``scenario_min_overlap``).
    """

    def __init__(self, config: PathsConfig | None, zone_province: str) -> None:
        self.config = config
        self.zone_province = zone_province

    def fit(
        self,
        graph: nx.MultiDiGraph,
        enterprises: pd.DataFrame | None = None,
        signals: pd.DataFrame | None = None,
    ) -> RouteFinder:
        """Precompute the asset side once: incidence lists, partial routes, the scenario index and the
        regional branches.

        Args:
            graph: from :func:`recommender.paths.graph.build_graph`.
            enterprises: optional ``enterprise_id, name, products[, business_scope]`` for scenario
                matches and for the names of targets that are in no relation.
            signals: optional signals; ``new_branch`` events in the zone's province dated on or before
                the graph's reference date give the regional route (生态圈招商).
        """
        cfg = self.config or PathsConfig()
        self.config_ = cfg
        self.graph_ = graph
        self.as_of_ = graph.graph.get("as_of")
        self.asset_hops_ = (cfg.max_hops + 1) // 2
        self.incidence_ = _incidence(graph, self.as_of_, cfg.recency_half_life_days, cfg.recency_floor)
        self.partials_ = _asset_partials(graph, self.incidence_, self.asset_hops_, cfg.max_intermediate_degree)
        self.scenarios_ = _scenario_index(graph)
        self.products_ = _product_texts(enterprises)
        self.items_: dict[str, tuple[tuple[str, frozenset[str]], ...]] = {}
        self.names_ = _enterprise_names(enterprises)
        self.branches_ = _zone_branches(signals, self.zone_province, self.as_of_)
        return self

    def routes(self, target_id: str, node_id: str | None = None, k: int | None = None) -> list[Route]:
        """The best ``k`` routes (default ``routes_per_target``) from any zone asset to ``target_id``."""
        cfg = self.config_
        top_k = cfg.routes_per_target if k is None else k
        candidates = [self._route(p) for p in self._paths(target_id)]
        candidates += self._scenario_routes(target_id, node_id)
        candidates += self._branch_routes(target_id)
        return _best_per_entry(candidates, top_k)

    # -- graph routes
    def _paths(self, target: str) -> Iterator[_Partial]:
        if target not in self.graph_:
            return
        cfg = self.config_
        for side_nodes, side_edges in self._target_side(target, cfg.max_hops - self.asset_hops_):
            meet, t = side_nodes[-1], len(side_edges)
            lengths = range(1, min(self.asset_hops_, cfg.max_hops) + 1) if t == 0 else (self.asset_hops_,)
            for a in lengths:
                for p in self.partials_[a].get(meet, ()):
                    joined = _join(p, side_nodes, side_edges, target)
                    if joined is not None:
                        yield joined

    def _target_side(self, target: str, depth: int) -> Iterator[tuple[tuple[str, ...], tuple[_Edge, ...]]]:
        """Simple walks from the target through non-zone enterprises, up to ``depth`` hops (the target itself first)."""
        stack: list[tuple[tuple[str, ...], tuple[_Edge, ...]]] = [((target,), ())]
        while stack:
            nodes, edges = stack.pop()
            yield nodes, edges
            if len(edges) >= depth:
                continue
            for e in self.incidence_.get(nodes[-1], ()):
                if e.other not in nodes and self._is_intermediate(e.other):
                    stack.append(((*nodes, e.other), (*edges, e)))

    def _is_intermediate(self, n: str) -> bool:
        return _is_intermediate(self.graph_, self.incidence_, n, self.config_.max_intermediate_degree)

    def _route(self, p: _Partial) -> Route:
        cfg = self.config_
        score = p.strength * cfg.length_decay ** (len(p.edges) - 1)
        hops = [_hop(e) for e in p.edges]
        kind = self.graph_.nodes[p.entry]["kind"]
        return Route(p.theme, score, hops, route_sentence(self.graph_, p.nodes, p.edges), p.entry, kind)

    # -- scenario routes
    def _scenario_routes(self, target: str, node_id: str | None) -> list[Route]:
        if target not in self.items_:
            self.items_[target] = product_items(self.products_.get(target, ""))
        items = self.items_[target]
        out = []
        for sid, text, s_node in self.scenarios_:
            overlap, item = scenario_overlap(items, text)
            if overlap < self.config_.scenario_min_overlap:
                continue
            factor = 1.0 if node_id is None or s_node in (None, node_id) else OTHER_NODE_SCENARIO_FACTOR
            hop = Hop(sid, SCENARIO_MATCH, target, None, None)
            sentence = scenario_sentence(self.graph_, sid, self._target_name(target), item, overlap)
            evidence = {"matched_product": item, "overlap": round(overlap, 4), "scenario_node_id": s_node}
            out.append(
                Route(SCENARIO, SCENARIO_STRENGTH * overlap * factor, [hop], sentence, sid, "scenario", evidence)
            )
        return out

    # -- regional network: the target's own branch in the zone's province
    def _branch_routes(self, target: str) -> list[Route]:
        branch = self.branches_.get(target)
        if branch is None:
            return []
        sid, date, city = branch
        cfg = self.config_
        score = BRANCH_STRENGTH * _recency(date, self.as_of_, cfg.recency_half_life_days, cfg.recency_floor)
        day = date.strftime("%Y-%m-%d")
        hop = Hop(target, REGIONAL_BRANCH, self.zone_province, sid, day)
        where = f"{self.zone_province}{city}" if city else self.zone_province
        sentence = f"经{self._target_name(target)}在{where}设立的分支机构对接（{date:%Y-%m}新设）"
        evidence = {"signal_id": sid, "city": city}
        return [Route(ECOSYSTEM, score, [hop], sentence, f"branch:{target}", REGIONAL_BRANCH, evidence)]

    def _target_name(self, target: str) -> str:
        if target in self.graph_:
            return bracketed(self.graph_, target)
        return f"〈{self.names_.get(target, target)}〉"


def find_routes(
    graph: nx.MultiDiGraph,
    target_id: str,
    node_id: str | None = None,
    nodes: pd.DataFrame | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    config: PathsConfig | None = None,
    k: int | None = None,
    *,
    zone_province: str,
) -> list[Route]:
    """Best ``k`` routes from any zone asset to one target (builds a :class:`RouteFinder`; for many
    targets use :func:`routes_for_targets`, which precomputes the asset side once).

    ``nodes`` is accepted for interface symmetry (the scenario node check uses ``node_id``);
    ``tables["enterprises"]`` supplies the products for scenario matches.
    """
    del nodes  # node ids suffice; kept in the signature of the design contract
    enterprises = None if tables is None else tables.get("enterprises")
    signals = None if tables is None else tables.get("signals")
    return RouteFinder(config, zone_province).fit(graph, enterprises, signals).routes(target_id, node_id, k)


def routes_for_targets(
    graph: nx.MultiDiGraph,
    targets: pd.DataFrame,
    tables: Mapping[str, pd.DataFrame] | None = None,
    config: PathsConfig | None = None,
    k: int | None = None,
    finder: RouteFinder | None = None,
    *,
    zone_province: str,
) -> pd.Series:
    """Routes for many (node, target) pairs.

    Args:
        targets: ``node_id, enterprise_id`` per row (any index).
        finder: a fitted :class:`RouteFinder` to reuse; else one is fitted here (once).

    Returns:
        Series aligned with ``targets.index``; each value a ``list[Route]`` sorted best first.
    """
    check_columns(list(targets.columns), [COL_NODE_ID, COL_ENTERPRISE_ID], "targets")
    if finder is None:
        enterprises = None if tables is None else tables.get("enterprises")
        signals = None if tables is None else tables.get("signals")
        finder = RouteFinder(config, zone_province).fit(graph, enterprises, signals)
    cache: dict[tuple[str, str], list[Route]] = {}
    out = []
    for node, eid in zip(targets[COL_NODE_ID].astype(str), targets[COL_ENTERPRISE_ID].astype(str), strict=True):
        if (node, eid) not in cache:
            cache[(node, eid)] = finder.routes(eid, node, k)
        out.append(cache[(node, eid)])
    return pd.Series(out, index=targets.index, dtype=object, name="routes")


def routes_json(routes: Iterable[Route]) -> str:
    """Routes as the JSON list stored in the ``routes`` column (``theme, score, sentence, hops`` …)."""
    return json.dumps([r.to_dict() for r in routes], ensure_ascii=False)


# ---------------------------------------------------------------- asset-side precomputation


def _incidence(
    graph: nx.MultiDiGraph, as_of: pd.Timestamp | None, half_life: float, floor: float = 0.0
) -> dict[str, list[_Edge]]:
    """Every edge listed at both ends, with its strength × recency factor (direction kept in src/dst)."""
    inc: dict[str, list[_Edge]] = defaultdict(list)
    for s, d, key, data in graph.edges(keys=True, data=True):
        date = data.get("date")
        factor = float(data.get("weight", 0.5)) * _recency(date, as_of, half_life, floor)
        rtype = str(data["relation_type"])
        inc[s].append(_Edge(d, s, d, str(key), rtype, date, factor))
        inc[d].append(_Edge(s, s, d, str(key), rtype, date, factor))
    for edges in inc.values():
        edges.sort(key=lambda e: (-e.factor, e.relation_id))
    return dict(inc)


def _recency(date: pd.Timestamp | None, as_of: pd.Timestamp | None, half_life: float, floor: float = 0.0) -> float:
    """``floor + (1 − floor) · 2^(−age / half_life)``; 1 when the date or the reference date is unknown."""
    if date is None or as_of is None or pd.isna(date):
        return 1.0
    age = max((as_of - date).days, 0)
    return float(floor + (1.0 - floor) * 0.5 ** (age / half_life))


def _is_intermediate(graph: nx.MultiDiGraph, inc: Mapping[str, list[_Edge]], n: str, max_degree: int) -> bool:
    return graph.nodes[n]["kind"] not in ZONE_KINDS and len(inc.get(n, ())) <= max_degree


def _asset_partials(
    graph: nx.MultiDiGraph, inc: Mapping[str, list[_Edge]], depth: int, max_degree: int
) -> dict[int, dict[str, list[_Partial]]]:
    """Partial routes from every zone entry, by length (1..depth) and by end node.

    Per (end node, entry, theme) only the two strongest partials are kept: the best one may share
    a node with the target side and then the second one is needed; more never change the result
    because the output keeps one route per entry.
    """
    levels: dict[int, dict[str, list[_Partial]]] = {}
    frontier = [p for entry in _entries(graph) for p in _first_hops(graph, inc, entry)]
    for length in range(1, depth + 1):
        levels[length] = _keep_best(frontier)
        if length == depth:
            break
        frontier = [q for p in frontier for q in _extend(graph, inc, p, max_degree)]
    return levels


def _entries(graph: nx.MultiDiGraph) -> list[str]:
    kinds = {k for k, _ in ENTRY_THEMES}
    return sorted(n for n, kind in graph.nodes(data="kind") if kind in kinds)


def _first_hops(graph: nx.MultiDiGraph, inc: Mapping[str, list[_Edge]], entry: str) -> Iterator[_Partial]:
    kind = graph.nodes[entry]["kind"]
    for e in inc.get(entry, ()):
        theme = ENTRY_THEMES.get((kind, e.relation_type))
        if theme is not None and e.other != entry:
            yield _Partial(entry, theme, (entry, e.other), (e,), e.factor)


def _extend(graph: nx.MultiDiGraph, inc: Mapping[str, list[_Edge]], p: _Partial, max_degree: int) -> Iterator[_Partial]:
    end = p.nodes[-1]
    if not _is_intermediate(graph, inc, end, max_degree):
        return
    allowed = THEME_FOLLOW_RELATIONS[p.theme]
    for e in inc.get(end, ()):
        if e.relation_type in allowed and e.other not in p.nodes:
            yield _Partial(p.entry, p.theme, (*p.nodes, e.other), (*p.edges, e), p.strength * e.factor)


def _keep_best(partials: list[_Partial]) -> dict[str, list[_Partial]]:
    grouped: dict[tuple[str, str, str], list[_Partial]] = defaultdict(list)
    for p in partials:
        grouped[(p.nodes[-1], p.entry, p.theme)].append(p)
    by_end: dict[str, list[_Partial]] = defaultdict(list)
    for (end, _, _), ps in grouped.items():
        ps.sort(key=lambda p: (-p.strength, [e.relation_id for e in p.edges]))
        by_end[end].extend(ps[:2])
    return dict(by_end)


def _join(p: _Partial, side_nodes: tuple[str, ...], side_edges: tuple[_Edge, ...], target: str) -> _Partial | None:
    """Asset partial ``entry … meet`` + reversed target walk ``meet … target``; None if not simple or off-theme."""
    if target in p.nodes[:-1] or p.entry == target:
        return None
    if side_edges:
        allowed = THEME_FOLLOW_RELATIONS.get(p.theme, frozenset())
        if any(e.relation_type not in allowed for e in side_edges) or set(p.nodes[:-1]) & set(side_nodes):
            return None
    tail_nodes = tuple(reversed(side_nodes[:-1]))
    tail_edges = tuple(reversed(side_edges))
    strength = p.strength * math.prod(e.factor for e in tail_edges)
    return _Partial(p.entry, p.theme, (*p.nodes, *tail_nodes), (*p.edges, *tail_edges), strength)


def _best_per_entry(routes: list[Route], k: int) -> list[Route]:
    def order(r: Route) -> tuple[float, int, list[str]]:
        return (-r.score, THEMES.index(r.theme), [f"{h.src}|{h.relation_id}|{h.dst}" for h in r.hops])

    best: dict[str, Route] = {}
    for r in sorted(routes, key=order):
        best.setdefault(r.entry_id, r)
    return sorted(best.values(), key=order)[:k]


def _hop(e: _Edge) -> Hop:
    date = None if e.date is None or pd.isna(e.date) else pd.Timestamp(e.date).strftime("%Y-%m-%d")
    return Hop(e.src, e.relation_type, e.dst, e.relation_id, date)


# ---------------------------------------------------------------- scenario text match


def normalize(text: str) -> str:
    """NFKC (full-width → half-width) and traditional → simplified: ingest's own normaliser."""
    return normalize_text(text)


def bigrams(text: str) -> frozenset[str]:
    """Character bigrams of a normalised text, whitespace removed."""
    t = re.sub(r"\s+", "", text)
    return frozenset(t[i : i + 2] for i in range(len(t) - 1))


def scenario_overlap(items: Iterable[tuple[str, frozenset[str]]], scenario: frozenset[str]) -> tuple[float, str]:
    """Best containment of a product item in a scenario text: ``|B(item) ∩ B(s)| / |B(item)|``.

    Items sharing fewer than :data:`MIN_SHARED_BIGRAMS` bigrams with the scenario count 0 (a lone
    shared bigram such as 设备 is no evidence). Returns ``(overlap, item)``; ``(0.0, "")`` if none.
    """
    best, best_item = 0.0, ""
    for item, grams in items:
        shared = len(grams & scenario)
        if shared < MIN_SHARED_BIGRAMS:
            continue
        score = shared / len(grams)
        if score > best:
            best, best_item = score, item
    return best, best_item


def _scenario_index(graph: nx.MultiDiGraph) -> list[tuple[str, frozenset[str], str | None]]:
    out = []
    for n, data in sorted(graph.nodes(data=True)):
        if data.get("kind") == "scenario":
            text = normalize(f"{data.get('name', '')} {data.get('description', '')}").lower()
            out.append((n, bigrams(text), data.get(COL_NODE_ID)))
    return out


def _enterprise_names(enterprises: pd.DataFrame | None) -> dict[str, str]:
    if enterprises is None or enterprises.empty or "name" not in enterprises:
        return {}
    return dict(zip(enterprises[COL_ENTERPRISE_ID].astype(str), enterprises["name"].astype(str), strict=True))


def _zone_branches(
    signals: pd.DataFrame | None, zone_province: str, as_of: pd.Timestamp | None
) -> dict[str, tuple[str, pd.Timestamp, str]]:
    """Per enterprise its newest ``new_branch`` signal in the zone's province: (signal_id, date, city)."""
    if signals is None or signals.empty or "province" not in signals:
        return {}
    zone = province_stem(zone_province)
    prov = signals["province"].astype(object).fillna("").astype(str).str.replace(PROVINCE_SUFFIX, "", regex=True)
    sig = signals[(signals["signal_type"] == "new_branch") & (prov == zone)].copy()
    sig["date"] = pd.to_datetime(sig["date"])
    if as_of is not None:
        sig = sig[sig["date"] <= as_of]
    sig = sig.sort_values(["date", "signal_id"], ascending=[False, True], kind="stable")
    sig = sig.drop_duplicates(COL_ENTERPRISE_ID)
    city = sig["city"].astype(object).fillna("").astype(str) if "city" in sig else pd.Series("", index=sig.index)
    return {
        str(e): (str(i), pd.Timestamp(d), c)
        for e, i, d, c in zip(sig[COL_ENTERPRISE_ID], sig["signal_id"], sig["date"], city, strict=True)
    }


def _product_texts(enterprises: pd.DataFrame | None) -> dict[str, str]:
    """Per enterprise its products text, else its business scope (vectorised; items split lazily)."""
    if enterprises is None or enterprises.empty or COL_PRODUCTS not in enterprises:
        return {}
    text = enterprises[COL_PRODUCTS].astype(object).where(enterprises[COL_PRODUCTS].notna(), "").astype(str)
    if COL_BUSINESS_SCOPE in enterprises:
        scope = enterprises[COL_BUSINESS_SCOPE].astype(object).where(enterprises[COL_BUSINESS_SCOPE].notna(), "")
        text = text.where(text.str.len() > 0, scope.astype(str))
    return dict(zip(enterprises[COL_ENTERPRISE_ID].astype(str), text, strict=True))


def product_items(text: str) -> tuple[tuple[str, frozenset[str]], ...]:
    """Product items of a products text (split on 、,，;；/| and spaces) with their lower-cased bigrams;
    items with fewer than :data:`MIN_SHARED_BIGRAMS` bigrams are dropped."""
    items = dict.fromkeys(i for i in _ITEM_SPLIT.split(normalize(text)) if i)
    return tuple((item, grams) for item in items if len(grams := bigrams(item.lower())) >= MIN_SHARED_BIGRAMS)
