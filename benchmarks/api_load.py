"""Load benchmark of the analysts' service (prints one JSON object).

Builds a workspace from the bundled sample zone (``sansetu sample`` → ``sansetu ingest`` of each
file → ``sansetu refresh --as-of <sample as_of>``, lexical-only retrieval through
``SANSETU_RETRIEVAL__EMBEDDER=tfidf`` so it stays fast), starts ``sansetu serve`` on a free loopback
port, creates viewer and analyst tokens and runs ``--clients`` concurrent clients that read node
lists (``GET /api/nodes/<node>/targets`` with varied filters and pages) for ``--duration`` seconds
while a second refresh (the next as-of date) publishes. ``--analysts`` of the clients also record
feedback (``POST /api/feedback``) every ``--write-every`` requests.

Reported: requests, error responses (must be 0), latency percentiles, the run ids the clients saw
before and after the publish, and the feedback writes acknowledged vs found afterwards (through
``GET /api/feedback`` and through ``store.feedback_outcomes``, what training reads; must be equal).
The load phase lasts at least ``--duration`` seconds and until the second refresh has published,
bounded by ``--max-duration``. Only 127.0.0.1 is used.

    python benchmarks/api_load.py                     # defaults: 2,000 enterprises, 20 clients, 60 s
    python benchmarks/api_load.py --duration 20 --clients 8   # quick check
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
from features.schema import RAW_TABLES  # noqa: E402
from recommender.paths.wording import THEMES  # noqa: E402


def _env(ws: Path) -> dict[str, str]:
    return {**os.environ, "SANSETU_WORKSPACE": str(ws), "SANSETU_RETRIEVAL__EMBEDDER": "tfidf"}


def sansetu(args: list[str], ws: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run one CLI command in the workspace; raise with its output when it fails."""
    cmd = [sys.executable, "-m", "recommender.cli", *args]
    out = subprocess.run(cmd, env=_env(ws), capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {out.returncode}:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return out


def build_workspace(ws: Path, inputs: Path, n: int) -> tuple[date, dict[str, float]]:
    """Sample → ingest → first refresh; returns the sample's as-of date and step walls."""
    walls: dict[str, float] = {}
    t0 = time.perf_counter()
    sansetu(["sample", "-n", str(n), "-o", str(inputs)], ws, 300)
    walls["sample_s"] = round(time.perf_counter() - t0, 1)
    as_of = date.fromisoformat(json.loads((inputs / "sample_manifest.json").read_text(encoding="utf-8"))["as_of"])
    t0 = time.perf_counter()
    for table in RAW_TABLES:  # the sample writes these six (no fit_marks)
        (path,) = [p for p in inputs.glob(f"{table}.*") if p.suffix in (".csv", ".xlsx", ".parquet")]
        sansetu(["ingest", str(path), "-t", table, "-f", "json"], ws, 300)
    walls["ingest_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    sansetu(["refresh", "--as-of", as_of.isoformat()], ws, 900)
    walls["first_refresh_s"] = round(time.perf_counter() - t0, 1)
    return as_of, walls


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def start_server(ws: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "recommender.cli", "serve", "--host", HOST, "--port", str(port)]
    proc = subprocess.Popen(cmd, env=_env(ws), stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sansetu serve exited {proc.returncode}: {log.read_text(errors='replace')[-3000:]}")
        try:
            status, _ = request("GET", port, "/health", None, None)
            if status == 200:
                return proc
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError(f"sansetu serve did not answer /health within 120 s: {log.read_text(errors='replace')[-3000:]}")


def request(
    method: str,
    port: int,
    path: str,
    token: str | None,
    body: dict[str, Any] | None,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[int, Any]:
    """One request (on ``conn`` when given: keep-alive); returns status and the decoded JSON body."""
    own = conn is None
    c = conn or http.client.HTTPConnection(HOST, port, timeout=60)
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers["Content-Type"] = "application/json"
    try:
        c.request(method, path, body=data, headers=headers)
        resp = c.getresponse()
        raw = resp.read()
    finally:
        if own:
            c.close()
    try:
        return resp.status, json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return resp.status, raw[:200].decode("utf-8", errors="replace")


@dataclass
class ClientLog:
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    runs_seen: list[tuple[float, str]] = field(default_factory=list)  # (t, run_id) when it changes
    written: list[str] = field(default_factory=list)  # outcome ids acknowledged with 201
    write_latencies_ms: list[float] = field(default_factory=list)


def client_loop(
    k: int,
    port: int,
    token: str,
    nodes: list[str],
    enterprises: dict[str, list[str]],
    writer: bool,
    write_every: int,
    stop: threading.Event,
    t_start: float,
    log: ClientLog,
) -> None:
    rng = random.Random(k)
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    i = 0
    last_run = ""
    while not stop.is_set():
        i += 1
        node = rng.choice(nodes)
        params: dict[str, Any] = {"page": rng.choice((1, 1, 1, 2)), "page_size": 20}
        r = rng.random()
        if r < 0.15:
            params["theme"] = rng.choice(THEMES)
        elif r < 0.25:
            params["province"] = "湖北"
        elif r < 0.35:
            params["has_signals"] = "true"
        elif r < 0.4:
            params["size"] = "大型"
        path = f"/api/nodes/{quote(node)}/targets?{urlencode(params)}"
        t0 = time.perf_counter()
        try:
            status, body = request("GET", port, path, token, None, conn)
        except (OSError, http.client.HTTPException) as exc:
            log.errors.append(f"GET {path}: {type(exc).__name__}: {exc}")
            conn.close()
            conn = http.client.HTTPConnection(HOST, port, timeout=60)
            continue
        log.latencies_ms.append((time.perf_counter() - t0) * 1000)
        if status != 200:
            log.errors.append(f"GET {path}: {status} {str(body)[:200]}")
            continue
        if body["run_id"] != last_run:
            last_run = body["run_id"]
            log.runs_seen.append((time.perf_counter() - t_start, last_run))
        known = enterprises.setdefault(node, [])
        if len(known) < 50:
            known.extend(item["enterprise_id"] for item in body["items"])
        if writer and i % write_every == 0 and enterprises.get(node):
            fb = {
                "enterprise_id": rng.choice(enterprises[node]),
                "node_id": node,
                "stage": rng.choice(("接洽", "考察", "洽谈")),
                "note": f"压测反馈 client{k} #{i}",
            }
            t0 = time.perf_counter()
            try:
                status, body = request("POST", port, "/api/feedback", token, fb, conn)
            except (OSError, http.client.HTTPException) as exc:
                log.errors.append(f"POST /api/feedback: {type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=60)
                continue
            log.write_latencies_ms.append((time.perf_counter() - t0) * 1000)
            if status == 201:
                log.written.append(body["outcome_id"])
            else:
                log.errors.append(f"POST /api/feedback: {status} {str(body)[:200]}")
    conn.close()


def percentiles(values: list[float]) -> dict[str, float | None]:
    import numpy as np

    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    a = np.asarray(values)
    return {
        "p50": round(float(np.percentile(a, 50)), 1),
        "p95": round(float(np.percentile(a, 95)), 1),
        "p99": round(float(np.percentile(a, 99)), 1),
        "max": round(float(a.max()), 1),
        "mean": round(float(a.mean()), 1),
    }


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    ws, inputs = tmp / "ws", tmp / "inputs"
    as_of, walls = build_workspace(ws, inputs, args.n)
    viewer = sansetu(["tokens", "create", "--role", "viewer", "--name", "压测查看"], ws, 120).stdout.strip()
    analyst = sansetu(["tokens", "create", "--role", "analyst", "--name", "压测分析员"], ws, 120).stdout.strip()
    port = free_port()
    server = start_server(ws, port, tmp / "serve.log")
    try:
        status, body = request("GET", port, "/api/map", viewer, None)
        if status != 200:
            raise RuntimeError(f"GET /api/map answered {status}: {body}")
        nodes = sorted({r["node_id"] for r in body if r["colour"] in ("red", "blue")})
        first_run = request("GET", port, "/health", None, None)[1]["published_run"]
        # warm the server's caches once (tables, run) so the first clients do not all pay for it
        request("GET", port, f"/api/nodes/{quote(nodes[0])}/targets", viewer, None)

        stop = threading.Event()
        logs = [ClientLog() for _ in range(args.clients)]
        seen: dict[str, list[str]] = {}
        t_start = time.perf_counter()
        threads = [
            threading.Thread(
                target=client_loop,
                args=(
                    k,
                    port,
                    analyst if k < args.analysts else viewer,
                    nodes,
                    seen,
                    k < args.analysts,
                    args.write_every,
                    stop,
                    t_start,
                    logs[k],
                ),
                daemon=True,
            )  # fmt: skip
            for k in range(args.clients)
        ]
        for t in threads:
            t.start()
        time.sleep(args.refresh_after)
        second = as_of + timedelta(days=1)
        t_refresh = time.perf_counter()
        refresh = subprocess.Popen(
            [sys.executable, "-m", "recommender.cli", "refresh", "--as-of", second.isoformat()],
            env=_env(ws),
            stdout=(tmp / "refresh2.log").open("wb"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        refresh_rc: int | None = None
        refresh_wall = None
        while True:
            elapsed = time.perf_counter() - t_start
            if refresh_rc is None and refresh.poll() is not None:
                refresh_rc = refresh.returncode
                refresh_wall = round(time.perf_counter() - t_refresh, 1)
            if (elapsed >= args.duration and refresh_rc is not None) or elapsed >= args.max_duration:
                break
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(timeout=90)
        load_s = time.perf_counter() - t_start
        if refresh_rc is None:
            refresh.terminate()
            refresh.wait(timeout=60)

        written = [oid for lg in logs for oid in lg.written]
        status, listed = request("GET", port, "/api/feedback", viewer, None)
        found_api = {r["outcome_id"] for r in listed} if status == 200 else set()
        from recommender import store

        engine = store.make_engine(f"sqlite:///{(ws / 'service.db').resolve()}")
        found_training = set(store.feedback_outcomes(engine)["outcome_id"])
        last_run = request("GET", port, "/health", None, None)[1]["published_run"]
    finally:
        server.terminate()
        server.wait(timeout=30)

    lat = [x for lg in logs for x in lg.latencies_ms]
    errors = [e for lg in logs for e in lg.errors]
    transitions = sorted((t, run_id) for lg in logs for t, run_id in lg.runs_seen)
    runs_in_order = list(dict.fromkeys(r for _, r in transitions))
    switch_t = [t for t, r in transitions if r != first_run]
    return {
        "benchmark": "api_load",
        "config": {
            "enterprises": args.n,
            "clients": args.clients,
            "analyst_clients": args.analysts,
            "write_every": args.write_every,
            "min_duration_s": args.duration,
            "refresh_started_after_s": args.refresh_after,
            "embedder": "tfidf",
            "host": HOST,
        },
        "setup": walls,
        "load_seconds": round(load_s, 1),
        "requests": len(lat) + sum(len(lg.write_latencies_ms) for lg in logs),
        "reads": len(lat),
        "reads_per_s": round(len(lat) / load_s, 1),
        "errors": len(errors),
        "error_samples": errors[:5],
        "read_latency_ms": percentiles(lat),
        "write_latency_ms": percentiles([x for lg in logs for x in lg.write_latencies_ms]),
        "publish": {
            "run_before": first_run,
            "run_after": last_run,
            "runs_seen_by_clients": runs_in_order,
            "first_client_saw_new_run_at_s": round(min(switch_t), 1) if switch_t else None,
            "refresh_rc": refresh_rc,
            "refresh_wall_s": refresh_wall,
            "published_during_load": refresh_rc == 0 and last_run != first_run and len(runs_in_order) >= 2,
        },
        "feedback": {
            "writes_acknowledged": len(written),
            "found_via_api": len(found_api & set(written)),
            "found_in_training_outcomes": len(found_training & set(written)),
            "all_found": set(written) <= found_api and set(written) <= found_training,
        },
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000, help="enterprises in the sample universe (>= the sample's minimum)")
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--analysts", type=int, default=4, help="how many of the clients also write feedback")
    p.add_argument("--write-every", type=int, default=5, help="an analyst client writes after every N reads")
    p.add_argument("--duration", type=float, default=60.0, help="minimum load seconds")
    p.add_argument("--max-duration", type=float, default=420.0, help="hard bound on the load phase")
    p.add_argument("--refresh-after", type=float, default=5.0, help="start the second refresh after S seconds")
    p.add_argument("--keep", type=Path, default=None, help="keep the workspace and logs in this folder")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sansetu-api-load-"))
    try:
        out = run(args, tmp)
    finally:
        if args.keep is not None:
            shutil.copytree(tmp, args.keep, symlinks=True, dirs_exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
