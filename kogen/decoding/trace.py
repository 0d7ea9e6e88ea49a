"""See inside generation: for every generated token, its probability before and after the decoding
processors and the most likely alternatives (/api/generate's top_tokens, OpenAI's logprobs, the page's
tinted tokens).

How it is read off `model.generate` without changing what it writes:
  - a forward hook on the LM head keeps the step's raw next-token logits (before any processor);
  - a LogitsProcessor placed last in generate's custom list sees the scores after the penalties and FUDGE,
    applies copies of the warpers that generate runs after custom processors (temperature, top-k, top-p,
    in HF's order) and keeps the distribution the token is then drawn from;
  - once the token is known (the streamer's put, or the next step's input_ids) the step is turned into a small
    dict and the vocabulary-sized vectors are dropped: memory stays O(vocabulary), not O(steps x vocabulary).
"""
import torch
from transformers import LogitsProcessor

from ..generation import sampling_warpers

MAX_TOP_TOKENS = 20


def show_token(tokenizer, token_id):
    """A vocabulary entry as a reader sees it: '▁영화' -> ' 영화', special tokens by name."""
    return tokenizer.convert_ids_to_tokens(int(token_id)).replace("▁", " ").replace("Ġ", " ")


class Trace(LogitsProcessor):
    """Per-row lists of token dicts: {"id", "text", "p_raw", "p", "logprob", "top": [{"id", "token", "p_raw", "p"}]}.
    `text` is the piece the token adds to the decoded text (so the texts join into the completion)."""

    def __init__(self, tokenizer, params, prompt_ids, top_n):
        self.tokenizer, self.top_n, self.warpers = tokenizer, top_n, sampling_warpers(params)
        self.prompt = prompt_ids[0].tolist()
        self.rows, self.ids, self.texts = None, None, None
        self.raw = self.pending = self.hook = None

    def attach(self, model):
        """Start watching `model`'s LM head; call close() when its generate is over (the hook is per model)."""
        self.hook = model.get_output_embeddings().register_forward_hook(self._keep_raw)
        return self

    def close(self):
        if self.hook is not None:
            self.hook.remove()
            self.hook = None

    def _keep_raw(self, module, inputs, output):
        self.raw = output[:, -1, :].detach().float()  # (B, V): the step's logits before any processor

    @torch.no_grad()
    def __call__(self, input_ids, scores):
        if self.pending is not None:  # the previous step's token is the last input id now
            self.resolve(input_ids[:, -1])
        final = self.warpers(input_ids, scores.clone()).float().softmax(-1)  # what the token is drawn from
        self.pending = (self.raw.log_softmax(-1), final)
        return scores

    def resolve(self, tokens):
        """Turn the pending step into one dict per row, now that its tokens (B,) are known."""
        if self.pending is None:
            return
        raw_lp, final = self.pending
        self.pending = None
        tokens = tokens.reshape(-1).tolist()
        if self.rows is None:
            self.rows, self.ids = [[] for _ in tokens], [[] for _ in tokens]
            self.texts = [self.tokenizer.decode(self.prompt, skip_special_tokens=True)] * len(tokens)
        top_p, top_ids = raw_lp.exp().topk(self.top_n, dim=-1) if self.top_n else (None, None)
        for b, tok in enumerate(tokens):
            self.ids[b].append(tok)
            text = self.tokenizer.decode(self.prompt + self.ids[b], skip_special_tokens=True)
            piece = text[len(self.texts[b]):] if text.startswith(self.texts[b]) else \
                self.tokenizer.decode([tok], skip_special_tokens=True)
            self.texts[b] = text
            top = [] if top_ids is None else [
                dict(id=int(i), token=show_token(self.tokenizer, i), p_raw=round(float(p), 6),
                     p=round(float(final[b, i]), 6)) for p, i in zip(top_p[b], top_ids[b])]
            self.rows[b].append(dict(id=tok, text=piece, token=show_token(self.tokenizer, tok),
                                     p_raw=round(float(raw_lp[b, tok].exp()), 6), p=round(float(final[b, tok]), 6),
                                     logprob=round(float(raw_lp[b, tok]), 6), top=top))

    def finish(self, out, n_prompt, eos_token_id):
        """Resolve the last step from the output ids and cut each row where its sequence really ended
        (after </s> generate pads finished rows). Returns the per-row lists."""
        if self.pending is not None and out.shape[1] > n_prompt:
            self.resolve(out[:, -1])
        rows = self.rows or [[] for _ in range(out.shape[0])]
        for b, seq in enumerate(out[:, n_prompt:].tolist()):
            n = seq.index(eos_token_id) + 1 if eos_token_id in seq else len(seq)
            rows[b] = rows[b][:n]
        return rows


def check_top_tokens(value, params, field="top_tokens", high=MAX_TOP_TOKENS):
    """The number of alternatives to report (0 = none), checked against what the trace can follow."""
    from ..generation import Param, ParamError, coerce
    n = coerce(Param(field, int, 0, 0, high), 0 if value is None else value)
    if value is not None and (params["num_beams"] > 1 or params["penalty_alpha"] > 0):
        if n or field != "top_tokens":  # OpenAI's logprobs=0 still asks for the chosen tokens' logprobs
            raise ParamError(field, "토큰별 확률은 한 줄씩 토큰을 고르는 방법(greedy, 샘플링)에서만 볼 수 있습니다. "
                                    "num_beams=1, penalty_alpha=0으로 하거나 이 항목을 빼세요.")
    return n
