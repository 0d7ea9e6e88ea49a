"""Train FUDGE's future discriminator for 긍정/부정 on NSMC prefixes (see kogen/decoding/discriminator.py).

    python scripts/train_fudge_discriminator.py --data-dir ../shared/data/nsmc      # ~10 min on 2 CPU cores
    python scripts/train_fudge_discriminator.py --model skt/kogpt2-base-v2 --out my_fudge   # for KoGPT2's tokenizer

Every prefix of a review is trained to predict the review's label (one GRU pass trains them all).
A third of the training reviews get a label word ("긍정 "/"부정 ") put in front, chosen at random
and independent of the real label, so the discriminator learns to ignore the prompt prefix that
the fine-tuned model uses ("prefix + FUDGE"). NSMC train is split into train and validation
(last --val reviews); NSMC test is never seen in training and gives the final numbers.
Resumable: the state is saved atomically every --save-every steps into --state.
"""
import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kogen.data import bucketed_batches, read_nsmc  # noqa: E402
from kogen.decoding.discriminator import FUDGE_DIR, FutureDiscriminator, tokenizer_fingerprint  # noqa: E402
from kogen.models import load_tokenizer, resolve_model  # noqa: E402

LABELS = ["부정", "긍정"]  # index = NSMC's 0/1


def load_split(path, tok, max_len, prefix_share=0.0, rng=None):
    """(ids, label) pairs; each review ends with </s> so the discriminator sees finished reviews too."""
    texts, _ = read_nsmc(path)
    labels = [LABELS.index(t.split(" ", 1)[0]) for t in texts]
    reviews = [t.split(" ", 1)[1] for t in texts]
    if prefix_share:
        reviews = [f"{rng.choice(LABELS)} {r}" if rng.random() < prefix_share else r for r in reviews]
    ids = tok(reviews, add_special_tokens=False)["input_ids"]
    return [(x[:max_len - 1] + [tok.eos_token_id], y) for x, y in zip(ids, labels)]


def collate(batch, pad_id):
    T = max(len(x) for x, _ in batch)
    ids = torch.full((len(batch), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), T), dtype=torch.bool)
    for i, (x, _) in enumerate(batch):
        ids[i, :len(x)], mask[i, :len(x)] = torch.tensor(x), True
    return ids, mask, torch.tensor([y for _, y in batch])


def prefix_loss(model, ids, mask, y):
    """Mean cross-entropy of the label at every real (non-pad) position."""
    logits = model(ids)                                              # (B, T, n_labels)
    per_pos = F.cross_entropy(logits.transpose(1, 2), y[:, None].expand_as(ids), reduction="none")
    return (per_pos * mask).sum() / mask.sum()


@torch.no_grad()
def evaluate(model, rows, pad_id, at=(1, 3, 5, 10, None)):
    """Accuracy of the label after the first n tokens of each review (None = the whole review)."""
    model.eval()
    hits = {n: 0 for n in at}
    for batch in bucketed_batches(rows, 512):
        ids, mask, y = collate(batch, pad_id)
        pred = model(ids).argmax(-1)                                 # (B, T)
        lengths = mask.sum(1)
        for n in at:
            pos = (lengths if n is None else lengths.clamp(max=n)) - 1
            hits[n] += (pred[torch.arange(len(y)), pos] == y).sum().item()
    model.train()
    return {("full" if n is None else f"first_{n}"): round(h / len(rows), 4) for n, h in hits.items()}


def save_state(path, model, opt, step, epoch):
    torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), step=step, epoch=epoch), path + ".tmp")
    os.replace(path + ".tmp", path)


def write_card(out, config, metrics, args, seconds):
    tokenizer = config["tokenizer"]
    (Path(out) / "README.md").write_text(f"""# FUDGE future discriminator: 긍정 / 부정 (NSMC)

The sentiment discriminator that `kogen.decoding.FudgeLogitsProcessor` steers with (FUDGE, Yang & Klein,
NAACL 2021). Given a prefix of token ids, it predicts P(label | prefix) for the review the prefix will
become. Labels: {config['labels']} (NSMC 0 / 1).

## Tokenizer
Trained on the ids of **{tokenizer['name']}** (vocabulary {tokenizer['vocab_size']}, fingerprint
`{tokenizer['fingerprint']}`). It works only with models that use this tokenizer: the bundled model and
anything fine-tuned from it (`kogen train --quick`). kogen refuses any other tokenizer with an error; to
steer KoGPT2, retrain: `python scripts/train_fudge_discriminator.py --model skt/kogpt2-base-v2 --out DIR`.

## Model
Embedding {config['n_embd']} → one GRU layer of {config['n_hidden']} → linear to {len(config['labels'])} labels;
{sum(p.numel() for p in FutureDiscriminator(**config).parameters()):,} parameters, stored in float16. A
candidate next token costs one GRU cell step, so 200 candidates per step are one small batch.

## Data
NSMC (Naver sentiment movie corpus; the reviews were published by its authors under CC0 1.0; here the
rebuilt offline copy described in the project's shared data README): {metrics['n_train']:,} train reviews, the
last {metrics['n_val']:,} of `ratings_train.txt` for validation, `ratings_test.txt` ({metrics['n_test']:,} reviews)
only for the numbers below. Every prefix carries its review's label. {int(args.prefix_share * 100)}% of the
training reviews start with a random label word (independent of the real label) so that a `긍정`/`부정` prompt
prefix does not decide the prediction.

## Metrics (NSMC test, never trained on)
Accuracy of the label after the first n tokens of a review (a prefix's future is uncertain, so short
prefixes are near chance, whole reviews near a sentence classifier):

| prefix | accuracy |
|---|---|
""" + "\n".join(f"| {k.replace('first_', 'first ')} tokens | {v:.3f} |".replace("full tokens", "whole review")
                 for k, v in metrics["test"].items()) + f"""

## How it was made
```bash
python scripts/train_fudge_discriminator.py --data-dir ../shared/data/nsmc --epochs {args.epochs} \\
    --batch-size {args.batch_size} --lr {args.lr} --max-len {args.max_len} --seed {args.seed}
```
{metrics['steps']} steps, {seconds / 60:.1f} minutes on a CPU with {torch.get_num_threads()} torch thread(s). Size budget: ≤ 5 MB (this one:
{(Path(out) / 'model.safetensors').stat().st_size / 1e6:.1f} MB).

## Licence
Code: the project's. Weights: derived from NSMC reviews (CC0 1.0); no other data.
""", encoding="utf-8")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("KOGEN_NSMC_DIR", "../shared/data/nsmc"))
    p.add_argument("--model", default="bundled", help="whose tokenizer the discriminator reads")
    p.add_argument("--out", default=str(FUDGE_DIR))
    p.add_argument("--state", default="runs/fudge_state.pt")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--max-len", type=int, default=48)
    p.add_argument("--val", type=int, default=5000)
    p.add_argument("--max-train", type=int, default=None, help="use only this many train reviews (tests)")
    p.add_argument("--prefix-share", type=float, default=0.3)
    p.add_argument("--save-every", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    t0 = time.time()

    path = resolve_model(args.model)
    tok = load_tokenizer(path)
    rows = load_split(os.path.join(args.data_dir, "ratings_train.txt"), tok, args.max_len, args.prefix_share, rng)
    train, val = rows[:-args.val][:args.max_train], rows[-args.val:]
    test = load_split(os.path.join(args.data_dir, "ratings_test.txt"), tok, args.max_len)
    name = "kogen bundled" if Path(path).resolve() == Path(resolve_model("bundled")).resolve() else args.model
    tokenizer = dict(name=name, vocab_size=len(tok), fingerprint=tokenizer_fingerprint(tok))
    model = FutureDiscriminator(len(tok), LABELS, pad_token_id=tok.pad_token_id, tokenizer=tokenizer)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    steps_per_epoch = -(-len(train) // args.batch_size)
    total = steps_per_epoch * args.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100) * max(0.05, 1 - s / total))
    step, start_epoch = 0, 0
    os.makedirs(os.path.dirname(args.state) or ".", exist_ok=True)
    if os.path.exists(args.state):
        st = torch.load(args.state, weights_only=True)
        model.load_state_dict(st["model"]), opt.load_state_dict(st["opt"])
        step, start_epoch = st["step"], st["epoch"]
        for _ in range(step):
            sched.step()
        print(f"resuming from {args.state} at step {step}")
    print(f"{len(train):,} train / {len(val):,} val / {len(test):,} test reviews; "
          f"{sum(p.numel() for p in model.parameters()):,} parameters; {total} steps")

    model.train()
    for epoch in range(start_epoch, args.epochs):
        epoch_rng = random.Random(args.seed * 1000 + epoch)  # same batch order on resume
        for i, batch in enumerate(bucketed_batches(train, args.batch_size, epoch_rng)):
            if i < step - epoch * steps_per_epoch:
                continue  # already done before the resume
            loss = prefix_loss(model, *collate(batch, tok.pad_token_id))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step(), sched.step()
            step += 1
            if step % 100 == 0:
                print(f"step {step}/{total} loss {loss.item():.4f} ({time.time() - t0:.0f} s)", flush=True)
            if step % args.save_every == 0:
                save_state(args.state, model, opt, step, epoch if i + 1 < steps_per_epoch else epoch + 1)
        print(f"epoch {epoch + 1}: val {evaluate(model, val, tok.pad_token_id)}", flush=True)
        save_state(args.state, model, opt, step, epoch + 1)

    metrics = dict(val=evaluate(model, val, tok.pad_token_id), test=evaluate(model, test, tok.pad_token_id),
                   n_train=len(train), n_val=len(val), n_test=len(test), steps=step)
    print(json.dumps(metrics, ensure_ascii=False))
    model.save_pretrained(args.out)
    (Path(args.out) / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=1), encoding="utf-8")
    write_card(args.out, model.config, metrics, args, time.time() - t0)
    print(f"saved {args.out} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
