"""Load numbers for the web service: the real waitress server on a free loopback port, the bundled model,
1, 4 and 16 concurrent clients. Not a test; run it and read the table.

    python benchmarks/bench_server.py                 # 48 requests per level, 32 new tokens each
    python benchmarks/bench_server.py --requests 96 --new-tokens 64 --torch-threads 2

Every request does the same work (greedy, min_new_tokens = max_new_tokens), so requests/s compares
across levels. Model calls are serialized by the server's lock, so more clients raise latency, not
throughput; "first piece" is the streamed endpoint's time to the first text piece.
"""
import argparse
import logging
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kogen.models import load_model  # noqa: E402
from kogen.web import create_app, start_server, stop_server  # noqa: E402

PROMPT = "오늘 본 영화는 정말"


def one_request(url, body, stream):
    """(seconds to the full answer, seconds to the first streamed piece or None)."""
    start = time.perf_counter()
    if not stream:
        r = requests.post(url, json=body, timeout=120)
        r.raise_for_status()
        return time.perf_counter() - start, None
    first = None
    with requests.post(url, json=dict(body, stream=True), timeout=120, stream=True) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if first is None and line.startswith(b"data: "):
                first = time.perf_counter() - start
    return time.perf_counter() - start, first


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def run_level(url, body, clients, n_requests, stream):
    with ThreadPoolExecutor(clients) as pool:
        start = time.perf_counter()
        results = list(pool.map(lambda _: one_request(url, body, stream), range(n_requests)))
        wall = time.perf_counter() - start
    latency = [r[0] for r in results]
    firsts = [r[1] for r in results if r[1] is not None]
    return dict(rps=n_requests / wall, p50=percentile(latency, 0.5), p95=percentile(latency, 0.95),
                first=statistics.median(firsts) if firsts else None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=48, help="requests per concurrency level")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--levels", default="1,4,16")
    ap.add_argument("--torch-threads", type=int, default=1,
                    help="1 by default: on a small shared CPU more threads only spin against each other")
    a = ap.parse_args()
    torch.set_num_threads(a.torch_threads)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # queued requests are the point here
    model, tokenizer, _ = load_model("bundled", "cpu")
    server = start_server(create_app(model, tokenizer, "bundled", "cpu"), threads=16)
    url = f"http://127.0.0.1:{server.effective_port}/api/generate"
    body = dict(prompt=PROMPT, max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens)
    for _ in range(3):  # warm-up: first calls allocate caches
        one_request(url, body, False)
    print(f"bundled model, CPU, torch threads {a.torch_threads}, waitress threads 16, {a.requests} requests "
          f"per level, {a.new_tokens} new tokens each (greedy)")
    print(f"{'clients':>7} {'mode':>6} {'req/s':>7} {'tok/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'first piece ms':>14}")
    try:
        for clients in map(int, a.levels.split(",")):
            for stream in (False, True):
                r = run_level(url, body, clients, a.requests, stream)
                first = f"{r['first'] * 1000:14.0f}" if r["first"] is not None else f"{'-':>14}"
                print(f"{clients:>7} {'sse' if stream else 'json':>6} {r['rps']:7.1f} {r['rps'] * a.new_tokens:7.0f} "
                      f"{r['p50'] * 1000:7.0f} {r['p95'] * 1000:7.0f} {first}", flush=True)
    finally:
        stop_server(server)


if __name__ == "__main__":
    main()
