"""Retrieval quality on real listed companies: every retriever and fusion of the stack, one row each.

Reads ``../shared/data/cn_listed_companies/companies_labeled.csv`` (relative to the repo root; prints
``{"skipped": ...}`` and exits 0 when it is absent), keeps the companies trading on 2026-03-06,
writes them as a raw CSV with a synthetic credit code (the file has none; see
``benchmarks/listed_companies_map.yaml``), ingests that through the normal ingest path
(``features.io.ingest_file`` with the column map), builds the indexes through the normal retrieval
path (``recommender.retrieval.index.build_profile_index``: profile texts, embedding cache, FAISS,
char n-gram and word indexes; the queries' own products and keywords are the segmenter's extra words,
as a zone's chains are) and retrieves through ``recommender.retrieval.candidates.retrieve_candidates``,
exactly as ``sansetu query --live`` does. Gold: ``benchmarks/queries_real.yaml`` (30 frozen queries,
the default) or ``--queries benchmarks/queries_real_new.yaml`` (16 queries written later, their own
table). Nothing is tuned here: ``retrieval.fusion_weights`` come from ``benchmarks/fusion_weights.py``
(sample zone, industry codes); per-half precision@10 (even / odd query positions) is printed so that
any choice made while looking at this table can be checked on the other half.

Rows (``methods``; precision@10/@20, recall@100/@500, nDCG@20, query_ms = retrieval per query with
every retriever of the bundle running):
  tfidf                          character 1-3-gram TF-IDF alone (the baseline)
  bm25, bm25+rm3, bm25+cooc      BM25F over jieba words alone; with RM3 feedback; with co-occurrence expansion
  e5-small, e5-small-int8, ...   each dense model alone (``--dense``)
  hybrid-rrf (previous default)  e5-small top-500 ∪ tfidf top-500 by reciprocal-rank fusion (before this stack)
  fused (default)                dense (the configured embedder) + words + chars, ``retrieval.fusion_weights``
  fused equal weights / +rm3 / +cooc   the same with equal weights / feedback / expansion
  search (default + size)        the day-one score over the fused similarity (what ``sansetu search`` orders by)

``speed``: profiles/s of each dense model on the same 256 fresh profiles (no cache) in this run (e5-small
fp32 also in batches of 64 as the previous default ran it), and
the default's ratio to e5-small fp32. ``candidate_recall@500``: gold firms in each list's top 500; the
fused default against the best single retriever. ``index_bytes``: on-disk size of each index.

Usage: python benchmarks/retrieval_real.py [--dense e5-small,e5-small-int8,e5-small-static] [--queries F]
Embeddings are cached in ``--workspace`` (default ``workspace/bench-retrieval-real``): a rerun
encodes nothing (the speed sample is always encoded fresh).
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
DENSE_NAMES = ("use-multilingual", "e5-small", "e5-small-int8", "e5-small-static")
PREVIOUS_BATCH = 64  # retrieval.batch_size before it became 16: how e5-small fp32 ran "today"


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


def load_queries(path: Path = QUERIES) -> tuple[pd.DataFrame, dict[str, dict[str, list[str]]]]:
    """Queries as a nodes frame (for ``node_texts``) and their gold-label definitions."""
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))["queries"]
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
    """precision@10/@20, recall@100/@500, nDCG@20 (binary gains) of one ranked list."""
    rel = np.array([e in relevant for e in ranked[:500]], dtype=float)
    rel = np.pad(rel, (0, max(0, 500 - len(rel))))
    discounts = 1.0 / np.log2(np.arange(2, 22))
    ideal = discounts[: min(len(relevant), 20)].sum()
    return {
        "precision@10": rel[:10].mean(),
        "precision@20": rel[:20].mean(),
        "recall@100": rel[:100].sum() / len(relevant) if relevant else 0.0,
        "recall@500": rel[:500].sum() / len(relevant) if relevant else 0.0,
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
LEXICAL_VARIANTS: dict[str, dict[str, Any]] = {
    # name: (fusion weights, retrieval settings) — each row one retriever or one fusion
    "tfidf": {"fusion_weights": {"lexical": 1.0}},
    "bm25": {"fusion_weights": {"words": 1.0}},
    "bm25+rm3": {"fusion_weights": {"words": 1.0}, "prf_docs": 10},
    "bm25+cooc": {"fusion_weights": {"words": 1.0}, "expansion_terms": 10},
}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from features.profiles import node_texts
    from features.words import chain_user_words

    t0 = time.perf_counter()
    companies = load_companies(args.fraction, args.random_state)
    enterprises, ingest_info = ingest(companies, args.workspace)
    nodes, gold_spec = load_queries(args.queries)
    gold = gold_sets(companies, gold_spec)
    node_ids = nodes["node_id"].tolist()
    ctx = BenchContext(args, enterprises, nodes, gold, chain_user_words(nodes), node_texts(nodes).tolist())
    out: dict[str, Any] = {
        "data": str(DATA.relative_to(REPO.parent)),
        "queries": str(args.queries.relative_to(REPO)),
        "n_companies": len(enterprises),
        "ingest": ingest_info,
        "n_queries": len(node_ids),
        "mean_gold_size": round(float(np.mean([len(g) for g in gold.values()])), 1),
        "credit_code": "synthetic (from the stock code), the data has none",
        "embedded_text": "name, CSRC industry, main business, introduction (sw_* and em_concepts never embedded)",
        "tuning_half": "queries at even positions (0, 2, ...); report half: odd positions",
        "methods": {},
        "encode": {},
        "index_bytes": {},
    }
    lexical_bundle = ctx.bundle(None)
    out["index_bytes"] |= folder_bytes(lexical_bundle, args.workspace, ("lexical", "words"))
    runs: dict[str, dict[str, list[str]]] = {}
    for name, overrides in LEXICAL_VARIANTS.items():
        runs[name] = ctx.method(name, None, lexical_bundle, overrides, out)
    default_dense = ctx.settings.retrieval.embedder
    for name in args.dense:
        encoder = load_embedder_named(name, ctx)
        bundle = ctx.bundle(encoder, out, name)
        out["index_bytes"][f"dense:{name}"] = folder_bytes(bundle, args.workspace, ("dense",))["dense"]
        runs[name] = ctx.method(name, encoder, bundle, {"fusion_weights": {"dense": 1.0}}, out)
        if name == "e5-small" and "e5-small" in runs:
            top = {k: v[: args.top_k] for k, v in runs["e5-small"].items()}
            lexical_top = {k: v[: args.top_k] for k, v in runs["tfidf"].items()}
            runs["hybrid-rrf (previous default)"] = fuse(top, lexical_top, similarity_rrf)
        if name == default_dense:
            runs["fused (default)"] = ctx.method("fused (default)", encoder, bundle, {}, out)
            runs["fused+rm3"] = ctx.method("fused+rm3", encoder, bundle, {"prf_docs": 10}, out)
            runs["fused+cooc"] = ctx.method("fused+cooc", encoder, bundle, {"expansion_terms": 10}, out)
            runs["fused equal weights"] = ctx.method(
                "fused equal weights", encoder, bundle, {"fusion_weights": {"dense": 1, "words": 1, "lexical": 1}}, out
            )
            runs["search (default + size)"] = ctx.method(
                "search (default + size)", encoder, bundle, {}, out, "heuristic_score"
            )
    out["speed"] = speed_comparison(ctx, args)
    for name, ranked in runs.items():
        out["methods"][name] = ctx.score(ranked) | out["methods"].get(name, {})
    out["candidate_recall@500"] = candidate_recall(runs, gold, node_ids)
    out |= verdict(out)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    return out


class BenchContext:
    """What every method of one run shares: the universe, the queries, the gold and the settings."""

    def __init__(self, args: argparse.Namespace, enterprises: pd.DataFrame, nodes: pd.DataFrame,
                 gold: dict[str, set[str]], user_words: list[str], query_texts: list[str]) -> None:  # fmt: skip
        from recommender.settings import load_settings

        self.args, self.enterprises, self.nodes, self.gold = args, enterprises, nodes, gold
        self.user_words, self.query_texts = user_words, query_texts
        self.node_ids = nodes["node_id"].tolist()
        self.settings = load_settings(workspace=args.workspace)
        from recommender.workspace import Workspace

        self.ws = Workspace(args.workspace)

    def config(self, **overrides: Any) -> Any:
        base = self.settings.retrieval.model_dump()
        base |= {"top_k_dense": self.args.top_k, "top_k_lexical": self.args.top_k, "top_k_words": self.args.top_k}
        from recommender.settings import RetrievalConfig

        return RetrievalConfig(**(base | overrides))

    def bundle(self, encoder: Any, out: dict[str, Any] | None = None, name: str = "") -> Any:
        from recommender.retrieval.index import build_profile_index

        config = self.config(
            embedder=name or "tfidf", batch_size=self.args.batch_size or self.settings.retrieval.batch_size
        )
        t = time.perf_counter()
        b = build_profile_index(
            self.enterprises, encoder, self.ws.index, self.ws.embedding_cache, config, self.args.progress,
            user_words=self.user_words,
        )  # fmt: skip
        elapsed = time.perf_counter() - t
        if out is not None and encoder is not None:
            stats = b.embed_stats
            out["encode"][name] = {
                "model_id": encoder.model_id,
                "revision": encoder.revision,
                "dim": int(encoder.dim),
                "index_s": round(elapsed, 1),
                "n_encoded": None if stats is None else stats.n_encoded,
                "n_cache_hits": None if stats is None else stats.n_hits,
            }
        return b

    def method(self, name: str, encoder: Any, bundle: Any, overrides: dict[str, Any], out: dict[str, Any],
               order: str = "similarity") -> dict[str, list[str]]:  # fmt: skip
        """Retrieve for every query through the product's own path; ranked ids per query."""
        from recommender.retrieval.candidates import retrieve_candidates, word_retriever

        config = self.config(**overrides)
        tables = {"enterprises": self.enterprises}
        t = time.perf_counter()
        cands = retrieve_candidates(
            self.nodes, None, tables, encoder, bundle.dense, bundle.lexical, config, node_ids=self.node_ids,
            words=word_retriever(bundle),
        )  # fmt: skip
        per_query_ms = (time.perf_counter() - t) * 1000 / max(len(self.node_ids), 1)
        out["methods"].setdefault(name, {})["query_ms"] = round(per_query_ms, 1)
        ranked = cands.sort_values(["node_id", order, "enterprise_id"], ascending=[True, False, True])
        return {str(k): g["enterprise_id"].tolist() for k, g in ranked.groupby("node_id", sort=False)}

    def score(self, ranked: dict[str, list[str]]) -> dict[str, Any]:
        per_query = {n: metrics(ranked.get(n, []), self.gold[n]) for n in self.node_ids}
        tune = {n: m for i, (n, m) in enumerate(per_query.items()) if i % 2 == 0}
        report = {n: m for i, (n, m) in enumerate(per_query.items()) if i % 2 == 1}
        return mean_metrics(per_query) | {
            "precision@10_tune_half": mean_metrics(tune)["precision@10"],
            "precision@10_report_half": mean_metrics(report)["precision@10"],
        }


def load_embedder_named(name: str, ctx: BenchContext) -> Any:
    from models.embedder import load_embedder

    return load_embedder(name, ctx.ws.model_cache)


def folder_bytes(bundle: Any, workspace: Path, parts: tuple[str, ...]) -> dict[str, int]:
    """On-disk bytes of the index parts (≈ their memory once loaded)."""
    root = workspace / "index" / bundle.model_key
    return {p: sum(f.stat().st_size for f in (root / p).rglob("*") if f.is_file()) for p in parts}


def speed_comparison(ctx: BenchContext, args: argparse.Namespace) -> dict[str, Any]:
    """Profiles/s of each dense model on the same fresh sample of companies (no cache), in this run.

    Rounds are interleaved (every model once per round) and the best round counts, so that a burst
    of load on the shared cores hits all models alike. Each model embeds the profile texts the
    pipeline would give it: ``e5-small`` fp32 the previous default's 160 characters (today's
    baseline), every other model the configured ``retrieval.profile_max_chars``. e5-small fp32 is
    timed twice: as today's pipeline ran it (batches of ``PREVIOUS_BATCH``, the previous default) and
    in batches of the configured ``retrieval.batch_size`` like the others, so the gain of the batch
    size alone is visible; ``default_vs_e5_fp32`` is against the first, ``..._same_batch`` the second.
    """
    from features.profiles import DEFAULT_MAX_CHARS, enterprise_texts

    sample = ctx.enterprises.sample(n=min(args.speed_sample, len(ctx.enterprises)), random_state=args.random_state)
    configured = ctx.settings.retrieval.profile_max_chars
    texts = {
        name: enterprise_texts(sample, max_chars=DEFAULT_MAX_CHARS if name == "e5-small" else configured).tolist()
        for name in dict.fromkeys(["e5-small", *args.dense])
    }
    encoders = {name: load_embedder_named(name, ctx) for name in texts}
    batch = batch_size(ctx, args)
    runs = {f"e5-small@{PREVIOUS_BATCH}": ("e5-small", PREVIOUS_BATCH)} | {n: (n, batch) for n in encoders}
    for name, encoder in encoders.items():
        encoder.encode(texts[name][:8], kind="passage", batch_size=8)  # load + warm up outside the timing
    best: dict[str, float] = {}
    for _ in range(args.speed_rounds):
        for label, (name, size) in runs.items():
            t = time.perf_counter()
            encoders[name].encode(texts[name], kind="passage", batch_size=size)
            best[label] = max(best.get(label, 0.0), len(texts[name]) / (time.perf_counter() - t))
    default = ctx.settings.retrieval.embedder
    found = default in best
    return {
        "n_profiles": len(sample),
        "rounds": args.speed_rounds,
        "profile_chars": {"e5-small": DEFAULT_MAX_CHARS, "others": configured},
        "batch_size": {f"e5-small@{PREVIOUS_BATCH}": PREVIOUS_BATCH, "others": batch},
        "profiles_per_s": {k: round(v, 1) for k, v in best.items()},
        "default_embedder": default,
        "default_vs_e5_fp32": round(best[default] / best[f"e5-small@{PREVIOUS_BATCH}"], 2) if found else None,
        "default_vs_e5_fp32_same_batch": round(best[default] / best["e5-small"], 2) if found else None,
    }


def batch_size(ctx: BenchContext, args: argparse.Namespace) -> int:
    """``--batch-size``, else the configured ``retrieval.batch_size``."""
    return int(args.batch_size or ctx.settings.retrieval.batch_size)


def candidate_recall(
    runs: dict[str, dict[str, list[str]]], gold: dict[str, set[str]], node_ids: list[str]
) -> dict[str, Any]:
    """Gold firms in each list's top 500; the fused default against the best single retriever."""
    held = {m: sum(len(set(r.get(n, [])[:500]) & gold[n]) for n in node_ids) for m, r in runs.items()}
    singles = [m for m in runs if m in ("tfidf", "bm25", *DENSE_NAMES)]
    best = max(singles, key=lambda m: held[m]) if singles else None
    out: dict[str, Any] = {"gold_in_top500": held, "best_single": best}
    if best is not None and "fused (default)" in held and held[best]:
        out["fused_vs_best_single"] = round(held["fused (default)"] / held[best], 4)
    return out


def verdict(out: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets against the tfidf row of this run, for the fused list and the search order."""
    m = out["methods"]
    if "fused (default)" not in m:
        return {}
    base = m["tfidf"]["precision@10"]
    rows = {"fused (default)": "fused", "search (default + size)": "search"}
    ratios = {short: round(m[row]["precision@10"] / base, 3) for row, short in rows.items() if row in m}
    speed = out.get("speed", {}).get("default_vs_e5_fp32")
    return {
        "precision@10_vs_tfidf": ratios,
        "binding_1.15x_met": {k: bool(v >= 1.15) for k, v in ratios.items()},
        "aim_precision@10_0.80_met": {
            short: bool(m[row]["precision@10"] >= 0.80) for row, short in rows.items() if row in m
        },
        "profiles_per_s_3x_met": None if speed is None else bool(speed >= 3.0),
    }


def similarity_rrf(frame: pd.DataFrame) -> pd.Series:
    from recommender.retrieval.candidates import similarity_component

    return similarity_component(frame)


def fuse(dense: dict[str, list[str]], lexical: dict[str, list[str]], similarity: Any) -> dict[str, list[str]]:
    """Union of both lists per query, ordered by reciprocal-rank fusion (ties by id): the previous default."""
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


def run_and_write(run: Any, args: argparse.Namespace) -> None:
    """``run(args)`` printed and written to ``args.out`` as JSON; ``{"skipped": ...}`` without the data."""
    if not DATA.is_file():
        print(json.dumps({"skipped": f"{DATA} not found"}, ensure_ascii=False))
        return
    text = json.dumps(run(args), ensure_ascii=False, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workspace", type=Path, default=REPO / "workspace" / "bench-retrieval-real")
    p.add_argument("--queries", type=Path, default=QUERIES, help="query file (default: the 30 frozen queries)")
    p.add_argument("--fraction", type=float, default=1.0, help="share of the trading companies to use")
    p.add_argument(
        "--dense",
        default="e5-small,e5-small-int8,e5-small-static",
        help="dense models, each one row (the configured default embedder also gives the fused rows)",
    )
    p.add_argument("--top-k", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=None, help="encoder batch (default retrieval.batch_size)")
    p.add_argument("--speed-sample", type=int, default=256, help="profiles encoded fresh per model for profiles/s")
    p.add_argument("--speed-rounds", type=int, default=3, help="interleaved timing rounds (the best counts)")
    p.add_argument("--random-state", type=int, default=42)
    p.add_argument("--progress", action="store_true")
    p.add_argument("--out", type=Path, default=None, help="default benchmarks/results/retrieval_real[_<queries>].json")
    args = p.parse_args()
    args.queries = args.queries.resolve()
    args.dense = [m.strip() for m in args.dense.split(",") if m.strip()]
    if args.out is None:
        suffix = "" if args.queries == QUERIES.resolve() else "_" + args.queries.stem.removeprefix("queries_real_")
        args.out = REPO / "benchmarks" / "results" / f"retrieval_real{suffix}.json"
    run_and_write(run, args)


if __name__ == "__main__":
    main()
