"""Does fine-tuning on NSMC make "긍정"/"부정" prompts write reviews of that sentiment?

    python benchmarks/sentiment_match.py --data-dir ../shared/data/nsmc \
        --before bundled --after checkpoints/quick/hf_model

Trains a TF-IDF (character 1-3 grams) + logistic-regression sentiment classifier on NSMC train,
reports its accuracy on NSMC test, then samples N continuations of each prompt from each model
(top-k 50, top-p 0.92) and prints the share whose predicted sentiment matches the prompt. The
label word itself is cut off before classifying, so only the generated review counts.
"""
import argparse
import os
import time

import torch

from kogen.evaluation.judge import train_judge
from kogen.models import load_model

PROMPTS = {"긍정": 1, "부정": 0}


def train_classifier(data_dir):
    clf, acc, _ = train_judge(data_dir, max_test=None)
    return clf, acc


@torch.inference_mode()
def sample(model_name, n, max_new_tokens, seed):
    model, tok, path = load_model(model_name, "cpu")
    torch.manual_seed(seed)
    out = {}
    for prompt in PROMPTS:
        enc = tok([prompt] * n, return_tensors="pt", add_special_tokens=False)
        ids = model.generate(**enc, do_sample=True, top_k=50, top_p=0.92, max_new_tokens=max_new_tokens,
                             min_new_tokens=3, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        out[prompt] = [tok.decode(s[enc["input_ids"].shape[1]:], skip_special_tokens=True).strip() for s in ids]
    return out, path


def match_share(clf, samples):
    hits = sum(int(p == PROMPTS[prompt]) for prompt, texts in samples.items() for p in clf.predict(texts))
    return hits / sum(len(t) for t in samples.values())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("KOGEN_NSMC_DIR", "../shared/data/nsmc"))
    p.add_argument("--before", default="bundled")
    p.add_argument("--after", required=True)
    p.add_argument("-n", type=int, default=100)
    p.add_argument("--max-new-tokens", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--show", type=int, default=3, help="print this many samples per prompt and model")
    a = p.parse_args()
    t = time.time()
    clf, acc = train_classifier(a.data_dir)
    print(f"classifier: TF-IDF char 1-3 + logistic regression, NSMC test accuracy {acc:.3f} ({time.time() - t:.0f} s)")
    for label, name in (("before", a.before), ("after", a.after)):
        samples, path = sample(name, a.n, a.max_new_tokens, a.seed)
        print(f"\n{label}: {path}\n  share matching the prompt: {match_share(clf, samples):.2f} "
              f"(n={a.n} per prompt)")
        for prompt, texts in samples.items():
            for text in texts[:a.show]:
                print(f"  [{prompt}] {text}")


if __name__ == "__main__":
    main()
