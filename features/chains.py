"""Chain definitions: the zone's key industrial chains as validated node graphs.

A chain YAML (``configs/chains/*.yaml``) holds one chain::

    id: optical_comm
    name: 光通信
    description: ...
    nodes:
      - id: optical_comm.preform
        name: 光纤预制棒
        stage: upstream            # upstream | midstream | downstream
        description: 生产光纤预制棒……   # 1-3 Chinese sentences
        products: [光纤预制棒, 高纯四氯化硅]
        keywords: [预制棒, VAD, OVD]
        industry_codes: ["3985"]    # GB/T 4754-2017 class codes (4 digits)
        downstream: [optical_comm.fiber_cable]   # edges upstream -> downstream
        strategic_weight: 1.0

Reading files belongs to ``recommender.settings``; this module validates dicts into models and
turns chains into a node table.
"""

from __future__ import annotations

import re
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_INDUSTRY_CODE = re.compile(r"^\d{4}$")


class ChainNode(BaseModel):
    """One node of a chain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9_]+\.[a-z0-9_]+$")
    name: str = Field(min_length=1)
    stage: Literal["upstream", "midstream", "downstream"]
    description: str = Field(min_length=4)
    products: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    industry_codes: list[str] = Field(default_factory=list)
    downstream: list[str] = Field(default_factory=list)
    strategic_weight: float = Field(default=1.0, gt=0, le=10)

    @field_validator("industry_codes")
    @classmethod
    def _codes_are_classes(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if not _INDUSTRY_CODE.match(c)]
        if bad:
            raise ValueError(f"industry_codes must be 4-digit GB/T 4754-2017 class codes; got {bad}")
        return v


class Chain(BaseModel):
    """One industrial chain: 8-20 nodes covering upstream, midstream and downstream."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    name: str = Field(min_length=1)
    description: str = ""
    nodes: list[ChainNode] = Field(min_length=8, max_length=20)

    @model_validator(mode="after")
    def _check_graph(self) -> Chain:
        ids = [n.id for n in self.nodes]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"chain '{self.id}' has duplicate node ids {dupes}")
        wrong_prefix = [i for i in ids if not i.startswith(self.id + ".")]
        if wrong_prefix:
            raise ValueError(f"node ids of chain '{self.id}' must start with '{self.id}.'; got {wrong_prefix}")
        known = set(ids)
        for n in self.nodes:
            unknown = [d for d in n.downstream if d not in known]
            if unknown:
                raise ValueError(
                    f"node '{n.id}' of chain '{self.id}' has downstream edges to unknown nodes {unknown}; "
                    f"known nodes are {sorted(known)}"
                )
        missing = [s for s in ("upstream", "midstream", "downstream") if s not in {n.stage for n in self.nodes}]
        if missing:
            raise ValueError(f"chain '{self.id}' has no nodes at stage(s) {missing}")
        cycle = _find_cycle({n.id: list(n.downstream) for n in self.nodes})
        if cycle:
            raise ValueError(f"chain '{self.id}' has a cycle: {' -> '.join(cycle)}")
        return self


def _find_cycle(edges: dict[str, list[str]]) -> list[str]:
    """Return one cycle as a list of node ids (first id repeated at the end), or []."""
    state: dict[str, int] = {}  # 1 = on stack, 2 = done
    stack: list[str] = []

    def visit(u: str) -> list[str]:
        state[u] = 1
        stack.append(u)
        for v in edges.get(u, []):
            if state.get(v) == 1:
                return stack[stack.index(v) :] + [v]
            if v not in state:
                found = visit(v)
                if found:
                    return found
        stack.pop()
        state[u] = 2
        return []

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def validate_chains(raw: list[dict[str, object]]) -> list[Chain]:
    """Validate chain dicts; node ids must also be unique across chains."""
    chains = [Chain.model_validate(r) for r in raw]
    seen: dict[str, str] = {}
    for ch in chains:
        if ch.id in seen.values():
            raise ValueError(f"duplicate chain id '{ch.id}'")
        for n in ch.nodes:
            if n.id in seen:
                raise ValueError(f"node id '{n.id}' appears in chains '{seen[n.id]}' and '{ch.id}'")
            seen[n.id] = ch.id
    return chains


NODE_COLUMNS = [
    "chain_id",
    "chain_name",
    "node_id",
    "name",
    "stage",
    "description",
    "products",
    "keywords",
    "industry_codes",
    "downstream",
    "strategic_weight",
]


def nodes_frame(chains: list[Chain]) -> pd.DataFrame:
    """One row per node with the columns ``NODE_COLUMNS`` (list-valued columns stay lists)."""
    rows = [
        {
            "chain_id": ch.id,
            "chain_name": ch.name,
            "node_id": n.id,
            "name": n.name,
            "stage": n.stage,
            "description": n.description,
            "products": list(n.products),
            "keywords": list(n.keywords),
            "industry_codes": list(n.industry_codes),
            "downstream": list(n.downstream),
            "strategic_weight": n.strategic_weight,
        }
        for ch in chains
        for n in ch.nodes
    ]
    return pd.DataFrame(rows, columns=NODE_COLUMNS)


def edges_frame(chains: list[Chain]) -> pd.DataFrame:
    """Upstream -> downstream edges: columns ``chain_id``, ``src_node``, ``dst_node``."""
    rows = [(ch.id, n.id, d) for ch in chains for n in ch.nodes for d in n.downstream]
    return pd.DataFrame(rows, columns=["chain_id", "src_node", "dst_node"])
