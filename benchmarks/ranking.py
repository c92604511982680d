"""Ranking benchmark (JSON on stdout): test-period quality on the sample zone, and scoring throughput.

Quality: generate the sample zone (``recommender.sample.generate.generate_sample``, stated N and seed), write its
raw files and ingest them through the normal path (``features.io.ingest_file`` with the built-in
column maps) into a temporary workspace, retrieve candidates (``retrieval.embedder``, default
``tfidf`` so that nothing is downloaded), build the training set, fit the ranker and evaluate it
on the test periods with the baselines and the generator's hidden oracle. Reports NDCG@10/20/50,
recall@50 of later signings and MAP for every system, and the ratios ranker/similarity and
ranker/oracle on NDCG@20 (targets: ≥ 1.3 and ≥ 0.8), in two views: the full candidate lists
(unapproached = 0) and the approached pairs only (target: ranker above similarity, close to the
oracle).

Throughput: 1,500 nodes × 500 candidates (nodes replicated from the chains with new ids,
candidates drawn from the sample universe), as of the sample's date. Times ``build_pair_features``
+ ``Ranker.predict`` against raw ``booster.predict`` on the prebuilt float matrix with the same
trees and threads; target ratio ≤ 2.

Usage::

    python benchmarks/ranking.py [--n 3000] [--seed 42] [--nodes 1500] [--per-node 500] [--embedder tfidf]
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

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def ingest_sample(n: int, seed: int, workspace: Path) -> dict[str, Any]:
    """Generate, write and ingest the sample zone into ``workspace``; returns timings and counts."""
    from features.io import ingest_file
    from recommender.sample.generate import generate_sample
    from recommender.sample.write import SAMPLE_FILES, write_sample
    from recommender.settings import load_chains, load_settings
    from recommender.workspace import Workspace

    settings = load_settings(workspace=workspace)
    ws = Workspace(workspace).ensure()
    t0 = time.perf_counter()
    data = generate_sample(load_chains(settings), n, seed)
    written = write_sample(data, ws.root / "sample")
    t1 = time.perf_counter()
    rejected = {}
    for name, path in written.items():
        table = SAMPLE_FILES.get(name, (None, None))[0]
        if table is None or table == "oracle":
            continue
        report = ingest_file(
            path, table, None, ws.snapshots, ws.rejects, maps_dir=settings.resolve(settings.ingest.column_maps_dir)
        )
        rejected[table] = int(getattr(report, "n_rejected", 0) or 0)
    return {
        "generate_s": round(t1 - t0, 2),
        "ingest_s": round(time.perf_counter() - t1, 2),
        "manifest_counts": data.manifest.get("counts", {}),
        "rejected_rows": rejected,
    }


def quality(workspace: Path, embedder: str, seed: int) -> tuple[dict[str, Any], Any, Any]:
    """Train on the ingested sample and evaluate every system on the test periods."""
    from recommender.ranking.jobs import build_training_data, data_fingerprints, load_training_inputs
    from recommender.settings import load_settings
    from training.train import train_and_evaluate

    os.environ["SANSETU_RETRIEVAL__EMBEDDER"] = embedder
    settings = load_settings(workspace=workspace)
    t0 = time.perf_counter()
    inputs = load_training_inputs(settings)
    t1 = time.perf_counter()
    ts = build_training_data(settings, inputs)
    t2 = time.perf_counter()
    result = train_and_evaluate(ts, settings.training, inputs.oracle, data_fingerprints(inputs.tables))
    t3 = time.perf_counter()
    m = result.metrics
    out = {
        "embedder": embedder,
        "split": result.split.describe(),
        "counts": result.counts,
        "training_set": {"rows": len(ts.frame), "queries": int(ts.frame["query_id"].nunique()),
                         "positives": int((ts.frame["label"] > 0).sum()),
                         "label_counts": {str(k): int(v) for k, v in ts.frame["label"].value_counts().sort_index().items()}},
        "metrics": {s: {k: round(v, 4) for k, v in mm.items()} for s, mm in m.items()},
        "metrics_approached_only": {s: {k: round(v, 4) for k, v in mm.items()} for s, mm in result.metrics_approached.items()},
        "ratio_ranker_to_similarity_ndcg@20": round(m["ranker"]["ndcg@20"] / m["similarity"]["ndcg@20"], 3),
        "ratio_ranker_to_oracle_ndcg@20": round(m["ranker"]["ndcg@20"] / m["oracle"]["ndcg@20"], 3) if "oracle" in m else None,
        "timings_s": {"inputs_retrieval": round(t1 - t0, 2), "training_set": round(t2 - t1, 2), "fit_and_evaluate": round(t3 - t2, 2)},
        "top_features_gain": dict(list(result.feature_importance.items())[:10]),
    }  # fmt: skip
    ma = result.metrics_approached
    if "oracle" in ma:
        out["approached_only_ratio_ranker_to_oracle_ndcg@20"] = round(
            ma["ranker"]["ndcg@20"] / ma["oracle"]["ndcg@20"], 3
        )
        out["approached_only_ratio_ranker_to_similarity_ndcg@20"] = round(
            ma["ranker"]["ndcg@20"] / ma["similarity"]["ndcg@20"], 3
        )
    out["targets_met"] = {
        "ranker/similarity>=1.3": m["ranker"]["ndcg@20"] >= 1.3 * m["similarity"]["ndcg@20"],
        "ranker/oracle>=0.8": "oracle" in m and m["ranker"]["ndcg@20"] >= 0.8 * m["oracle"]["ndcg@20"],
        "approached_only ranker>similarity": bool(ma and ma["ranker"]["ndcg@20"] > ma["similarity"]["ndcg@20"]),
    }
    return out, inputs, result


def throughput(
    inputs: Any, ranker: Any, n_nodes: int, per_node: int, seed: int, zone_province: str, repeats: int = 3
) -> dict[str, Any]:
    """Features + prediction vs raw booster.predict for n_nodes × per_node pairs."""
    from features.pairs import FEATURE_NAMES, build_pair_features

    rng = np.random.default_rng(seed)
    base = inputs.nodes
    reps = int(np.ceil(n_nodes / len(base)))
    nodes = pd.concat([base.assign(node_id=base["node_id"] + f"#{i}") for i in range(reps)], ignore_index=True).head(
        n_nodes
    )
    map_df = None
    if inputs.map_df is not None:
        latest = inputs.map_df[inputs.map_df["as_of"] == inputs.map_df["as_of"].max()].drop(columns="as_of")
        map_df = pd.concat([latest.assign(node_id=latest["node_id"] + f"#{i}") for i in range(reps)], ignore_index=True)
    ids = inputs.tables["enterprises"]["enterprise_id"].to_numpy()
    per = min(per_node, len(ids))
    picks = (
        np.argsort(rng.random((n_nodes, len(ids))), axis=1)[:, :per]
        if len(ids) <= 20_000
        else rng.integers(0, len(ids), (n_nodes, per))
    )
    cands = pd.DataFrame(
        {
            "node_id": np.repeat(nodes["node_id"].to_numpy(), per),
            "enterprise_id": ids[picks.ravel()],
            "lexical_score": rng.random(n_nodes * per),
            "lexical_rank": np.tile(np.arange(1, per + 1), n_nodes).astype(float),
        }
    )
    as_of = pd.to_datetime(inputs.tables["outcomes"]["date"]).max() + pd.Timedelta(days=1)
    tables = inputs.tables
    feats = build_pair_features(cands, tables, nodes, map_df, as_of, zone_province=zone_province)  # warm-up
    X = np.ascontiguousarray(feats[ranker.feature_names_].to_numpy(dtype=np.float64))
    booster, it, threads = ranker.booster_, ranker.best_iteration_, ranker.n_jobs

    def best(fn: Any) -> float:
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    t_raw = best(lambda: booster.predict(X, num_iteration=it, num_threads=threads))
    t_feat = best(lambda: build_pair_features(cands, tables, nodes, map_df, as_of, zone_province=zone_province))
    t_pred = best(lambda: ranker.predict(feats))
    total = t_feat + t_pred
    return {
        "pairs": len(cands),
        "nodes": n_nodes,
        "candidates_per_node": per,
        "universe_enterprises": len(ids),
        "n_features": len(FEATURE_NAMES),
        "trees": it,
        "threads": threads,
        "raw_booster_predict_s": round(t_raw, 3),
        "build_features_s": round(t_feat, 3),
        "ranker_predict_s": round(t_pred, 3),
        "features_plus_predict_s": round(total, 3),
        "pairs_per_s_end_to_end": round(len(cands) / total),
        "ratio_to_raw_predict": round(total / t_raw, 2),
        "target_ratio_le_2": total / t_raw <= 2,
        "repeats": f"best of {repeats}",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="enterprises in the sample universe (as `sansetu sample`)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--nodes", type=int, default=1500)
    ap.add_argument("--per-node", type=int, default=500)
    ap.add_argument("--embedder", default="tfidf")
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()
    import lightgbm

    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "workspace"
        sample = ingest_sample(args.n, args.seed, ws)
        q, inputs, result = quality(ws, args.embedder, args.seed)
        report: dict[str, Any] = {
            "benchmark": "ranking",
            "sample": {"n_enterprises": args.n, "seed": args.seed, **sample},
            "quality": q,
            "machine": {"python": platform.python_version(), "lightgbm": lightgbm.__version__, "cpus": os.cpu_count()},
        }
        if not args.skip_throughput:
            from recommender.settings import load_settings

            zone = load_settings(workspace=ws).zone_province
            report["throughput"] = throughput(inputs, result.ranker, args.nodes, args.per_node, args.seed, zone)
    json.dump(report, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
