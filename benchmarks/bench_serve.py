"""Load benchmark for `searchkit serve` on loopback: throughput and p50/p99 latency at several concurrency levels.

    python benchmarks/bench_serve.py --index indexes/homedepot [--requests 200] [--concurrency 1,4,16] [--log DIR]
        [--traffic distinct|head] [--answer-cache N]

Starts the server as a subprocess on 127.0.0.1 (a free port), drives it with a bounded thread-pool load generator
(each level sends exactly --requests requests, with a time cap), checks every response (HTTP 200, JSON, k ranked
results), prints a table and a JSON line, and stops the server. Traffic never leaves the loopback interface.
With `--traffic distinct` (the default) queries are distinct real shopper queries (the test split's, then the other
splits'), none repeated across levels, so nothing the server remembers answers them. With `--traffic head` each level
draws its requests from HEAD_POOL such queries with a Zipf popularity (common.popular_draws, as bench_clicks.py
simulates shoppers), so head queries repeat as they do in a shop's traffic and the server's
remembered answers (`serve`'s SEARCHKIT_ANSWER_CACHE, set by --answer-cache) answer some; the share they answered is
read from `/metrics` per level. Each level also sends as
many `GET /health` requests (the same client: what HTTP itself costs) and reports search throughput as a share of
it; after the levels it reads each server process's resident and proportional memory (Rss, Pss: shared pages split
between the workers) and scrapes `/metrics`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import POPULARITY_EXPONENT, command, machine, popular_draws, shopper_queries  # noqa: E402

HEAD_POOL = 5000  # distinct queries --traffic head draws from


def head_traffic(requests: int, levels: int, seed: int = 0) -> list[list[str]]:
    """Each level's queries, drawn with a Zipf popularity over HEAD_POOL distinct shopper queries (seeded)."""
    pool = shopper_queries(HEAD_POOL)
    rng = np.random.default_rng(seed)
    return [[pool[i] for i in popular_draws(len(pool), requests, rng)] for _ in range(levels)]


def counted(base: str, *series: str) -> list[float]:
    """Each `/metrics` series (a line's start: name and labels) summed over its lines (every worker's)."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as r:
        lines = r.read().decode().splitlines()
    return [sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(start)) for start in series]


ANSWERS = tuple(f'searchkit_search_answers_total{{source="{source}"}}' for source in ("searched", "remembered"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base: str, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise SystemExit("server did not become ready")


def one_health(base: str, _: str, k: int, mode: str) -> tuple[float, str | None]:
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=30) as r:
            ok = r.status == 200 and json.loads(r.read()).get("status") == "ok"
    except Exception as exc:
        return time.perf_counter() - started, f"{type(exc).__name__}: {exc}"
    return time.perf_counter() - started, None if ok else "bad /health answer"


def memory(pid: int) -> list[dict]:
    """Rss and Pss (MiB) of the server process and of every process it started (its uvicorn workers)."""
    procs = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                procs.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    out = []
    for p in procs:
        try:
            rows = dict(line.split(":", 1) for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines()[1:])
        except OSError:
            continue
        out.append({"pid": p, "rss_mb": round(int(rows["Rss"].split()[0]) / 1024, 1),
                    "pss_mb": round(int(rows["Pss"].split()[0]) / 1024, 1)})
    return out


def one_request(base: str, query: str, k: int, mode: str) -> tuple[float, str | None]:
    url = f"{base}/search?" + urllib.parse.urlencode({"q": query, "k": k, "mode": mode})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            body = json.loads(r.read())
            status = r.status
    except Exception as exc:  # a failed request is counted and reported, not raised
        return time.perf_counter() - started, f"{type(exc).__name__}: {exc}"
    elapsed = time.perf_counter() - started
    results = body.get("results", [])
    if status != 200 or len(results) != k or [x["rank"] for x in results] != list(range(1, k + 1)):
        return elapsed, f"bad response: status {status}, {len(results)} results"
    return elapsed, None


def run_level(base: str, concurrency: int, queries: list[str], k: int, mode: str, cap_s: float,
              call=one_request) -> dict:
    requests = len(queries)
    deadline = time.time() + cap_s
    started = time.perf_counter()

    def task(q):
        if time.time() > deadline:
            return None, "skipped: time cap reached"
        return call(base, q, k, mode)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        outcomes = list(pool.map(task, queries))
    wall = time.perf_counter() - started
    latencies = np.array([t for t, err in outcomes if err is None]) * 1000
    errors = [err for _, err in outcomes if err is not None]
    return {
        "concurrency": concurrency, "requests": requests, "ok": int(len(latencies)), "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "throughput_rps": round(len(latencies) / wall, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 2) if len(latencies) else None,
        "p99_ms": round(float(np.percentile(latencies, 99)), 2) if len(latencies) else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("indexes/homedepot"))
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--mode", default="hybrid")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cap-seconds", type=float, default=120.0, help="Time cap per concurrency level.")
    parser.add_argument("--log", type=Path, default=None, help="Serve with a search log in this folder (serve --log).")
    parser.add_argument("--traffic", choices=("distinct", "head"), default="distinct",
                        help="distinct queries, or head-heavy traffic (Zipf popularity) that repeats them")
    parser.add_argument("--answer-cache", type=int, default=None, metavar="N",
                        help="/search answers each worker remembers (SEARCHKIT_ANSWER_CACHE; default: serve's own)")
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, **({"SEARCHKIT_ANSWER_CACHE": str(args.answer_cache)} if args.answer_cache is not None
                            else {})}
    server = subprocess.Popen([sys.executable, "-m", "searchkit", "serve", "--index", str(args.index),
                               "--port", str(port), "--workers", str(args.workers),
                               *(["--log", str(args.log)] if args.log else [])], env=env)
    try:
        wait_ready(base)
        one_request(base, "warm up", args.k, args.mode)
        concurrency = [int(c) for c in args.concurrency.split(",")]
        pool = shopper_queries(args.requests * len(concurrency))  # distinct: nothing remembered answers them
        traffic = ([pool[i * args.requests:(i + 1) * args.requests] for i in range(len(concurrency))]
                   if args.traffic == "distinct" else head_traffic(args.requests, len(concurrency)))
        levels = []
        for i, c in enumerate(concurrency):
            before = counted(base, *ANSWERS)
            level = run_level(base, c, traffic[i], args.k, args.mode, args.cap_seconds)
            after = counted(base, *ANSWERS)
            answered = sum(after) - sum(before)
            level["remembered_share"] = round((after[1] - before[1]) / max(answered, 1), 3)
            health = run_level(base, c, pool[:args.requests], args.k, args.mode, args.cap_seconds, one_health)
            level["health_rps"] = health["throughput_rps"]
            level["search_share_of_health"] = round(level["throughput_rps"] / max(health["throughput_rps"], 1e-9), 3)
            levels.append(level)
        processes = memory(server.pid)
        (searches,) = counted(base, 'searchkit_requests_total{endpoint="/search"')
    finally:
        server.terminate()
        server.wait(timeout=30)
    report = {"benchmark": "serve", "index": str(args.index), "mode": args.mode, "k": args.k,
              "log": str(args.log) if args.log else None,
              "workers": args.workers,
              "traffic": args.traffic, "answer_cache": args.answer_cache,
              "queries": ("distinct shopper queries, the test split's first (see common.shopper_queries)"
                          if args.traffic == "distinct" else
                          f"{HEAD_POOL} distinct shopper queries drawn with weight 1/rank^{POPULARITY_EXPONENT}"),
              "machine": machine(), "command": command(), "levels": levels, "processes": processes,
              "metrics_search_requests_counted": searches}
    print(f"{'conc':>5} {'ok':>6} {'errors':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'/health req/s':>14} "
          f"{'share':>6} {'remembered':>10}")
    for lv in levels:
        print(f"{lv['concurrency']:>5} {lv['ok']:>6} {lv['errors']:>6} {lv['throughput_rps']:>8} "
              f"{lv['p50_ms']:>8} {lv['p99_ms']:>8} {lv['health_rps']:>14} {lv['search_share_of_health']:>6} "
              f"{lv['remembered_share']:>10}")
    for proc in processes:
        print(f"process {proc['pid']}: Rss {proc['rss_mb']} MiB, Pss {proc['pss_mb']} MiB")
    print(f"/metrics counted {searches:.0f} /search requests (every worker's)")
    print(json.dumps(report))
    if any(lv["errors"] for lv in levels):
        sys.exit(1)


if __name__ == "__main__":
    main()
