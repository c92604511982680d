"""The bundled sample zone: a deterministic, realistic universe with a documented hidden process.

``generate_sample(chains, n_enterprises, random_state)`` returns :class:`SampleData`: the six raw
tables exactly as a user would import them (dates as ``YYYY-MM-DD`` strings, money in 万元), the
hidden process's ``oracle``, its ``truth`` (P(签约 | approached) for any node, firm and date,
:mod:`recommender.sample.truth`) and a ``manifest``. Columns are built under ``features.schema`` names and
written under the headers of the built-in column maps (:mod:`recommender.sample.columns`, docs/design.md
"Raw formats"). The outcome process — the hidden signing propensity, the analysts' approach policy and the
share of relevant firms per node — is configuration: ``configs/processes/<name>.yaml``
(:mod:`recommender.sample.process`, docs/sample.md "Outcome processes"); ``default`` is the one below.

Everything is pure and vectorised with numpy: the only Python loops run over chain nodes, quarters
or small tables (assets), never over enterprises. Nothing reads the clock; ``as_of`` is a parameter.

Internally enterprises are integer indices, "kinds" are chain nodes (``0 .. n_nodes-1``) followed by
unrelated distractor industries, and dates are integer days since 1970-01-01.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from features import schema as S
from features.chains import Chain
from features.validate import CREDIT_CODE_CHARSET, make_credit_codes
from recommender.sample import vocab as V
from recommender.sample.catalog import DEFAULT_PROCESS
from recommender.sample.columns import FORMER_NAME, RawHeaders, builtin_raw_headers, to_raw
from recommender.sample.process import TIE_NAMES, Policy, ProcessConfig, Universe, load_process
from recommender.sample.truth import SigningTruth, World, fit_level, recent
from recommender.sample.truth import logit as hidden_logit

GENERATOR_VERSION: Final = "1"
DEFAULT_AS_OF: Final = date(2026, 6, 30)

ORACLE_COLUMNS: Final = ["node_id", "enterprise_id", "oracle_score"]

SIGNAL_LABELS: Final = ("融资", "新设分支机构", "购地", "招聘", "扩产")  # order of schema.SIGNAL_TYPES
SIG_FIN, SIG_BRANCH, SIG_LAND, SIG_HIRE, SIG_EXPAND = range(5)
PROGRESS_STAGES: Final = ("线索", "接洽", "考察", "洽谈", "签约", "落地")
TIE_KINDS: Final = TIE_NAMES
NETWORK: Final[dict[str, Any]] = {
    # relation probability multiplier per firm: base + per_log10_capital·(log10 capital − 6.7) + listed, clipped
    "reach": {"base": 1.0, "per_log10_capital": 0.35, "listed": 0.3, "min": 0.4, "max": 1.8},
    "zone_supply": {"hubei": 0.30, "other": 0.20},  # chain firm ↔ zone firm at an adjacent node / chain leader
    "second_tier": {"hubei": 0.75, "other": 0.75},  # chain firm ↔ a direct zone partner at an adjacent node
    "co_investor": {"p": 0.25, "second_vc": 0.4},  # VC of the chain backs the firm (and zone-fund portfolio firms)
    # a distractor industry sharing an industry class with a node (汽车维修 ↔ 汽车后市场): dealers and
    # service shops buy from carmakers, the local one or those that trade with the zone
    "periphery": {"zone_supply": 0.25, "second_tier": 0.65},
    # R&D-heavy stages (materials, chips, devices) work more with universities and labs
    "rd_by_stage": {"upstream": 1.5, "midstream": 1.25, "downstream": 1.0},
    "alumni": {"hubei": 0.10, "other": 0.06},
    "lab": {"hubei": 0.05, "other": 0.025},
}
"""The chain's relation network around the zone (docs/sample.md, section 3): per-firm probabilities × reach."""

DIRT: Final[dict[str, float]] = {
    "invalid_credit_code": 0.005,
    "unparseable_capital": 0.002,
    "traditional_text": 0.03,
    "fullwidth_text": 0.02,
    "duplicate_rows": 0.002,
    "odd_whitespace": 0.01,
    "slash_dates": 0.002,
}
CURRENCIES: Final = (("人民币", 1.0, 0.90), ("美元", 7.1, 0.07), ("港元", 0.91, 0.02), ("欧元", 7.8, 0.01))


@dataclass(frozen=True)
class SampleData:
    """The generated sample: raw tables (headers of the column maps), the oracle and a manifest."""

    enterprises: pd.DataFrame
    presence: pd.DataFrame
    assets: pd.DataFrame
    relations: pd.DataFrame
    signals: pd.DataFrame
    outcomes: pd.DataFrame
    oracle: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)
    truth: SigningTruth | None = None

    def tables(self) -> dict[str, pd.DataFrame]:
        """The six raw tables by name (``enterprises`` … ``outcomes``; ``features.schema.RAW_TABLES``)."""
        return {name: getattr(self, name) for name in S.RAW_TABLES}

    def signing_probability(self, node_ids: Any, enterprise_ids: Any, dates: Any) -> np.ndarray:
        """The true P(签约 | approached on the date) for any (node_id, enterprise_id, date), shape (m,)
        (:meth:`recommender.sample.truth.SigningTruth.signing_probability`).

        Raises:
            ValueError: a sample built without its truth, or what the truth raises (unknown ids, bad dates).
        """
        if self.truth is None:
            raise ValueError("this SampleData carries no truth; generate_sample attaches one")
        return self.truth.signing_probability(node_ids, enterprise_ids, dates)


# ---------------------------------------------------------------------------------------------- kinds
@dataclass(frozen=True)
class _Kinds:
    """Chain nodes (first ``n_nodes``) followed by distractor industries, as padded arrays."""

    node_ids: np.ndarray  # (n_nodes,) str
    chain_of: np.ndarray  # (n_kinds,) int, -1 for distractors
    chain_names: list[str]
    names: np.ndarray  # (n_kinds,) str
    adjacent: np.ndarray  # (n_nodes, n_nodes) bool, up- or downstream neighbour
    downstream: np.ndarray  # (n_nodes, n_nodes) bool, [u, w]: u -> w
    products: np.ndarray  # (n_kinds, P) object, padded
    n_products: np.ndarray
    keywords: np.ndarray
    n_keywords: np.ndarray
    words: np.ndarray  # name words
    n_words: np.ndarray
    scope: np.ndarray  # scope items
    n_scope: np.ndarray
    industry: np.ndarray  # "C3976 光电子器件制造"
    n_industry: np.ndarray
    description: np.ndarray  # (n_kinds,) str
    desc_head: np.ndarray
    strategic_weight: np.ndarray  # (n_nodes,)
    rd_factor: np.ndarray  # (n_nodes,) alumni / lab tie multiplier by stage (NETWORK["rd_by_stage"])

    @property
    def n_nodes(self) -> int:
        return len(self.node_ids)


_SECTION_LETTER = [
    (1, 5, "A"),
    (6, 12, "B"),
    (13, 43, "C"),
    (44, 46, "D"),
    (47, 50, "E"),
    (51, 52, "F"),
    (53, 60, "G"),
    (61, 62, "H"),
    (63, 65, "I"),
    (66, 69, "J"),
    (70, 70, "K"),
    (71, 72, "L"),
    (73, 75, "M"),
    (76, 79, "N"),
    (80, 82, "O"),
    (83, 83, "P"),
    (84, 85, "Q"),
    (86, 90, "R"),
    (91, 97, "S"),
]


def industry_label(code: str) -> str:
    """``'3976'`` -> ``'C3976 光电子器件制造'`` (GB/T 4754-2017 section letter, code and class name)."""
    division = int(code[:2])
    letter = next((s for lo, hi, s in _SECTION_LETTER if lo <= division <= hi), "C")
    name = V.INDUSTRY_NAMES.get(code) or V.INDUSTRY_DIVISIONS.get(code[:2], "其他未列明行业")
    return f"{letter}{code} {name}"


def _pad(rows: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged lists -> (padded object array, lengths); an empty list gets one empty string."""
    rows = [r if r else [""] for r in rows]
    width = max(len(r) for r in rows)
    out = np.full((len(rows), width), "", dtype=object)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out, np.asarray([len(r) for r in rows], dtype=np.int64)


def _cjk_words(words: list[str]) -> list[str]:
    return [w for w in words if 2 <= len(w) <= 5 and all("\u4e00" <= c <= "\u9fff" for c in w)]


def _build_kinds(chains: list[Chain]) -> _Kinds:
    nodes = [(ci, n) for ci, ch in enumerate(chains) for n in ch.nodes]
    index = {n.id: i for i, (_, n) in enumerate(nodes)}
    k = len(nodes)
    down = np.zeros((k, k), dtype=bool)
    for i, (_, n) in enumerate(nodes):
        for d in n.downstream:
            down[i, index[d]] = True
    products = [list(n.products) or [n.name] for _, n in nodes] + [list(d[3]) for d in V.DISTRACTORS]
    keywords = [list(n.keywords) or [n.name] for _, n in nodes] + [list(d[4]) for d in V.DISTRACTORS]
    words = [(_cjk_words([n.name, *n.keywords]) or [chains[ci].name]) + [chains[ci].name] for ci, n in nodes] + [
        list(d[4]) for d in V.DISTRACTORS
    ]
    scope = [[f"{p}研发", f"{p}制造", f"{p}销售"] for _, n in nodes for p in [(n.products or [n.name])[0]]]
    scope += [list(d[5]) for d in V.DISTRACTORS]
    industry = [[industry_label(c) for c in (n.industry_codes or ["3979"])] for _, n in nodes]
    industry += [[industry_label(c) for c in d[2]] for d in V.DISTRACTORS]
    description = [n.description for _, n in nodes] + [
        f"主要从事{d[1]}相关业务，提供{'、'.join(d[3][:3])}等服务。" for d in V.DISTRACTORS
    ]
    pads = [_pad(x) for x in (products, keywords, words, scope, industry)]
    return _Kinds(
        node_ids=np.asarray([n.id for _, n in nodes], dtype=object),
        chain_of=np.asarray([ci for ci, _ in nodes] + [-1] * len(V.DISTRACTORS), dtype=np.int64),
        chain_names=[ch.name for ch in chains],
        names=np.asarray([n.name for _, n in nodes] + [d[1] for d in V.DISTRACTORS], dtype=object),
        adjacent=down | down.T,
        downstream=down,
        products=pads[0][0],
        n_products=pads[0][1],
        keywords=pads[1][0],
        n_keywords=pads[1][1],
        words=pads[2][0],
        n_words=pads[2][1],
        scope=pads[3][0],
        n_scope=pads[3][1],
        industry=pads[4][0],
        n_industry=pads[4][1],
        description=np.asarray(description, dtype=object),
        desc_head=np.asarray([d.split("，")[0].rstrip("。") + "。" for d in description], dtype=object),
        strategic_weight=np.asarray([n.strategic_weight for _, n in nodes], dtype=float),
        rd_factor=np.asarray([NETWORK["rd_by_stage"][n.stage] for _, n in nodes], dtype=float),
    )


def _pick(
    table: np.ndarray, counts: np.ndarray, kind: np.ndarray, rng: np.random.Generator, offset: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One entry per row of ``table[kind]``: a uniform index (or ``offset + 1`` ahead, distinct)."""
    c = counts[kind]
    if offset is None:
        idx = (rng.random(len(kind)) * c).astype(np.int64)
    else:
        idx = (offset + 1 + (rng.random(len(kind)) * np.maximum(c - 1, 1)).astype(np.int64)) % c
    return table[kind, idx], idx


# ---------------------------------------------------------------------------------------------- zone
def _zone_colours(kinds: _Kinds, rng: np.random.Generator) -> np.ndarray:
    """Designed colour per node (0 red, 1 blue, 2 green): about 30 % green, 30 % red per chain."""
    colour = np.ones(kinds.n_nodes, dtype=np.int64)
    for ci in range(len(kinds.chain_names)):
        members = rng.permutation(np.flatnonzero(kinds.chain_of[: kinds.n_nodes] == ci))
        n = len(members)
        n_green = max(1, round(0.3 * n))
        n_red = max(1, round(0.3 * n))
        colour[members[:n_green]] = 2
        colour[members[n_green : n_green + n_red]] = 0
    return colour


def _local_counts(colour: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    green = np.minimum(5 + rng.poisson(3.0, len(colour)), 14)
    blue = np.minimum(1 + rng.poisson(1.0, len(colour)), 4)
    return np.where(colour == 2, green, np.where(colour == 1, blue, 0))


# ---------------------------------------------------------------------------------------------- universe
@dataclass
class _Universe:
    """Hidden truth per enterprise (index = row of the universe before dirt)."""

    kind: np.ndarray
    second: np.ndarray  # secondary chain node or -1
    vague: np.ndarray
    local: np.ndarray  # bool
    leader: np.ndarray  # bool
    city: np.ndarray  # index into V.CITIES, -1 for the zone
    province: np.ndarray  # str
    city_name: np.ndarray
    district: np.ndarray
    region: np.ndarray  # 6-digit code
    founded: np.ndarray  # days
    capital_cny: np.ndarray
    capital_text: np.ndarray
    employees: np.ndarray
    listed: np.ndarray
    status: np.ndarray
    operating: np.ndarray
    ids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    names: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))


def _assign_kinds(
    kinds: _Kinds, local_counts: np.ndarray, n: int, shares: Universe, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Kind per enterprise and the local flag; local firms first, then chain firms, then distractors
    (shares of the process's ``universe``)."""
    k = kinds.n_nodes
    n_local = int(local_counts.sum())
    n_dis = int(round(shares.distractor_share * n))
    n_chain = n - n_local - n_dis
    need = shares.min_per_node * k
    if n_chain < need:
        minimum = int(np.ceil((need + n_local) / (1 - shares.distractor_share))) + 1
        raise ValueError(
            f"n_enterprises must be at least {minimum} for {k} chain nodes ({n_local} zone enterprises, "
            f"{shares.min_per_node} per node, {shares.distractor_share:.0%} distractors); got {n}"
        )
    popularity = rng.gamma(shares.popularity_shape, 1.0, k)
    chain_kind = np.concatenate(
        [np.repeat(np.arange(k), shares.min_per_node), rng.choice(k, n_chain - need, p=popularity / popularity.sum())]
    )
    dis_kind = k + rng.integers(0, len(V.DISTRACTORS), n_dis)
    kind = np.concatenate([np.repeat(np.arange(k), local_counts), chain_kind, dis_kind])
    local = np.zeros(n, dtype=bool)
    local[:n_local] = True
    return kind, local


def _secondary(kinds: _Kinds, kind: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """A ``share`` of chain firms (12 % by default) straddle a second node: an adjacent node, else one of the
    same chain."""
    k = kinds.n_nodes
    second = np.full(len(kind), -1, dtype=np.int64)
    is_chain = kind < k
    chosen = np.flatnonzero(is_chain & (rng.random(len(kind)) < share))
    neigh_rows = [np.flatnonzero(kinds.adjacent[i]) for i in range(k)]
    same_rows = [np.flatnonzero((kinds.chain_of[:k] == kinds.chain_of[i]) & (np.arange(k) != i)) for i in range(k)]
    options, counts = _pad(
        [[str(x) for x in (nr if len(nr) else sr)] for nr, sr in zip(neigh_rows, same_rows, strict=True)]
    )
    picked, _ = _pick(options, counts, kind[chosen], rng)
    ok = picked != ""
    second[chosen[ok]] = picked[ok].astype(np.int64)
    return second


def _geography(u_local: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = len(u_local)
    w = np.asarray([c[2] for c in V.CITIES])
    city = rng.choice(len(V.CITIES), n, p=w / w.sum())
    dist_tab, dist_n = _pad([[d[0] for d in c[3]] for c in V.CITIES])
    code_tab, _ = _pad([[d[1] for d in c[3]] for c in V.CITIES])
    d_idx = (rng.random(n) * dist_n[city]).astype(np.int64)
    province = np.asarray([c[0] for c in V.CITIES], dtype=object)[city]
    city_name = np.asarray([c[1] for c in V.CITIES], dtype=object)[city]
    district = dist_tab[city, d_idx]
    region = code_tab[city, d_idx]
    zone_w = np.asarray([z[2] for z in V.ZONE_DISTRICTS])
    z = rng.choice(len(V.ZONE_DISTRICTS), n, p=zone_w / zone_w.sum())
    loc = u_local
    province = np.where(loc, V.ZONE_PROVINCE, province)
    city_name = np.where(loc, V.ZONE_CITY, city_name)
    district = np.where(loc, np.asarray([x[0] for x in V.ZONE_DISTRICTS], dtype=object)[z], district)
    region = np.where(loc, np.asarray([x[1] for x in V.ZONE_DISTRICTS], dtype=object)[z], region)
    return {
        "city": np.where(loc, -1, city),
        "province": province,
        "city_name": city_name,
        "district": district,
        "region": region,
    }


def _capital_text(amount_wan: np.ndarray, currency: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Registered capital strings in the usual mixed formats, e.g. ``5000万人民币``, ``1.2亿美元``."""
    n = len(amount_wan)
    whole = amount_wan == np.round(amount_wan)
    plain = np.where(whole, np.round(amount_wan).astype(np.int64).astype(str), np.char.mod("%.4f", amount_wan)).astype(
        object
    )
    yi = amount_wan / 1e4
    yi_text = np.char.mod("%g", np.round(yi, 2)).astype(object)
    use_yi = (amount_wan >= 1e4) & (np.round(yi, 2) == yi) & (rng.random(n) < 0.5)
    cur_name = np.asarray([c[0] for c in CURRENCIES], dtype=object)[currency]
    style = rng.integers(0, 3, n)
    rmb_suffix = np.asarray(["万人民币", "万元人民币", "万元"], dtype=object)[style]
    fx_suffix = np.where(style == 0, "万(" + cur_name + ")", "万" + cur_name)
    text = np.where(currency == 0, plain + rmb_suffix, plain + fx_suffix)
    yi_suffix = np.where(currency == 0, np.where(style == 2, "亿元", "亿人民币"), "亿" + cur_name)
    return np.where(use_yi, yi_text + yi_suffix, text)


def _attributes(
    kind: np.ndarray, local: np.ndarray, leader: np.ndarray, k: int, as_of: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    n = len(kind)
    chain = kind < k
    age = np.clip(rng.gamma(1.6, 5.0, n), 0.3, 30.0)
    age = np.where(local, np.maximum(age, 3.0 + rng.random(n) * 4), age)
    age = np.where(leader, np.maximum(age, 10.0 + rng.random(n) * 10), age)
    founded = as_of - np.round(age * 365.25).astype(np.int64)
    log_cap = np.where(chain, rng.normal(6.7 + 0.05 * np.minimum(age, 20), 0.75), rng.normal(6.3, 0.6))
    log_cap = np.where(local, log_cap + 0.4, log_cap)
    log_cap = np.where(leader, rng.normal(9.2, 0.4, n), log_cap)
    log_cap = np.clip(log_cap, 5.0, 10.7)
    cur_p = np.asarray([c[2] for c in CURRENCIES])
    currency = np.where(chain & ~local, rng.choice(len(CURRENCIES), n, p=cur_p / cur_p.sum()), 0)
    rate = np.asarray([c[1] for c in CURRENCIES])[currency]
    raw_wan = 10**log_cap / 1e4 / rate
    magnitude = 10 ** np.floor(np.log10(raw_wan) - 1)  # two significant digits ...
    amount = np.round(raw_wan / magnitude) * magnitude
    precise = rng.random(n) < 0.15  # ... or a precise figure like 1234.5678万
    amount = np.where(precise, np.round(raw_wan, 4), amount)
    capital_cny = amount * 1e4 * rate
    emp = np.round(np.exp(1.2 + 0.5 * np.log(capital_cny / 1e4) + rng.normal(0, 0.6, n)))
    p_listed = 1 / (1 + np.exp(-2.2 * (np.log10(capital_cny) - 8.8))) * np.where(chain, 0.9, 0.3)
    listed = (rng.random(n) < p_listed) | leader
    statuses = np.asarray(["存续", "在业", "开业", "注销", "吊销", "迁出"], dtype=object)
    status_idx = rng.choice(6, n, p=[0.72, 0.18, 0.02, 0.05, 0.025, 0.005])
    status_idx = np.where(local | listed, status_idx % 2, status_idx)
    return {
        "founded": founded,
        "capital_cny": capital_cny,
        "capital_text": _capital_text(amount, currency, rng),
        "employees": emp,
        "listed": listed,
        "status": statuses[status_idx],
        "operating": status_idx < 3,
    }


# ---------------------------------------------------------------------------------------------- codes, names
def _gb11714_check(body8: np.ndarray) -> np.ndarray:
    """GB 11714 organisation-code check characters for (n, 8) arrays of character values 0-35."""
    total = (body8 * np.asarray([3, 7, 9, 10, 5, 8, 4, 2])).sum(axis=1)
    c = 11 - total % 11
    return np.where(c == 10, "X", np.where(c == 11, "0", c.astype(str))).astype(object)


def _to_base(values: np.ndarray, base: int, width: int) -> np.ndarray:
    out = np.empty((len(values), width), dtype=np.int64)
    v = values.copy()
    for j in range(width - 1, -1, -1):
        out[:, j] = v % base
        v //= base
    return out


def _credit_codes(region: np.ndarray, founded: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unique valid 统一社会信用代码: ``91`` + region + organisation code (+ check) + check character
    (``features.validate.make_credit_codes``).

    Firms founded since 2015-10 carry new-style ``MA…`` organisation codes, older ones 8 digits; an
    affine bijection of the row index keeps every code unique.
    """
    n = len(region)
    charset = np.asarray(list(CREDIT_CODE_CHARSET))
    new_style = founded >= np.datetime64("2015-10-01", "D").astype(np.int64)
    idx = np.arange(n, dtype=np.int64)
    old = _to_base((idx * 7_654_321 + int(rng.integers(0, 10**8))) % 10**8, 10, 8)
    new = _to_base((idx * 12_345_679 + int(rng.integers(0, 31**6))) % 31**6, 31, 6)
    # GB 11714 values: digits 0-9, letters A=10 ... Z=35
    new_letters = charset[new]
    base36 = np.asarray([int(c, 36) for c in CREDIT_CODE_CHARSET], dtype=np.int64)
    new_vals = base36[new]
    ma = np.tile(np.asarray([22, 10]), (n, 1))
    org_vals = np.where(new_style[:, None], np.hstack([ma, new_vals]), old)
    org_chars = np.where(
        new_style[:, None],
        np.hstack([np.tile(np.asarray(["M", "A"]), (n, 1)), new_letters]),
        np.asarray(list("0123456789"))[old],
    )
    org_check = _gb11714_check(org_vals)
    region_chars = np.ascontiguousarray(np.asarray(region, dtype="<U6")).view("<U1").reshape(n, 6)
    body_chars = np.hstack(
        [np.tile(np.asarray(["9", "1"]), (n, 1)), region_chars, org_chars, org_check.astype("<U1")[:, None]]
    ).astype("<U1")
    return make_credit_codes(np.ascontiguousarray(body_chars).view("<U17").reshape(n))


def _names(
    kinds: _Kinds, kind: np.ndarray, u: dict[str, np.ndarray], listed: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    n = len(kind)
    chars = np.asarray(list(V.ZIHAO_CHARS), dtype=object)
    zihao = chars[rng.integers(0, len(chars), n)] + chars[rng.integers(0, len(chars), n)]
    word, _ = _pick(kinds.words, kinds.n_words, kind, rng)
    is_chain = kind < kinds.n_nodes
    suffix = np.where(is_chain, np.asarray(V.NAME_SUFFIX_WORDS, dtype=object)[rng.integers(0, 8, n)], "")
    suffix = np.where(is_chain & (rng.random(n) < 0.2), "", suffix)
    form = np.where(listed | (rng.random(n) < 0.15), "股份有限公司", "有限公司")
    city = pd.Series(u["city_name"]).str.removesuffix("市").to_numpy(dtype=object)
    style = rng.choice(4, n, p=[0.55, 0.25, 0.1, 0.1])
    tech = np.where(suffix == "", "科技", suffix)
    return np.select(
        [style == 0, style == 1, style == 2],
        [city + zihao + word + suffix + form, zihao + word + suffix + form, zihao + tech + "（" + city + "）" + form],
        default=city + "市" + zihao + word + form,
    )


# ---------------------------------------------------------------------------------------------- texts
def _scope_text(
    kinds: _Kinds, kind: np.ndarray, keyword: np.ndarray, founded: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """经营范围 in registry style: "一般项目：…" since 2019, the older "…依法须经审批…" form before."""
    sc1, si = _pick(kinds.scope, kinds.n_scope, kind, rng)
    sc2, _ = _pick(kinds.scope, kinds.n_scope, kind, rng, offset=si)
    is_chain = kind < kinds.n_nodes
    tech_scope = np.where(
        is_chain,
        keyword + "技术服务；技术开发、技术咨询、技术交流、技术转让、技术推广；货物进出口；技术进出口",
        "企业管理咨询；信息咨询服务（不含许可类信息咨询服务）",
    )
    new_rule = founded >= np.datetime64("2019-01-01", "D").astype(np.int64)
    scope = np.where(
        new_rule,
        "一般项目："
        + sc1
        + "；"
        + sc2
        + "；"
        + tech_scope
        + "。（除依法须经批准的项目外，凭营业执照依法自主开展经营活动）",
        sc1 + "、" + sc2 + "；" + tech_scope + "。（依法须经审批的项目，经相关部门审批后方可开展经营活动）",
    )
    return scope


def _texts(
    kinds: _Kinds,
    kind: np.ndarray,
    second: np.ndarray,
    vague: np.ndarray,
    names: np.ndarray,
    founded: np.ndarray,
    city_name: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    n = len(kind)
    p1, i1 = _pick(kinds.products, kinds.n_products, kind, rng)
    p2, _ = _pick(kinds.products, kinds.n_products, kind, rng, offset=i1)
    k1, j1 = _pick(kinds.keywords, kinds.n_keywords, kind, rng)
    k2, _ = _pick(kinds.keywords, kinds.n_keywords, kind, rng, offset=j1)
    has2 = (kinds.n_products[kind] > 1) & (rng.random(n) < 0.7)
    products = np.where(has2, p1 + "、" + p2, p1)
    straddle = second >= 0
    s_kind = np.where(straddle, second, kind)
    sp, _ = _pick(kinds.products, kinds.n_products, s_kind, rng)
    products = np.where(straddle, products + "、" + sp, products)
    year = _small_int_text(founded.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970)
    chain_name = np.asarray([*kinds.chain_names, ""], dtype=object)[kinds.chain_of[kind]]
    chain_app = np.where(kinds.chain_of[kind] >= 0, chain_name + "等领域", "多个行业")
    kw = np.where(k1 == k2, k1, k1 + "与" + k2)
    tpl = rng.integers(0, 3, n)
    desc = np.select(
        [tpl == 0, tpl == 1],
        [
            names + "成立于" + year + "年，是一家专注于" + kw + "领域的高新技术企业，主要产品包括" + products + "等。",
            "公司主要从事"
            + products
            + "的研发、生产和销售。"
            + np.where(rng.random(n) < 0.5, kinds.description[kind], kinds.desc_head[kind]),
        ],
        default=kinds.desc_head[kind] + "公司掌握" + k1 + "核心技术，产品广泛应用于" + chain_app + "。",
    )
    desc = np.where(straddle, desc + "同时布局" + sp + "业务。", desc)
    city = pd.Series(np.asarray(city_name, dtype=object)).str.removesuffix("市").to_numpy(dtype=object)
    desc = np.where(
        kinds.chain_of[kind] < 0,
        names + "成立于" + year + "年，主要从事" + products + "等业务，服务" + city + "及周边地区客户。",
        desc,
    )
    vague_text = np.asarray(V.VAGUE_DESCRIPTIONS, dtype=object)[rng.integers(0, len(V.VAGUE_DESCRIPTIONS), n)]
    desc = np.where(vague, vague_text, desc)
    products = np.where(vague & (rng.random(n) < 0.5), "", products)
    scope = _scope_text(kinds, kind, k1, founded, rng)
    industry, _ = _pick(kinds.industry, kinds.n_industry, kind, rng)
    return {"description": desc, "products": products, "scope": scope, "industry": industry}


# ---------------------------------------------------------------------------------------------- signals
@dataclass
class _Signals:
    ent: np.ndarray
    kind: np.ndarray  # 0..4, order of SIGNAL_LABELS
    day: np.ndarray
    amount_wan: np.ndarray  # nan when none
    province: np.ndarray
    city: np.ndarray
    description: np.ndarray
    round_label: np.ndarray  # financing round or ""


def _signals(u: _Universe, k: int, as_of: int, kinds: _Kinds, rng: np.random.Generator) -> _Signals:
    """Dated events: a Poisson number per enterprise over 2019-01-01 .. as_of, rate by size, youth, momentum."""
    n = len(u.kind)
    start = int(np.datetime64("2019-01-01", "D").astype(np.int64))
    years = (as_of - start) / 365.25
    age = (as_of - u.founded) / 365.25
    momentum = rng.gamma(2.0, 0.5, n)
    base = np.where(u.kind < k, 0.18, 0.03) * momentum * (1 + 0.3 * (np.log10(u.capital_cny) - 7))
    base = np.clip(base, 0.005, 2.0) * np.where(u.operating, 1.0, 0.2)
    counts = rng.poisson(base * years)
    ent = np.repeat(np.arange(n), counts)
    m = len(ent)
    day = start + (rng.random(m) * (as_of - start)).astype(np.int64)
    day = np.maximum(day, u.founded[ent] + 30)
    keep = day < as_of
    ent, day = ent[keep], day[keep]
    m = len(ent)
    young = age[ent] < 6
    p_young = np.asarray([0.35, 0.15, 0.08, 0.27, 0.15])
    p_old = np.asarray([0.12, 0.25, 0.13, 0.3, 0.2])
    r = rng.random(m)
    kind = np.where(young, np.searchsorted(np.cumsum(p_young), r), np.searchsorted(np.cumsum(p_old), r))
    kind = np.minimum(kind, 4)
    order = np.lexsort((day, ent))
    ent, day, kind = ent[order], day[order], kind[order]
    return _signal_details(u, ent, day, kind, kinds, rng)


def _financing_rounds(ent: np.ndarray, is_fin: np.ndarray, listed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Round label per financing event: a per-firm starting round advanced by the event's rank."""
    labels = np.asarray(["天使轮", "A轮", "B轮", "C轮", "D轮及以后"], dtype=object)
    fin_idx = np.flatnonzero(is_fin)
    out = np.full(len(ent), "", dtype=object)
    if len(fin_idx) == 0:
        return out
    e = ent[fin_idx]
    first = np.r_[True, e[1:] != e[:-1]]
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(e)), 0))
    rank = np.arange(len(e)) - group_start
    start_round = rng.integers(0, 3, len(listed))[e]
    lab = labels[np.minimum(start_round + rank, 4)]
    out[fin_idx] = np.where(listed[e], "战略投资", lab)
    return out


def _signal_details(
    u: _Universe, ent: np.ndarray, day: np.ndarray, kind: np.ndarray, kinds: _Kinds, rng: np.random.Generator
) -> _Signals:
    m = len(ent)
    rounds = _financing_rounds(ent, kind == SIG_FIN, u.listed, rng)
    base_amount = np.asarray(
        [V.FINANCING_AMOUNTS_WAN.get(r, 0.0) for r in ("天使轮", "A轮", "B轮", "C轮", "D轮及以后", "战略投资")]
    )
    round_idx = np.select(
        [rounds == r for r in ("天使轮", "A轮", "B轮", "C轮", "D轮及以后", "战略投资")], list(range(6)), default=0
    )
    scale = rng.lognormal(0.0, 0.5, m)
    cap_wan = u.capital_cny[ent] / 1e4
    amount = np.select(
        [kind == SIG_FIN, kind == SIG_LAND, kind == SIG_EXPAND],
        [
            np.round(base_amount[round_idx] * scale, -1),
            np.round(cap_wan * 0.3 * scale + 500, -1),
            np.round(cap_wan * 0.8 * scale + 1000, -1),
        ],
        default=np.nan,
    )
    w = np.asarray([c[2] for c in V.CITIES])
    other_city = rng.choice(len(V.CITIES), m, p=w / w.sum())
    hubei_branch = rng.random(m) < 0.22
    wuhan = [i for i, c in enumerate(V.CITIES) if c[1] == V.ZONE_CITY][0]
    branch_city = np.where(hubei_branch, wuhan, other_city)
    prov_tab = np.asarray([c[0] for c in V.CITIES], dtype=object)
    city_tab = np.asarray([c[1] for c in V.CITIES], dtype=object)
    land_city = np.where(rng.random(m) < 0.5, other_city, np.maximum(u.city[ent], 0))
    event_city = np.select([kind == SIG_BRANCH, kind == SIG_LAND], [branch_city, land_city], default=-1)
    province = np.where(event_city >= 0, prov_tab[np.maximum(event_city, 0)], u.province[ent])
    city = np.where(event_city >= 0, city_tab[np.maximum(event_city, 0)], u.city_name[ent])
    product, _ = _pick(kinds.products, kinds.n_products, u.kind[ent], rng)
    positions = _small_int_text(rng.integers(5, 120, m))
    area = _small_int_text(rng.integers(20, 300, m))
    amt_text = np.where(np.isnan(amount), "0", np.nan_to_num(amount).astype(np.int64).astype(str))
    description = np.select(
        [kind == SIG_FIN, kind == SIG_BRANCH, kind == SIG_LAND, kind == SIG_HIRE],
        [
            u.names[ent] + "完成" + rounds + "融资，金额" + amt_text + "万元",
            u.names[ent] + "在" + city + "新设分支机构",
            u.names[ent] + "竞得" + city + area + "亩工业用地",
            u.names[ent] + "发布" + positions + "个研发及生产岗位招聘",
        ],
        default=np.where(
            kinds.chain_of[u.kind[ent]] >= 0,
            u.names[ent] + product + "扩产项目开工，总投资" + amt_text + "万元",
            u.names[ent] + "扩大经营规模，新增投资" + amt_text + "万元",
        ),
    )
    return _Signals(
        ent=ent,
        kind=kind,
        day=day,
        amount_wan=amount,
        province=province,
        city=city,
        description=description,
        round_label=rounds,
    )


# ---------------------------------------------------------------------------------------------- assets
@dataclass(frozen=True)
class _Assets:
    frame: pd.DataFrame  # raw values, columns _ASSET_FIELDS
    funds: np.ndarray  # asset ids
    fund_chain: np.ndarray  # chain index or -1
    universities: np.ndarray
    alumni_networks: np.ndarray
    labs: np.ndarray
    lab_chain: np.ndarray


_ASSET_FIELDS: Final = (S.COL_ASSET_ID, S.COL_ASSET_TYPE, S.COL_NAME, S.COL_DESCRIPTION, S.COL_NODE_ID, S.COL_OWNER)
"""The fields of an asset row, in the order the row builders below list them."""
_GENERAL_FUNDS: Final = ("光谷产业投资引导基金", "光谷创新天使投资基金", "东湖高新科技成果转化基金")


def _fund_rows(kinds: _Kinds, targets: np.ndarray) -> tuple[list[list[str]], list[int]]:
    """Three general funds, then one fund per chain (node: the chain's first red/blue node)."""
    rows, chain = [], []
    for i, name in enumerate(_GENERAL_FUNDS):
        owner = V.FUND_OWNERS[i % 2]
        rows.append([f"FUND-{i + 1:03d}", "基金", name, f"{name}由{owner}发起设立，重点投资光谷战略性新兴产业早期及成长期项目。",
                     "", owner])  # fmt: skip
        chain.append(-1)
    for ci, cname in enumerate(kinds.chain_names):
        in_chain = targets[kinds.chain_of[targets] == ci]
        node = str(kinds.node_ids[in_chain[0]]) if len(in_chain) else ""
        rows.append([f"FUND-{len(rows) + 1:03d}", "基金", f"光谷{cname}产业基金",
                     f"聚焦{cname}产业链补链强链，投资{cname}关键环节企业并推动项目落地光谷。", node,
                     V.FUND_OWNERS[2 + ci % 2]])  # fmt: skip
        chain.append(ci)
    return rows, chain


def _academic_rows(kinds: _Kinds) -> list[list[str]]:
    """Universities, four alumni networks and one lab per chain."""
    rows = [[f"UNIV-{i + 1:03d}", "高校", name,
             f"{name}位于武汉，拥有多个国家重点学科和工程研究中心，与光谷企业开展广泛的产学研合作。", "", name]
            for i, name in enumerate(V.UNIVERSITIES)]  # fmt: skip
    rows += [[f"ALUM-{i + 1:03d}", "校友会", f"{name}校友会", f"{name}校友会联络海内外校友企业家，助力校友企业回汉投资兴业。",
              "", name] for i, name in enumerate(V.UNIVERSITIES[:4])]  # fmt: skip
    for ci, cname in enumerate(kinds.chain_names):
        lab_name, field_name = V.LABS[ci % len(V.LABS)]
        if ci >= len(V.LABS):
            lab_name = f"{lab_name}（{cname}分中心）"
        rows.append([f"LAB-{ci + 1:03d}", "实验室", lab_name,
                     f"{lab_name}面向{field_name}与{cname}领域开展关键核心技术攻关和成果转化。", "", "湖北省科学技术厅"])  # fmt: skip
    return rows


def _scenario_rows(kinds: _Kinds, targets: np.ndarray, u: _Universe, rng: np.random.Generator) -> list[list[str]]:
    """An open application scenario for about half the red/blue nodes, opened by a leader of the chain."""
    rows = []
    leaders = np.flatnonzero(u.leader)
    for j, v in enumerate(targets[rng.random(len(targets)) < 0.5]):
        same = leaders[kinds.chain_of[u.kind[leaders]] == kinds.chain_of[v]]
        public = V.SCENARIO_OWNERS_PUBLIC[j % len(V.SCENARIO_OWNERS_PUBLIC)]
        owner = str(u.names[same[j % len(same)]]) if len(same) else public
        product = str(kinds.products[v, j % kinds.n_products[v]])
        keyword = str(kinds.keywords[v, j % kinds.n_keywords[v]])
        rows.append([f"SCEN-{j + 1:03d}", "应用场景", f"{kinds.names[v]}应用场景需求",
                     f"{owner}开放{product}应用场景，寻求具备{keyword}能力的合作伙伴在光谷开展示范应用与批量采购。",
                     str(kinds.node_ids[v]), owner])  # fmt: skip
    return rows


def _assets(kinds: _Kinds, colour: np.ndarray, u: _Universe, rng: np.random.Generator) -> _Assets:
    """Zone funds, universities, alumni networks, labs and open application scenarios (small tables)."""
    targets = np.flatnonzero(colour < 2)
    funds, fund_chain = _fund_rows(kinds, targets)
    rows = funds + _academic_rows(kinds) + _scenario_rows(kinds, targets, u, rng)
    frame = pd.DataFrame(rows, columns=list(_ASSET_FIELDS))
    ids = frame[S.COL_ASSET_ID].to_numpy(dtype=object)
    kind = frame[S.COL_ASSET_TYPE].to_numpy(dtype=object)
    return _Assets(
        frame,
        ids[kind == "基金"],
        np.asarray(fund_chain),
        ids[kind == "高校"],
        ids[kind == "校友会"],
        ids[kind == "实验室"],
        np.arange(len(kinds.chain_names)),
    )


# ---------------------------------------------------------------------------------------------- relations
@dataclass
class _Relations:
    src: list[np.ndarray] = field(default_factory=list)
    src_type: list[np.ndarray] = field(default_factory=list)
    dst: list[np.ndarray] = field(default_factory=list)
    dst_type: list[np.ndarray] = field(default_factory=list)
    label: list[np.ndarray] = field(default_factory=list)
    weight: list[np.ndarray] = field(default_factory=list)
    day: list[np.ndarray] = field(default_factory=list)
    touched: list[np.ndarray] = field(default_factory=list)  # enterprise indices on either end

    def add(
        self,
        src: np.ndarray,
        src_type: str,
        dst: np.ndarray,
        dst_type: str,
        label: str | np.ndarray,
        day: np.ndarray,
        rng: np.random.Generator,
        touched: tuple[np.ndarray, ...] = (),
    ) -> None:
        m = len(src)
        self.src.append(np.asarray(src, dtype=object))
        self.src_type.append(np.full(m, src_type, dtype=object))
        self.dst.append(np.asarray(dst, dtype=object))
        self.dst_type.append(np.full(m, dst_type, dtype=object))
        self.label.append(np.broadcast_to(np.asarray(label, dtype=object), (m,)).copy())
        self.weight.append(np.round(0.2 + 0.8 * rng.random(m), 2))
        self.day.append(np.asarray(day, dtype=np.int64))
        self.touched.extend(np.asarray(t, dtype=np.int64) for t in touched)


class _KindSampler:
    """Random members of a kind (chain node or distractor) among non-local firms, without loops."""

    def __init__(self, kind: np.ndarray, local: np.ndarray, n_kinds: int) -> None:
        members = np.flatnonzero(~local)
        order = members[np.argsort(kind[members], kind="stable")]
        self.order = order
        self.start = np.searchsorted(kind[order], np.arange(n_kinds))
        self.count = np.searchsorted(kind[order], np.arange(n_kinds), side="right") - self.start

    def draw(self, kinds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.count[kinds]
        return self.order[self.start[kinds] + (rng.random(len(kinds)) * c).astype(np.int64)]


def _dates_between(lo: np.ndarray, hi: int, rng: np.random.Generator) -> np.ndarray:
    lo = np.asarray(lo, dtype=np.int64)
    return lo + (rng.random(len(lo)) * np.maximum(hi - lo, 1)).astype(np.int64)


def _relations(
    u: _Universe, kinds: _Kinds, assets: _Assets, as_of: int, rng: np.random.Generator
) -> tuple[_Relations, dict[str, np.ndarray]]:
    """Dated, weighted edges, and per enterprise the first day of each zone tie (``TIE_KINDS``)."""
    n, k = len(u.kind), kinds.n_nodes
    rel = _Relations()
    ties = {t: np.full(n, np.iinfo(np.int64).max, dtype=np.int64) for t in TIE_KINDS}
    hubei = u.province == V.ZONE_PROVINCE
    chain = (u.kind < k) & ~u.local
    age = (as_of - u.founded) / 365.25
    local = np.flatnonzero(u.local)
    local_kind = u.kind[local]
    start_2012 = int(np.datetime64("2012-01-01", "D").astype(np.int64))
    # suppliers of local firms: firm at node u supplies a local firm at a node downstream of u
    down_local = [local[kinds.downstream[i, local_kind]] for i in range(k)]
    down_leader = [x[u.leader[x]] for x in down_local]
    any_pad, any_n = _pad([[str(x) for x in d] for d in down_local])
    lead_pad, lead_n = _pad([[str(x) for x in d] for d in down_leader])
    kind_c = np.minimum(u.kind, k - 1)
    eligible = chain & (any_n[kind_c] > 0) & (any_pad[kind_c, 0] != "")
    sup = np.flatnonzero(eligible & (rng.random(n) < np.where(hubei, 0.18, 0.09)))
    use_leader = (lead_n[kind_c[sup]] > 0) & (lead_pad[kind_c[sup], 0] != "") & (rng.random(len(sup)) < 0.6)
    dst_any, _ = _pick(any_pad, any_n, kind_c[sup], rng)
    dst_lead, _ = _pick(lead_pad, lead_n, kind_c[sup], rng)
    dst = np.where(use_leader, dst_lead, dst_any).astype(np.int64)
    day = _dates_between(np.maximum(u.founded[sup] + 180, start_2012), as_of, rng)
    ok = day < as_of
    sup, dst, day = sup[ok], dst[ok], day[ok]
    is_leader = u.leader[dst]
    np.minimum.at(ties["leader_supplier"], sup[is_leader], day[is_leader])
    np.minimum.at(ties["local_supplier"], sup[~is_leader], day[~is_leader])
    _add_supply(u, rel, sup, dst, day, rng)
    sampler = _KindSampler(u.kind, u.local, len(kinds.names))
    # supplier noise among the universe: a firm supplies one at a downstream node (or same node)
    noise = np.flatnonzero(chain & (rng.random(n) < 0.01))
    down_pad, down_n = _pad(
        [
            [str(x) for x in (np.flatnonzero(kinds.downstream[i]) if kinds.downstream[i].any() else [i])]
            for i in range(k)
        ]
    )
    to_kind, _ = _pick(down_pad, down_n, u.kind[noise], rng)
    other = sampler.draw(to_kind.astype(np.int64), rng)
    rel.add(
        u.ids[noise],
        "企业",
        u.ids[other],
        "企业",
        "供应商",
        _dates_between(u.founded[noise] + 180, as_of, rng),
        rng,
        touched=(noise, other),
    )
    _asset_relations(u, kinds, assets, ties, rel, chain, hubei, age, as_of, rng)
    _capital_relations(u, kinds, sampler, ties, rel, chain, as_of, rng)
    _network_relations(u, kinds, assets, ties, rel, chain, hubei, as_of, rng)
    return rel, ties


def _asset_relations(
    u: _Universe,
    kinds: _Kinds,
    assets: _Assets,
    ties: dict[str, np.ndarray],
    rel: _Relations,
    chain: np.ndarray,
    hubei: np.ndarray,
    age: np.ndarray,
    as_of: int,
    rng: np.random.Generator,
) -> None:
    n, k = len(u.kind), kinds.n_nodes
    start_2018 = int(np.datetime64("2018-01-01", "D").astype(np.int64))
    # fund portfolios: young chain firms more often; most local firms
    p_fund = np.where(chain, 0.015 + 0.04 * (age < 6), np.where(u.local, 0.3, 0.0))
    e = np.flatnonzero(rng.random(n) < p_fund)
    own_chain = kinds.chain_of[np.minimum(u.kind[e], len(kinds.chain_of) - 1)]
    chain_fund = np.full(len(kinds.chain_names) + 1, -1)
    for j, c in enumerate(assets.fund_chain):
        if c >= 0:
            chain_fund[c] = j
    general = np.flatnonzero(assets.fund_chain < 0)
    pick_general = general[rng.integers(0, len(general), len(e))]
    fund = np.where((rng.random(len(e)) < 0.6) & (chain_fund[own_chain] >= 0), chain_fund[own_chain], pick_general)
    day = _dates_between(np.maximum(u.founded[e] + 365, start_2018 - 1095), as_of, rng)
    ok = day < as_of
    e, fund, day = e[ok], fund[ok], day[ok]
    rel.add(assets.funds[fund], "资产", u.ids[e], "企业", "基金投资", day, rng, touched=(e,))
    np.minimum.at(ties["fund_portfolio"], e[~u.local[e]], day[~u.local[e]])
    # alumni: founders or executives from a Wuhan university
    p_alumni = np.where(chain, np.where(hubei, 0.12, 0.04), np.where(u.local, 0.4, 0.01))
    e = np.flatnonzero(rng.random(n) < p_alumni)
    pool = np.concatenate([assets.universities, assets.alumni_networks])
    src = pool[rng.integers(0, len(pool), len(e))]
    day = np.minimum(u.founded[e] + (rng.random(len(e)) * 1095).astype(np.int64), as_of - 1)
    rel.add(src, "资产", u.ids[e], "企业", "校友", day, rng, touched=(e,))
    np.minimum.at(ties["alumni"], e[~u.local[e]], day[~u.local[e]])
    # lab collaborations: the chain's lab, sometimes a university
    p_lab = np.where(chain, np.where(hubei, 0.04, 0.012), np.where(u.local, 0.25, 0.0))
    e = np.flatnonzero(rng.random(n) < p_lab)
    own_chain = kinds.chain_of[np.minimum(u.kind[e], k - 1)]
    use_univ = rng.random(len(e)) < 0.3
    src = np.where(
        use_univ,
        assets.universities[rng.integers(0, len(assets.universities), len(e))],
        assets.labs[np.clip(own_chain, 0, len(assets.labs) - 1)],
    )
    day = _dates_between(np.maximum(u.founded[e] + 180, start_2018), as_of, rng)
    ok = day < as_of
    e, src, day = e[ok], src[ok], day[ok]
    rel.add(src, "资产", u.ids[e], "企业", "产学研合作", day, rng, touched=(e,))
    np.minimum.at(ties["lab"], e[~u.local[e]], day[~u.local[e]])


def _capital_relations(
    u: _Universe,
    kinds: _Kinds,
    sampler: _KindSampler,
    ties: dict[str, np.ndarray],
    rel: _Relations,
    chain: np.ndarray,
    as_of: int,
    rng: np.random.Generator,
) -> None:
    n, k = len(u.kind), kinds.n_nodes
    start_2016 = int(np.datetime64("2016-01-01", "D").astype(np.int64))
    local = np.flatnonzero(u.local)
    # parent companies of local firms elsewhere in China: the parent already has a foothold in the zone
    kids = local[~u.leader[local] & (rng.random(len(local)) < 0.3)]
    parents = sampler.draw(u.kind[kids], rng)
    day = np.maximum(u.founded[kids], u.founded[parents] + 365)
    ok = day < as_of
    kids, parents, day = kids[ok], parents[ok], day[ok]
    rel.add(u.ids[parents], "企业", u.ids[kids], "企业", "母公司", day, rng, touched=(parents, kids))
    np.minimum.at(ties["local_capital"], parents, day)
    # corporate venture: local leaders invest in chain firms of their chain
    leaders = np.flatnonzero(u.leader)
    if len(leaders):
        e = np.flatnonzero(chain & (rng.random(n) < 0.006))
        same = kinds.chain_of[np.minimum(u.kind[e], k - 1)]
        leader_of_chain = np.full(len(kinds.chain_names) + 1, -1)
        leader_of_chain[kinds.chain_of[u.kind[leaders]]] = leaders
        inv = leader_of_chain[same]
        e, inv = e[inv >= 0], inv[inv >= 0]
        day = _dates_between(np.maximum(u.founded[e] + 365, start_2016), as_of, rng)
        ok = day < as_of
        e, inv, day = e[ok], inv[ok], day[ok]
        labels = np.where(rng.random(len(e)) < 0.7, "投资方", "股东")
        rel.add(u.ids[inv], "企业", u.ids[e], "企业", labels, day, rng, touched=(inv, e))
        np.minimum.at(ties["local_capital"], e, day)
    # noise: investment firms invest in chain firms; random parent / shareholder links
    investors = np.flatnonzero(kinds.names == "投资管理")
    if len(investors) and sampler.count[investors[0]] > 0:
        e = np.flatnonzero(chain & (rng.random(n) < 0.01))
        inv = sampler.draw(np.full(len(e), investors[0]), rng)
        rel.add(
            u.ids[inv],
            "企业",
            u.ids[e],
            "企业",
            "投资方",
            _dates_between(u.founded[e] + 180, as_of, rng),
            rng,
            touched=(inv, e),
        )
    a = np.flatnonzero(~u.local & (rng.random(n) < 0.004))
    b = sampler.draw(u.kind[a], rng)
    keep = a != b
    a, b = a[keep], b[keep]
    labels = np.where(rng.random(len(a)) < 0.5, "母公司", "股东")
    rel.add(
        u.ids[a],
        "企业",
        u.ids[b],
        "企业",
        labels,
        _dates_between(np.maximum(u.founded[a], u.founded[b]), as_of, rng),
        rng,
        touched=(a, b),
    )


def _pad_int(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged int arrays -> (padded int64 array, -1 filled; lengths)."""
    width = max([1, *(len(r) for r in rows)])
    out = np.full((len(rows), width), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out, np.asarray([len(r) for r in rows], dtype=np.int64)


def _pick_int(table: np.ndarray, counts: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uniform entry of ``table[row]`` per row (-1 where the row is empty)."""
    idx = (rng.random(len(rows)) * np.maximum(counts[rows], 1)).astype(np.int64)
    return table[rows, idx]


def _reach(u: _Universe) -> np.ndarray:
    """How well connected a firm is (multiplies relation probabilities): grows with size, listed firms more."""
    spec = NETWORK["reach"]
    x = spec["base"] + spec["per_log10_capital"] * (np.log10(u.capital_cny) - 6.7) + spec["listed"] * u.listed
    return np.clip(x, spec["min"], spec["max"])


def _network_nodes(kinds: _Kinds) -> np.ndarray:
    """Per kind, the chain node whose supply network it joins: itself for chain nodes; for a distractor
    industry, the first node sharing one of its industry classes (汽车维修 ↔ 汽车后市场: the dealers and
    service shops of the chain's carmakers); else -1."""
    k = kinds.n_nodes
    classes = [{str(c)[1:5] for c in kinds.industry[j, : kinds.n_industry[j]]} for j in range(len(kinds.names))]
    out = np.full(len(kinds.names), -1, dtype=np.int64)
    out[:k] = np.arange(k)
    for j in range(k, len(kinds.names)):
        out[j] = next((i for i in range(k) if classes[i] & classes[j]), -1)
    return out


def _supply_direction(kinds: _Kinds, a_kind: np.ndarray, b_kind: np.ndarray) -> np.ndarray:
    """True where ``b`` supplies ``a`` (b's node is upstream of a's); else ``a`` supplies ``b``."""
    k = kinds.n_nodes
    ok = (a_kind < k) & (b_kind < k)
    return ok & kinds.downstream[np.minimum(b_kind, k - 1), np.minimum(a_kind, k - 1)]


def _add_supply(
    u: _Universe,
    rel: _Relations,
    supplier: np.ndarray,
    buyer: np.ndarray,
    day: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """供应商 rows (30 % written as 客户 with the ends swapped, as registries and CRM exports do)."""
    as_customer = rng.random(len(supplier)) < 0.3
    rel.add(
        np.where(as_customer, u.ids[buyer], u.ids[supplier]),
        "企业",
        np.where(as_customer, u.ids[supplier], u.ids[buyer]),
        "企业",
        np.where(as_customer, "客户", "供应商"),
        day,
        rng,
        touched=(supplier, buyer),
    )


def _network_relations(
    u: _Universe,
    kinds: _Kinds,
    assets: _Assets,
    ties: dict[str, np.ndarray],
    rel: _Relations,
    chain: np.ndarray,
    hubei: np.ndarray,
    as_of: int,
    rng: np.random.Generator,
) -> None:
    """The chain's relation network around the zone (``NETWORK``): supply ties with zone firms at adjacent
    nodes or the chain's leaders, second-tier suppliers, VC co-investors of zone-fund portfolio companies,
    more alumni and lab ties. Sized so most chain firms are within 3 hops of a zone asset; bigger firms more."""
    n, k = len(u.kind), kinds.n_nodes
    never = np.iinfo(np.int64).max
    spec = NETWORK
    reach = _reach(u)
    node = _network_nodes(kinds)[u.kind]  # chain node, or the node a peripheral industry serves
    member, node_c = ~u.local & (node >= 0), np.maximum(node, 0)
    start_2012 = int(np.datetime64("2012-01-01", "D").astype(np.int64))
    start_2016 = int(np.datetime64("2016-01-01", "D").astype(np.int64))
    # 1. direct supply ties: zone firms at adjacent nodes (either direction) or the chain's leaders
    local = np.flatnonzero(u.local)
    lk = u.kind[local]
    partners = [
        local[kinds.adjacent[i, lk] | (u.leader[local] & (kinds.chain_of[lk] == kinds.chain_of[i]))] for i in range(k)
    ]
    ppad, pn = _pad_int(partners)
    supplied = (ties["leader_supplier"] < never) | (ties["local_supplier"] < never)
    peripheral = u.kind >= k
    p = np.where(hubei, spec["zone_supply"]["hubei"], spec["zone_supply"]["other"])
    p = np.where(peripheral, spec["periphery"]["zone_supply"], p) * reach
    e = np.flatnonzero(member & ~supplied & (pn[node_c] > 0) & (rng.random(n) < p))
    dst = _pick_int(ppad, pn, node_c[e], rng)
    day = _dates_between(np.maximum(np.maximum(u.founded[e], u.founded[dst]) + 180, start_2012), as_of, rng)
    ok = day < as_of
    e, dst, day = e[ok], dst[ok], day[ok]
    upstream = _supply_direction(kinds, node_c[e], u.kind[dst])
    _add_supply(u, rel, np.where(upstream, dst, e), np.where(upstream, e, dst), day, rng)
    is_leader = u.leader[dst]
    np.minimum.at(ties["leader_supplier"], e[is_leader], day[is_leader])
    np.minimum.at(ties["local_supplier"], e[~is_leader], day[~is_leader])
    # 2. second tier: a firm trades with a direct partner of the zone at an adjacent node
    tier1 = chain & ((ties["leader_supplier"] < never) | (ties["local_supplier"] < never))
    sampler = _KindSampler(u.kind, ~tier1, len(kinds.names))
    kinds_with = [np.flatnonzero(kinds.adjacent[i] & (sampler.count[:k] > 0)) for i in range(k)]
    apad, an = _pad_int(kinds_with)
    p = np.where(hubei, spec["second_tier"]["hubei"], spec["second_tier"]["other"])
    p = np.where(peripheral, spec["periphery"]["second_tier"], p) * reach
    f = np.flatnonzero(member & ~tier1 & (an[node_c] > 0) & (rng.random(n) < p))
    mid = sampler.draw(_pick_int(apad, an, node_c[f], rng), rng)
    day = _dates_between(np.maximum(np.maximum(u.founded[f], u.founded[mid]) + 180, start_2012), as_of, rng)
    ok = day < as_of
    f, mid, day = f[ok], mid[ok], day[ok]
    upstream = _supply_direction(kinds, node_c[f], u.kind[mid])
    _add_supply(u, rel, np.where(upstream, mid, f), np.where(upstream, f, mid), day, rng)
    _co_investors(u, kinds, ties, rel, chain, reach, as_of, start_2016, rng)
    # 4. talent: more alumni (founders, engineers) and lab projects, for firms without one yet
    _talent_relations(u, kinds, assets, ties, rel, chain, hubei, reach, as_of, start_2016, rng)


def _talent_relations(
    u: _Universe,
    kinds: _Kinds,
    assets: _Assets,
    ties: dict[str, np.ndarray],
    rel: _Relations,
    chain: np.ndarray,
    hubei: np.ndarray,
    reach: np.ndarray,
    as_of: int,
    start_2016: int,
    rng: np.random.Generator,
) -> None:
    """More alumni (founders, engineers) and lab projects (``NETWORK``), for chain firms without one yet."""
    n, spec, never = len(u.kind), NETWORK, np.iinfo(np.int64).max
    kind_c = np.minimum(u.kind, kinds.n_nodes - 1)
    for tie, label, key in (("alumni", "校友", "alumni"), ("lab", "产学研合作", "lab")):
        p = np.where(hubei, spec[key]["hubei"], spec[key]["other"]) * reach * kinds.rd_factor[kind_c]
        e = np.flatnonzero(chain & (ties[tie] == never) & (rng.random(n) < p))
        if tie == "alumni":
            pool = np.concatenate([assets.universities, assets.alumni_networks])
            src = pool[rng.integers(0, len(pool), len(e))]
            day = np.minimum(u.founded[e] + (rng.random(len(e)) * 1825).astype(np.int64), as_of - 1)
        else:
            own = kinds.chain_of[kind_c[e]]
            src = np.where(
                rng.random(len(e)) < 0.3,
                assets.universities[rng.integers(0, len(assets.universities), len(e))],
                assets.labs[np.clip(own, 0, len(assets.labs) - 1)],
            )
            day = _dates_between(np.maximum(u.founded[e] + 180, start_2016), as_of, rng)
        ok = day < as_of
        e, src, day = e[ok], src[ok], day[ok]
        rel.add(src, "资产", u.ids[e], "企业", label, day, rng, touched=(e,))
        np.minimum.at(ties[tie], e, day)


def _co_investors(
    u: _Universe,
    kinds: _Kinds,
    ties: dict[str, np.ndarray],
    rel: _Relations,
    chain: np.ndarray,
    reach: np.ndarray,
    as_of: int,
    start: int,
    rng: np.random.Generator,
) -> None:
    """VC firms (投资管理) specialised in a chain co-invest with the zone's funds and back other chain firms."""
    never = np.iinfo(np.int64).max
    k, n_chains = kinds.n_nodes, len(kinds.chain_names)
    vc_kind = np.flatnonzero(kinds.names == "投资管理")
    vcs = np.flatnonzero(~u.local & np.isin(u.kind, vc_kind))
    if len(vcs) == 0:
        return
    vc_chain = rng.integers(0, n_chains, len(vcs))
    vpad, vn = _pad_int([vcs[vc_chain == c] for c in range(n_chains)])
    chain_of = kinds.chain_of[np.minimum(u.kind, k - 1)]
    portfolio = np.flatnonzero(chain & (ties["fund_portfolio"] < never))
    portfolio = portfolio[vn[chain_of[portfolio]] > 0]
    spec = NETWORK["co_investor"]
    reps = 1 + (rng.random(len(portfolio)) < spec["second_vc"]).astype(np.int64)
    p_ent = np.repeat(portfolio, reps)
    p_vc = _pick_int(vpad, vn, chain_of[p_ent], rng)
    syndicate = [np.unique(p_vc[chain_of[p_ent] == c]) for c in range(n_chains)]
    spad, sn = _pad_int(syndicate)
    p = spec["p"] * reach
    f = np.flatnonzero(chain & (ties["fund_portfolio"] == never) & (rng.random(len(u.kind)) < p))
    f = f[sn[chain_of[f]] > 0]
    f_vc = _pick_int(spad, sn, chain_of[f], rng)
    ent, vc = np.concatenate([p_ent, f]), np.concatenate([p_vc, f_vc])
    day = _dates_between(np.maximum(u.founded[ent] + 180, start), as_of, rng)
    ok = day < as_of
    ent, vc, day = ent[ok], vc[ok], day[ok]
    labels = np.where(rng.random(len(ent)) < 0.7, "投资方", "股东")
    rel.add(u.ids[vc], "企业", u.ids[ent], "企业", labels, day, rng, touched=(vc, ent))


# ---------------------------------------------------------------------------------------------- hidden process
@dataclass(frozen=True)
class _Context:
    """What the history's generation reads: the universe, the kinds, the zone ties, the process and its truth."""

    u: _Universe
    kinds: _Kinds
    ties: dict[str, np.ndarray]
    process: ProcessConfig
    truth: SigningTruth

    @property
    def world(self) -> World:
        return self.truth.world


def _region(province: np.ndarray) -> np.ndarray:
    """0 the zone's province, 1 a neighbouring province, 2 any other (the process's geography)."""
    neighbour = np.isin(province, V.NEIGHBOUR_PROVINCES)
    return np.where(province == V.ZONE_PROVINCE, 0, np.where(neighbour, 1, 2)).astype(np.int8)


def _context(
    u: _Universe,
    kinds: _Kinds,
    sig: _Signals,
    ties: dict[str, np.ndarray],
    process: ProcessConfig,
    as_of: date,
    random_state: int,
) -> _Context:
    """The hidden context; the per-firm latent factor comes from its own stream of ``random_state``, so it
    shifts no other draw."""
    k = kinds.n_nodes
    latent = np.random.default_rng(np.random.SeedSequence(random_state, spawn_key=(1,))).standard_normal(len(u.kind))
    world = World(
        ids=np.asarray(u.ids, dtype=str),
        kind=u.kind,
        second=u.second,
        node_ids=np.asarray(kinds.node_ids, dtype=str),
        chain_of=kinds.chain_of[:k],
        adjacent=kinds.adjacent,
        capital_cny=u.capital_cny,
        founded=u.founded,
        listed=u.listed,
        operating=u.operating,
        region=_region(u.province),
        latent=latent,
        ties=ties,
        sig_ent=sig.ent,
        sig_kind=sig.kind,
        sig_day=sig.day,
        sig_zone=sig.province == V.ZONE_PROVINCE,
    )
    return _Context(u, kinds, ties, process, SigningTruth(world, process, as_of))


# ---------------------------------------------------------------------------------------------- outcomes
def _quarter_starts(as_of: date) -> np.ndarray:
    start = date(as_of.year - 5, 1, 1)
    quarters = pd.date_range(start, as_of, freq="QS")
    return quarters.to_numpy().astype("datetime64[D]").astype(np.int64)


def _policy_pools(
    ctx: _Context, colour: np.ndarray, rng: np.random.Generator
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per target node: candidate firms and the analysts' static score ``text fit + fame (+ zone province)``."""
    u, kinds = ctx.u, ctx.kinds
    k = kinds.n_nodes
    p = ctx.process.policy
    log_cap = np.log10(u.capital_cny)
    fame = (log_cap - log_cap.mean()) / (log_cap.std() + 1e-9) + 0.8 * u.listed - 1.0 * ~u.operating
    big = np.flatnonzero(~u.local & (log_cap >= np.quantile(log_cap, p.pool.large_quantile)))
    candidates = np.flatnonzero(~u.local)
    chain_of_kind = np.where(u.kind < k, kinds.chain_of[np.minimum(u.kind, k - 1)], -1)
    chain_of_second = np.where(u.second >= 0, kinds.chain_of[np.maximum(u.second, 0)], -1)
    fit_values = np.asarray(p.text_fit.values())
    pools = {}
    for v in np.flatnonzero(colour < 2):
        c = kinds.chain_of[v]
        members = candidates[(chain_of_kind[candidates] == c) | (chain_of_second[candidates] == c)]
        if len(members) > p.pool.chain_max:
            members = np.sort(rng.choice(members, p.pool.chain_max, replace=False))
        extra = np.concatenate(
            [
                rng.choice(big, min(p.pool.large, len(big)), replace=False),
                rng.choice(candidates, min(p.pool.random, len(candidates)), replace=False),
            ]
        )
        pool = np.unique(np.concatenate([members, extra]))
        fit = fit_values[fit_level(ctx.world, pool, np.full(len(pool), v))]
        fit = np.where(u.vague[pool], fit * p.text_fit.vague_description_factor, fit)
        score = p.text_fit_weight * fit + p.fame_weight * fame[pool]
        if p.zone_province_weight:
            score = score + p.zone_province_weight * (ctx.world.region[pool] == 0)
        pools[int(v)] = (pool, score)
    return pools


def _policy_bonus(ctx: _Context, p: Policy, pool: np.ndarray, q: int) -> np.ndarray | float:
    """The part of the analysts' score that changes with the quarter starting on day ``q``: recent news
    (``signal_chasing``) and warm leads (``tie_weight``: any zone tie active before ``q``)."""
    bonus: np.ndarray | float = 0.0
    chase = p.signal_chasing
    if chase.weight and chase.signals:
        keys = ctx.world.signal_keys(tuple(chase.signals))
        bonus = bonus + chase.weight * recent(keys, pool, q, chase.window_days)
    if p.tie_weight:
        warm = np.logical_or.reduce([ctx.ties[name][pool] < q for name in TIE_KINDS])
        bonus = bonus + p.tie_weight * warm
    return bonus


def _approaches(
    ctx: _Context, colour: np.ndarray, as_of: int, quarters: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The historical analyst policy: each quarter, a few firms per red/blue node (each pair once)."""
    pools = _policy_pools(ctx, colour, rng)
    p = ctx.process.policy
    dynamic = bool((p.signal_chasing.weight and p.signal_chasing.signals) or p.tie_weight)
    sw = ctx.kinds.strategic_weight
    rate = {
        v: p.approaches_per_target_node_per_quarter
        * (p.red_factor if colour[v] == 0 else 1.0)
        * np.sqrt(sw[v] / sw.mean())
        for v in pools
    }
    taken = {v: np.zeros(len(pools[v][0]), dtype=bool) for v in pools}
    ents, nodes, days = [], [], []
    for q in quarters:
        for v, (pool, score) in pools.items():
            n_pick = int(rng.poisson(rate[v]))
            gumbel = -np.log(-np.log(rng.random(len(pool))))
            if n_pick == 0:
                continue
            ok = ~taken[v] & (ctx.u.founded[pool] < q)
            if not ok.any():
                continue
            now = score + _policy_bonus(ctx, p, pool, int(q)) if dynamic else score
            s = np.where(ok, now + p.noise_scale * gumbel, -np.inf)
            top = np.argsort(-s, kind="stable")[: min(n_pick, int(ok.sum()))]
            taken[v][top] = True
            ents.append(pool[top])
            nodes.append(np.full(len(top), v))
            days.append(np.minimum(q + rng.integers(0, 85, len(top)), as_of - 1))
    if not ents:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    return np.concatenate(ents), np.concatenate(nodes), np.concatenate(days)


_TERMINATION_REASONS: Final = (
    "企业选址其他城市",
    "企业暂无扩张计划",
    "政策条件未达成一致",
    "企业经营状况变化",
    "项目搁置",
)
_LEAD_SOURCES: Final = ("产业链图谱筛选", "中介机构推荐", "展会对接", "网络检索", "行业协会推荐")


def _outcome_notes(
    ctx: _Context,
    ent: np.ndarray,
    node: np.ndarray,
    t: np.ndarray,
    proc: np.ndarray,
    stage: np.ndarray,
    invest: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """备注 per stage row: lead source (链主企业推荐 more often with a leader tie), visit, talks, deal, reason."""
    leader_tie = ctx.ties["leader_supplier"][ent] < t
    source = np.asarray(_LEAD_SOURCES, dtype=object)[rng.integers(0, len(_LEAD_SOURCES), len(ent))]
    source = np.where(leader_tie & (rng.random(len(ent)) < 0.5), "链主企业推荐", source)
    reason = np.asarray(_TERMINATION_REASONS, dtype=object)[rng.integers(0, len(_TERMINATION_REASONS), len(ent))]
    node_name = ctx.kinds.names[node]
    amount_text = np.where(np.isnan(invest), "", invest.astype(np.int64).astype(str))
    note = np.select(
        [stage == "线索", stage == "接洽", stage == "考察", stage == "洽谈", stage == "签约", stage == "落地"],
        [
            "通过" + source[proc] + "获取线索",
            np.full(len(proc), "上门拜访企业负责人，介绍光谷产业政策", dtype=object),
            np.full(len(proc), "企业高管赴光谷实地考察", dtype=object),
            "就" + node_name[proc] + "项目落地条件进行商务洽谈",
            "签订投资协议，计划投资" + amount_text[proc] + "万元",
            np.full(len(proc), "项目公司注册落地光谷", dtype=object),
        ],
        default="终止：" + reason[proc],
    )
    return note


def _outcomes(
    ctx: _Context, ent: np.ndarray, node: np.ndarray, t: np.ndarray, as_of: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Stage rows of every approach; returns the raw frame, the logit and the furthest stage per approach."""
    u, h = ctx.u, ctx.process.propensity
    logit = hidden_logit(ctx.world, h, ent, node, t)
    latent = logit + rng.logistic(0.0, h.outcome_noise_scale, len(ent))
    thresholds = np.asarray(list(h.stage_thresholds.values()))
    reached = (latent[:, None] > thresholds[None, :]).sum(axis=1)  # 0 = 线索 only … 5 = 落地
    n_rows = reached + 1 + (reached < 5)
    proc = np.repeat(np.arange(len(ent)), n_rows)
    first = np.r_[0, np.cumsum(n_rows)[:-1]]
    pos = np.arange(len(proc)) - first[proc]
    is_end = pos == reached[proc] + 1
    gaps = np.where(
        pos == 0, 0, np.where(is_end, 10 + rng.gamma(2.0, 20.0, len(proc)), 7 + rng.gamma(2.0, 15.0, len(proc)))
    )
    gaps = np.round(gaps).astype(np.int64)
    cum = np.cumsum(gaps)
    day = t[proc] + cum - cum[first[proc]]
    stage = np.where(is_end, "终止", np.asarray(PROGRESS_STAGES, dtype=object)[np.minimum(pos, 5)])
    cap_wan = u.capital_cny[ent] / 1e4
    invest = np.round(np.maximum(1000.0, cap_wan * (0.3 + 1.7 * rng.random(len(ent)))), -2)
    amount = np.where(np.isin(stage, ["签约", "落地"]), invest[proc], np.nan)
    note = _outcome_notes(ctx, ent, node, t, proc, stage, invest, rng)
    keep = day < as_of
    frame = pd.DataFrame(
        {
            S.COL_ENTERPRISE_ID: u.ids[ent[proc]][keep],
            S.COL_NODE_ID: ctx.kinds.node_ids[node[proc]][keep],
            S.COL_STAGE: stage[keep],
            "_day": day[keep],
            S.COL_AMOUNT_CNY: amount[keep],  # 万元, as the raw file has it
            S.COL_NOTE: note[keep],
            "_pos": pos[keep],
        }
    )
    frame = frame.sort_values(["_day", S.COL_ENTERPRISE_ID, S.COL_NODE_ID, "_pos"], kind="stable")
    frame = frame.reset_index(drop=True)
    frame[S.COL_OUTCOME_ID] = [f"OC{i:07d}" for i in range(1, len(frame) + 1)]
    frame[S.COL_DATE] = _date_text(frame["_day"].to_numpy())
    return frame.drop(columns=["_day", "_pos"]), logit, reached


def _small_int_text(values: np.ndarray) -> np.ndarray:
    """Non-negative small ints (< 10 000) -> decimal strings through a lookup table (fast)."""
    table = np.asarray([str(i) for i in range(int(values.max(initial=0)) + 1)], dtype=object)
    return table[values]


def _date_text(days: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(np.asarray(days, dtype=np.int64).astype("datetime64[D]"), unit="D").astype(object)


# ---------------------------------------------------------------------------------------------- presence, oracle
def _presence(u: _Universe, kinds: _Kinds, as_of: date, rng: np.random.Generator) -> pd.DataFrame:
    """Per zone enterprise and year (as_of.year-5 … as_of.year-1): output, tax, staff, leader flag."""
    local = np.flatnonzero(u.local)
    years = np.arange(as_of.year - 5, as_of.year)
    founded_year = u.founded[local].astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    base = np.where(u.leader[local], 10 ** rng.normal(5.6, 0.3, len(local)), 10 ** rng.normal(4.0, 0.5, len(local)))
    growth = rng.normal(0.08, 0.12, len(local))
    f = np.repeat(np.arange(len(local)), len(years))
    y = np.tile(years, len(local))
    keep = y >= founded_year[f]
    f, y = f[keep], y[keep]
    factor = (1 + growth[f]) ** (y - years[-1])
    output = np.round(base[f] * factor * rng.lognormal(0, 0.05, len(f)), 2)
    tax = np.round(output * (0.03 + 0.04 * rng.random(len(f))), 2)
    staff = np.maximum(5, np.round(u.employees[local][f] * np.sqrt(factor))).astype(np.int64)
    frame = pd.DataFrame(
        {
            S.COL_ENTERPRISE_ID: u.ids[local][f],
            S.COL_NODE_ID: kinds.node_ids[u.kind[local][f]],
            S.COL_YEAR: y,
            S.COL_OUTPUT_VALUE_CNY: output,  # 万元
            S.COL_TAX_CNY: tax,  # 万元
            S.COL_EMPLOYEES: staff,
            S.COL_IS_CHAIN_LEADER: np.where(u.leader[local][f], "是", "否"),
        }
    )
    return frame.sort_values([S.COL_NODE_ID, S.COL_ENTERPRISE_ID, S.COL_YEAR], kind="stable").reset_index(drop=True)


def _dense_codes(values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` for ints in ``[0, size)``, in linear time."""
    seen = np.zeros(size, dtype=bool)
    seen[values] = True
    code_of = np.cumsum(seen) - 1
    return np.flatnonzero(seen), code_of[values]


def _oracle(
    ctx: _Context, colour: np.ndarray, approached: tuple[np.ndarray, np.ndarray], as_of: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray]:
    """Hidden propensity at ``as_of`` for each red/blue node and every non-local firm of its chain,
    every firm approached for it, and one shared sample of 300 others."""
    u, kinds = ctx.u, ctx.kinds
    k = kinds.n_nodes
    candidates = np.flatnonzero(~u.local)
    chain_of_kind = np.where(u.kind < k, kinds.chain_of[np.minimum(u.kind, k - 1)], -1)
    chain_of_second = np.where(u.second >= 0, kinds.chain_of[np.maximum(u.second, 0)], -1)
    members = {
        c: candidates[(chain_of_kind[candidates] == c) | (chain_of_second[candidates] == c)]
        for c in range(len(kinds.chain_names))
    }
    others = rng.choice(candidates, min(300, len(candidates)), replace=False)
    parts_e, parts_v = [], []
    for v in np.flatnonzero(colour < 2):
        e = np.unique(np.concatenate([members[kinds.chain_of[v]], approached[0][approached[1] == v], others]))
        parts_e.append(e)
        parts_v.append(np.full(len(e), v))
    ent, node = np.concatenate(parts_e), np.concatenate(parts_v)
    score = np.round(ctx.truth.probability(ent, node, np.full(len(ent), as_of)), 6)
    # categorical id columns keep millions of rows compact; rows sorted by (node_id, enterprise_id)
    ent_order = np.argsort(u.ids, kind="stable")
    ent_rank = np.empty(len(u.ids), dtype=np.int64)
    ent_rank[ent_order] = np.arange(len(u.ids))
    node_order = np.argsort(kinds.node_ids, kind="stable")
    node_rank = np.empty(kinds.n_nodes, dtype=np.int64)
    node_rank[node_order] = np.arange(kinds.n_nodes)
    order = np.lexsort((ent_rank[ent], node_rank[node]))
    used_e, e_codes = _dense_codes(ent_rank[ent[order]], len(u.ids))
    used_v, v_codes = _dense_codes(node_rank[node[order]], kinds.n_nodes)
    frame = pd.DataFrame(
        {
            "node_id": pd.Categorical.from_codes(
                v_codes, categories=pd.Index(kinds.node_ids[node_order[used_v]].astype(str))
            ),
            "enterprise_id": pd.Categorical.from_codes(
                e_codes, categories=pd.Index(u.ids[ent_order[used_e]].astype(str))
            ),
            "oracle_score": score[order],
        }
    )
    return frame, _dense_codes(ent, len(u.ids))[0]


# ---------------------------------------------------------------------------------------------- raw frames
def _latest_financing(u: _Universe, sig: _Signals, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """最新融资轮次 / 最新融资日期: the last financing signal, else (for some firms) an older round."""
    n = len(u.kind)
    round_label = np.full(n, "", dtype=object)
    round_day = np.full(n, -1, dtype=np.int64)
    fin = np.flatnonzero(sig.kind == SIG_FIN)
    if len(fin):
        last = fin[np.r_[sig.ent[fin][1:] != sig.ent[fin][:-1], True]]  # signals are sorted by (ent, day)
        round_label[sig.ent[last]] = sig.round_label[last]
        round_day[sig.ent[last]] = sig.day[last]
    cutoff = int(np.datetime64("2018-12-31", "D").astype(np.int64))
    older = (round_day < 0) & (u.founded + 365 < cutoff)
    pick = older & (rng.random(n) < np.where(u.listed, 0.7, 0.06))
    older_day = _dates_between(u.founded + 365, cutoff, rng)
    labels = np.asarray(["天使轮", "A轮", "B轮", "战略投资"], dtype=object)[rng.integers(0, 4, n)]
    round_label = np.where(pick, np.where(u.listed, "IPO", labels), round_label)
    round_day = np.where(pick, older_day, round_day)
    return round_label, round_day


def _enterprise_columns(
    u: _Universe, texts: dict[str, np.ndarray], fin: tuple[np.ndarray, np.ndarray], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """The enterprises file's columns as numpy arrays (object strings; employees float with NaN)."""
    n = len(u.kind)
    return {
        S.COL_NAME: u.names,
        S.COL_ENTERPRISE_ID: u.ids,
        S.COL_STATUS: u.status,
        S.COL_FOUNDED: _date_text(u.founded),
        S.COL_CAPITAL_CNY: u.capital_text,  # as registries write it: 5000万人民币, 1.2亿美元 …
        S.COL_PROVINCE: u.province,
        S.COL_CITY: u.city_name,
        S.COL_DISTRICT: u.district,
        S.COL_INDUSTRY_CODE: texts["industry"],  # code and name in one cell: C3976 光电子器件制造
        S.COL_BUSINESS_SCOPE: texts["scope"],
        S.COL_DESCRIPTION: texts["description"],
        S.COL_PRODUCTS: texts["products"],
        S.COL_EMPLOYEES: np.where(rng.random(n) < 0.1, np.nan, u.employees),
        S.COL_LISTED: np.where(u.listed, "是", "否").astype(object),
        S.COL_FINANCING_ROUND: fin[0],
        S.COL_FINANCING_DATE: np.where(fin[1] >= 0, _date_text(np.maximum(fin[1], 0)), ""),
        FORMER_NAME: np.where(rng.random(n) < 0.05, u.names + V.FORMER_NAME_NOTE, ""),
    }


_FULLWIDTH: Final = {c: c + 0xFEE0 for c in range(0x21, 0x7F)}
_TRADITIONAL_TABLE: Final = str.maketrans(V.TRADITIONAL)


def _translate(values: np.ndarray, table: dict[int, int] | dict[int, str]) -> np.ndarray:
    return np.asarray([v.translate(table) for v in values], dtype=object)  # only the few dirty rows


def _add_dirt(
    cols: dict[str, np.ndarray], referenced: np.ndarray, distractor: np.ndarray, rng: np.random.Generator
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Realistic dirt (rates in :data:`DIRT`); rows other tables refer to keep valid codes and dates.

    Returns the enterprises frame (duplicates appended, rows sorted by credit code) and the counts.
    """
    n = len(cols[S.COL_ENTERPRISE_ID])
    c = {k: v.copy() for k, v in cols.items()}
    counts: dict[str, int] = {}
    free = np.flatnonzero(~referenced & distractor)

    def rows(kind: str, among: np.ndarray | None = None) -> np.ndarray:
        pool = np.arange(n) if among is None else among
        m = min(len(pool), int(round(DIRT[kind] * n)))
        counts[kind] = m
        return np.sort(rng.choice(pool, m, replace=False)) if m else np.zeros(0, dtype=np.int64)

    r = rows("traditional_text")
    for col in (S.COL_DESCRIPTION, S.COL_BUSINESS_SCOPE, S.COL_PRODUCTS):
        c[col][r] = _translate(c[col][r], _TRADITIONAL_TABLE)
    r = rows("fullwidth_text")
    for col in (S.COL_DESCRIPTION, S.COL_PRODUCTS, S.COL_CAPITAL_CNY):
        c[col][r] = _translate(c[col][r], _FULLWIDTH)
    r = rows("odd_whitespace")
    name = c[S.COL_NAME][r]
    head = np.asarray([x[:2] for x in name], dtype=object)
    tail = np.asarray([x[2:] for x in name], dtype=object)
    c[S.COL_NAME][r] = np.where(np.arange(len(r)) % 2 == 0, " " + name + "  ", head + "\u3000" + tail)
    r = rows("unparseable_capital", free)
    c[S.COL_CAPITAL_CNY][r] = np.asarray(V.UNPARSEABLE_CAPITAL, dtype=object)[
        np.arange(len(r)) % len(V.UNPARSEABLE_CAPITAL)
    ]
    r = rows("slash_dates", free)
    c[S.COL_FOUNDED][r] = np.asarray(
        [f"{int(d[:4])}/{int(d[5:7])}/{int(d[8:10])}" for d in c[S.COL_FOUNDED][r]], dtype=object
    )
    r = rows("invalid_credit_code", np.setdiff1d(free, r))
    c[S.COL_ENTERPRISE_ID][r] = _corrupt_codes(c[S.COL_ENTERPRISE_ID][r])
    r = rows("duplicate_rows")
    changed = np.arange(len(r)) % 2 == 1
    dup = {k: v[r].copy() for k, v in c.items()}
    dup[S.COL_EMPLOYEES] = np.where(changed, np.nan_to_num(dup[S.COL_EMPLOYEES]) + 7, dup[S.COL_EMPLOYEES])
    merged = {k: np.concatenate([c[k], dup[k]]) for k in c}
    order = np.argsort(merged[S.COL_ENTERPRISE_ID], kind="stable")  # a duplicate follows its original
    frame = pd.DataFrame({k: v[order] for k, v in merged.items()})
    frame[S.COL_EMPLOYEES] = pd.array(merged[S.COL_EMPLOYEES][order], dtype="Int64")
    return frame, counts


def _corrupt_codes(codes: np.ndarray) -> np.ndarray:
    """Three kinds of bad codes in turn: wrong check character, a letter O, a missing character."""
    charset = CREDIT_CODE_CHARSET
    out = codes.copy()
    for i, c in enumerate(codes):  # at most 0.5 % of rows
        if i % 3 == 0:
            out[i] = c[:17] + charset[(charset.index(c[17]) + 1) % 31]
        elif i % 3 == 1:
            out[i] = c[:10] + "O" + c[11:]
        else:
            out[i] = c[:17]
    return out


def _signal_frame(sig: _Signals, ids: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            S.COL_ENTERPRISE_ID: ids[sig.ent],
            S.COL_SIGNAL_TYPE: np.asarray(SIGNAL_LABELS, dtype=object)[sig.kind],
            "_day": sig.day,
            S.COL_AMOUNT_CNY: sig.amount_wan,  # 万元
            S.COL_PROVINCE: sig.province,
            S.COL_CITY: sig.city,
            S.COL_DESCRIPTION: sig.description,
        }
    )
    frame = frame.sort_values(["_day", S.COL_ENTERPRISE_ID, S.COL_SIGNAL_TYPE], kind="stable").reset_index(drop=True)
    frame[S.COL_SIGNAL_ID] = [f"EV{i:08d}" for i in range(1, len(frame) + 1)]
    frame[S.COL_DATE] = _date_text(frame["_day"].to_numpy())
    return frame.drop(columns="_day")


def _relation_frame(rel: _Relations) -> pd.DataFrame:
    cat = np.concatenate
    frame = pd.DataFrame(
        {
            S.COL_SRC_ID: cat(rel.src),
            S.COL_SRC_TYPE: cat(rel.src_type),
            S.COL_DST_ID: cat(rel.dst),
            S.COL_DST_TYPE: cat(rel.dst_type),
            S.COL_RELATION_TYPE: cat(rel.label),
            S.COL_WEIGHT: cat(rel.weight),
            "_day": cat(rel.day),
        }
    )
    order = ["_day", S.COL_RELATION_TYPE, S.COL_SRC_ID, S.COL_DST_ID]
    frame = frame.sort_values(order, kind="stable").reset_index(drop=True)
    frame[S.COL_RELATION_ID] = [f"RL{i:08d}" for i in range(1, len(frame) + 1)]
    frame[S.COL_DATE] = _date_text(frame["_day"].to_numpy())
    return frame.drop(columns="_day")


# ---------------------------------------------------------------------------------------------- entry point
def _check_args(chains: list[Chain], n_enterprises: int, random_state: int) -> None:
    if not chains:
        raise ValueError("chains must hold at least one chain; got an empty list")
    if not isinstance(n_enterprises, (int, np.integer)) or isinstance(n_enterprises, bool) or n_enterprises < 1:
        raise ValueError(
            f"The 'n_enterprises' parameter of generate_sample must be an int in the range [1, inf). "
            f"Got {n_enterprises!r} instead."
        )
    if not isinstance(random_state, (int, np.integer)) or isinstance(random_state, bool) or random_state < 0:
        raise ValueError(
            f"The 'random_state' parameter of generate_sample must be an int in the range [0, inf). "
            f"Got {random_state!r} instead."
        )


def _universe(
    kinds: _Kinds, colour: np.ndarray, n: int, as_of: int, shares: Universe, rng: np.random.Generator
) -> _Universe:
    local_counts = _local_counts(colour, rng)
    kind, local = _assign_kinds(kinds, local_counts, n, shares, rng)
    first_local = np.r_[0, np.cumsum(local_counts)[:-1]]
    leader = np.zeros(n, dtype=bool)
    green = np.flatnonzero(colour == 2)
    leader[first_local[green]] = True
    second_leader = green[local_counts[green] >= 10]
    leader[first_local[second_leader] + 1] = True
    second = _secondary(kinds, kind, shares.secondary_share, rng)
    vague = (kind < kinds.n_nodes) & ~local & (rng.random(n) < shares.vague_share)
    geo = _geography(local, rng)
    attrs = _attributes(kind, local, leader, kinds.n_nodes, as_of, rng)
    return _Universe(
        kind=kind,
        second=second,
        vague=vague,
        local=local,
        leader=leader,
        city=geo["city"],
        province=geo["province"],
        city_name=geo["city_name"],
        district=geo["district"],
        region=geo["region"],
        founded=attrs["founded"],
        capital_cny=attrs["capital_cny"],
        capital_text=attrs["capital_text"],
        employees=attrs["employees"],
        listed=attrs["listed"],
        status=attrs["status"],
        operating=attrs["operating"],
    )


def generate_sample(
    chains: list[Chain],
    n_enterprises: int,
    random_state: int,
    as_of: date = DEFAULT_AS_OF,
    headers: RawHeaders | None = None,
    process: str | Path | ProcessConfig = DEFAULT_PROCESS,
) -> SampleData:
    """Generate the sample zone (湖北省 武汉市 东湖新技术开发区) and its universe of enterprises.

    Args:
        chains: validated chains; every node gets enterprises, about 30 % of each chain's nodes are
            strong (green, with a chain leader), 30 % missing (red), the rest weak (blue).
        n_enterprises: distinct enterprises of the universe (the CSV adds a few duplicate rows).
        random_state: seed; the same (chains, n_enterprises, random_state, as_of) gives identical frames.
        as_of: the sample's "today": no record is dated on or after it.
        headers: the raw files' headers per table (:func:`recommender.sample.columns.raw_headers`);
            default: those of the built-in column maps (docs/design.md, "Raw formats").
        process: the outcome process: a bundled name (``configs/processes/<name>.yaml``,
            :func:`recommender.sample.catalog.available_processes`), the path of a process file, or a
            validated :class:`recommender.sample.process.ProcessConfig`.

    Returns:
        SampleData with raw frames (columns ``headers``), ``oracle`` (``ORACLE_COLUMNS``), ``truth``
        (P(签约 | approached) for any node, firm and date) and a JSON-ready manifest.

    Raises:
        ValueError: bad arguments, too few enterprises for the chains, or ``headers`` naming other columns
            than the generator fills.
        recommender.settings.ConfigError: (a ValueError) an unknown process or an invalid process file.
    """
    _check_args(chains, n_enterprises, random_state)
    cfg = process if isinstance(process, ProcessConfig) else load_process(process)
    rng = np.random.default_rng(random_state)
    as_of_day = int(np.datetime64(as_of, "D").astype(np.int64))
    kinds = _build_kinds(chains)
    colour = _zone_colours(kinds, rng)
    u = _universe(kinds, colour, int(n_enterprises), as_of_day, cfg.universe, rng)
    u.ids = _credit_codes(u.region, u.founded, rng)
    geo = {"city_name": u.city_name}
    u.names = _names(kinds, u.kind, geo, u.listed, rng)
    texts = _texts(kinds, u.kind, u.second, u.vague, u.names, u.founded, u.city_name, rng)
    sig = _signals(u, kinds.n_nodes, as_of_day, kinds, rng)
    assets = _assets(kinds, colour, u, rng)
    rel, ties = _relations(u, kinds, assets, as_of_day, rng)
    ctx = _context(u, kinds, sig, ties, cfg, as_of, int(random_state))
    ent, node, day = _approaches(ctx, colour, as_of_day, _quarter_starts(as_of), rng)
    outcomes, _, reached = _outcomes(ctx, ent, node, day, as_of_day, rng)
    oracle, oracle_ents = _oracle(ctx, colour, (ent, node), as_of_day, rng)
    presence = _presence(u, kinds, as_of, rng)
    relations = _relation_frame(rel)
    referenced = np.zeros(len(u.kind), dtype=bool)
    for touched in (*rel.touched, oracle_ents, sig.ent):
        referenced[touched] = True
    referenced[ent] = True
    referenced[u.local] = True
    enterprises, dirt = _add_dirt(
        _enterprise_columns(u, texts, _latest_financing(u, sig, rng), rng),
        referenced,
        u.kind >= kinds.n_nodes,
        rng,
    )
    frames = {
        "enterprises": enterprises,
        "presence": presence,
        "assets": assets.frame,
        "relations": relations,
        "signals": _signal_frame(sig, u.ids),
        "outcomes": outcomes,
    }
    headers = builtin_raw_headers() if headers is None else headers
    tables = {table: to_raw(table, frame, headers[table]) for table, frame in frames.items()}
    manifest = _manifest(ctx, colour, tables, oracle, reached, dirt, int(n_enterprises), int(random_state), as_of)
    return SampleData(**tables, oracle=oracle, manifest=manifest, truth=ctx.truth)


def _manifest(
    ctx: _Context,
    colour: np.ndarray,
    tables: dict[str, pd.DataFrame],
    oracle: pd.DataFrame,
    reached: np.ndarray,
    dirt: dict[str, int],
    n: int,
    seed: int,
    as_of: date,
) -> dict[str, Any]:
    names = ("red", "blue", "green")
    kinds, u, cfg = ctx.kinds, ctx.u, ctx.process
    return {
        "generator": "recommender.sample.generate.generate_sample",
        "generator_version": GENERATOR_VERSION,
        "random_state": seed,
        "n_enterprises": n,
        "as_of": as_of.isoformat(),
        "zone": {"province": V.ZONE_PROVINCE, "city": V.ZONE_CITY, "district": V.ZONE_DISTRICT},
        "chains": sorted({str(x).split(".")[0] for x in kinds.node_ids}),
        "designed_colours": {str(kinds.node_ids[i]): names[c] for i, c in enumerate(colour)},
        "enterprises_per_node": {
            str(kinds.node_ids[i]): int(c)
            for i, c in enumerate(np.bincount(u.kind, minlength=len(kinds.names))[: kinds.n_nodes])
        },
        "counts": {
            **{name: int(len(df)) for name, df in tables.items()},
            "oracle": int(len(oracle)),
            "zone_enterprises": int(u.local.sum()),
            "chain_leaders": int(u.leader.sum()),
            "distractors": int((u.kind >= kinds.n_nodes).sum()),
            "straddlers": int((u.second >= 0).sum()),
            "vague_descriptions": int(u.vague.sum()),
            "approached_pairs": int(len(reached)),
            "signed_pairs": int((reached >= 4).sum()),
            "landed_pairs": int((reached >= 5).sum()),
        },
        "dirt": dirt,
        "dirt_rates": DIRT,
        "process": {"name": cfg.name, "sha256": cfg.sha256(), "description": cfg.description},
        "hidden_process": cfg.propensity.model_dump(mode="json"),
        "analyst_policy": cfg.policy.model_dump(mode="json"),
        "universe_shares": cfg.universe.model_dump(mode="json"),
        "relation_network": NETWORK,
        "documentation": "docs/sample.md",
    }
