"""Repetition and diversity metrics for generated Korean text, with the tokenization in the name.

Korean words are eojeol (whitespace-separated units, e.g. "영화는"), which is what splitting on
whitespace gives; Su et al. (2022) split English on whitespace too, so `eojeol` is their setting.
`model_tokens` uses the model's own BPE pieces instead (finer: repetition inside an eojeol counts).

    rep-n      = 100 * (1 - sum over texts of unique n-grams / sum over texts of n-grams)   (Su et al.)
    diversity  = (1 - rep-2/100) * (1 - rep-3/100) * (1 - rep-4/100)                       (Su et al.)
    distinct-n = unique n-grams across all texts / all n-grams                             (Li et al., 2016)

Note: SimCTG's reference code stops one n-gram short of each text's end (`while end_idx < len`);
here every n-gram counts, so numbers on very short texts differ slightly from theirs.
"""
import math

import torch


def eojeol(text):
    return text.split()


def ngrams(tokens, n):
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def rep_n(token_lists, n):
    """Su et al.'s rep-n in percent: how much of each text repeats its own n-grams (0 = none)."""
    unique = sum(len(set(ngrams(t, n))) for t in token_lists)
    total = sum(len(ngrams(t, n)) for t in token_lists)
    return 100.0 * (1 - unique / total) if total else 0.0


def diversity(token_lists):
    return math.prod(1 - rep_n(token_lists, n) / 100 for n in (2, 3, 4))


def distinct_n(token_lists, n):
    """Share of distinct n-grams over the whole set of texts (1 = no n-gram used twice anywhere)."""
    grams = [g for t in token_lists for g in ngrams(t, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_report(texts, tokenize=eojeol):
    """rep-2/3/4, diversity and distinct-1/2 of `texts` under one tokenization."""
    toks = [tokenize(t) for t in texts]
    return {"rep-2": rep_n(toks, 2), "rep-3": rep_n(toks, 3), "rep-4": rep_n(toks, 4),
            "diversity": diversity(toks), "distinct-1": distinct_n(toks, 1), "distinct-2": distinct_n(toks, 2)}


@torch.inference_mode()
def continuation_nll(model, tokenizer, prompts, continuations, batch_size=16):
    """(sum of negative log-likelihoods, number of tokens) of each continuation given its prompt.

    Only the continuation's tokens are scored; the prompt is context. Texts are joined as strings and
    re-tokenized, so models with different tokenizers can score the same text."""
    total, count = 0.0, 0
    for i in range(0, len(prompts), batch_size):
        rows = []
        for p, c in zip(prompts[i:i + batch_size], continuations[i:i + batch_size]):
            p_ids = tokenizer(p, add_special_tokens=False).input_ids
            c_ids = tokenizer(p + c, add_special_tokens=False).input_ids[len(p_ids):]
            if c_ids:
                rows.append((p_ids, c_ids))
        if not rows:
            continue
        T = max(len(p) + len(c) for p, c in rows)
        ids = torch.full((len(rows), T), tokenizer.pad_token_id)
        labels = torch.full((len(rows), T), -100)
        for r, (p, c) in enumerate(rows):
            ids[r, :len(p) + len(c)] = torch.tensor(p + c)
            labels[r, len(p):len(p) + len(c)] = torch.tensor(c)
        mask = torch.zeros_like(ids)
        for r, (p, c) in enumerate(rows):
            mask[r, :len(p) + len(c)] = 1
        logits = model(ids.to(model.device), attention_mask=mask.to(model.device)).logits
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2).float(), labels[:, 1:].to(model.device),
                                                ignore_index=-100, reduction="sum")
        total += nll.item()
        count += int((labels[:, 1:] != -100).sum())
    return total, count


def perplexity(model, tokenizer, prompts, continuations):
    """Token-weighted perplexity of the continuations given their prompts (exp of mean NLL per token)."""
    total, count = continuation_nll(model, tokenizer, prompts, continuations)
    return math.exp(total / count) if count else float("nan")
