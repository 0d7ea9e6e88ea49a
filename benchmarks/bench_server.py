"""Load numbers for `kogen serve`: the real waitress server on a free loopback port, 1 / 4 / 16 / 30 concurrent
clients, JSON and SSE, three engines side by side in one run: serialized HF (hf.Generator, one request at a
time, the service before issue 10), batched HF (batcher.Batcher, the default) and CTranslate2 int8.
Not a test; run it and read the table (also written to benchmarks/results/bench_server.{json,md}).

    python benchmarks/bench_server.py                          # bundled model + KoGPT2-shaped random model
    python benchmarks/bench_server.py --models bundled --levels 1,4,16,30 --new-tokens 32

The clients run in a process of their own (like students' browsers, they do not share the server's Python lock or
its core), the server in this one. Every request does the same work (greedy, min_new_tokens = max_new_tokens), so tok/s compares across rows.
"first" is the streamed endpoint's median time to the first text piece; "healthz" is GET /healthz's worst answer
time while that level ran (polled every 100 ms from another client: it must never wait behind generation). The KoGPT2-shaped model has random
weights (12 layers × 768, vocabulary 51,200): its speed is KoGPT2's, its text is noise (ids past the bundled
tokenizer's 8,000 are placeholder tokens).
"""
import argparse
import contextlib
import json
import logging
import multiprocessing
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import requests
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kogen.models import load_model  # noqa: E402
from kogen.web import Generator, create_app, start_server, stop_server  # noqa: E402

PROMPT = "오늘 본 영화는 정말"
RESULTS = Path(__file__).resolve().parent / "results"


def kogpt2_shaped(tokenizer):
    """A random GPT-2 with KoGPT2's shape (skt/kogpt2-base-v2: 12 layers, 12 heads, 768 wide, 51,200 tokens) and the
    bundled tokenizer padded with placeholder tokens to 51,200 (CTranslate2's converter wants one per row)."""
    import copy

    from transformers import GPT2Config, GPT2LMHeadModel
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.add_tokens([f"<extra_{i}>" for i in range(len(tokenizer), 51200)])
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=51200, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                     bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id)
    return GPT2LMHeadModel(cfg).eval(), tokenizer


def make_engine(kind, model, tokenizer):
    if kind == "serialized":
        return Generator(model, tokenizer)
    if kind == "batched":
        return None  # create_app's default
    from kogen.serving.ct2 import Ct2Engine
    return Ct2Engine(model, tokenizer, compute_type="int8")


def one_request(url, body, stream):
    """(seconds to the full answer, seconds to the first streamed piece or None)."""
    start = time.perf_counter()
    if not stream:
        r = requests.post(url, json=body, timeout=600)
        r.raise_for_status()
        return time.perf_counter() - start, None
    first = None
    with requests.post(url, json=dict(body, stream=True), timeout=600, stream=True) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if first is None and line.startswith(b"data: "):
                first = time.perf_counter() - start
    return time.perf_counter() - start, first


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def poll_health(url, stop, times):
    """GET /healthz every 100 ms until `stop` is set, appending each answer's seconds to `times`."""
    while not stop.wait(0.1):
        start = time.perf_counter()
        requests.get(url, timeout=60).raise_for_status()
        times.append(time.perf_counter() - start)


def run_level(url, body, clients, rounds, stream):
    n = max(clients * rounds, 8)  # at least 8 requests: one client's figure is the ratios' denominator
    stop, health = threading.Event(), []
    poller = threading.Thread(target=poll_health, args=(url.replace("/api/generate", "/healthz"), stop, health))
    with ThreadPoolExecutor(clients) as pool:
        start = time.perf_counter()
        poller.start()
        results = list(pool.map(lambda _: one_request(url, body, stream), range(n)))
        wall = time.perf_counter() - start
    stop.set()
    poller.join()
    latency, firsts = [r[0] for r in results], [r[1] for r in results if r[1] is not None]
    return dict(requests=n, tok_s=round(n * body["max_new_tokens"] / wall, 1), p50_ms=round(percentile(latency, .5) * 1000),
                p95_ms=round(percentile(latency, .95) * 1000),
                first_ms=round(statistics.median(firsts) * 1000) if firsts else None,
                healthz_max_ms=round(max(health) * 1000, 1) if health else None)


@contextlib.contextmanager
def served(kind, model, tokenizer, model_name):
    """The /api/generate URL of a real server for this engine kind, warmed up, stopped after."""
    app = create_app(model, tokenizer, model_name, "cpu", engine=make_engine(kind, model, tokenizer))
    server = start_server(app)
    url = f"http://127.0.0.1:{server.effective_port}/api/generate"
    try:
        for _ in range(2):  # warm-up: first calls allocate caches
            one_request(url, dict(prompt=PROMPT, max_new_tokens=8), False)
        yield url
    finally:
        stop_server(server)


def bench(model_name, model, tokenizer, engines, levels, rounds, new_tokens, clients_process):
    rows = []
    body = dict(prompt=PROMPT, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    for kind in engines:
        with served(kind, model, tokenizer, model_name) as url:
            for clients in levels:
                for stream in (False, True):
                    r = dict(model=model_name, engine=kind, clients=clients, mode="sse" if stream else "json",
                             **clients_process.submit(run_level, url, body, clients, rounds, stream).result())
                    rows.append(r)
                    print(json.dumps(r, ensure_ascii=False), flush=True)
    return rows


def paired(clients_process, first, second, body, rounds, pairs):
    """tok/s of `second` ÷ tok/s of `first`, each a (url, clients), measured alternately `pairs` times: this VM's
    speed drifts by ±25% between identical runs, and a drift slower than one pair cancels in its ratio."""
    ratios = []
    for _ in range(pairs):
        a, b = (clients_process.submit(run_level, url, body, clients, rounds, False).result()["tok_s"]
                for url, clients in (first, second))
        ratios.append(round(b / a, 2))
        print(json.dumps(dict(pair=[a, b], ratio=ratios[-1])), flush=True)
    return ratios


def paired_goals(model, tokenizer, a, clients_process):
    """The two goals that compare one configuration with another, as medians of alternating pairs."""
    out = {}
    body = dict(prompt=PROMPT, max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens)
    with served("batched", model, tokenizer, "bundled") as url:
        out["bundled batched 16 clients / 1 client"] = paired(clients_process, (url, 1), (url, 16), body, a.rounds,
                                                              a.pairs)
    if _has_ct2():
        lm, tok = kogpt2_shaped(tokenizer)
        body = dict(prompt=PROMPT, max_new_tokens=a.kogpt2_new_tokens, min_new_tokens=a.kogpt2_new_tokens)
        with served("serialized", lm, tok, "kogpt2-shape") as hf, served("ct2", lm, tok, "kogpt2-shape") as ct2:
            out["kogpt2-shape ct2 int8 / HF, 1 client"] = paired(clients_process, (hf, 1), (ct2, 1), body,
                                                                 a.kogpt2_rounds, a.pairs)
    return out


def table(rows):
    """Markdown: tok/s and its ratio to the same model's serialized single client, latency, first piece."""
    base = {r["model"]: r["tok_s"] for r in rows if r["engine"] == "serialized" and r["clients"] == 1
            and r["mode"] == "json"}
    lines = ["| model | engine | clients | mode | tok/s | × serialized 1 client | p50 ms | p95 ms | first piece ms "
             "| /healthz max ms |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['tok_s'] / base[r['model']]:.1f}×" if r["model"] in base else "-"
        lines.append(f"| {r['model']} | {r['engine']} | {r['clients']} | {r['mode']} | {r['tok_s']:,.0f} | {ratio} | "
                     f"{r['p50_ms']:,} | {r['p95_ms']:,} | {r['first_ms'] if r['first_ms'] is not None else '-'} | "
                     f"{r['healthz_max_ms'] if r['healthz_max_ms'] is not None else '-'} |")
    return "\n".join(lines)


def forward_scaling(model, batch, steps=32, prompt=8):
    """tok/s of the bare model's decode steps for `batch` rows (no server, no sampling): the ceiling that batching
    requests can reach — 16 rows ÷ 1 row is the most a 16-client run can gain over one client on this CPU."""
    from transformers.cache_utils import DynamicCache
    with torch.inference_mode():
        ids = torch.randint(5, model.config.vocab_size, (batch, prompt))
        cache = model(input_ids=ids, cache=DynamicCache(), use_cache=True).cache
        start = time.perf_counter()
        for _ in range(steps):
            cache = model(input_ids=ids[:, -1:], cache=cache, use_cache=True).cache
        return round(batch * steps / (time.perf_counter() - start), 1)


def find(rows, model, engine, clients, mode="json"):
    """The row for this model, engine, client count and mode, or None (not run)."""
    return next((r for r in rows if (r["model"], r["engine"], r["clients"], r["mode"]) == (model, engine, clients, mode)),
                None)


def goals(rows, pairs=None):
    """Markdown: issue 10's goals, each as measured in this run: ratios between rows of the table, or for the two
    that compare configurations, the median of the alternating pairs when there are some (`paired_goals`)."""
    pairs = pairs or {}

    def ratio(a, b, paired_name=None):
        if pairs.get(paired_name):
            return statistics.median(pairs[paired_name])
        return a["tok_s"] / b["tok_s"] if a and b else None
    checks = [
        ("bundled, batched: 16 clients' tok/s ÷ 1 client's", ratio(find(rows, "bundled", "batched", 16),
                                                              find(rows, "bundled", "batched", 1),
                                                              "bundled batched 16 clients / 1 client"), 6, "×", ">="),
        ("KoGPT2 shape: ct2 int8 16 clients ÷ serialized HF 1 client", ratio(find(rows, "kogpt2-shape", "ct2", 16),
                                                                       find(rows, "kogpt2-shape", "serialized", 1)), 8, "×", ">="),
        ("KoGPT2 shape: ct2 int8 1 client ÷ HF 1 client", ratio(find(rows, "kogpt2-shape", "ct2", 1),
                                                        find(rows, "kogpt2-shape", "serialized", 1),
                                                        "kogpt2-shape ct2 int8 / HF, 1 client"), 2.5, "×", ">="),
        ("bundled, batched, 30 streams: first piece p50", (find(rows, "bundled", "batched", 30, "sse") or {}).get("first_ms"),
         1000, " ms", "<="),
        ("bundled, batched, 30 streams: slowest /healthz", (find(rows, "bundled", "batched", 30, "sse") or {}).get("healthz_max_ms"),
         100, " ms", "<"),
    ]
    lines = ["| goal | measured | target | met |", "|---|---|---|---|"]
    for name, value, target, unit, op in checks:
        if value is None:
            lines.append(f"| {name} | not run | {op} {target}{unit} | - |")
            continue
        met = {">=": value >= target, "<=": value <= target, "<": value < target}[op]
        shown = f"{value:.1f}{unit}" if unit == "×" else f"{value:,.0f}{unit}"
        lines.append(f"| {name} | {shown} | {op} {target}{unit} | {'yes' if met else 'NO'} |")
    for name, ratios in pairs.items():
        lines.append(f"\n{name}: median of {len(ratios)} alternating pairs, each pair's ratio: "
                     f"{', '.join(f'{r:.2f}' for r in ratios)}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="bundled,kogpt2-shape")
    ap.add_argument("--engines", default="serialized,batched,ct2")
    ap.add_argument("--levels", default="1,4,16,30")
    ap.add_argument("--rounds", type=int, default=4, help="requests per client at each level")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--kogpt2-new-tokens", type=int, default=16, help="fewer for the big model: CPU time")
    ap.add_argument("--kogpt2-levels", default="1,16", help="fewer levels for the big model")
    ap.add_argument("--kogpt2-rounds", type=int, default=2)
    ap.add_argument("--torch-threads", type=int, default=torch.get_num_threads(),
                    help="torch's own default, what kogen serve runs with (here: %(default)s)")
    ap.add_argument("--out", default="bench_server", help="results/<out>.{json,md}")
    ap.add_argument("--pairs", type=int, default=5, help="alternating measurements for the two ratio goals (0: none)")
    a = ap.parse_args()
    torch.set_num_threads(a.torch_threads)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # queued requests are the point here
    engines = [e for e in a.engines.split(",") if e != "ct2" or _has_ct2()]
    levels = [int(x) for x in a.levels.split(",")]
    model, tokenizer, _ = load_model("bundled", "cpu")
    rows, started = [], time.time()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as clients_process:
        for name in a.models.split(","):
            lm, tok = (model, tokenizer) if name == "bundled" else kogpt2_shaped(tokenizer)
            big = name != "bundled"
            rows += bench(name, lm, tok, engines, [int(x) for x in a.kogpt2_levels.split(",")] if big else levels,
                          a.kogpt2_rounds if big else a.rounds, a.kogpt2_new_tokens if big else a.new_tokens,
                          clients_process)
        pairs = paired_goals(model, tokenizer, a, clients_process) if a.pairs else {}
    ceiling = {n: forward_scaling(model, n) for n in (1, 16)}  # the bundled model, after the server runs
    load = os.getloadavg()
    meta = dict(command="python benchmarks/bench_server.py " + " ".join(sys.argv[1:]), seconds=round(time.time() - started),
                load_average=[round(x, 2) for x in load], cpus=os.cpu_count(), torch_threads=a.torch_threads,
                new_tokens=dict(bundled=a.new_tokens, kogpt2_shape=a.kogpt2_new_tokens),
                rounds=dict(bundled=a.rounds, kogpt2_shape=a.kogpt2_rounds), bare_forward_tok_s=ceiling,
                paired_ratios=pairs)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{a.out}.json").write_text(json.dumps(dict(meta=meta, rows=rows), ensure_ascii=False, indent=1))
    md = (f"# {a.out}\n\n`{meta['command']}` — {meta['cpus']} CPUs, torch threads {a.torch_threads}, load average "
          f"after the run {meta['load_average']} (other jobs may share the machine), greedy, forced new tokens "
          f"(bundled {a.new_tokens}, KoGPT2 shape {a.kogpt2_new_tokens}), requests per client {a.rounds} (KoGPT2 shape "
          f"{a.kogpt2_rounds}), clients in their own process.\n\n"
          + table(rows) + "\n\n## Goals (issue 10)\n\n" + goals(rows, pairs)
          + f"\n\nThe ceiling on this CPU: the bundled model's bare decode step gives {ceiling[1]:,.0f} tok/s for one row "
          f"and {ceiling[16]:,.0f} for 16 ({ceiling[16] / ceiling[1]:.1f}×), with no server, sampling or HTTP.\n")
    (RESULTS / f"{a.out}.md").write_text(md)
    print(md)


def _has_ct2():
    from kogen.serving.ct2 import available
    return available()


if __name__ == "__main__":
    main()
