"""FUDGE (Yang & Klein, "FUDGE: Controlled Text Generation With Future Discriminators", NAACL 2021).

    p(v | x, label)  ∝  p_LM(v | x) · P(label | x + v)^λ

A `LogitsProcessor`: take the top `precondition_topk` candidates of the step's scores, add
λ · log P(label | prefix + candidate) from the future discriminator, and set every other token to
-inf. Temperature, top-k and top-p (which `model.generate` runs after custom processors) then act
on the reweighted scores; greedy takes their argmax.
"""
import torch
from transformers import LogitsProcessor

from .discriminator import load_discriminator

LABEL_ALIASES = {"긍정": "긍정", "부정": "부정", "positive": "긍정", "negative": "부정"}


def canonical_label(label):
    """'positive' -> '긍정'; None for an unknown label."""
    return LABEL_ALIASES.get(str(label).strip().lower())


class FudgeLogitsProcessor(LogitsProcessor):
    def __init__(self, label, strength=1.0, discriminator=None, tokenizer=None, precondition_topk=200):
        self.disc = discriminator or load_discriminator()
        if tokenizer is not None:  # ids from another vocabulary would steer at random: refuse
            self.disc.check_tokenizer(tokenizer)
        self.label = self.disc.label_index(canonical_label(label) or label)
        self.strength, self.topk = strength, precondition_topk

    @torch.no_grad()
    def __call__(self, input_ids, scores):
        k = min(self.topk, scores.shape[-1])
        top_scores, top_ids = scores.topk(k, dim=-1)                                # (B, K)
        disc = self.disc.to(scores.device)
        log_p = disc.candidate_log_probs(input_ids, top_ids)[..., self.label]     # (B, K)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, top_ids, top_scores + self.strength * log_p.to(scores.dtype))
