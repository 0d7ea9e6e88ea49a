"""Decoding quality: greedy, beam 4, top-k 50, top-p 0.92, the recommended preset and contrastive search
on openings of NSMC test reviews (the advanced lessons, part 1).

    python benchmarks/decoding_quality.py --data-dir ../shared/data/nsmc            # ~3 min on 2 CPU cores
    python benchmarks/decoding_quality.py --model skt/kogpt2-base-v2 -n 100         # the real KoGPT2

For each method: 100 openings (the first 5 model tokens of NSMC test reviews), 48 new tokens each
(</s> held back so every continuation has the full length, as in Su et al.'s open-ended setting),
sampling seeded per prompt. Metrics on the continuations only, tokenized into eojeol (whitespace):
rep-2/3/4 and diversity as Su et al. (2022) define them, distinct-1/2; rep-2/4 and diversity again on the
model's own tokens "(tok)" (a run like ";;;;;" is one eojeol but many tokens); and the continuations'
perplexity under the same model. Writes benchmarks/results/decoding_quality.{md,json}.
"""
import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kogen.evaluation.compare import DECODING_METHODS, decoding_row, markdown_table, nsmc_openings  # noqa: E402
from kogen.models import load_model  # noqa: E402

COLUMNS = ["rep-2", "rep-3", "rep-4", "diversity", "distinct-1", "distinct-2", "rep-2 (tok)", "rep-4 (tok)",
           "diversity (tok)", "ppl", "seconds"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("KOGEN_NSMC_DIR", "../shared/data/nsmc"))
    p.add_argument("--model", default="bundled")
    p.add_argument("-n", type=int, default=100, help="openings")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "decoding_quality"))
    p.add_argument("--show", type=int, default=2, help="example continuations to print per method")
    a = p.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    model, tok, path = load_model(a.model)
    openings, _ = nsmc_openings(tok, a.n, data_dir=a.data_dir, seed=a.seed)
    rows, examples = {}, {}
    for name, method in DECODING_METHODS.items():
        rows[name], conts = decoding_row(model, tok, openings, method, a.max_new_tokens, a.seed)
        examples[name] = [openings[i] + conts[i] for i in range(a.show)]
        print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[name].items()), flush=True)
    table = markdown_table(rows, COLUMNS)
    head = (f"model {a.model}; {len(openings)} NSMC test openings (5 tokens), {a.max_new_tokens} new tokens each; "
            "n-gram metrics on eojeol, '(tok)' on model tokens; ppl = continuations under the same model; "
            "seconds = wall time for the row")
    print("\n" + head + "\n\n" + table)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out + ".md").write_text(head + "\n\n" + table + "\n\n" + "\n".join(
        f"- **{name}**: " + " / ".join(texts) for name, texts in examples.items()) + "\n", encoding="utf-8")
    Path(a.out + ".json").write_text(json.dumps(dict(model=str(path), n=len(openings), rows=rows, examples=examples),
                                                ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
