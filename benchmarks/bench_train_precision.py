"""Fine-tuning step speed on CPU: float32 vs bfloat16 autocast, side by side in one process.

    python benchmarks/bench_train_precision.py --steps 30

Forward + backward + AdamW on the bundled model with NSMC-shaped batches (batch 32, 32 tokens, as
`kogen train --quick`). bf16 autocast pays off only where the CPU has bf16 matrix units (AMX or
AVX512-BF16); elsewhere it can be slower. Prints steps/s for each and the ratio.
"""
import argparse
import time

import torch

from kogen.models import load_model


def steps_per_s(model, batch, steps, bf16):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    model.train()
    for i in range(steps + 3):
        if i == 3:  # the first steps warm up allocators and kernels
            t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps / (time.perf_counter() - t)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq", type=int, default=32)
    a = p.parse_args()
    model, tok, _ = load_model("bundled", "cpu")
    ids = torch.randint(10, len(tok), (a.batch_size, a.seq), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}")
    rows = []
    for name, bf16 in (("float32", False), ("bf16 autocast", True), ("float32", False), ("bf16 autocast", True)):
        rows.append((name, steps_per_s(model, batch, a.steps, bf16)))
    fp32 = max(r for n, r in rows if n == "float32")
    bf16 = max(r for n, r in rows if n != "float32")
    for name, r in rows:
        print(f"{name:14s} {r:6.2f} steps/s")
    print(f"bf16 / float32 = {bf16 / fp32:.2f}x (best of two runs each)")


if __name__ == "__main__":
    main()
