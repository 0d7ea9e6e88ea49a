"""Reference-based and distribution metrics that work for Korean, offline.

Korean is a trap for the usual tools, so each metric states how it cuts text:
- BLEU: sacrebleu with `tokenize="char"` (its Korean tokenizer needs MeCab; 13a would treat a
  whole eojeol as one word, so one changed particle zeroes the match).
- chrF: sacrebleu's character n-gram F-score; no word tokenizer involved.
- ROUGE-1/2/L: rouge-score, but with `HangulTokenizer`: rouge-score's default tokenizer keeps only
  [a-z0-9] and silently turns every Korean text into nothing (score 0 whatever the text).
- self-BLEU (char): each text against all the others; high = the system says the same thing.
- MAUVE (Pillutla et al., 2021): `mauve-text` on features from the evaluated setup's reference
  model (its default would download gpt2-large, an English model).
HF `evaluate.load(...)` is not used: it fetches metric code from the Hub at run time.
"""
import random
import re

import numpy as np
import torch

HANGUL_WORD = re.compile(r"[가-힣ㄱ-ㅎㅏ-ㅣ]+|[a-z]+|[0-9]+")


class HangulTokenizer:
    """rouge-score's tokenizer interface: words of Hangul (incl. ㅋ, ㅠ), Latin letters or digits."""

    def tokenize(self, text):
        return HANGUL_WORD.findall(text.lower())


def bleu_char(hypotheses, references):
    """Corpus BLEU (0-100) on characters, one reference per hypothesis."""
    import sacrebleu
    return sacrebleu.corpus_bleu(hypotheses, [references], tokenize="char").score


def chrf(hypotheses, references):
    import sacrebleu
    return sacrebleu.corpus_chrf(hypotheses, [references]).score


def rouge(hypotheses, references):
    """Mean ROUGE-1/2/L F1 (0-1) with Hangul-preserving word tokens."""
    from rouge_score import rouge_scorer
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=HangulTokenizer())
    scores = [scorer.score(ref, hyp) for hyp, ref in zip(hypotheses, references)]
    return {name: float(np.mean([s[name].fmeasure for s in scores])) if scores else 0.0
            for name in ("rouge1", "rouge2", "rougeL")}


def self_bleu(texts, max_texts=100, seed=0):
    """Mean char-BLEU of each text against all others (of a random `max_texts` sample)."""
    import sacrebleu
    texts = [t for t in texts if t.strip()]
    if len(texts) < 2:
        return float("nan")
    if len(texts) > max_texts:
        texts = random.Random(seed).sample(texts, max_texts)
    scores = []
    for i, hyp in enumerate(texts):
        others = texts[:i] + texts[i + 1:]
        scores.append(sacrebleu.sentence_bleu(hyp, others, tokenize="char").score)
    return float(np.mean(scores))


@torch.inference_mode()
def last_token_features(model, tokenizer, texts, batch_size=16, max_tokens=128):
    """(N, C) final-layer hidden state at each text's last token: MAUVE's featurization, with this model."""
    feats = []
    for i in range(0, len(texts), batch_size):
        rows = [tokenizer(t, add_special_tokens=False).input_ids[:max_tokens] or [tokenizer.eos_token_id]
                for t in texts[i:i + batch_size]]
        T = max(len(r) for r in rows)
        ids = torch.full((len(rows), T), tokenizer.pad_token_id)
        mask = torch.zeros((len(rows), T), dtype=torch.long)
        for r, row in enumerate(rows):
            ids[r, :len(row)], mask[r, :len(row)] = torch.tensor(row), 1
        out = model(ids.to(model.device), attention_mask=mask.to(model.device), output_hidden_states=True)
        last = out.hidden_states[-1][torch.arange(len(rows)), mask.sum(1) - 1]
        feats.append(last.float().cpu().numpy())
    return np.concatenate(feats)


def mauve_score(human_features, model_features, seed=0):
    """MAUVE (0-1, higher = closer to human text) or raises ImportError when mauve-text is missing."""
    import mauve
    # buckets = N/40, not MAUVE's N/10: faiss's k-means wants >= 39 points per centroid (and says so on
    # stderr otherwise); with a few hundred texts this is a coarser histogram, so compare only like with like
    n = len(human_features) + len(model_features)
    out = mauve.compute_mauve(p_features=human_features, q_features=model_features, seed=seed, verbose=False,
                              num_buckets=max(2, n // 40))
    return float(out.mauve)
