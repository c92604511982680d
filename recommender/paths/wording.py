"""How routes are worded: the five themes, the labels of the zone's entry assets, and the Chinese
phrase of each hop. Shared by the routes (:mod:`recommender.paths.routes`), the reasons
(:mod:`recommender.paths.reasons`) and the web page."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    import networkx as nx


class HopLike(Protocol):
    """A hop as the sentences need it: its source node id and its relation type."""

    @property
    def src(self) -> str: ...

    @property
    def relation_type(self) -> str: ...


THEMES: Final[tuple[str, ...]] = ("产业链招商", "资本招商", "场景招商", "人才科创招商", "生态圈招商")


CHAIN, CAPITAL, SCENARIO, TALENT, ECOSYSTEM = THEMES


ENTRY_LABELS: Final[dict[str, str]] = {
    "chain_leader": "本地链主",
    "local_enterprise": "本地企业",
    "fund": "园区基金",
    "university": "高校",
    "lab": "实验室",
    "scenario": "应用场景",
    "alumni_network": "校友会",
}


def route_sentence(graph: nx.MultiDiGraph, nodes: tuple[str, ...], edges: Iterable[HopLike]) -> str:
    """Chinese sentence naming every hop, e.g. ``经本地链主〈A〉（〈T〉为其上游供应商）对接``.

    Args:
        nodes: the route's nodes from the entry to the target (one more than ``edges``).
        edges: hops with ``src``, ``relation_type`` (relations-table direction).
    """
    entry = nodes[0]
    phrases = []
    for i, e in enumerate(edges):
        prev, cur = nodes[i], nodes[i + 1]
        prev_name = "其" if i == 0 else bracketed(graph, prev)
        phrases.append(hop_phrase(e.relation_type, e.src == cur, prev_name, bracketed(graph, cur)))
    label = ENTRY_LABELS.get(graph.nodes[entry]["kind"], "")
    return f"经{label}{bracketed(graph, entry)}（{'，'.join(phrases)}）对接"


def hop_phrase(relation_type: str, cur_is_src: bool, prev: str, cur: str) -> str:
    """How ``cur`` relates to ``prev`` (``cur_is_src``: the relation reads ``cur <type> prev``).

    ``prev`` may be the pronoun 其 (the entry), which takes no 的.
    """
    of = prev if prev == "其" else f"{prev}的"
    if relation_type == "supplier":
        return f"{cur}为{of}上游供应商" if cur_is_src else f"{cur}为{of}下游客户"
    if relation_type == "parent":
        return f"{cur}为{of}母公司" if cur_is_src else f"{cur}为{of}子公司"
    if relation_type == "shareholder":
        return f"{cur}为{of}股东" if cur_is_src else f"{cur}为{prev}参股的企业"
    if relation_type == "investor":
        return f"{cur}为{of}投资方" if cur_is_src else f"{cur}为{prev}投资的企业"
    if relation_type == "fund_portfolio":
        return f"{cur}为{of}出资基金" if cur_is_src else f"{cur}为{of}投资组合企业"
    if relation_type == "alumni":
        return f"{of}创始人或高管为{cur}校友" if cur_is_src else f"{cur}的创始人或高管为{prev}校友"
    if relation_type == "lab_collaboration":
        return f"{cur}与{prev}开展产学研合作"
    raise ValueError(f"relation_type must be one of the relation types of features.schema; got {relation_type!r}")


def scenario_sentence(graph: nx.MultiDiGraph, scenario_id: str, target_name: str, item: str, overlap: float) -> str:
    """E.g. ``经应用场景〈S〉（发布方：O；〈T〉主营产品“P”与场景需求匹配，字符重合度0.85）对接``
    (``target_name`` already in 〈〉)."""
    owner = graph.nodes[scenario_id].get("owner") or ""
    by = f"发布方：{owner}；" if owner else ""
    return (
        f"经应用场景{bracketed(graph, scenario_id)}（{by}{target_name}主营产品“{item}”"
        f"与场景需求匹配，字符重合度{overlap:.2f}）对接"
    )


def bracketed(graph: nx.MultiDiGraph, n: str) -> str:
    """A graph node's name in 〈〉 (its id when it has no name or is not in the graph)."""
    name = graph.nodes[n].get("name", n) if n in graph else n
    return f"〈{name}〉"
