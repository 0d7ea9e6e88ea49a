"""The Hugging Face engine: the one model and its tokenizer, `model.generate` (or contrastive search) behind
a lock, streamed through a thread. Routes reach the model only through an engine's `__call__` and `stream`."""
import queue
import threading
import time

import torch
from transformers import StoppingCriteria, TextIteratorStreamer

from ..generation import control_processor, encode_prompt, max_context, run_model, split_outputs


class Cancelled(StoppingCriteria):
    """A stopping criterion that ends generation once `event` is set (a streaming client went away)."""

    def __init__(self, event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class Piece(str):
    """A streamed text piece that also carries the trace of the tokens generated since the last piece."""
    tokens = None


class Streamer(TextIteratorStreamer):
    """Decodes the new tokens after the prompt's, so the first piece keeps its leading space
    (decoded alone, "▁영화" loses it and the page would show "오늘 영화는영화"). With a `trace`, each
    token's step is resolved as it arrives, so a piece can carry its tokens' probabilities.

    The generating thread only hands over token ids (put and end are a queue put, plus the trace's resolve, which
    must happen before the next step); the text is decoded in the reader's thread, in __next__. So the batcher's
    model thread, which feeds every running stream, does not spend its steps decoding text for 30 streams."""

    def __init__(self, tokenizer, trace=None, **kwargs):
        super().__init__(tokenizer, **kwargs)
        self.trace, self.ids, self.got_prompt = trace, queue.SimpleQueue(), False

    def put(self, value):  # the generating thread
        if self.trace is not None and self.got_prompt:
            self.trace.resolve(value)
        self.got_prompt = True
        self.ids.put(value)

    def end(self):  # the generating thread
        self.ids.put(None)

    def __next__(self):  # the reader's thread: decode what has arrived until a text piece is ready
        while self.text_queue.empty():
            value = self.ids.get(timeout=self.timeout)
            if value is None:
                super().end()
            elif self.next_tokens_are_prompt:  # the first call carries the prompt
                self.next_tokens_are_prompt = False
                self.token_cache = value.reshape(-1).tolist()
                self.print_len = len(self.tokenizer.decode(self.token_cache, **self.decode_kwargs))
            else:
                super().put(value)
        return super().__next__()


def summarize(tokenizer, n_prompt, out, seconds, max_new_tokens):
    """Texts (prompt included), completions (without), token counts and why each sequence stopped."""
    eos = tokenizer.eos_token_id
    texts, completions = split_outputs(tokenizer, out, n_prompt)
    reasons, n_new = [], 0
    for seq in out:
        new = seq[n_prompt:].tolist()
        if eos in new:  # what follows the first </s> is padding
            new = new[:new.index(eos) + 1]
        n_new += len(new)
        reasons.append("stop" if eos in new else "length" if len(new) >= max_new_tokens else "time")
    return dict(texts=texts, completions=completions, finish_reasons=reasons, finish_reason=reasons[0],
                prompt_tokens=n_prompt, new_tokens=n_new, seconds=round(seconds, 4),
                tokens_per_s=round(n_new / seconds, 1) if seconds > 0 else None)


def stream_from(call, tokenizer, ids, params, trace=None):
    """Yield text pieces while `call(ids, params, streamer, cancel)` runs in a thread, then its summary dict.
    With a `trace`, each piece is a Piece whose .tokens are the token dicts resolved since the last one.
    Closing the generator (the client hung up) cancels the call within one step."""
    streamer = Streamer(tokenizer, trace, skip_prompt=True, skip_special_tokens=True)
    cancel, result, sent = threading.Event(), {}, 0

    def work():
        try:
            result.update(call(ids, params, streamer, cancel))
        except Exception as e:  # generate never reached streamer.end(): unblock the reader
            result["error"] = e
            streamer.end()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        for text in streamer:
            if text:
                piece = Piece(text)
                if trace is not None and trace.rows:
                    piece.tokens, sent = trace.rows[0][sent:], len(trace.rows[0])
                yield piece
    finally:  # also runs when the client hangs up and the server closes this generator
        cancel.set()
        thread.join()  # a cancelled generate stops within one step; the summary comes after it
    if "error" in result:
        raise result["error"]
    yield result


def encode_checked(tokenizer, limit, prompt, params, field="max_new_tokens"):
    """Prompt ids after checking what depends on the model: context length (`limit`), FUDGE's tokenizer."""
    control_processor(params, tokenizer)
    return encode_prompt(tokenizer, prompt, params["max_new_tokens"], limit, field)


def new_trace(tokenizer, ids, params, top_tokens):
    """A Trace of the coming generation when top_tokens > 0 (see decoding/trace.py), else None."""
    from ..decoding.trace import Trace
    return Trace(tokenizer, params, ids, top_tokens) if top_tokens else None


@torch.inference_mode()
def run_traced(model, tokenizer, ids, params, streamer=None, cancel=None, max_time=None, top_tokens=0):
    """run_model on one request, timed, as summarize()'s dict; with a trace (the streamer's, or a new one for
    top_tokens > 0) the dict also gets "tokens". The caller holds the model (a lock or the model thread)."""
    trace = getattr(streamer, "trace", None) or new_trace(tokenizer, ids, params, top_tokens)
    start = time.perf_counter()
    if trace is not None:
        trace.attach(model)
    try:
        out = run_model(model, tokenizer, ids, params, streamer, [Cancelled(cancel)] if cancel else None, max_time,
                        trace=trace).cpu()
    finally:
        if trace is not None:
            trace.close()
    summary = summarize(tokenizer, ids.shape[1], out, time.perf_counter() - start, params["max_new_tokens"])
    if trace is not None:
        summary["tokens"] = trace.finish(out, ids.shape[1], tokenizer.eos_token_id)
    return summary


class Generator:
    """The one model and its tokenizer behind a lock: model calls run one at a time."""
    engine = "hf"

    def __init__(self, model, tokenizer, max_time=30.0):
        self.model, self.tokenizer, self.max_time = model, tokenizer, max_time
        self.lock = threading.Lock()
        self.max_context = max_context(model)

    def encode(self, prompt, params, field="max_new_tokens"):
        return encode_checked(self.tokenizer, self.max_context, prompt, params, field)

    def __call__(self, ids, params, streamer=None, cancel=None, top_tokens=0):
        """model.generate on checked params, one call at a time; returns summarize()'s dict, plus "tokens"
        (per sequence, each token's probabilities and `top_tokens` alternatives) when top_tokens > 0."""
        with self.lock:
            return run_traced(self.model, self.tokenizer, ids, params, streamer, cancel, self.max_time, top_tokens)

    def stream(self, ids, params, top_tokens=0):
        """Yield text pieces while generating, then the summary dict."""
        return stream_from(self, self.tokenizer, ids, params, new_trace(self.tokenizer, ids, params, top_tokens))
