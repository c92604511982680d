"""Scoring throughput benchmark (JSON on stdout): the refresh's scoring path against raw LightGBM.

Generates and ingests the sample zone (N, seed; ``tfidf`` retrieval, nothing downloaded), trains as
``sansetu train`` does, then scores 1,500 nodes × 500 candidates (nodes replicated from the chains
with new ids, candidates drawn from the sample universe, each with a ``fit``) as of the sample's
date with ``recommender.ranking.scoring.score_candidates`` (pair features, relocation features,
the model's margin and calibration; no contributions) and with the ``binary_ipw`` family's
booster alone: ``booster.predict`` on the prebuilt float matrix, same trees, one thread. Target (the
earlier ranking issue's): the whole path ≤ 2× the raw prediction; pairs per second are reported too.

Usage::

    python benchmarks/ranking_throughput.py [--n 3000] [--seed 42] [--nodes 1500] [--per-node 500]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("SANSETU_RETRIEVAL__EMBEDDER", "tfidf")

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))


def replicated(inputs: Any, n_nodes: int, per_node: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    """(nodes, candidates, map) for ``n_nodes`` nodes copied from the chains, ``per_node`` random firms each."""
    rng = np.random.default_rng(seed)
    base = inputs.nodes
    reps = int(np.ceil(n_nodes / len(base)))
    nodes = pd.concat([base.assign(node_id=base["node_id"] + f"#{i}") for i in range(reps)], ignore_index=True)
    nodes = nodes.head(n_nodes)
    map_df = None
    if inputs.map_df is not None:
        latest = inputs.map_df[inputs.map_df["as_of"] == inputs.map_df["as_of"].max()].drop(columns="as_of")
        map_df = pd.concat([latest.assign(node_id=latest["node_id"] + f"#{i}") for i in range(reps)], ignore_index=True)
    ids = inputs.tables["enterprises"]["enterprise_id"].to_numpy()
    per = min(per_node, len(ids))
    picks = np.argsort(rng.random((n_nodes, len(ids))), axis=1)[:, :per]
    cands = pd.DataFrame({
        "node_id": np.repeat(nodes["node_id"].to_numpy(), per), "enterprise_id": ids[picks.ravel()],
        "lexical_score": rng.random(n_nodes * per), "lexical_rank": np.tile(np.arange(1, per + 1), n_nodes).astype(float),
        "fit": rng.random(n_nodes * per),
    })  # fmt: skip
    return nodes, cands, map_df


def best(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def throughput(inputs: Any, scorer: Any, settings: Any, n_nodes: int, per_node: int, seed: int) -> dict[str, Any]:
    from features.pairs import build_pair_features
    from recommender.ranking.scoring import ModelBundle, score_candidates, with_relocation

    nodes, cands, map_df = replicated(inputs, n_nodes, per_node, seed)
    as_of = pd.to_datetime(inputs.tables["outcomes"]["date"]).max() + pd.Timedelta(days=1)
    tables, zone = inputs.tables, settings.zone_province
    bundle = ModelBundle(scorer, "bench", "bench", "none")
    feats = build_pair_features(cands, tables, nodes, map_df, as_of, zone_province=zone)
    full = with_relocation(feats.set_axis(cands.index), cands, tables, as_of, zone)
    X = np.ascontiguousarray(full[scorer.feature_names].to_numpy(dtype=np.float64))

    def path() -> None:
        score_candidates(cands, tables, nodes, map_df, as_of, bundle, zone_province=zone, contributions=False)

    t_raw = best(lambda: scorer.booster.predict(X, raw_score=True, num_threads=1), 3)
    t_path = best(path, 2)
    return {
        "pairs": len(cands), "nodes": n_nodes, "candidates_per_node": min(per_node, len(cands)),
        "family": scorer.family, "trees": scorer.booster.num_trees(), "n_features": len(scorer.feature_names),
        "raw_booster_predict_s": round(t_raw, 3), "score_candidates_s": round(t_path, 3),
        "pairs_per_s_end_to_end": round(len(cands) / t_path), "ratio_to_raw_predict": round(t_path / t_raw, 2),
        "repeats": "best of 3 (raw) / 2 (path)",
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--nodes", type=int, default=1500)
    ap.add_argument("--per-node", type=int, default=500)
    args = ap.parse_args()
    import lightgbm
    from ranking import ingest_sample, train, truth_of

    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "workspace"
        data, _ = ingest_sample(args.n, args.seed, "default", ws)
        settings, inputs, result, timings = train(ws, truth_of(data))
        scorer = result.scorers["binary_ipw"]
        report = {
            "benchmark": "ranking_throughput",
            "sample": {"n_enterprises": args.n, "seed": args.seed},
            "training": timings,
            "throughput": throughput(inputs, scorer, settings, args.nodes, args.per_node, args.seed),
            "machine": {"python": platform.python_version(), "lightgbm": lightgbm.__version__, "cpus": os.cpu_count()},
        }
    json.dump(report, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
