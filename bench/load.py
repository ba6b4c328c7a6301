"""Load benchmark: the service against a naive baseline, end to end over HTTP. Run on an idle machine.

    .venv/bin/python bench/load.py [--model models/triage-default-student] [--seconds 10]

In one run:
1. the bare model's own throughput at batch 32, for the served backend and ONNX int8 (the reference for the
   85% target), and, when the served int8 copy keeps matmuls in fp32 for parity, the fully quantised copy too;
   each in a fresh process before any server starts;
2. the service (`triage-serve`) and the naive baseline (bench/naive_app.py), each on a local port, driven by the
   same async client (aiohttp) at concurrency 1, 16 and 64, with 1-post and 32-post requests, every text unique;
3. the service again with realistic repetition (40% of posts repeat earlier texts: retweets, copy-paste campaigns).
Prints posts/s and p50/p95/p99 request latency, the ratios, and writes bench/results/load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.speed import exported_copy, throughput  # noqa: E402
from model.artifact import load_manifest  # noqa: E402
from model.predictor import load_predictor  # noqa: E402
from training.quantize import kept_fp32  # noqa: E402

CONCURRENCY = (1, 16, 64)
SIZES = (1, 32)


def base_texts() -> list[str]:
    rows = (ROOT / "data" / "brand_posts" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(row)["text"] for row in rows]


_NEVER_SENT = itertools.count()  # shared by every scenario: a "unique" text is never sent twice in one run


class Texts:
    """An endless supply of texts: unique (a counter makes each distinct) or with a share of repeats."""

    def __init__(self, repeat_share: float = 0.0, seed: int = 0):
        self.base = base_texts()
        self.counter = _NEVER_SENT
        self.repeat_share = repeat_share
        self.random = random.Random(seed)
        self.seen: list[str] = []

    def next(self) -> str:
        if self.seen and self.random.random() < self.repeat_share:
            return self.random.choice(self.seen[-2000:])
        n = next(self.counter)
        text = f"{self.base[n % len(self.base)]} #{n}"
        self.seen.append(text)
        return text


async def drive(url: str, concurrency: int, size: int, seconds: float, texts: Texts, path: str = "/v1/classify",
                id_prefix: str = "") -> dict:
    """`concurrency` clients, each sending its next request when the last one is answered, for `seconds`.

    Each client first sends one untimed request, and the clock starts once all have been answered: opening 64
    connections at once on a busy server is start-up, not steady state, and would otherwise fill the p99.
    The client is aiohttp: on these 2 cores the load generator shares the CPU with the server, and httpx spent about
    10 ms of CPU per request at concurrency 64 (82% of a core), which then capped and skewed what was measured.
    `client_cpu` is the share of one core this process used during the timed window.
    """
    latencies: list[float] = []
    posts = errors = warmed = 0
    ids = itertools.count()
    all_warm = asyncio.Event()
    window: dict[str, float] = {}

    def body() -> bytes:
        posts = [{"id": f"{id_prefix}{next(ids)}", "text": texts.next()} for _ in range(size)]
        return json.dumps({"posts": posts}).encode()

    # Idle connections are dropped after 2 s, before uvicorn's 5 s keep-alive closes them from its side: aiohttp
    # does not retry a POST on a connection the server has just closed.
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=2)
    timeout = aiohttp.ClientTimeout(total=120)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(base_url=url, connector=connector, timeout=timeout, headers=headers) as client:

        async def post() -> bool:
            try:
                async with client.post(path, data=body()) as response:
                    await response.read()
                    return response.status < 400
            except aiohttp.ClientError:
                return False

        async def worker() -> None:
            nonlocal posts, errors, warmed
            await post()
            warmed += 1
            if warmed == concurrency:
                window["start"], window["cpu"] = time.perf_counter(), time.process_time()
                window["deadline"] = window["start"] + seconds
                all_warm.set()
            await all_warm.wait()
            while time.perf_counter() < window["deadline"]:
                started = time.perf_counter()
                if await post():
                    latencies.append(time.perf_counter() - started)
                    posts += size
                else:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - window["start"]
        client_cpu = (time.process_time() - window["cpu"]) / elapsed
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [latencies[0]] * 99
    return {"posts_per_s": posts / elapsed, "requests": len(latencies), "errors": errors,
            "p50_ms": 1000 * statistics.median(latencies), "p95_ms": 1000 * cuts[94], "p99_ms": 1000 * cuts[98],
            "client_cpu": client_cpu}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(command: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    sink = log.open("w")
    process = subprocess.Popen([*command, "--port", str(port)], cwd=ROOT, env={**os.environ, **env},
                               stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.post(f"{url}/v1/classify", json={"posts": [{"id": "w", "text": "warm up"}]}, timeout=5)
            return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit(f"{command[0]} did not start; see {log}")


FULL_INT8 = "onnx-int8, every matmul quantised"


def bare_throughput(model: Path, variant: str, seconds: float) -> float:
    """The model alone at batch 32 on unique texts, in its own best configuration (library defaults).

    `variant` is a backend, or FULL_INT8: the export's first int8 copy, before any matmul is kept fp32 for parity
    (also what "onnx-int8" measures when the export refused int8 altogether)."""
    source = Texts()
    texts = [source.next() for _ in range(512)]
    version_dir, manifest = load_manifest(model)
    exported = (getattr(manifest, "onnx", None) or {}).get("files", {})
    if variant == FULL_INT8 or (variant == "onnx-int8" and "int8" not in exported):
        with tempfile.TemporaryDirectory() as scratch:
            copy, _ = exported_copy(version_dir, Path(scratch))  # no parity bar, so nothing is kept fp32
            return throughput(load_predictor(copy, backend="onnx-int8"), texts, 32, seconds)
    return throughput(load_predictor(model, backend=variant), texts, 32, seconds)


def served_int8_kept_fp32(model: Path) -> list[str]:
    return kept_fp32(getattr(load_manifest(model)[1], "onnx", None) or {})


def measure_bare(model: Path, variants: list[str], seconds: float, when: str) -> dict[str, float]:
    """Each variant's bare throughput, each in a fresh process (nothing else loaded). Measured before and after the
    servers: this machine's speed drifts over a run, and the ratios use the mean of the two."""
    spawn = multiprocessing.get_context("spawn")
    bare = {}
    for variant in variants:
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            bare[variant] = pool.submit(bare_throughput, model, variant, seconds).result()
    print(f"bare model, batch 32, {when}: " + ", ".join(f"{name} {value:.1f} posts/s" for name, value in bare.items()))
    return bare


def run_all(url: str, seconds: float, repeat_share: float = 0.0, grid=None) -> dict:
    results = {}
    for concurrency, size in grid or itertools.product(CONCURRENCY, SIZES):
        figures = asyncio.run(drive(url, concurrency, size, seconds, Texts(repeat_share)))
        results[f"c{concurrency}_x{size}"] = figures
        print(f"  concurrency {concurrency:>2}, {size:>2} posts/request: {figures['posts_per_s']:7.1f} posts/s  "
              f"p50 {figures['p50_ms']:7.1f}  p95 {figures['p95_ms']:7.1f}  p99 {figures['p99_ms']:7.1f} ms"
              f"  ({figures['requests']} requests, {figures['errors']} errors, "
              f"client {figures['client_cpu']:.0%} of a core)", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "triage-default-student")
    parser.add_argument("--seconds", type=float, default=10.0, help="per scenario")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "load.json")
    args = parser.parse_args()
    results: dict = {"model": str(args.model), "when": datetime.now(UTC).isoformat(timespec="seconds"),
                     "cores": os.cpu_count(), "seconds_per_scenario": args.seconds}

    served = load_predictor(args.model).backend
    kept = served_int8_kept_fp32(args.model)
    variants = list(dict.fromkeys((served, "onnx-int8", FULL_INT8) if kept else (served, "onnx-int8")))
    results["served_int8_matmuls_kept_fp32"] = len(kept)
    before = measure_bare(args.model, variants, args.seconds, "before the servers")

    logs = Path(tempfile.mkdtemp(prefix="triage-load-"))
    service, url = start([sys.executable, "-m", "service.cli", "--model", str(args.model)], {}, logs / "service.log")
    try:
        print(f"service ({url}):")
        results["service"] = run_all(url, args.seconds)
        print("service with 40% repeated texts:")
        results["service_repeats"] = run_all(url, args.seconds, repeat_share=0.4, grid=[(16, 1), (16, 32)])
    finally:
        service.terminate()
        service.wait(30)
    naive, url = start([sys.executable, "-m", "uvicorn", "bench.naive_app:app", "--log-level", "warning"],
                       {"NAIVE_MODEL": str(args.model)}, logs / "naive.log")
    try:
        print(f"naive baseline ({url}):")
        results["naive"] = run_all(url, args.seconds)
    finally:
        naive.terminate()
        naive.wait(30)

    after = measure_bare(args.model, variants, args.seconds, "after the servers")
    bare = {variant: (before[variant] + after[variant]) / 2 for variant in variants}
    results["bare_batch_32"] = {"mean": bare, "before": before, "after": after}
    ratios = {key: results["service"][key]["posts_per_s"] / results["naive"][key]["posts_per_s"]
              for key in results["service"]}
    best = max(figures["posts_per_s"] for figures in results["service"].values())
    results["summary"] = {
        "service_vs_naive": ratios,
        "best_service_posts_per_s": best,
        "best_vs_bare_served_backend": best / next(iter(bare.values())),
        "best_vs_bare_onnx_int8": best / bare["onnx-int8"],
        **({"best_vs_bare_full_int8": best / bare[FULL_INT8]} if FULL_INT8 in bare else {}),
        "p99_over_p50": {key: f["p99_ms"] / f["p50_ms"] for key, f in results["service"].items()},
    }
    print("service / naive posts/s: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    print(f"best service throughput {best:.1f} posts/s = {results['summary']['best_vs_bare_served_backend']:.0%} of "
          f"the bare served backend, {results['summary']['best_vs_bare_onnx_int8']:.0%} of bare ONNX int8"
          + (f", {results['summary']['best_vs_bare_full_int8']:.0%} of {FULL_INT8}" if FULL_INT8 in bare else ""))
    print("p99 / p50: " + ", ".join(f"{k} {v:.1f}" for k, v in results["summary"]["p99_over_p50"].items()))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print(f"results written to {args.output}; server logs in {logs}")


if __name__ == "__main__":
    main()
