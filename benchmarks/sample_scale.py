"""Benchmark: generate, write and ingest a sample zone of N enterprises (default 1,000,000).

Prints one JSON object: wall time, CPU time (the machine's cores are shared, so wall time includes
waiting for other jobs) and peak resident memory of (1) generating the sample in memory
and writing its files and (2) ingesting the six raw files through ``features.io.ingest_file`` into a
fresh workspace. Each phase runs in its own child process so that its peak RSS
(``resource.getrusage(...).ru_maxrss``) is its own.

    python benchmarks/sample_scale.py [--n 1000000] [--seed 42] [--out DIR] [--skip-ingest]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process: the cost without other jobs' contention."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return round(r.ru_utime + r.ru_stime, 1)


def phase_generate(n: int, seed: int, out: Path) -> dict[str, object]:
    from recommender.sample.generate import generate_sample
    from recommender.sample.write import write_sample
    from recommender.settings import load_chains, load_settings

    chains = load_chains(load_settings())
    t0 = time.perf_counter()
    data = generate_sample(chains, n, seed)
    t1 = time.perf_counter()
    paths = write_sample(data, out)
    t2 = time.perf_counter()
    return {
        "chains": len(chains),
        "nodes": sum(len(c.nodes) for c in chains),
        "generate_s": round(t1 - t0, 1),
        "write_s": round(t2 - t1, 1),
        "wall_s": round(t2 - t0, 1),
        "cpu_s": _cpu_s(),
        "peak_rss_mb": _peak_rss_mb(),
        "rows": {k: int(v) for k, v in data.manifest["counts"].items()},
        "file_mb": {name: round(p.stat().st_size / 2**20, 1) for name, p in paths.items()},
    }


def phase_ingest(out: Path, workspace: Path) -> dict[str, object]:
    from features.io import ingest_file
    from recommender.sample.write import INGEST_ORDER
    from recommender.settings import load_settings
    from recommender.workspace import Workspace

    settings = load_settings()
    ws = Workspace(workspace).ensure()
    maps_dir = settings.resolve(settings.ingest.column_maps_dir)
    tables: dict[str, object] = {}
    t0 = time.perf_counter()
    for table, name in INGEST_ORDER:
        t = time.perf_counter()
        report = ingest_file(out / name, table, None, ws.snapshots, ws.rejects, maps_dir=maps_dir)
        tables[table] = {
            "wall_s": round(time.perf_counter() - t, 1),
            "n_read": report.n_read,
            "n_ok": report.n_ok,
            "n_rejected": report.n_rejected,
            "n_duplicates": report.n_duplicates,
            "n_cleared": report.n_cleared,
        }
    return {
        "wall_s": round(time.perf_counter() - t0, 1),
        "cpu_s": _cpu_s(),
        "peak_rss_mb": _peak_rss_mb(),
        "tables": tables,
    }


def _child(args: list[str]) -> dict[str, object]:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="enterprises in the universe")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=None, help="keep the files here (default: a temporary folder)")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--phase", choices=("generate", "ingest"), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workspace", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase == "generate":
        print(json.dumps(phase_generate(args.n, args.seed, args.out)))
        return
    if args.phase == "ingest":
        print(json.dumps(phase_ingest(args.out, args.workspace)))
        return
    with tempfile.TemporaryDirectory(prefix="sansetu-sample-") as tmp:
        out = args.out or Path(tmp) / "sample"
        result: dict[str, object] = {
            "benchmark": "sample_scale",
            "n_enterprises": args.n,
            "seed": args.seed,
            "cpus": os.cpu_count(),
            "generate_and_write": _child(
                ["--phase", "generate", "--n", str(args.n), "--seed", str(args.seed), "--out", str(out)]
            ),
        }
        if args.skip_ingest:
            result["ingest"] = "skipped (--skip-ingest)"
        else:
            result["ingest"] = _child(["--phase", "ingest", "--out", str(out), "--workspace", str(Path(tmp) / "ws")])
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
