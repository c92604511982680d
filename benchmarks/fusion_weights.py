"""Learn ``retrieval.fusion_weights`` on the sample zone from industry codes (never from benchmark gold).

Generates the sample zone (``--n``, ``--seed``), ingests it through the normal path, builds the
three indexes with the configured (or ``--embedder``) dense model, retrieves every chain node's
candidates (dense, words and lexical top-K, no in-zone filter), labels each (node, firm) pair by
industry code (``training.fusion.industry_code_labels``) and fits the weights
(``training.fusion.fit_fusion_weights``). The nodes are split in two halves (seeded): the weights
are fitted on one and the fused ordering is checked on the other (mean precision@20 of
"code matches" with learned vs equal weights), then refitted on all nodes for the printed setting.

Prints JSON and writes ``benchmarks/results/fusion_weights.json``; copy ``weights`` into
``configs/default.yaml`` under ``retrieval.fusion_weights``.

Usage: python benchmarks/fusion_weights.py [--n 3000] [--seed 7] [--embedder e5-small-int8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def candidates_with_labels(workspace: Path, embedder: str | None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every node's retrieved candidates with the three normalised scores and the industry-code label."""
    from features.chains import nodes_frame
    from features.io import load_tables
    from recommender.retrieval.candidates import retrieve_candidates, word_retriever
    from recommender.retrieval.fusion import fusion_matrix
    from recommender.retrieval.index import load_retrieval
    from recommender.settings import load_chains, load_settings
    from recommender.workspace import Workspace
    from training.fusion import industry_code_labels

    settings = load_settings(workspace=workspace)
    if embedder:
        settings = settings.model_copy(
            update={"retrieval": settings.retrieval.model_copy(update={"embedder": embedder})}
        )
    tables = load_tables(Workspace(workspace).snapshots)
    nodes = nodes_frame(load_chains(settings))
    t = time.perf_counter()
    encoder, bundle = load_retrieval(settings, tables["enterprises"])
    index_s = time.perf_counter() - t
    no_presence = {**tables, "presence": tables["presence"].iloc[0:0]}
    cands = retrieve_candidates(
        nodes, None, no_presence, encoder, bundle.dense, bundle.lexical, settings.retrieval,
        node_ids=list(nodes["node_id"]), words=word_retriever(bundle),
    )  # fmt: skip
    feats = fusion_matrix(cands)
    labels = industry_code_labels(cands, tables["enterprises"], nodes)
    frame = pd.concat([cands[["node_id", "enterprise_id"]], feats, labels], axis=1)
    info = {"embedder": settings.retrieval.embedder, "index_s": round(index_s, 1), "n_candidates": len(cands)}
    return frame, info


def precision_at(frame: pd.DataFrame, weights: dict[str, float], nodes: set[str], k: int = 20) -> float:
    """Mean share of code-matching firms among the top k of each node (labelled pairs only)."""
    sub = frame[frame["node_id"].isin(nodes) & frame["label"].notna()].copy()
    sub["s"] = sum(w * sub[r] for r, w in weights.items())
    sub = sub.sort_values(["node_id", "s", "enterprise_id"], ascending=[True, False, True])
    return round(float(sub.groupby("node_id").head(k).groupby("node_id")["label"].mean().mean()), 4)


def main() -> None:
    from ranking import ingest_sample

    from recommender.retrieval.fusion import RETRIEVERS
    from training.fusion import fit_fusion_weights

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--embedder", default=None, help="dense model (default: the configured retrieval.embedder)")
    p.add_argument("--workspace", type=Path, default=None)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "fusion_weights.json")
    args = p.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ws = args.workspace or Path(tmp) / "ws"
        ingest_info = ingest_sample(args.n, args.seed, ws)
        frame, info = candidates_with_labels(ws, args.embedder)
    cols = list(RETRIEVERS)
    node_ids = sorted(frame["node_id"].unique())
    rng = np.random.default_rng(args.seed)
    half = set(rng.permutation(node_ids)[: len(node_ids) // 2].tolist())
    other = set(node_ids) - half
    fit_half = frame[frame["node_id"].isin(half)]
    split = fit_fusion_weights(fit_half[cols], fit_half["label"], fit_half["node_id"])
    full = fit_fusion_weights(frame[cols], frame["label"], frame["node_id"])
    equal = dict.fromkeys(cols, 1.0)
    out = {
        "sample": {"n": args.n, "seed": args.seed, **ingest_info},
        **info,
        "labels": "firm industry code (first 4 digits) in the node's industry_codes; no code = unknown",
        "held_out_nodes_precision@20": {
            "learned_on_other_half": precision_at(frame, split.weights, other),
            "equal_weights": precision_at(frame, equal, other),
            **{f"{r}_only": precision_at(frame, {r: 1.0}, other) for r in cols},
        },
        "fit_on_half": split.to_dict(),
        "fit_on_all": full.to_dict(),
        "weights": full.weights,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    text = json.dumps(out, ensure_ascii=False, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
