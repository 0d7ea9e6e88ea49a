"""FUDGE (Yang & Klein, "FUDGE: Controlled Text Generation With Future Discriminators", NAACL 2021).

    p(v | x, label)  ∝  p_LM(v | x) · P(label | x + v)^λ

A `LogitsProcessor`: take the top `precondition_topk` candidates of the step's scores, add
λ · log P(label | prefix + candidate) from the future discriminator, and set every other token to
-inf. Temperature, top-k and top-p (which `model.generate` runs after custom processors) then act
on the reweighted scores; greedy takes their argmax.
"""
import torch
from transformers import LogitsProcessor

from .discriminator import FUDGE_DIR, TOXICITY_DIR, load_discriminator

LABEL_ALIASES = {"긍정": "긍정", "부정": "부정", "positive": "긍정", "negative": "부정",
                 "무해": "무해", "safe": "무해", "harmless": "무해", "non-toxic": "무해"}
DISCRIMINATOR_FOR = {"긍정": FUDGE_DIR, "부정": FUDGE_DIR, "무해": TOXICITY_DIR}  # which shipped GRU knows the label


def canonical_label(label):
    """'positive' -> '긍정', 'safe' -> '무해'; None for an unknown label."""
    return LABEL_ALIASES.get(str(label).strip().lower())


class FudgeLogitsProcessor(LogitsProcessor):
    def __init__(self, label, strength=1.0, discriminator=None, tokenizer=None, precondition_topk=200):
        label = canonical_label(label) or label
        self.disc = discriminator or load_discriminator(DISCRIMINATOR_FOR.get(label, FUDGE_DIR))
        if tokenizer is not None:  # ids from another vocabulary would steer at random: refuse
            self.disc.check_tokenizer(tokenizer)
        self.label = self.disc.label_index(label)
        self.strength, self.topk = strength, precondition_topk

    @torch.no_grad()
    def __call__(self, input_ids, scores):
        k = min(self.topk, scores.shape[-1])
        top_scores, top_ids = scores.topk(k, dim=-1)                                # (B, K)
        disc = self.disc.to(scores.device)
        log_p = disc.candidate_log_probs(input_ids, top_ids)[..., self.label]     # (B, K)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, top_ids, top_scores + self.strength * log_p.to(scores.dtype))


@torch.inference_mode()
def explain_step(model, tokenizer, prompt, label, strength=1.0, show=8, precondition_topk=200):
    """One FUDGE step spelled out for a lesson: for the candidates FUDGE ranks highest, the model's
    probability, the discriminator's P(label | prompt + token) and the reweighted probability."""
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids.to(model.device)
    log_p_lm = model(ids).logits[0, -1].float().log_softmax(-1)
    fudge = FudgeLogitsProcessor(label, strength, tokenizer=tokenizer, precondition_topk=precondition_topk)
    p_new = fudge(ids, log_p_lm[None].clone())[0].softmax(-1)
    top_ids = log_p_lm.topk(precondition_topk).indices
    p_label = fudge.disc.to(model.device).candidate_log_probs(ids, top_ids[None])[0, :, fudge.label].exp()
    rows = [dict(token=tokenizer.decode([int(t)]), p_lm=float(log_p_lm[t].exp()), p_label=float(q), p_fudge=float(p_new[t]))
            for t, q in zip(top_ids, p_label)]
    return sorted(rows, key=lambda r: -r["p_fudge"])[:show], sorted(rows, key=lambda r: -r["p_lm"])[:show]
