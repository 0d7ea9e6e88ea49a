"""The measurements behind the advanced lessons and their benchmarks: one row per decoding method,
control setting or prompt style, each computed the same way whether a lesson prints a small table or
`benchmarks/` runs the full one.

    decoding_row(...)   rep-2/3/4, diversity, distinct-1/2 (eojeol), rep-2/4 and diversity on model tokens,
                        and perplexity under the model
    control_row(...)    share of samples the independent judge calls 긍정/부정, perplexity under the base
                        model (the cost of steering), distinct-2
    prompt_style_row(...) the same, for a prompt written to ask for the label
"""
import os
import random
import time

from ..data import ensure_nsmc
from ..generation import PRESETS, generate_completions
from .judge import LABELS, match_share, nsmc_reviews
from .metrics import distinct_n, eojeol, perplexity, repetition_report

DECODING_METHODS = {
    "greedy": dict(),
    "beam 4": dict(num_beams=4),
    "top-k 50": dict(do_sample=True, top_k=50),
    "top-p 0.92": dict(do_sample=True, top_k=0, top_p=0.92),
    "recommended": PRESETS["recommended"]["params"],
    "contrastive α0.6 k4": dict(penalty_alpha=0.6, top_k=4),
}
# openings that say nothing about sentiment; 20 x 5 samples = 100 per label
NEUTRAL_OPENINGS = ["이 영화는", "오늘 본 영화는", "배우들의 연기가", "이 감독의 작품은", "스토리가", "영화를 보고 나서",
                    "주인공이", "결말이", "음악이", "처음에는", "이 배우는", "극장에서", "이번 영화는", "원작을 읽고",
                    "두 시간 동안", "영화관을 나오면서", "연출은", "대사가", "친구랑 봤는데", "이 장르는"]
SAMPLING = dict(do_sample=True, top_k=50, top_p=0.92)
# a prompt asking for the label, in different ways (few-shot examples come from NSMC train)
PROMPT_STYLES = {
    "plain": lambda label, opening, shots: opening,
    "label word": lambda label, opening, shots: f"{label} {opening}",
    "instruction": lambda label, opening, shots:
        f"다음은 이 영화를 {'칭찬하는 긍정적인' if label == '긍정' else '비판하는 부정적인'} 리뷰입니다. {opening}",
    "rating": lambda label, opening, shots: f"평점 {'10' if label == '긍정' else '1'}점. {opening}",
    "few-shot": lambda label, opening, shots: "</s>".join(shots + [opening]),
}


def nsmc_openings(tokenizer, n, n_tokens=5, data_dir=None, seed=0):
    """(openings, rests): the first `n_tokens` model tokens of `n` NSMC test reviews long enough to
    have a rest, and the rest (the human continuation)."""
    reviews, _ = nsmc_reviews(os.path.join(ensure_nsmc(data_dir), "ratings_test.txt"))
    random.Random(seed).shuffle(reviews)
    openings, rests = [], []
    for review in reviews:
        ids = tokenizer(review, add_special_tokens=False).input_ids
        if len(ids) >= n_tokens + 5:
            opening = tokenizer.decode(ids[:n_tokens])
            openings.append(opening)
            rests.append(review[len(opening):] if review.startswith(opening) else tokenizer.decode(ids[n_tokens:]))
            if len(openings) == n:
                break
    return openings, rests


def continuations(model, tokenizer, prompt, params):
    """The new text of each returned sequence (what follows `prompt`)."""
    return generate_completions(model, tokenizer, prompt, params)[1]


def decoding_row(model, tokenizer, prompts, method, max_new_tokens=48, seed=0, force_length=True):
    """One decoding method over `prompts`: repetition/diversity (eojeol) and the continuations'
    perplexity under the same model. `force_length` holds </s> back so every text has the full length."""
    start = time.perf_counter()
    conts = []
    for i, prompt in enumerate(prompts):
        params = dict(method, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens if force_length else 0,
                      seed=seed + i)
        conts += continuations(model, tokenizer, prompt, params)
    row = repetition_report(conts, eojeol)
    # the same on the model's own tokens: a run like ";;;;;;" is one eojeol but many repeated tokens
    by_token = repetition_report(conts, tokenizer.tokenize)
    row.update({f"{k} (tok)": by_token[k] for k in ("rep-2", "rep-4", "diversity")})
    row["ppl"] = perplexity(model, tokenizer, prompts, conts)
    row["seconds"] = time.perf_counter() - start
    return row, conts


def sample_for_label(model, tokenizer, make_prompt, label, openings, per_opening=5, max_new_tokens=32,
                     strength=None, seed=0, decoding=SAMPLING):
    """`per_opening` samples per opening; returns (openings repeated, continuations after the opening).
    `make_prompt(label, opening)` builds the prompt; the label's prompt words are not part of the text.
    A deterministic `decoding` (greedy, beam, contrastive) gives one text per opening."""
    used, conts = [], []
    per_opening = per_opening if decoding.get("do_sample") else 1
    for j, opening in enumerate(openings):
        prompt = make_prompt(label, opening)
        params = dict(decoding, num_return_sequences=per_opening, max_new_tokens=max_new_tokens, min_new_tokens=3,
                      seed=seed + 1000 * LABELS.index(label) + j,  # independent samples per label
                      control=label if strength else None, control_strength=strength or 1.0)
        conts += continuations(model, tokenizer, prompt, params)
        used += [opening] * per_opening
    return used, conts


def scored_row(judge, base, per_label):
    """Match share, perplexity under `base` (model, tokenizer) and distinct-2 of {label: (openings, conts)}."""
    row, all_prompts, all_conts, texts = {}, [], [], []
    for label, (openings, conts) in per_label.items():
        row[f"match {label}"] = match_share(judge, [o + c for o, c in zip(openings, conts)], label)
        all_prompts += openings
        all_conts += conts
        texts += [o + c for o, c in zip(openings, conts)]
    row["match"] = sum(row[f"match {label}"] for label in per_label) / len(per_label)
    row["ppl (base)"] = perplexity(*base, all_prompts, all_conts)
    row["distinct-2"] = distinct_n([eojeol(c) for c in all_conts], 2)
    row["samples"] = texts
    return row


def control_row(model, tokenizer, judge, base, prefix=False, strength=None, openings=NEUTRAL_OPENINGS,
                per_opening=5, max_new_tokens=32, seed=0, decoding=SAMPLING):
    """One control setting: no control, the label word as prompt prefix, FUDGE at `strength`, or both."""
    start = time.perf_counter()
    make = PROMPT_STYLES["label word" if prefix else "plain"]
    per_label = {label: sample_for_label(model, tokenizer, lambda lab, o: make(lab, o, []), label, openings,
                                         per_opening, max_new_tokens, strength, seed, decoding)
                 for label in LABELS[::-1]}
    row = scored_row(judge, base, per_label)
    row["seconds"] = time.perf_counter() - start
    return row


def few_shot_examples(label, k=3, data_dir=None, seed=0, max_chars=40):
    """k short NSMC train reviews of `label` (train: the judge is scored on test)."""
    reviews, labels = nsmc_reviews(os.path.join(ensure_nsmc(data_dir), "ratings_train.txt"), 20_000, seed)
    pool = [r for r, y in zip(reviews, labels) if y == LABELS.index(label) and 10 <= len(r) <= max_chars]
    return random.Random(seed).sample(pool, k)


def prompt_style_row(model, tokenizer, judge, style, openings=NEUTRAL_OPENINGS, per_opening=5, max_new_tokens=32,
                     seed=0, data_dir=None):
    """One prompt style on `model` itself (no control, no fine-tuning): does asking in words work?"""
    start = time.perf_counter()
    make = PROMPT_STYLES[style]
    per_label = {}
    for label in LABELS[::-1]:
        shots = few_shot_examples(label, data_dir=data_dir, seed=seed) if style == "few-shot" else []
        per_label[label] = sample_for_label(model, tokenizer, lambda lab, o: make(lab, o, shots), label, openings,
                                            per_opening, max_new_tokens, None, seed)
    row = scored_row(judge, (model, tokenizer), per_label)
    row["example prompt"] = make("긍정", openings[0], few_shot_examples("긍정", data_dir=data_dir, seed=seed)
                                 if style == "few-shot" else [])
    row["seconds"] = time.perf_counter() - start
    return row


def markdown_table(rows, columns, first="method", digits=2):
    """rows: {name: {column: value}} -> a Markdown table with the given columns."""
    def cell(v):
        return f"{v:.{digits}f}" if isinstance(v, float) else str(v)
    lines = [f"| {first} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for name, row in rows.items()]
    return "\n".join(lines)
