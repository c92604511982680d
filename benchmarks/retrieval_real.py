"""Retrieval quality on real listed companies: tfidf vs use-multilingual vs e5-small vs the hybrid.

Reads ``../shared/data/cn_listed_companies/companies_labeled.csv`` (relative to the repo root; prints
``{"skipped": ...}`` and exits 0 when it is absent), keeps the companies trading on 2026-03-06,
writes them as a raw CSV with a synthetic credit code (the file has none; see
``benchmarks/listed_companies_map.yaml``), ingests that through the normal ingest path
(``features.io.ingest_file`` with the column map), builds the profile indexes of each embedder
through the normal retrieval path (``recommender.retrieval.candidates.build_profile_index``: profile texts,
embedding cache, FAISS / TF-IDF indexes), runs the node-style queries of
``benchmarks/queries_real.yaml`` and prints JSON with precision@10, precision@20, recall@100 and
nDCG@20 per method (mean over queries), plus candidate recall@500 of the dense ∪ lexical union.

Methods:
  tfidf             LexicalIndex, character 1-3-gram TF-IDF (the baseline)
  use-multilingual  dense, Universal Sentence Encoder multilingual
  e5-small          dense, multilingual-e5-small (the default embedder)
  hybrid            e5-small top-500 ∪ tfidf top-500 ordered by reciprocal-rank fusion
                    (``recommender.retrieval.candidates.similarity_component``) — the candidate order that
                    the day-one heuristic starts from
  heuristic         the full day-one score (``retrieve_candidates`` with only enterprises known:
                    similarity + size), what ``sansetu query`` lists before a model exists

Usage: python benchmarks/retrieval_real.py [--fraction 1.0] [--methods tfidf,use-multilingual,e5-small]
Embeddings are cached in ``--workspace`` (default ``workspace/bench-retrieval-real``): a rerun
encodes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
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
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DATA = REPO.parent / "shared" / "data" / "cn_listed_companies" / "companies_labeled.csv"
QUERIES = REPO / "benchmarks" / "queries_real.yaml"
COLUMN_MAP = REPO / "benchmarks" / "listed_companies_map.yaml"
EXCHANGE_DIGIT = {"SH": "1", "SZ": "2", "BJ": "3"}
RAW_COLUMNS = [
    "com_name",
    "csrc_industry",
    "main_business",
    "introduction",
    "province",
    "city",
    "reg_capital_wan_cny",
    "employees",
]
DENSE = ("use-multilingual", "e5-small")


def synthetic_credit_code(ts_code: str) -> str:
    """A valid GB 32100-2015 code from a stock code: '91' + '000000' + code + exchange digit + '00' + check.

    NOT the company's real credit code (the data has none); unique per stock code.
    """
    from features.validate import credit_code_check_char

    code, exchange = ts_code.split(".")
    body = f"91000000{code}{EXCHANGE_DIGIT[exchange]}00"
    return body + credit_code_check_char(body)


def load_companies(fraction: float, random_state: int) -> pd.DataFrame:
    """Trading companies with their gold-label columns and a synthetic credit code."""
    df = pd.read_csv(DATA, dtype=str, keep_default_na=False, na_values=[""])
    df = df[df["trading_2026_03_06"] == "True"].reset_index(drop=True)
    if fraction < 1.0:
        df = df.sample(frac=fraction, random_state=random_state).sort_index().reset_index(drop=True)
    return df.assign(credit_code=df["ts_code"].map(synthetic_credit_code), listed="true")


def ingest(companies: pd.DataFrame, workspace: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Write the raw CSV (no label columns) and ingest it through ``features.io.ingest_file``."""
    from features.io import ingest_file, load_tables
    from recommender.workspace import Workspace

    ws = Workspace(workspace).ensure()
    raw = workspace / "raw" / "listed_companies.csv"
    raw.parent.mkdir(parents=True, exist_ok=True)
    companies[["credit_code", *RAW_COLUMNS, "listed"]].to_csv(raw, index=False, encoding="utf-8")
    report = ingest_file(
        raw,
        "enterprises",
        COLUMN_MAP,
        ws.snapshots,
        ws.rejects,
        mode="replace",
        maps_dir=REPO / "configs" / "column_maps",
        max_text_chars=2000,
    )
    enterprises = load_tables(ws.snapshots)["enterprises"]
    info = {"n_read": int(report.n_read), "n_total": int(report.n_total), "rejects": report.rejects}
    return enterprises, info


def load_queries() -> tuple[pd.DataFrame, dict[str, dict[str, list[str]]]]:
    """Queries as a nodes frame (for ``node_texts``) and their gold-label definitions."""
    spec = yaml.safe_load(QUERIES.read_text(encoding="utf-8"))["queries"]
    nodes = pd.DataFrame(
        [
            {
                "chain_id": "bench",
                "chain_name": "",
                "node_id": f"bench.{q['id']}",
                "name": q["name"],
                "stage": "midstream",
                "description": q["description"],
                "products": q.get("products", []),
                "keywords": q.get("keywords", []),
                "industry_codes": [],
                "downstream": [],
                "strategic_weight": 1.0,
            }
            for q in spec
        ]
    )
    gold = {f"bench.{q['id']}": q["gold"] for q in spec}
    return nodes, gold


def gold_sets(companies: pd.DataFrame, gold: dict[str, dict[str, list[str]]]) -> dict[str, set[str]]:
    """Relevant enterprise ids per query: sw_l3 in the listed classes or any listed concept board."""
    concepts = companies["em_concepts"].fillna("").str.split("|").map(set)
    out = {}
    for node_id, g in gold.items():
        hit = companies["sw_l3"].isin(g.get("sw_l3", [])) | concepts.map(
            lambda c, g=g: bool(c & set(g.get("em_concepts", [])))
        )
        out[node_id] = set(companies.loc[hit, "credit_code"])
    return out


# ------------------------------------------------------------------------------------- metrics
def metrics(ranked: list[str], relevant: set[str]) -> dict[str, float]:
    """precision@10/@20, recall@100, nDCG@20 (binary gains) of one ranked list."""
    rel = np.array([e in relevant for e in ranked[:100]], dtype=float)
    rel = np.pad(rel, (0, max(0, 100 - len(rel))))
    discounts = 1.0 / np.log2(np.arange(2, 22))
    ideal = discounts[: min(len(relevant), 20)].sum()
    return {
        "precision@10": rel[:10].mean(),
        "precision@20": rel[:20].mean(),
        "recall@100": rel[:100].sum() / len(relevant) if relevant else 0.0,
        "ndcg@20": float((rel[:20] * discounts).sum() / ideal) if ideal else 0.0,
    }


def mean_metrics(per_query: dict[str, dict[str, float]]) -> dict[str, float]:
    return {k: round(float(np.mean([m[k] for m in per_query.values()])), 4) for k in next(iter(per_query.values()))}


def ranked_lists(ids: np.ndarray, node_ids: list[str]) -> dict[str, list[str]]:
    return {
        n: [str(e) for e in row if e is not None and str(e) not in ("", "-1")]
        for n, row in zip(node_ids, ids, strict=True)
    }


# ------------------------------------------------------------------------------------- methods
def run(args: argparse.Namespace) -> dict[str, Any]:
    from features.profiles import node_texts
    from recommender.retrieval.candidates import retrieve_candidates, similarity_component
    from recommender.retrieval.index import build_profile_index
    from recommender.settings import RetrievalConfig
    from recommender.workspace import Workspace

    t0 = time.perf_counter()
    companies = load_companies(args.fraction, args.random_state)
    enterprises, ingest_info = ingest(companies, args.workspace)
    nodes, gold_spec = load_queries()
    gold = gold_sets(companies, gold_spec)
    node_ids = nodes["node_id"].tolist()
    queries = node_texts(nodes).tolist()
    ws = Workspace(args.workspace)
    out: dict[str, Any] = {
        "data": str(DATA.relative_to(REPO.parent)),
        "n_companies": len(enterprises),
        "ingest": ingest_info,
        "n_queries": len(node_ids),
        "mean_gold_size": round(float(np.mean([len(g) for g in gold.values()])), 1),
        "credit_code": "synthetic (from the stock code), the data has none",
        "embedded_text": "name, CSRC industry, main business, introduction (sw_* and em_concepts never embedded)",
        "methods": {},
        "timings_s": {},
        "encode": {},
    }
    lexical_config = RetrievalConfig(embedder="tfidf", top_k_dense=args.top_k, top_k_lexical=args.top_k)
    t = time.perf_counter()
    lex = build_profile_index(enterprises, None, ws.index, ws.embedding_cache, lexical_config).lexical
    out["timings_s"]["tfidf_fit"] = round(time.perf_counter() - t, 2)
    lex_ids, _ = lex.search(queries, args.top_k)
    runs = {"tfidf": ranked_lists(lex_ids, node_ids)}
    dense_runs: dict[str, dict[str, list[str]]] = {}
    for name in [m for m in args.methods if m in DENSE]:
        dense_runs[name] = dense_method(name, enterprises, queries, node_ids, ws, args, out)
        runs[name] = dense_runs[name]
    if "e5-small" in dense_runs:
        runs["hybrid"] = fuse(dense_runs["e5-small"], runs["tfidf"], similarity_component)
        config = RetrievalConfig(embedder="e5-small", top_k_dense=args.top_k, top_k_lexical=args.top_k)
        from models.embedder import load_embedder

        encoder = load_embedder("e5-small", ws.model_cache)
        bundle = build_profile_index(enterprises, encoder, ws.index, ws.embedding_cache, config)
        cands = retrieve_candidates(
            nodes, None, {"enterprises": enterprises}, encoder, bundle.dense, bundle.lexical, config
        )
        runs["heuristic"] = {n: g["enterprise_id"].tolist() for n, g in cands.groupby("node_id", sort=False)}
        out["candidate_recall@500_union"] = round(
            float(
                np.mean(
                    [
                        len((set(runs["tfidf"][n][:500]) | set(dense_runs["e5-small"][n][:500])) & gold[n])
                        / len(gold[n])
                        if gold[n]
                        else 0.0
                        for n in node_ids
                    ]
                )
            ),
            4,
        )
    for name, ranked in runs.items():
        per_query = {n: metrics(ranked.get(n, []), gold[n]) for n in node_ids}
        out["methods"][name] = mean_metrics(per_query)
        out.setdefault("per_query_precision@20", {})[name] = {
            n.removeprefix("bench."): round(m["precision@20"], 2) for n, m in per_query.items()
        }
    default = "hybrid" if "hybrid" in out["methods"] else "e5-small"
    out["default"] = default
    if default in out["methods"]:
        out["default_beats_tfidf_on_precision@20"] = bool(
            out["methods"][default]["precision@20"] > out["methods"]["tfidf"]["precision@20"]
        )
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    return out


def dense_method(
    name: str,
    enterprises: pd.DataFrame,
    queries: list[str],
    node_ids: list[str],
    ws: Any,
    args: argparse.Namespace,
    out: dict[str, Any],
) -> dict[str, list[str]]:
    """Embed the profiles (through the cache) and the queries with one embedder; rank by cosine."""
    from models.embedder import load_embedder
    from recommender.retrieval.index import build_profile_index
    from recommender.settings import RetrievalConfig

    config = RetrievalConfig(
        embedder=name, top_k_dense=args.top_k, top_k_lexical=args.top_k, batch_size=args.batch_size
    )
    encoder = load_embedder(name, ws.model_cache)
    t = time.perf_counter()
    bundle = build_profile_index(enterprises, encoder, ws.index, ws.embedding_cache, config, progress=args.progress)
    elapsed = time.perf_counter() - t
    stats = bundle.embed_stats
    out["timings_s"][f"{name}_index"] = round(elapsed, 2)
    out["encode"][name] = {
        "model_id": encoder.model_id,
        "revision": encoder.revision,
        "dim": int(encoder.dim),
        "reused_index": bundle.reused,
        "n_encoded": None if stats is None else stats.n_encoded,
        "n_cache_hits": None if stats is None else stats.n_hits,
        "profiles_per_s": None if stats is None or stats.n_encoded == 0 else round(stats.n_encoded / elapsed, 1),
    }
    q = encoder.encode(queries, kind="query", batch_size=32)
    assert bundle.dense is not None
    ids, _ = bundle.dense.search(np.asarray(q, dtype=np.float32), args.top_k)
    return ranked_lists(ids, node_ids)


def fuse(dense: dict[str, list[str]], lexical: dict[str, list[str]], similarity: Any) -> dict[str, list[str]]:
    """Union of both lists per query, ordered by reciprocal-rank fusion (ties by id)."""
    out = {}
    for node in dense:
        d = {e: i + 1 for i, e in enumerate(dense[node])}
        lx = {e: i + 1 for i, e in enumerate(lexical.get(node, []))}
        ids = sorted(set(d) | set(lx))
        frame = pd.DataFrame(
            {
                "enterprise_id": ids,
                "dense_rank": [d.get(e, np.nan) for e in ids],
                "lexical_rank": [lx.get(e, np.nan) for e in ids],
            }
        )
        frame["s"] = similarity(frame)
        out[node] = frame.sort_values(["s", "enterprise_id"], ascending=[False, True])["enterprise_id"].tolist()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workspace", type=Path, default=REPO / "workspace" / "bench-retrieval-real")
    p.add_argument("--fraction", type=float, default=1.0, help="share of the trading companies to use")
    p.add_argument("--methods", default="tfidf,use-multilingual,e5-small")
    p.add_argument("--top-k", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--random-state", type=int, default=42)
    p.add_argument("--progress", action="store_true")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "retrieval_real.json")
    args = p.parse_args()
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not DATA.is_file():
        print(json.dumps({"skipped": f"{DATA} not found"}, ensure_ascii=False))
        return
    result = run(args)
    text = json.dumps(result, ensure_ascii=False, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
