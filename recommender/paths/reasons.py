"""Readable, evidence-backed reasons for a pick, from the ranker's per-feature contributions.

The ranker's ``pred_contrib`` gives one contribution per feature plus a ``bias`` such that
``Σ contributions + bias = score``. Features are grouped into facts an analyst understands
(:data:`FEATURE_GROUPS`: 语义相似, 行业匹配, 规模, 成立年限, 上市, 融资, 扩张动作, 区位, 与园区资产的关联,
节点缺口, 接洽历史). Each group's contribution is the sum of its features'; the ``top_n`` groups with
the largest absolute contribution become reasons whose text states the facts behind them, read from
the records (e.g. 近180天完成B轮融资（金额1.2亿元）, 与节点描述相似度0.81, 已在湖北设立分支机构,
为本地链主〈X〉的上游供应商) with the ids of those records (``signal_id``, ``relation_id``,
``outcome_id``). The remaining groups are summed into one last reason 其余因素, so the reasons'
contributions always sum to ``score − bias``.

Heuristic mode (no trained model): ``contributions`` is ``None``; the reasons are the groups with
a notable fact, in the fixed order of :data:`FEATURE_GROUPS`, with ``contribution = None``.

All facts are point in time: records dated on or after ``as_of`` are not used (as in the features).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import pandas as pd

from features.schema import (
    COL_AMOUNT_CNY,
    COL_ASSET_ID,
    COL_ASSET_TYPE,
    COL_CAPITAL_CNY,
    COL_DATE,
    COL_DST_ID,
    COL_EMPLOYEES,
    COL_ENTERPRISE_ID,
    COL_FINANCING_DATE,
    COL_FINANCING_ROUND,
    COL_INDUSTRY_CODE,
    COL_INDUSTRY_NAME,
    COL_LISTED,
    COL_NAME,
    COL_NODE_ID,
    COL_NOTE,
    COL_OUTCOME_ID,
    COL_PROVINCE,
    COL_RELATION_ID,
    COL_RELATION_TYPE,
    COL_SIGNAL_ID,
    COL_SIGNAL_TYPE,
    COL_SRC_ID,
    COL_STAGE,
)
from features.text import province_stem
from recommender.paths.graph import local_kinds
from recommender.paths.wording import ENTRY_LABELS, hop_phrase
from recommender.settings import PathsConfig

BIAS: Final = "bias"
OTHER_GROUP: Final = "other"
APPROACHES_GROUP: Final = "approaches"
"""The reason listing a target's past approaches (:meth:`Explainer.past_approaches`), no contribution."""
APPROACHES_SHOWN: Final = 3
CHECK_GROUP: Final = "fit_check"
"""The reason saying an analyst checked that the firm makes what the node needs (``fit_marks``), no contribution."""
FINANCING_WINDOW_DAYS: Final = 365
EXPANSION_WINDOW_DAYS: Final = 365

FEATURE_GROUPS: Final[dict[str, tuple[str, ...]]] = {
    "similarity": ("dense_score", "dense_rank", "lexical_score", "lexical_rank", "n_retrievers"),
    "ties": ("ties_leader", "ties_local", "ties_fund", "ties_university", "ties_lab", "path_length"),
    "financing": (
        "financing_round",
        "financing_age_days",
        "signals_financing_90d",
        "signals_financing_180d",
        "signals_financing_365d",
    ),
    "expansion": tuple(
        f"signals_{t}_{w}d"
        for t in ("new_branch", "land_purchase", "hiring", "capacity_expansion")
        for w in (90, 180, 365)
    ),
    "geography": ("same_province", "distance_km", "neighbour_province", "branches_in_zone_province", "is_local"),
    "industry": ("industry_exact", "industry_group", "industry_division"),
    "size": ("log_capital", "log_employees"),
    "age": ("age_years",),
    "listed": ("listed",),
    "node": ("node_colour", "node_gap", "strategic_weight"),
    "history": ("prior_contacts", "terminated_365d", "contacted_node_before"),
}
"""Fact group → the ranker features (``features.pairs.FEATURE_NAMES``) it explains."""
GROUP_OF: Final[dict[str, str]] = {f: g for g, fs in FEATURE_GROUPS.items() for f in fs}
GROUP_LABELS: Final[dict[str, str]] = {
    "similarity": "语义相似",
    "ties": "与园区资产的关联",
    "financing": "融资",
    "expansion": "扩张动作",
    "geography": "区位",
    "industry": "行业匹配",
    "size": "规模",
    "age": "成立年限",
    "listed": "上市",
    "node": "节点缺口",
    "history": "接洽历史",
    APPROACHES_GROUP: "历次接洽",
    CHECK_GROUP: "人工核实",
    OTHER_GROUP: "其余因素",
}
SIGNAL_LABELS: Final[dict[str, str]] = {
    "financing": "融资",
    "new_branch": "新设分支机构",
    "land_purchase": "购地",
    "hiring": "招聘",
    "capacity_expansion": "扩产",
}
COLOUR_LABELS: Final[dict[str, str]] = {"red": "红色（缺链）", "blue": "蓝色（弱链）", "green": "绿色（强链）"}
_COLOUR_OF_CODE: Final[dict[float, str]] = {0.0: "green", 1.0: "blue", 2.0: "red"}


@dataclass(frozen=True)
class Reason:
    """One reason of a pick: a fact group, its Chinese text, its contribution and its evidence ids."""

    group: str
    label: str
    text: str
    contribution: float | None
    features: list[str] = field(default_factory=list)
    evidence: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.contribution is not None:
            d["contribution"] = round(self.contribution, 6)
        return d


Fact = tuple[str, dict[str, list[str]]]


class Explainer:
    """Turns (pair row, contributions) into reasons; ``fit`` indexes the records once.

    Args:
        config: the ``paths`` settings (``explain_top_reasons``).
        zone_province: the zone's province (e.g. 湖北省), for 已在湖北设立分支机构.
    """

    def __init__(self, config: PathsConfig | None, zone_province: str) -> None:
        self.config = config
        self.zone_province = zone_province

    def fit(
        self,
        tables: Mapping[str, pd.DataFrame],
        nodes: pd.DataFrame | None = None,
        map_df: pd.DataFrame | None = None,
        as_of: pd.Timestamp | None = None,
        enterprise_ids: list[str] | None = None,
    ) -> Explainer:
        """Index enterprises, signals, relations and outcomes (restricted to ``enterprise_ids`` if given)."""
        self.config_ = self.config or PathsConfig()
        self.as_of_ = None if as_of is None else pd.Timestamp(as_of)
        keep = None if enterprise_ids is None else set(map(str, enterprise_ids))
        self.enterprises_ = _by_id(tables.get("enterprises"), COL_ENTERPRISE_ID, keep)
        self.signals_ = _grouped(_before(tables.get("signals"), self.as_of_), COL_ENTERPRISE_ID, keep)
        self.outcomes_ = _grouped(_before(tables.get("outcomes"), self.as_of_), COL_ENTERPRISE_ID, keep)
        self.relations_ = _relations_by_end(_before(tables.get("relations"), self.as_of_), keep)
        self.names_ = _names(tables)
        self.kinds_ = _zone_kinds(tables, self.as_of_)
        self.node_names_ = {} if nodes is None else dict(zip(nodes[COL_NODE_ID], nodes[COL_NAME], strict=True))
        self.node_codes_ = {} if nodes is None else dict(zip(nodes[COL_NODE_ID], nodes["industry_codes"], strict=True))
        self.map_ = {} if map_df is None else map_df.set_index(COL_NODE_ID).to_dict("index")
        return self

    def explain(self, row: Mapping[str, Any], contributions: Mapping[str, float] | None = None) -> list[Reason]:
        """Reasons for one pick.

        Args:
            row: the pair: ``enterprise_id, node_id`` and any feature values (``features.pairs``).
            contributions: feature → contribution, with ``bias``; ``None`` for heuristic mode.
        """
        eid, node = str(row[COL_ENTERPRISE_ID]), str(row[COL_NODE_ID])
        if contributions is None:
            return self._heuristic(row, eid, node)
        sums: dict[str, float] = {}
        members: dict[str, list[str]] = {}
        for f, c in contributions.items():
            if f == BIAS:
                continue
            g = GROUP_OF.get(f, OTHER_GROUP)
            sums[g] = sums.get(g, 0.0) + float(c)
            members.setdefault(g, []).append(f)
        ranked = sorted((g for g in sums if g != OTHER_GROUP), key=lambda g: (-abs(sums[g]), g))
        top = ranked[: self.config_.explain_top_reasons]
        reasons = [self._reason(g, row, eid, node, sums[g], members[g]) for g in top]
        rest = [g for g in sums if g not in top]
        if rest:
            feats = sorted(f for g in rest for f in members[g])
            total = math.fsum(sums[g] for g in rest)
            text = f"其余{len(feats)}项特征合计"
            reasons.append(Reason(OTHER_GROUP, GROUP_LABELS[OTHER_GROUP], text, total, feats, {}))
        return reasons

    def _heuristic(self, row: Mapping[str, Any], eid: str, node: str) -> list[Reason]:
        out = []
        for g in FEATURE_GROUPS:
            fact = self._fact(g, row, eid, node, notable_only=True)
            if fact is not None:
                out.append(Reason(g, GROUP_LABELS[g], fact[0], None, list(FEATURE_GROUPS[g]), fact[1]))
        return out[: self.config_.explain_top_reasons]

    def _reason(self, g: str, row: Mapping[str, Any], eid: str, node: str, c: float, feats: list[str]) -> Reason:
        fact = self._fact(g, row, eid, node, notable_only=False)
        text, evidence = fact if fact is not None else (_feature_text(row, feats), {})
        return Reason(g, GROUP_LABELS[g], text, c, sorted(feats), evidence)

    def _fact(self, g: str, row: Mapping[str, Any], eid: str, node: str, notable_only: bool) -> Fact | None:
        fn: Callable[[Mapping[str, Any], str, str, bool], Fact | None] = getattr(self, f"_fact_{g}")
        return fn(row, eid, node, notable_only)

    # ------------------------------------------------------------ facts, one per group
    def _fact_similarity(self, row: Mapping[str, Any], eid: str, node: str, notable: bool) -> Fact | None:
        dense, lexical = _num(row.get("dense_score")), _num(row.get("lexical_score"))
        parts = []
        if dense is not None:
            rank = _num(row.get("dense_rank"))
            parts.append(f"与节点描述相似度{dense:.2f}" + (f"（语义检索第{int(rank)}名）" if rank is not None else ""))
        if lexical is not None:
            parts.append(f"关键词匹配度{lexical:.2f}")
        if not parts:
            return None if notable else ("无检索相似度（非检索召回）", {})
        return "，".join(parts), {}

    def _fact_ties(self, row: Mapping[str, Any], eid: str, node: str, notable: bool) -> Fact | None:
        phrases, ids = [], []
        for rel in self.relations_.get(eid, []):
            other = rel[COL_DST_ID] if rel[COL_SRC_ID] == eid else rel[COL_SRC_ID]
            kind = self.kinds_.get(other)
            if kind is None:
                continue
            label = ENTRY_LABELS.get(kind, "")
            phrase = hop_phrase(
                str(rel[COL_RELATION_TYPE]), rel[COL_SRC_ID] == eid, f"{label}〈{self._name(other)}〉", ""
            )
            phrases.append(phrase.removeprefix("的"))
            ids.append(str(rel[COL_RELATION_ID]))
        if not phrases:
            return None if notable else ("与园区链主、基金、高校、实验室均无直接关联", {})
        shown = "；".join(phrases[:3])
        more = f"等{len(phrases)}项关联" if len(phrases) > 3 else ""
        return shown + more, {"relation_id": ids}

    def _fact_financing(self, row: Mapping[str, Any], eid: str, node: str, notable: bool) -> Fact | None:
        sig = self._signals(eid, "financing", FINANCING_WINDOW_DAYS)
        ent = self.enterprises_.get(eid, {})
        if sig:
            last = sig[0]
            days = self._age_days(last[COL_DATE])
            round_ = self._known_round(ent)
            amount = _money(last.get(COL_AMOUNT_CNY))
            text = f"近{_window(days)}天完成{round_ or ''}融资" + (f"（金额{amount}）" if amount else "")
            if len(sig) > 1:
                text += f"，近一年共{len(sig)}次融资"
            return text, {"signal_id": [str(s[COL_SIGNAL_ID]) for s in sig]}
        round_ = self._known_round(ent)
        if round_:
            days = self._age_days(ent.get(COL_FINANCING_DATE))
            return (f"最新融资轮次{round_}" + (f"（距今{days}天）" if days is not None else ""), {})
        return None if notable else ("近一年无融资记录", {})

    def _fact_expansion(self, row: Mapping[str, Any], eid: str, node: str, notable: bool) -> Fact | None:
        counts: dict[str, int] = {}
        ids = []
        for t in ("new_branch", "land_purchase", "capacity_expansion", "hiring"):
            sig = self._signals(eid, t, EXPANSION_WINDOW_DAYS)
            if sig:
                counts[t] = len(sig)
                ids += [str(s[COL_SIGNAL_ID]) for s in sig]
        if not counts:
            return None if notable else ("近一年无扩张动作（新设分支、购地、扩产、招聘）", {})
        parts = "、".join(f"{SIGNAL_LABELS[t]}{n}次" for t, n in counts.items())
        return f"近一年有扩张动作：{parts}", {"signal_id": ids}

    def _fact_geography(self, row: Mapping[str, Any], eid: str, node: str, notable: bool) -> Fact | None:
        zone = province_stem(self.zone_province)
        branches = [
            s
            for s in self.signals_.get(eid, [])
            if s[COL_SIGNAL_TYPE] == "new_branch" and province_stem(s.get(COL_PROVINCE)) == zone
        ]
        if branches:
            first = min(branches, key=lambda s: s[COL_DATE])
            return (
                f"已在{zone}设立分支机构（{pd.Timestamp(first[COL_DATE]):%Y-%m}）",
                {"signal_id": [str(s[COL_SIGNAL_ID]) for s in branches]},
            )
        prov = province_stem(self.enterprises_.get(eid, {}).get(COL_PROVINCE))
        if not prov:
            return None if notable else ("注册地不详", {})
        if prov == zone:
            return f"注册地在{prov}，与园区同省", {}
        dist = _num(row.get("distance_km"))
        if notable and _num(row.get("neighbour_province")) != 1.0:
            return None
        near = "（相邻省份）" if _num(row.get("neighbour_province")) == 1.0 else ""
        return f"注册地{prov}{near}" + (f"，距园区约{dist:.0f}公里" if dist is not None else ""), {}

    def _fact_industry(self, row: Mapping[str, Any], eid: str, node: str, notable: bool) -> Fact | None:
        ent = self.enterprises_.get(eid, {})
        code = _text(ent.get(COL_INDUSTRY_CODE))
        codes = list(self.node_codes_.get(node, []))
        if not code or not codes:
            return None
        name = _text(ent.get(COL_INDUSTRY_NAME))
        own = f"国标行业{code}{'（' + name + '）' if name else ''}"
        if code in codes:
            return f"{own}与节点行业代码一致", {}
        if any(c[:3] == code[:3] for c in codes):
            return f"{own}与节点同属行业小类组{code[:3]}", {}
        if any(c[:2] == code[:2] for c in codes):
            return None if notable else (f"{own}与节点同属行业大类{code[:2]}", {})
        return None if notable else (f"{own}不在节点行业代码{'/'.join(codes)}之内", {})

    def _fact_size(self, row: Mapping[str, Any], eid: str, node: str, notable: bool) -> Fact | None:
        ent = self.enterprises_.get(eid, {})
        capital, employees = _money(ent.get(COL_CAPITAL_CNY)), _num(ent.get(COL_EMPLOYEES))
        parts = ([f"注册资本{capital}"] if capital else []) + (
            [f"参保{int(employees)}人"] if employees is not None else []
        )
        if not parts or (notable and (_num(ent.get(COL_CAPITAL_CNY)) or 0) < 1e8):
            return None if notable else ("规模信息缺失", {})
        return "，".join(parts), {}

    def _fact_age(self, row: Mapping[str, Any], eid: str, node: str, notable: bool) -> Fact | None:
        age = _num(row.get("age_years"))
        if age is None or notable:
            return None
        return f"成立{age:.1f}年", {}

    def _fact_listed(self, row: Mapping[str, Any], eid: str, node: str, notable: bool) -> Fact | None:
        listed = self.enterprises_.get(eid, {}).get(COL_LISTED)
        if _num(row.get("listed")) == 1.0 or listed is True:
            return "上市公司", {}
        return None if notable else ("未上市", {})

    def _fact_node(self, row: Mapping[str, Any], eid: str, node: str, notable: bool) -> Fact | None:
        m = self.map_.get(node, {})
        colour = m.get("colour") or _COLOUR_OF_CODE.get(_num(row.get("node_colour")) or -1.0)
        if colour is None or notable:
            return None
        gap = _num(m.get("gap", row.get("node_gap")))
        label = self.node_names_.get(node, node)
        return f"目标节点〈{label}〉为{COLOUR_LABELS[colour]}" + (f"，缺口{gap:.2f}" if gap is not None else ""), {}

    def _fact_history(self, row: Mapping[str, Any], eid: str, node: str, notable: bool) -> Fact | None:
        recs = self.outcomes_.get(eid, [])
        if not recs:
            return None if notable else ("此前无接洽记录", {})
        last = recs[0]
        ended = [r for r in recs if r[COL_STAGE] == "终止" and (self._age_days(r[COL_DATE]) or 0) <= 365]
        text = f"此前有{len(recs)}条接洽记录（最近：{pd.Timestamp(last[COL_DATE]):%Y-%m} {last[COL_STAGE]}）"
        if ended:
            text += "，近一年曾终止"
        return text, {"outcome_id": [str(r[COL_OUTCOME_ID]) for r in recs]}

    def past_approaches(self, eid: str, node: str) -> Reason | None:
        """The firm's past approaches, one per node: its latest record's stage, date and 备注
        (this node first, then the newest), e.g. 历次接洽：本节点〈光芯片〉2023-05-02 洽谈；〈激光器〉
        2024-11-15 终止（终止原因：暂无扩产计划）. None when the firm has no record before ``as_of``."""
        recs = self.outcomes_.get(eid, [])  # newest first
        if not recs:
            return None
        latest: dict[str, dict[str, Any]] = {}
        for r in recs:
            latest.setdefault(str(r[COL_NODE_ID]), r)
        order = sorted(latest, key=lambda n: n != node)  # stable: the others stay newest first
        parts = [self._approach(latest[n], n == node) for n in order[:APPROACHES_SHOWN]]
        more = f"等{len(order)}个节点" if len(order) > APPROACHES_SHOWN else ""
        text = "历次接洽：" + "；".join(parts) + more
        evidence = {"outcome_id": [str(r[COL_OUTCOME_ID]) for r in recs]}
        return Reason(APPROACHES_GROUP, GROUP_LABELS[APPROACHES_GROUP], text, None, [], evidence)

    def _approach(self, rec: Mapping[str, Any], here: bool) -> str:
        node = str(rec[COL_NODE_ID])
        stage, note = str(rec[COL_STAGE]), _text(rec.get(COL_NOTE)).strip()
        if stage == "终止":  # 备注 often repeats the stage: 终止:企业选址其他城市
            note = note.removeprefix("终止:").removeprefix("终止：").strip()
        label = ("本节点" if here else "") + f"〈{self.node_names_.get(node, node)}〉"
        tail = f"（{'终止原因' if stage == '终止' else '备注'}：{note}）" if note else ""
        return f"{label}{pd.Timestamp(rec[COL_DATE]):%Y-%m-%d} {stage}{tail}"

    # ------------------------------------------------------------ helpers
    def _signals(self, eid: str, signal_type: str, window: int) -> list[dict[str, Any]]:
        out = []
        for s in self.signals_.get(eid, []):
            days = self._age_days(s[COL_DATE])
            if s[COL_SIGNAL_TYPE] == signal_type and (days is None or days <= window):
                out.append(s)
        return out

    def _age_days(self, date: Any) -> int | None:
        if date is None or pd.isna(date) or self.as_of_ is None:
            return None
        return int((self.as_of_ - pd.Timestamp(date)).days)

    def _known_round(self, ent: Mapping[str, Any]) -> str:
        round_, date = _text(ent.get(COL_FINANCING_ROUND)), ent.get(COL_FINANCING_DATE)
        if not round_ or (
            self.as_of_ is not None and date is not None and not pd.isna(date) and pd.Timestamp(date) >= self.as_of_
        ):
            return ""
        return round_

    def _name(self, entity: str) -> str:
        return self.names_.get(entity, entity)


def explain(
    row: Mapping[str, Any],
    contributions: Mapping[str, float] | None,
    tables: Mapping[str, pd.DataFrame],
    nodes: pd.DataFrame | None = None,
    map_df: pd.DataFrame | None = None,
    as_of: pd.Timestamp | None = None,
    config: PathsConfig | None = None,
    *,
    zone_province: str,
) -> list[Reason]:
    """Reasons for one pick (fits an :class:`Explainer` on that enterprise's records)."""
    ex = Explainer(config, zone_province).fit(tables, nodes, map_df, as_of, [str(row[COL_ENTERPRISE_ID])])
    return ex.explain(row, contributions)


def contributions_of(row: Mapping[str, Any]) -> dict[str, float] | None:
    """A scored row's contributions: a ``contributions`` mapping (or JSON string), or ``contrib_<feature>``
    columns plus ``contrib_bias``; ``None`` when the row carries none (heuristic mode)."""
    raw = row.get("contributions")
    if isinstance(raw, str) and raw:
        raw = json.loads(raw)
    if isinstance(raw, Mapping) and raw:
        return {str(k): float(v) for k, v in raw.items()}
    prefixed = {k.removeprefix("contrib_"): float(v) for k, v in row.items() if str(k).startswith("contrib_")}
    return prefixed or None


# ---------------------------------------------------------------- record indexes


def _before(df: pd.DataFrame | None, as_of: pd.Timestamp | None) -> pd.DataFrame | None:
    if df is None or df.empty or as_of is None or COL_DATE not in df:
        return df
    return df[pd.to_datetime(df[COL_DATE]) < as_of]


def _by_id(df: pd.DataFrame | None, key: str, keep: set[str] | None) -> dict[str, dict[str, Any]]:
    if df is None or df.empty:
        return {}
    ids = df[key].astype(str)
    sub = df[ids.isin(keep)] if keep is not None else df
    return {str(r[key]): {str(k): v for k, v in r.items()} for r in sub.to_dict("records")}


def _grouped(df: pd.DataFrame | None, key: str, keep: set[str] | None) -> dict[str, list[dict[str, Any]]]:
    """Records per key, newest first (by date, then id)."""
    if df is None or df.empty:
        return {}
    ids = df[key].astype(str)
    sub = df[ids.isin(keep)] if keep is not None else df
    sub = sub.assign(_d=pd.to_datetime(sub[COL_DATE])).sort_values(["_d"], ascending=False, kind="stable")
    out: dict[str, list[dict[str, Any]]] = {}
    for r in sub.drop(columns="_d").to_dict("records"):
        out.setdefault(str(r[key]), []).append({str(k): v for k, v in r.items()})
    return out


def _relations_by_end(df: pd.DataFrame | None, keep: set[str] | None) -> dict[str, list[dict[str, Any]]]:
    if df is None or df.empty:
        return {}
    src, dst = df[COL_SRC_ID].astype(str), df[COL_DST_ID].astype(str)
    both = pd.concat([df.assign(_end=src), df.assign(_end=dst)], ignore_index=True)
    if keep is not None:
        both = both[both["_end"].isin(keep)]
    both = both.sort_values([COL_DATE, COL_RELATION_ID], ascending=[False, True], kind="stable")
    out: dict[str, list[dict[str, Any]]] = {}
    for r in both.to_dict("records"):
        rec = {str(k): v for k, v in r.items()}
        out.setdefault(str(rec.pop("_end")), []).append(rec)
    return out


def _names(tables: Mapping[str, pd.DataFrame]) -> dict[str, str]:
    names: dict[str, str] = {}
    for table, key in (("enterprises", COL_ENTERPRISE_ID), ("assets", COL_ASSET_ID)):
        df = tables.get(table)
        if df is not None and not df.empty:
            names.update(zip(df[key].astype(str), df[COL_NAME].astype(str), strict=True))
    return names


def _zone_kinds(tables: Mapping[str, pd.DataFrame], as_of: pd.Timestamp | None) -> dict[str, str]:
    kinds: dict[str, str] = {}
    assets, presence = tables.get("assets"), tables.get("presence")
    if presence is not None and not presence.empty:
        local = local_kinds(presence, as_of)["kind"]
        kinds.update(zip(local.index.astype(str), local.astype(str), strict=True))
    if assets is not None and not assets.empty:
        kinds.update(zip(assets[COL_ASSET_ID].astype(str), assets[COL_ASSET_TYPE].astype(str), strict=True))
    return kinds


# ---------------------------------------------------------------- formatting


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, str):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _text(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA else str(v)


def _money(v: Any) -> str:
    f = _num(v)
    if f is None or f <= 0:
        return ""
    return f"{f / 1e8:.2f}亿元" if f >= 1e8 else f"{f / 1e4:.0f}万元"


def _window(days: int | None) -> int:
    """The smallest of 90 / 180 / 365 days that holds ``days``."""
    if days is None:
        return 365
    return next((w for w in (90, 180, 365) if days <= w), days)


def _feature_text(row: Mapping[str, Any], feats: list[str]) -> str:
    vals = []
    for f in sorted(feats):
        v = _num(row.get(f))
        vals.append(f"{f}={v:.3g}" if v is not None else f"{f}缺失")
    return "；".join(vals)
