"""A small synthetic zone for the ranking tests: tables, nodes, map, retrieval candidates, outcomes, oracle.

``make_world(n_enterprises, random_state)`` is deterministic. Its hidden process: each enterprise
has a home node; retrieval similarity is a noisy cosine between latent vectors; analysts approach,
each quarter and node, a few enterprises drawn by similarity (Gumbel top-k); how far an approach
gets depends on fit, recent signals before the approach, ties to the zone's assets and leaders,
and geography (logistic noise, stage thresholds). ``oracle`` is the noise-free propensity at the
last quarter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from features.chains import nodes_frame, validate_chains

CHAIN_FILE = Path(__file__).resolve().parents[2] / "configs" / "chains" / "01_optical_comm.yaml"
PROVINCES = ["湖北省", "广东省", "江苏省", "上海市", "湖南省", "四川省", "北京市"]
PROVINCE_P = [0.25, 0.2, 0.15, 0.1, 0.1, 0.1, 0.1]
SIGNAL_TYPES = ["financing", "new_branch", "land_purchase", "hiring", "capacity_expansion"]
STAGE_CUTS = [(-1.0, "接洽"), (0.0, "考察"), (1.0, "洽谈"), (2.0, "签约")]


def load_nodes() -> pd.DataFrame:
    return nodes_frame(validate_chains([yaml.safe_load(CHAIN_FILE.read_text("utf-8"))]))


def make_world(
    n_enterprises: int = 400,
    random_state: int = 0,
    n_quarters: int = 12,
    approaches_per_query: int = 3,
    top_k: int = 120,
) -> dict[str, Any]:
    rng = np.random.default_rng(random_state)
    nodes = load_nodes()
    n_nodes = len(nodes)
    ids = np.array([f"E{i:05d}" for i in range(n_enterprises)], dtype=object)
    home = rng.integers(0, n_nodes, n_enterprises)
    node_codes = [codes[0] for codes in nodes["industry_codes"]]
    code = np.where(rng.random(n_enterprises) < 0.7, np.array(node_codes, dtype=object)[home],
                    rng.integers(1000, 9999, n_enterprises).astype(str))  # fmt: skip
    founded = pd.Timestamp("2000-01-01") + pd.to_timedelta(rng.integers(0, 365 * 22, n_enterprises), unit="D")
    fin_date = pd.Timestamp("2018-01-01") + pd.to_timedelta(rng.integers(0, 365 * 7, n_enterprises), unit="D")
    enterprises = pd.DataFrame(
        {
            "enterprise_id": ids,
            "name": [f"企业{i}" for i in range(n_enterprises)],
            "is_operating": True,
            "province": rng.choice(PROVINCES, n_enterprises, p=PROVINCE_P),
            "founded": founded,
            "registered_capital_cny": np.exp(rng.normal(16, 1.5, n_enterprises)),
            "employees": np.round(np.exp(rng.normal(4, 1.2, n_enterprises))),
            "industry_code": code,
            "listed": rng.random(n_enterprises) < 0.1,
            "financing_round": rng.choice(np.array(["A轮", "B轮", "C轮", None], dtype=object), n_enterprises),
            "financing_date": fin_date,
        }
    )
    n_sig = n_enterprises * 3
    signals = pd.DataFrame(
        {
            "signal_id": [f"S{i}" for i in range(n_sig)],
            "enterprise_id": ids[rng.integers(0, n_enterprises, n_sig)],
            "signal_type": rng.choice(SIGNAL_TYPES, n_sig),
            "date": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 365 * 6, n_sig), unit="D"),
            "province": rng.choice(PROVINCES, n_sig),
        }
    )
    assets = pd.DataFrame(
        {"asset_id": ["A1", "A2", "A3", "A4"], "asset_type": ["fund", "university", "lab", "scenario"],
         "name": ["光谷基金", "华中科大", "光电实验室", "场景"]}
    )  # fmt: skip
    local = rng.choice(n_enterprises, 30, replace=False)
    presence = pd.DataFrame(
        {
            "enterprise_id": ids[local],
            "node_id": nodes["node_id"].to_numpy()[home[local]],
            "year": 2020,
            "is_chain_leader": np.arange(30) < 6,
        }
    )
    n_rel = n_enterprises
    src = ids[rng.integers(0, n_enterprises, n_rel)]
    dst = np.where(
        rng.random(n_rel) < 0.5, rng.choice(["A1", "A2", "A3"], n_rel), ids[local][rng.integers(0, 30, n_rel)]
    )
    relations = pd.DataFrame(
        {
            "relation_id": [f"R{i}" for i in range(n_rel)],
            "src_id": src, "src_type": "enterprise", "dst_id": dst,
            "dst_type": np.where(pd.Series(dst, dtype="string").str.startswith("A"), "asset", "enterprise"),
            "relation_type": "supplier", "weight": 0.5,
            "date": pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, 365 * 6, n_rel), unit="D"),
        }
    )  # fmt: skip
    # retrieval: noisy cosine of latent vectors
    v_node = rng.normal(size=(n_nodes, 8))
    v_ent = v_node[home] + rng.normal(scale=0.9, size=(n_enterprises, 8))
    cos = (v_ent / np.linalg.norm(v_ent, axis=1, keepdims=True)) @ (
        v_node / np.linalg.norm(v_node, axis=1, keepdims=True)
    ).T
    dense = cos.T + rng.normal(scale=0.05, size=(n_nodes, n_enterprises))  # (n_nodes, n_ent)
    lexical = cos.T + rng.normal(scale=0.2, size=(n_nodes, n_enterprises))
    candidates = _candidates(nodes, ids, dense, lexical, top_k)
    quarters = pd.date_range("2022-01-01", periods=n_quarters, freq="QS")
    outcomes, logit_end = _outcomes(rng, nodes, ids, enterprises, signals, relations, presence, cos.T, dense, quarters,
                                    approaches_per_query)  # fmt: skip
    oracle = pd.DataFrame(
        {
            "node_id": np.repeat(nodes["node_id"].to_numpy(), n_enterprises),
            "enterprise_id": np.tile(ids, n_nodes),
            "oracle_score": 1 / (1 + np.exp(-logit_end.ravel())),
        }
    )
    tables = {"enterprises": enterprises, "presence": presence, "assets": assets, "relations": relations,
              "signals": signals, "outcomes": outcomes}  # fmt: skip
    map_df = pd.DataFrame({"node_id": nodes["node_id"], "colour": np.resize(["red", "blue", "green"], n_nodes),
                           "gap": np.linspace(0, 1, n_nodes)})  # fmt: skip
    return {"tables": tables, "nodes": nodes, "map_df": map_df, "candidates": candidates, "oracle": oracle}


def _candidates(
    nodes: pd.DataFrame, ids: np.ndarray, dense: np.ndarray, lexical: np.ndarray, top_k: int
) -> pd.DataFrame:
    parts = []
    for name, score in (("dense", dense), ("lexical", lexical)):
        order = np.argsort(-score, axis=1, kind="stable")[:, :top_k]
        parts.append(
            pd.DataFrame(
                {
                    "node_id": np.repeat(nodes["node_id"].to_numpy(), top_k),
                    "enterprise_id": ids[order.ravel()],
                    f"{name}_score": np.take_along_axis(score, order, axis=1).ravel(),
                    f"{name}_rank": np.tile(np.arange(1, top_k + 1), len(nodes)).astype(float),
                }
            )
        )
    out = parts[0].merge(parts[1], on=["node_id", "enterprise_id"], how="outer")
    out["sources"] = np.where(out["dense_rank"].notna(), "dense", "") + np.where(
        out["lexical_rank"].notna(), "|lexical", ""
    )
    return out.sort_values(["node_id", "enterprise_id"], ignore_index=True)


def _counts_before(events: pd.DataFrame, ids: np.ndarray, t: pd.Timestamp, days: int) -> np.ndarray:
    recent = events[(events["date"] < t) & (events["date"] >= t - pd.Timedelta(days=days))]
    return recent.groupby("enterprise_id").size().reindex(ids, fill_value=0).to_numpy(dtype=float)


def _outcomes(rng: np.random.Generator, nodes: pd.DataFrame, ids: np.ndarray, enterprises: pd.DataFrame,
              signals: pd.DataFrame, relations: pd.DataFrame, presence: pd.DataFrame, fit: np.ndarray,
              dense: np.ndarray, quarters: pd.DatetimeIndex, k: int) -> tuple[pd.DataFrame, np.ndarray]:  # fmt: skip
    hubei = (enterprises["province"] == "湖北省").to_numpy(dtype=float)
    tie_rel = relations.rename(columns={"src_id": "enterprise_id"})

    def logit(t: pd.Timestamp) -> np.ndarray:
        sig = _counts_before(signals[signals["signal_type"] != "hiring"], ids, t, 365)
        ties = _counts_before(tie_rel, ids, t, 10_000)
        return (
            3.0 * fit
            - 1.5
            + 0.9 * np.minimum(sig, 3)[None, :]
            + 0.8 * np.minimum(ties, 2)[None, :]
            + 0.6 * hubei[None, :]
        )

    rows: list[tuple[str, str, str, pd.Timestamp]] = []
    taken: set[tuple[int, int]] = set()
    for t in quarters:
        lg = logit(t)
        for n in range(len(nodes)):
            pick = np.argsort(-(4.0 * dense[n] + rng.gumbel(size=len(ids))))
            chosen = [e for e in pick[: k * 3] if (n, e) not in taken][:k]
            for e in chosen:
                taken.add((n, e))
                start = t + pd.Timedelta(days=int(rng.integers(0, 80)))
                z = lg[n, e] + rng.logistic()
                stages = ["线索"] + [s for cut, s in STAGE_CUTS if z > cut]
                if len(stages) == 1:
                    stages.append("终止")
                for j, s in enumerate(stages):
                    rows.append((ids[e], nodes["node_id"].iloc[n], s, start + pd.Timedelta(days=25 * j)))
    out = pd.DataFrame(rows, columns=["enterprise_id", "node_id", "stage", "date"])
    out.insert(0, "outcome_id", [f"O{i}" for i in range(len(out))])
    return out, logit(quarters[-1])


@pytest.fixture(scope="session")
def _world_cache() -> dict[str, Any]:
    return make_world()


@pytest.fixture
def world(_world_cache: dict[str, Any]) -> dict[str, Any]:
    """A fresh deep copy of the session's synthetic zone."""
    return {
        k: ({t: df.copy() for t, df in v.items()} if isinstance(v, dict) else v.copy()) for k, v in _world_cache.items()
    }
