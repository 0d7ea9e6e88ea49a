"""Contrastive search (Su et al., "A Contrastive Framework for Neural Text Generation", NeurIPS 2022).

At each step, among the top-k tokens v of the model's distribution, pick

    argmax_v  (1 - alpha) * p(v | x)  -  alpha * max_j cos(h_v, h_j)

where h_v is the last-layer hidden state the model gives v and h_j those of every earlier token
(prompt included). The penalty keeps the text from looping back onto what it already said;
alpha = 0 is greedy decoding.

Written here because transformers 5 moved contrastive search out of its core into Hub code
(`transformers-community/contrastive-search`, trust_remote_code + a download), which cannot run
offline. It uses the KV cache: the k candidates of a step go through the model as one batch on a
k-fold copy of the cache, and the winner's row of that cache is kept.
"""
import inspect

import torch
import torch.nn.functional as F
from transformers import LogitsProcessorList, StoppingCriteriaList


@torch.inference_mode()
def contrastive_search(model, input_ids, top_k=4, penalty_alpha=0.6, max_new_tokens=50, eos_token_id=None,
                       pad_token_id=None, logits_processor=None, stopping_criteria=None, streamer=None):
    """(B, T) prompt ids without padding -> (B, T + new) ids. Rows that emit </s> are padded after it.

    `logits_processor` acts on each step's logits before the top-k (repetition penalty, min length,
    FUDGE, ...); `stopping_criteria` may end rows early (max_time, a cancelled stream); `streamer`
    receives the prompt, then each new token, like `model.generate`'s."""
    processors = logits_processor or LogitsProcessorList()
    stopping = stopping_criteria or StoppingCriteriaList()
    B, rows = input_ids.shape[0], torch.arange(input_ids.shape[0], device=input_ids.device)
    unfinished = torch.ones(B, dtype=torch.bool, device=input_ids.device)
    # the prompt once: the cache, the first step's logits, the context's hidden states (B, T, C)
    cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"  # 5.24 renamed it
    out = model(input_ids, use_cache=True, output_hidden_states=True)
    cache, context, logits = getattr(out, cache_kw), out.hidden_states[-1], out.logits[:, -1, :]
    if streamer is not None:
        streamer.put(input_ids.cpu())
    for _ in range(max_new_tokens):
        # top-k of the processed next-token distribution
        probs = processors(input_ids, logits.float()).softmax(dim=-1)
        top_probs, top_ids = probs.topk(top_k, dim=-1)                           # (B, k)
        # all B*k candidates through the model in one batch, on a k-fold copy of the cache
        cache.batch_repeat_interleave(top_k)
        cand = model(top_ids.reshape(-1, 1), use_cache=True, output_hidden_states=True, **{cache_kw: cache})
        cand_h = cand.hidden_states[-1].reshape(B, top_k, -1)                     # (B, k, C)
        # degeneration penalty: each candidate's highest cosine similarity to the context
        sim = F.normalize(cand_h, dim=-1) @ F.normalize(context, dim=-1).transpose(1, 2)   # (B, k, T)
        score = (1 - penalty_alpha) * top_probs - penalty_alpha * sim.max(dim=-1).values
        best = score.argmax(dim=-1)                                               # (B,)
        # keep the winner's cache row, hidden state and next-step logits
        cache.batch_select_indices(rows * top_k + best)
        context = torch.cat([context, cand_h[rows, best].unsqueeze(1)], dim=1)
        logits = cand.logits.reshape(B, top_k, -1)[rows, best]
        next_tokens = top_ids[rows, best]
        if pad_token_id is not None:
            next_tokens = torch.where(unfinished, next_tokens, pad_token_id)
        # append, stream, and stop rows that ended
        input_ids = torch.cat([input_ids, next_tokens[:, None]], dim=-1)
        if streamer is not None:
            streamer.put(next_tokens.cpu())
        if eos_token_id is not None:
            unfinished &= next_tokens != eos_token_id
        if len(stopping):
            unfinished &= ~stopping(input_ids, logits)
        if not unfinished.any():
            break
    if streamer is not None:
        streamer.end()
    return input_ids


@torch.inference_mode()
def explain_step(model, tokenizer, prompt, top_k=4, penalty_alpha=0.6):
    """One step of contrastive search spelled out for a lesson (no cache: clarity over speed).
    Returns the k candidates, best first: token, probability, degeneration penalty, score."""
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids.to(model.device)
    out = model(ids, output_hidden_states=True)
    context = out.hidden_states[-1][0]                                          # (T, C)
    logits = out.logits[0, -1].float()
    logits[list(getattr(model.generation_config, "suppress_tokens", None) or [])] = float("-inf")
    top_probs, top_ids = logits.softmax(-1).topk(top_k)
    # each candidate appended to the prompt; its last hidden state against every context state
    cand = model(torch.cat([ids.repeat(top_k, 1), top_ids[:, None]], 1), output_hidden_states=True)
    cand_h = cand.hidden_states[-1][:, -1]                                      # (k, C)
    penalty = (F.normalize(cand_h, dim=-1) @ F.normalize(context, dim=-1).T).max(-1).values
    score = (1 - penalty_alpha) * top_probs - penalty_alpha * penalty
    rows = [dict(token=tokenizer.decode([int(t)]), prob=float(p), penalty=float(q), score=float(s))
            for t, p, q, s in zip(top_ids, top_probs, penalty, score)]
    return sorted(rows, key=lambda r: -r["score"])
