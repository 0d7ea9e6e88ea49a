"""Train a FUDGE future discriminator (see kogen/decoding/discriminator.py): 긍정/부정 on NSMC prefixes, or
유해/무해 on BEEP! comment prefixes (`--task toxicity`, the safety lesson's "steer away from toxicity").

    python scripts/train_fudge_discriminator.py --data-dir ../shared/data/nsmc      # ~10 min on 2 CPU cores
    python scripts/train_fudge_discriminator.py --task toxicity --data ../shared/data/korean-hate-speech/train.tsv
    python scripts/train_fudge_discriminator.py --model skt/kogpt2-base-v2 --out my_fudge   # for KoGPT2's tokenizer

Every prefix of a review is trained to predict the review's label (one GRU pass trains them all).
A third of the training reviews get a label word ("긍정 "/"부정 ") put in front, chosen at random
and independent of the real label, so the discriminator learns to ignore the prompt prefix that
the fine-tuned model uses ("prefix + FUDGE"). NSMC train is split into train and validation
(last --val reviews); NSMC test is never seen in training and gives the final numbers.
For toxicity, BEEP!'s labelled file is split 80/10/10 exactly as the safety classifier's script splits it
(kogen/safety/beep.py), so the classifier that judges the steered text never saw the test comments either;
hate and offensive are 유해, none is 무해.
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
from kogen.decoding.discriminator import (FUDGE_DIR, TOXICITY_DIR, FutureDiscriminator,  # noqa: E402
                                         tokenizer_fingerprint)
from kogen.models import load_tokenizer, resolve_model  # noqa: E402
from kogen.safety import beep  # noqa: E402

LABELS = ["부정", "긍정"]  # index = NSMC's 0/1
TOXICITY_LABELS = ["유해", "무해"]  # BEEP! hate or offensive / none


def load_split(path, tok, max_len, prefix_share=0.0, rng=None):
    """(ids, label) pairs; each review ends with </s> so the discriminator sees finished reviews too."""
    texts, _ = read_nsmc(path)
    labels = [LABELS.index(t.split(" ", 1)[0]) for t in texts]
    reviews = [t.split(" ", 1)[1] for t in texts]
    if prefix_share:
        reviews = [f"{rng.choice(LABELS)} {r}" if rng.random() < prefix_share else r for r in reviews]
    ids = tok(reviews, add_special_tokens=False)["input_ids"]
    return [(x[:max_len - 1] + [tok.eos_token_id], y) for x, y in zip(ids, labels)]


def load_beep_split(path, tok, max_len, seed):
    """(train, val, test) of (ids, label) from BEEP!, split as the safety classifier's script splits it."""
    def rows(part):
        ids = tok([text for text, _, _ in part], add_special_tokens=False)["input_ids"]
        return [(x[:max_len - 1] + [tok.eos_token_id], int(hate == 0)) for x, (_, hate, _) in zip(ids, part)]
    return tuple(rows(part) for part in beep.split(beep.read_beep(path), seed))


def load_task(args, tok, rng):
    """(labels, train, val, test) for --task."""
    if args.task == "toxicity":
        train, val, test = load_beep_split(args.data, tok, args.max_len, args.seed)
        return TOXICITY_LABELS, train[:args.max_train], val, test
    rows = load_split(os.path.join(args.data_dir, "ratings_train.txt"), tok, args.max_len, args.prefix_share, rng)
    test = load_split(os.path.join(args.data_dir, "ratings_test.txt"), tok, args.max_len)
    return LABELS, rows[:-args.val][:args.max_train], rows[-args.val:], test


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


def card_texts(args, metrics):
    """(title, what it is, data paragraph, test set name, licence) for the model card of --task."""
    if args.task == "toxicity":
        return ("유해 / 무해 (BEEP!)",
                "The toxicity discriminator that `--control 무해` steers away from toxic text with (the safety lesson's\n"
                "mitigation). Given a prefix of token ids, it predicts P(label | prefix) for the comment the prefix will\n"
                "become. Labels: ['유해', '무해'] (BEEP! hate or offensive / none).",
                f"**BEEP! Korean hate-speech corpus** (Moon, Cho & Lee, 2020, SocialNLP; CC BY-SA 4.0), labelled train\n"
                f"file, split 80 / 10 / 10 stratified by the hate label (seed {args.seed}, the same split as the safety\n"
                f"classifier's, `kogen/safety/beep.py`): {metrics['n_train']:,} train, {metrics['n_val']:,} validation,\n"
                f"{metrics['n_test']:,} test comments. Every prefix carries its comment's label.",
                "our BEEP! test split",
                "Code: the project's. Weights: derived from the BEEP! corpus and shared under the same licence,\n"
                "**CC BY-SA 4.0** (credit: Moon, Cho & Lee, 2020). Entertainment-news comments, not movie reviews.")
    return ("긍정 / 부정 (NSMC)",
            "The sentiment discriminator that `kogen.decoding.FudgeLogitsProcessor` steers with (FUDGE, Yang & Klein,\n"
            "NAACL 2021). Given a prefix of token ids, it predicts P(label | prefix) for the review the prefix will\n"
            "become. Labels: ['부정', '긍정'] (NSMC 0 / 1).",
            f"NSMC (Naver sentiment movie corpus; the reviews were published by its authors under CC0 1.0; here the\n"
            f"rebuilt offline copy described in the project's shared data README): {metrics['n_train']:,} train reviews,\n"
            f"the last {metrics['n_val']:,} of `ratings_train.txt` for validation, `ratings_test.txt` ({metrics['n_test']:,}\n"
            f"reviews) only for the numbers below. Every prefix carries its review's label. {int(args.prefix_share * 100)}%\n"
            f"of the training reviews start with a random label word (independent of the real label) so that a\n"
            f"`긍정`/`부정` prompt prefix does not decide the prediction.",
            "NSMC test", "Code: the project's. Weights: derived from NSMC reviews (CC0 1.0); no other data.")


def write_card(out, config, metrics, args, seconds):
    tokenizer = config["tokenizer"]
    title, what, data, test_name, licence = card_texts(args, metrics)
    (Path(out) / "README.md").write_text(f"""# FUDGE future discriminator: {title}

{what}

## Tokenizer
Trained on the ids of **{tokenizer['name']}** (vocabulary {tokenizer['vocab_size']}, fingerprint
`{tokenizer['fingerprint']}`). It works only with models that use this tokenizer: the bundled model and
anything fine-tuned from it (`kogen train --quick`). kogen refuses any other tokenizer with an error; to
steer KoGPT2, retrain: `python scripts/train_fudge_discriminator.py --model skt/kogpt2-base-v2 --out DIR`.

## Model
Embedding {config['n_embd']}{" (started from the language model's token embeddings)" if args.lm_embeddings else ""} → one GRU layer of {config['n_hidden']} → linear to {len(config['labels'])} labels;
{sum(p.numel() for p in FutureDiscriminator(**config).parameters()):,} parameters, stored in float16. A
candidate next token costs one GRU cell step, so 200 candidates per step are one small batch.

## Data
{data}

## Metrics ({test_name}, never trained on)
Accuracy of the label after the first n tokens of a text (a prefix's future is uncertain, so short
prefixes are near chance, whole texts near a sentence classifier). Always guessing the commoner label scores
{metrics['majority']:.3f} here. Validation: {metrics['val']}.

| prefix | accuracy |
|---|---|
""" + "\n".join(f"| {k.replace('first_', 'first ')} tokens | {v:.3f} |".replace("full tokens", "whole text")
                 for k, v in metrics["test"].items()) + f"""

## How it was made
```bash
python scripts/train_fudge_discriminator.py {"--task toxicity --data " + args.data if args.task == "toxicity"
    else "--data-dir ../shared/data/nsmc"} --epochs {args.epochs}{f" --n-embd {args.n_embd}" if args.n_embd != 128 else ""}{" --lm-embeddings" if args.lm_embeddings else ""} \\
    --batch-size {args.batch_size} --lr {args.lr} --max-len {args.max_len} --seed {args.seed}
```
{metrics['steps']} steps, {seconds / 60:.1f} minutes on a CPU with {torch.get_num_threads()} torch thread(s). Size budget: ≤ 5 MB (this one:
{(Path(out) / 'model.safetensors').stat().st_size / 1e6:.1f} MB).

## Licence
{licence}
""", encoding="utf-8")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=["sentiment", "toxicity"], default="sentiment")
    p.add_argument("--data-dir", default=os.environ.get("KOGEN_NSMC_DIR", "../shared/data/nsmc"), help="NSMC (sentiment)")
    p.add_argument("--data", default=beep.BEEP_FILE, help="BEEP!'s labelled train.tsv (toxicity)")
    p.add_argument("--model", default="bundled", help="whose tokenizer the discriminator reads")
    p.add_argument("--out", default=None, help="default: kogen/fudge_discriminator or kogen/fudge_toxicity")
    p.add_argument("--state", default=None, help="default: runs/fudge_<task>_state.pt")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--max-len", type=int, default=48)
    p.add_argument("--val", type=int, default=5000)
    p.add_argument("--max-train", type=int, default=None, help="use only this many train reviews (tests)")
    p.add_argument("--prefix-share", type=float, default=0.3)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--lm-embeddings", action="store_true",
                   help="start the embedding from the language model's token embeddings (needs --n-embd = its width)")
    p.add_argument("--save-every", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    args.out = args.out or str(TOXICITY_DIR if args.task == "toxicity" else FUDGE_DIR)
    args.state = args.state or f"runs/fudge_{args.task}_state.pt"
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    t0 = time.time()

    path = resolve_model(args.model)
    tok = load_tokenizer(path)
    labels, train, val, test = load_task(args, tok, rng)
    name = "kogen bundled" if Path(path).resolve() == Path(resolve_model("bundled")).resolve() else args.model
    tokenizer = dict(name=name, vocab_size=len(tok), fingerprint=tokenizer_fingerprint(tok))
    model = FutureDiscriminator(len(tok), labels, n_embd=args.n_embd, pad_token_id=tok.pad_token_id,
                                tokenizer=tokenizer)
    if args.lm_embeddings:  # 6k comments are too few to learn 8k token vectors from scratch; the LM knows them
        from transformers import AutoModelForCausalLM
        wte = AutoModelForCausalLM.from_pretrained(path).get_input_embeddings().weight.detach()
        model.wte.weight.data.copy_(wte[:len(tok)])
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
    print(f"{args.task}: {len(train):,} train / {len(val):,} val / {len(test):,} test texts; "
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
                   n_train=len(train), n_val=len(val), n_test=len(test), steps=step,
                   majority=round(max(sum(y == k for _, y in test) for k in range(len(labels))) / len(test), 4))
    print(json.dumps(metrics, ensure_ascii=False))
    model.save_pretrained(args.out)
    (Path(args.out) / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=1), encoding="utf-8")
    write_card(args.out, model.config, metrics, args, time.time() - t0)
    print(f"saved {args.out} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
