"""Pre-train the small Korean GPT-2 that ships inside kogen (kogen/bundled_model/).

    python scripts/train_tokenizer.py                      # ~20 s, writes runs/bundled/tokenizer
    python scripts/pretrain_bundled.py --max-minutes 80    # resumable: run it again to continue
    python scripts/pretrain_bundled.py --export kogen/bundled_model

A plain PyTorch loop in the spirit of nanoGPT: reviews are joined with </s> into one token stream,
cut into blocks, and the model learns next-token prediction. Every --ckpt-every steps the state
is written atomically to runs/bundled/state.pt, so a killed run loses at most those steps.
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

SPECIALS = dict(bos_token="</s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")


def load_tokenizer(path):
    return PreTrainedTokenizerFast(tokenizer_file=os.path.join(path, "tokenizer.json"), **SPECIALS)


def token_stream(tok, data_path, cache_path, held_out):
    """All reviews as one uint16 array of ids, review</s>review</s>...; cached on disk."""
    if os.path.exists(cache_path):
        d = np.load(cache_path)
        return d["train"], d["val"]
    with open(data_path, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()]
    eos = tok.eos_token_id
    ids = tok(lines, add_special_tokens=False)["input_ids"]
    def flat(chunk):
        return np.array([t for x in chunk for t in x + [eos]], dtype=np.uint16)
    train, val = flat(ids[:-held_out]), flat(ids[-held_out:])
    np.savez(cache_path + ".tmp.npz", train=train, val=val)
    os.replace(cache_path + ".tmp.npz", cache_path)
    return train, val


def get_batch(data, block, batch, gen):
    ix = torch.randint(len(data) - block - 1, (batch,), generator=gen)
    x = torch.stack([torch.from_numpy(data[i:i + block].astype(np.int64)) for i in ix.tolist()])
    y = torch.stack([torch.from_numpy(data[i + 1:i + 1 + block].astype(np.int64)) for i in ix.tolist()])
    return x, y


@torch.no_grad()
def evaluate(model, val, block, batch_size=32):
    """Held-out loss over non-overlapping blocks of the validation stream."""
    model.eval()
    n = (len(val) - 1) // block
    losses = []
    for s in range(0, n, batch_size):
        starts = range(s * block, min(n, s + batch_size) * block, block)
        x = torch.stack([torch.from_numpy(val[i:i + block].astype(np.int64)) for i in starts])
        y = torch.stack([torch.from_numpy(val[i + 1:i + 1 + block].astype(np.int64)) for i in starts])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x).logits
        losses.append(torch.nn.functional.cross_entropy(logits.float().view(-1, logits.size(-1)), y.view(-1)).item())
    model.train()
    return float(np.mean(losses))


def lr_at(step, args):
    # linear warmup, then cosine decay to 10% of the peak
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    t = min(1.0, (step - args.warmup) / max(1, args.max_steps - args.warmup))
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def save_atomic(obj, path):
    torch.save(obj, path + ".tmp")
    os.replace(path + ".tmp", path)


def train(args):
    torch.set_num_threads(args.threads)
    os.makedirs(args.workdir, exist_ok=True)
    tok = load_tokenizer(args.tokenizer)
    train_ids, val_ids = token_stream(tok, args.data, os.path.join(args.workdir, "tokens.npz"), args.held_out)
    print(f"train tokens {len(train_ids):,}  val tokens {len(val_ids):,}", flush=True)
    config = GPT2Config(vocab_size=len(tok), n_positions=args.n_positions, n_embd=args.n_embd,
                        n_layer=args.n_layer, n_head=args.n_head, bos_token_id=tok.bos_token_id,
                        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(args.seed)
    model = GPT2LMHeadModel(config)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    state_path = os.path.join(args.workdir, "state.pt")
    step, log = 0, []
    gen = torch.Generator().manual_seed(args.seed)
    if os.path.exists(state_path):
        st = torch.load(state_path, weights_only=False)
        model.load_state_dict(st["model"]); opt.load_state_dict(st["opt"])
        step, log = st["step"], st["log"]
        gen.set_state(st["gen"])
        print(f"resumed at step {step}", flush=True)
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters", flush=True)
    t_start, tokens_seen = time.time(), 0
    model.train()
    while step < args.max_steps and (time.time() - t_start) < args.max_minutes * 60:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        x, y = get_batch(train_ids, args.block, args.batch_size, gen)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x).logits
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.size(-1)), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens_seen += x.numel()
        if step % 50 == 0:
            el = time.time() - t_start
            print(f"step {step} loss {loss.item():.3f} lr {lr_at(step, args):.2e} "
                  f"{tokens_seen / el:.0f} tok/s {el / 60:.1f} min", flush=True)
        if step % args.ckpt_every == 0 or step == args.max_steps:
            val = evaluate(model, val_ids, args.block)
            log.append({"step": step, "val_loss": val, "val_ppl": math.exp(val), "minutes": (time.time() - t_start) / 60})
            print(f"== step {step} val_loss {val:.3f} ppl {math.exp(val):.1f}", flush=True)
            save_atomic({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "log": log,
                         "gen": gen.get_state(), "config": config.to_dict(), "args": vars(args)}, state_path)


def export(args):
    """Write the Hugging Face folder: config.json, model.safetensors (fp16), tokenizer.json."""
    st = torch.load(os.path.join(args.workdir, "state.pt"), weights_only=False)
    config = GPT2Config.from_dict(st["config"])
    # dropout was off for pre-training (under two epochs); turn it on for whoever fine-tunes next
    config.resid_pdrop = config.embd_pdrop = config.attn_pdrop = 0.1
    model = GPT2LMHeadModel(config)
    model.load_state_dict(st["model"])
    # fp16 on disk keeps the folder small; config.json's dtype says float32, so from_pretrained upcasts
    model.half()
    # never generate <unk>: it decodes to nothing, so a student would see text stop while tokens go on
    model.generation_config.suppress_tokens = [load_tokenizer(args.tokenizer).unk_token_id]
    model.save_pretrained(args.export)
    cfg_path = os.path.join(args.export, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["dtype"] = "float32"  # save_pretrained wrote float16
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2)
    load_tokenizer(args.tokenizer)._tokenizer.save(os.path.join(args.export, "tokenizer.json"))
    with open(os.path.join(args.export, "training_log.json"), "w") as f:
        json.dump({"args": st["args"], "steps": st["step"], "log": st["log"]}, f, indent=1)
    write_model_card(args.export, st)
    print(f"exported step {st['step']} to {args.export}")


SAMPLE_PROMPTS = ["이 영화는", "배우들의 연기가", "솔직히", "스토리가", "감독이", "오랜만에", "이런 영화를", "처음에는",
                  "음악이", "마지막 장면에서"]


def write_model_card(folder, st):
    """README.md beside the weights: data, command, parameters, time, perplexity, 20 samples."""
    a, log = st["args"], st["log"]
    model = GPT2LMHeadModel.from_pretrained(folder).eval()
    tok = load_tokenizer(folder)
    torch.manual_seed(0)
    samples = []
    for prompt in SAMPLE_PROMPTS:
        enc = tok([prompt] * 2, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, do_sample=True, top_k=50, top_p=0.92, max_new_tokens=40, min_new_tokens=5,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        samples += [tok.decode(o, skip_special_tokens=True) for o in out]
    n_params = sum(p.numel() for p in model.parameters())
    minutes = sum(e["minutes"] for e in _runs(log))
    rows = "\n".join(f"| {e['step']} | {e['val_loss']:.3f} | {e['val_ppl']:.1f} |" for e in log[::4] + log[-1:])
    card = f"""# kogen bundled Korean GPT-2 (movie reviews)

A small GPT-2 (`GPT2LMHeadModel`) with its own Korean BPE tokenizer, laid out like
`skt/kogpt2-base-v2` (config.json, model.safetensors, tokenizer.json; `</s>` is bos and eos,
`<unk>`, `<pad>`, `<mask>` have KoGPT2's ids), so every code path in the course is the one KoGPT2
takes. It exists so that the course runs offline; it is not a general Korean language model: it
knows movie reviews.

## Data
`reviews_unlabeled.txt`: 512,383 unlabeled Korean movie reviews from the CC0 raw crawl published
by the NSMC repository, none of which is in the NSMC train/test sample (so fine-tuning on NSMC is
transfer to unseen text). The last {a['held_out']:,} reviews are held out for validation; the rest,
joined with `</s>`, make {st.get('train_tokens', 'about 8.7 million')} training tokens.

## How it was made (exact commands)
```bash
python scripts/train_tokenizer.py --vocab-size 8000          # Metaspace BPE, KoGPT2's special tokens
python scripts/pretrain_bundled.py --max-steps {a['max_steps']} --max-minutes {a['max_minutes']:g}   # resumable
python scripts/pretrain_bundled.py --export kogen/bundled_model
```

## Parameters
| | |
|---|---|
| parameters | {n_params:,} (n_layer {model.config.n_layer}, n_embd {model.config.n_embd}, n_head {model.config.n_head}, n_positions {model.config.n_positions}, vocab {model.config.vocab_size}, tied embeddings) |
| training | {st['step']} steps × {a['batch_size']} blocks × {a['block']} tokens = {st['step'] * a['batch_size'] * a['block'] / 1e6:.1f}M tokens; AdamW (β 0.9/0.95, wd 0.1), lr {a['lr']:g}, warmup {a['warmup']}, cosine to 10%; bf16 autocast; dropout 0 (set to 0.1 in config.json for fine-tuning) |
| hardware, time | 2 CPU cores (Intel Xeon with AMX), {minutes:.0f} minutes |
| stored as | float16 safetensors (config.json says float32, so `from_pretrained` loads float32) |

## Held-out loss
| step | val loss | val perplexity |
|---|---|---|
{rows}

Final held-out perplexity (per BPE token): **{log[-1]['val_ppl']:.1f}**.

## 20 samples
top-k 50, top-p 0.92, 40 new tokens at most, `torch.manual_seed(0)`, two per prompt:

""" + "\n".join(f"{i + 1}. {s}" for i, s in enumerate(samples)) + "\n"
    with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as f:
        f.write(card)


def _runs(log):
    """Each resumed run restarts its clock; the entry before a drop in minutes ends a run."""
    ends = [e for e, nxt in zip(log, log[1:]) if nxt["minutes"] < e["minutes"]]
    return ends + log[-1:]


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/reviews_unlabeled.txt")
    p.add_argument("--tokenizer", default="runs/bundled/tokenizer")
    p.add_argument("--workdir", default="runs/bundled")
    p.add_argument("--held-out", type=int, default=5000, help="last N reviews kept for validation")
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=256)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-positions", type=int, default=256)
    p.add_argument("--block", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--max-steps", type=int, default=5000)
    p.add_argument("--max-minutes", type=float, default=80)
    p.add_argument("--ckpt-every", type=int, default=250)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--export", default=None, help="write the Hugging Face folder here instead of training")
    a = p.parse_args()
    export(a) if a.export else train(a)
