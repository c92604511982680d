"""The fit gate on real listed companies: how many firms pass, and how many of the right ones.

The fit model (``configs/fit_model.yaml``) was fitted on the generated sample zone, whose firms name
their node's products verbatim. This measures what the gate does to real texts. It reads
``../shared/data/cn_listed_companies/companies_labeled.csv`` (prints ``{"skipped": ...}`` and exits 0
when it is absent) and goes through ``benchmarks/retrieval_real.py``'s product path: the trading
companies ingested with ``benchmarks/listed_companies_map.yaml``, the product's index (the configured
embedder + words + chars) and ``retrieve_candidates``; then ``recommender.retrieval.fit.fit_scores``
with the configured fit model, exactly as the refresh scores fit when the registry has no codes.

Gold: the queries' Shenwan level-3 classes and Eastmoney concept boards (``benchmarks/queries_real.yaml``,
30 queries, and ``benchmarks/queries_real_new.yaml``, 16 written later), never read by the product.
They are broad and noisy; what matters is the comparison with the similarity ordering on the same
candidates. Nothing here is fitted or tuned on the gold labels.

Per query file and per threshold (``ranking.fit_threshold`` first, then lower ones for reference):

``n_fit``                 mean number of candidates per query with fit ≥ threshold (the list's length cap)
``precision_fit@20``      gold share of the first ≤ 20 fitting candidates (similarity order, as lists cut)
``precision_sim@same_n``  gold share of the first n_fit candidates by similarity alone (same depth)
``recall_fit@50``         gold firms among the fitting candidates (first 50) / min(gold, 50)
``recall_sim@50``         gold firms among the first 50 by similarity / min(gold, 50)

``near_fit``: the 待核实 rows (``ranking.near_fit_per_node`` best below the threshold with fit ≥
``ranking.near_fit_min``, ``recommender.ranking.lists``): how many per query, their gold share, and
the recall of list + 待核实 together.
``refit_division_codes``: the same with ``ranking.fit_refit``'s model (``recommender.retrieval.fit.zone_fit_model``)
refitted on these candidates, the companies' CSRC divisions standing in for registry codes and
``CODES`` below (written from the divisions' names before measuring) as the nodes' codes: a
registry coded at division level, coarser than the GB/T 4754 classes the refit expects.
``examples``: per query file, the first three queries' gold firms that the gate cut (five, best by similarity).

Usage: python benchmarks/fit_real.py [--embedder e5-small-int8] [--out F]
Embeddings are cached in ``--workspace`` (default ``workspace/bench-retrieval-real``, shared with
``retrieval_real.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import retrieval_real as rr  # noqa: E402  (sets the offline environment first)

THRESHOLDS: Final = (0.3, 0.2, 0.1, 0.05)  # after ranking.fit_threshold, for reference only
QUERY_FILES: Final = ("queries_real.yaml", "queries_real_new.yaml")
CODES: Final[dict[str, list[str]]] = {  # CSRC divisions (C39 electronics, C27 pharma, I65 software, ...)
    "optical_module": ["C39"], "fiber_cable": ["C38", "C39"], "comm_equipment": ["C39"],
    "laser_equipment": ["C35", "C34"], "memory_chip": ["C39"], "oled_panel": ["C39"], "third_gen_semi": ["C39"],
    "beidou": ["C39", "I65"], "innovative_drug": ["C27"], "medical_imaging": ["C35"], "lidar": ["C39", "C36"],
    "ic_packaging": ["C39"], "semi_equipment": ["C35"], "semi_materials": ["C39", "C26", "C30"],
    "digital_ic": ["C39"], "analog_ic": ["C39"], "led": ["C39"], "pcb": ["C39"], "ivd": ["C27", "C35"],
    "vaccine": ["C27"], "medical_consumables": ["C35", "C27", "C29"], "industrial_robot": ["C34", "C35"],
    "lithium_battery": ["C38"], "pv_module": ["C38"], "satellite_internet": ["C39", "I65"],
    "auto_electronics": ["C39", "C36"], "passive_components": ["C39"], "optical_components": ["C39", "C40"],
    "cro": ["M73", "M74"], "cyber_security": ["I65"], "discrete_power": ["C39"],
    "electronic_chemicals": ["C26", "C39"], "photoresist": ["C26", "C35"], "auto_chip": ["C39"],
    "mmwave_radar": ["C39", "C36"], "sensors": ["C39", "C40"], "machine_vision": ["C39", "C40", "I65"],
    "security_equipment": ["C39"], "industrial_control": ["C40", "C39", "I65"], "general_software": ["I65"],
    "chemical_drug": ["C27"], "api": ["C27"], "gene_sequencing": ["C27", "M73", "C35"],
    "space_equipment": ["C37", "C39"], "battery_equipment": ["C35"], "battery_chemicals": ["C26"],
}  # fmt: skip


def per_query(cands: pd.DataFrame, fit: np.ndarray, gold: dict[str, set[str]], threshold: float,
              near: tuple[int, float] = (0, 0.0)) -> pd.DataFrame:  # fmt: skip
    """One row per query: the figures of the module docstring at ``threshold``; with ``near``
    (``ranking.near_fit_per_node``, ``ranking.near_fit_min``) also those of the 待核实 rows."""
    frame = cands.assign(fit=fit).sort_values(["node_id", "similarity", "enterprise_id"], ascending=[True, False, True])
    rows = []
    for node, g in frame.groupby("node_id", sort=False):
        rel = g["enterprise_id"].isin(gold[node]).to_numpy()
        f = g["fit"].to_numpy()
        ok = f >= threshold
        n_fit, denom = int(ok.sum()), max(min(len(gold[node]), 50), 1)
        row = {
            "node_id": node, "n_fit": n_fit,
            "precision_fit@20": float(rel[ok][:20].mean()) if n_fit else 0.0,
            "precision_sim@same_n": float(rel[: max(min(n_fit, 20), 1)].mean()),
            "recall_fit@50": float(rel[ok][:50].sum() / denom), "recall_sim@50": float(rel[:50].sum() / denom),
        }  # fmt: skip
        if near[0]:
            band = np.flatnonzero(~ok & (f >= near[1]))
            shown = band[np.argsort(-f[band], kind="stable")][: near[0]]  # best fit first, as lists.near_fit
            row |= {"n_near_shown": len(shown), "precision_near": float(rel[shown].mean()) if len(shown) else 0.0,
                    "recall_fit_or_near@50": min(1.0, float((rel[ok][:50].sum() + rel[shown].sum()) / denom))}  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> dict[str, float]:
    return {k: round(float(v), 3) for k, v in table.drop(columns="node_id").mean().items()}


def cut_examples(cands: pd.DataFrame, fit: np.ndarray, gold: dict[str, set[str]], names: pd.Series,
                 threshold: float, queries: list[str]) -> dict[str, list[str]]:  # fmt: skip
    """The queries' gold firms below the threshold (five, best by similarity), as ``name (fit)``."""
    frame = cands.assign(fit=fit).sort_values(["node_id", "similarity"], ascending=[True, False])
    out = {}
    for node in queries:
        g = frame[(frame["node_id"] == node) & (frame["fit"] < threshold) & frame["enterprise_id"].isin(gold[node])]
        out[node] = [f"{names.get(e, e)} ({f:.3f})" for e, f in zip(g["enterprise_id"][:5], g["fit"][:5], strict=True)]
    return out


def coded(enterprises: pd.DataFrame, companies: pd.DataFrame, nodes: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The universe with its CSRC division as ``industry_code`` and the nodes with ``CODES``."""
    division = dict(zip(companies["credit_code"], companies["csrc_code"], strict=True))
    ents = enterprises.assign(industry_code=enterprises["enterprise_id"].map(division))
    return ents, nodes.assign(industry_codes=nodes["node_id"].map(lambda n: CODES[n.split(".", 1)[1]]))


def measure(args: argparse.Namespace, ctx: Any, encoder: Any, bundle: Any, qfile: str, companies: pd.DataFrame,
            model: Any, threshold: float) -> dict[str, Any]:  # fmt: skip
    """Every figure of one query file."""
    from recommender.retrieval.candidates import retrieve_candidates, word_retriever
    from recommender.retrieval.fit import zone_fit, zone_fit_model

    nodes, gold_spec = rr.load_queries(REPO / "benchmarks" / qfile)
    gold = rr.gold_sets(companies, gold_spec)
    ids = nodes["node_id"].tolist()
    tables = {"enterprises": ctx.enterprises}
    cands = retrieve_candidates(nodes, None, tables, encoder, bundle.dense, bundle.lexical, ctx.config(),
                                node_ids=ids, words=word_retriever(bundle))  # fmt: skip
    fit, _, _ = zone_fit(cands, nodes, ctx.enterprises, model, False, 0)
    fit = fit.to_numpy()
    out: dict[str, Any] = {"n_queries": len(ids), "mean_gold": round(float(np.mean([len(gold[n]) for n in ids])), 1)}
    out["thresholds"] = {str(t): summary(per_query(cands, fit, gold, t)) for t in (threshold, *THRESHOLDS)}
    first = per_query(cands, fit, gold, threshold)
    out["queries_with_at_most_3_fitting"] = int((first["n_fit"] <= 3).sum())
    cfg = ctx.settings.ranking
    near = summary(per_query(cands, fit, gold, threshold, (cfg.near_fit_per_node, cfg.near_fit_min)))
    out["near_fit"] = {"per_node": cfg.near_fit_per_node, "min": cfg.near_fit_min,
                       **{k: near[k] for k in ("n_near_shown", "precision_near", "recall_fit_or_near@50")}}  # fmt: skip
    names = ctx.enterprises.drop_duplicates("enterprise_id").set_index("enterprise_id")["name"]
    out["examples"] = cut_examples(cands, fit, gold, names, threshold, ids[:3])  # the file's first three
    ents, coded_nodes = coded(ctx.enterprises, companies, nodes)
    refit_model, info = zone_fit_model(_features(cands, coded_nodes, ents), model, True, 200)
    refit = refit_model.predict(_features(cands, coded_nodes, ents))
    out["refit_division_codes"] = {"model": info["model"], "why": info["why"],
                                   **summary(per_query(cands, refit, gold, threshold))}  # fmt: skip
    return out


def _features(cands: pd.DataFrame, nodes: pd.DataFrame, enterprises: pd.DataFrame) -> pd.DataFrame:
    from recommender.retrieval.fit import fit_features

    return fit_features(cands, nodes, enterprises)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from features.words import chain_user_words
    from recommender.settings import load_fit_model, load_settings

    t0 = time.perf_counter()
    companies = rr.load_companies(1.0, 0)
    enterprises, ingest_info = rr.ingest(companies, args.workspace)
    all_nodes = pd.concat([rr.load_queries(REPO / "benchmarks" / q)[0] for q in QUERY_FILES], ignore_index=True)
    ctx = rr.BenchContext(args, enterprises, all_nodes, {}, chain_user_words(all_nodes), [])
    settings = load_settings(workspace=args.workspace)
    embedder = args.embedder or settings.retrieval.embedder
    encoder = None if embedder == "tfidf" else rr.load_embedder_named(embedder, ctx)
    bundle = ctx.bundle(encoder, None, "" if embedder == "tfidf" else embedder)
    threshold = settings.ranking.fit_threshold
    model = load_fit_model(settings)
    out: dict[str, Any] = {
        "data": str(rr.DATA.relative_to(REPO.parent)), "n_companies": len(enterprises), "ingest": ingest_info,
        "embedder": embedder, "fit_model": settings.ranking.fit_model, "fit_threshold": threshold,
        "gold": "Shenwan L3 / Eastmoney concept boards of each query (never read by the product)",
    }  # fmt: skip
    for qfile in QUERY_FILES:
        out[qfile] = measure(args, ctx, encoder, bundle, qfile, companies, model, threshold)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workspace", type=Path, default=REPO / "workspace" / "bench-retrieval-real")
    p.add_argument("--embedder", default=None, help="default: retrieval.embedder of the settings; or tfidf")
    p.add_argument("--top-k", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--progress", action="store_true")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "fit_real.json")
    args = p.parse_args()
    rr.run_and_write(run, args)


if __name__ == "__main__":
    main()
