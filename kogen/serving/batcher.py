"""Dynamic batching: one thread owns the model and runs every request that arrives while it is busy in the
same forward pass. This is where a request waits: in `Batcher.jobs`, until the model thread takes it.

Design (a decode loop with per-row parameters; requests join and leave between steps):

    request thread                     model thread (Batcher.run, the only one that touches the model)
    ──────────────                     ──────────────────────────────────────────────────────────────
    __call__(ids, params, streamer,    loop:
             cancel) -> Job in queue     take queued jobs (up to max_batch rows)
    waits on job.done                    - beam / contrastive / FUDGE / n>1 / a trace (top_tokens): run alone with
                                           run_model (as hf.Generator)
                                         - the rest join the batch: their prompts go through the model as one
                                           left-padded prefill, their cache is left-padded and stacked under the rows
                                           already running
                                       one step for all rows: forward on each row's last token (attention mask
                                       hides the padding, position ids count only real tokens)
                                       masks every row shares, on all rows at once (the model's suppressed tokens,
                                       </s> before min_new_tokens); per row: its own processors (repetition penalty,
                                       n-gram ban, then temperature / top-k / top-p), argmax (plain greedy rows: one
                                       argmax together) or a sample from its own torch.Generator(seed), stream the
                                       token, finish on </s>, length,
                                       max_time, a cancelled stream or an error in that row alone; finished rows
                                       leave the cache

Why this keeps each request's meaning: every row gets exactly the processors `model.generate` would build for its
own params, in generate's order (the two masks go first for all rows: a mask sets scores to -inf, which every other
processor and warper leaves at -inf, so moving it first changes nothing), and samples with `torch.multinomial`
from a generator seeded with its own seed (what `torch.manual_seed(seed)` does for generate alone). So a seeded
request gives the same text alone or in a batch, and a greedy one the text of `model.generate` — up to float
rounding: a padded batch adds the same numbers in another order, which can flip a near-tie (not seen on the tests'
prompts; say so if you compare long texts).

Why it is faster: each step reads the weights once for all rows (a CPU matmul on 16 rows costs little more than on
one), and a request that arrives mid-generation starts at the next step instead of waiting for the others to end.

The engine interface (what Service, the A/B and study routes call; a ct2 or remote engine offers the same):
    engine        a name for /healthz ("hf")
    max_context   positions the model has
    encode(prompt, params, field) -> (1, P) ids, after the model-dependent checks (context, FUDGE's tokenizer)
    __call__(ids, params, streamer=None, cancel=None, top_tokens=0) -> hf.summarize()'s dict (+ "tokens" when
                  traced); `streamer` gets the prompt then each token (put/end, like generate's), `cancel`
                  (threading.Event) ends it within a step; top_tokens > 0 needs an engine whose `traces` is true
    stream(ids, params, top_tokens=0) -> text pieces (hf.Piece with .tokens when traced), then the summary dict
                  (closing it cancels)
    queued        requests waiting for the model thread
"""
import queue
import threading
import time
from dataclasses import dataclass, field

import torch
from transformers.cache_utils import DynamicCache

from ..generation import ParamError, max_context, penalty_processors, sampling_warpers, suppressed_tokens
from .hf import encode_checked, new_trace, run_traced, stream_from, summarize

MAX_BATCH = 32  # rows in one forward pass
STOP = object()  # put in the queue by close(): the model thread finishes what it runs, then ends
CLOSED = "서버가 멈추는 중이라 생성할 수 없습니다. 서버를 다시 켜고 보내세요."


@dataclass(eq=False)  # a job is itself, not its fields (tensors do not compare to one bool)
class Job:
    ids: torch.Tensor  # (1, P) prompt ids
    params: dict
    streamer: object = None
    cancel: threading.Event = None
    done: threading.Event = field(default_factory=threading.Event)
    result: dict = None
    output: tuple = None  # or what hf.summarize() needs after the prompt (n_prompt, ids, seconds, max_new_tokens):
    #                       the caller's thread decodes it, so the model thread does not spend a step's time on text
    error: BaseException = None
    top_tokens: int = 0  # > 0: a trace of each token's probabilities (runs alone, see decoding/trace.py)

    @property
    def traced(self):
        return bool(self.top_tokens) or getattr(self.streamer, "trace", None) is not None


def batchable(params):
    """Rows of the decode loop: one sequence, no beams, no contrastive search, no FUDGE (those run alone)."""
    return (params["num_beams"] == 1 and params["num_return_sequences"] == 1 and params["penalty_alpha"] == 0
            and not params["control"])


class Row:
    """One request in the decode loop: its tokens, its processors, its random generator."""

    def __init__(self, job, tokenizer):
        self.job, self.params, self.eos = job, job.params, tokenizer.eos_token_id
        self.tokens = job.ids[0].tolist()
        self.n_prompt, self.start = len(self.tokens), time.perf_counter()
        p = self.params
        # generate's processors for these params, then its warpers, in its order (the masks: Batcher.masked)
        self.procs = list(penalty_processors(p)) + list(sampling_warpers(p))
        self.plain = not self.procs and not p["do_sample"]  # plain greedy: its token is the batch's argmax
        self.rng = torch.Generator().manual_seed(p["seed"]) if p["seed"] is not None else None
        if job.streamer:
            job.streamer.put(job.ids[0])

    @property
    def n_new(self):
        return len(self.tokens) - self.n_prompt

    def pick(self, scores):
        """The next token from this row's (V,) scores, the shared masks already applied."""
        ids, scores = torch.tensor([self.tokens]), scores[None]
        for proc in self.procs:  # one by one: LogitsProcessorList.__call__ inspects every signature on every call
            scores = proc(ids, scores)
        if not self.params["do_sample"]:
            return int(scores.argmax(-1))
        return int(torch.multinomial(scores.softmax(-1), 1, generator=self.rng))

    def add(self, token, max_time):
        """Append `token`; True when the row is finished."""
        self.tokens.append(token)
        if self.job.streamer:
            self.job.streamer.put(torch.tensor([token]))
        return (token == self.eos or self.n_new >= self.params["max_new_tokens"]
                or (max_time and time.perf_counter() - self.start > max_time))


class QueuedEngine:
    """What every in-process engine shares: a queue of Jobs that one model thread (`run`) serves."""
    engine = "?"

    def __init__(self, model, tokenizer, max_time):
        self.model, self.tokenizer, self.max_time = model, tokenizer, max_time
        self.max_context = max_context(model)
        self.jobs, self.closed = queue.Queue(), False
        self.lock = threading.Lock()  # held while the model thread works; the step-5 inference_fn takes it too
        self.thread = threading.Thread(target=self.run, daemon=True, name=f"kogen-{self.engine}")
        self.thread.start()

    def close(self, timeout=30):
        """End the model thread after the requests it runs (stop_server calls this); later requests are refused."""
        self.closed = True
        self.jobs.put(STOP)
        self.thread.join(timeout)

    def refuse_queued(self):
        """After STOP: a request that raced close() into the queue gets an error instead of waiting forever."""
        while not self.jobs.empty():
            job = self.jobs.get()
            if job is not STOP:
                job.error = RuntimeError(CLOSED)
                job.done.set()

    @property
    def queued(self):
        return self.jobs.qsize()

    def encode(self, prompt, params, field="max_new_tokens"):
        return encode_checked(self.tokenizer, self.max_context, prompt, params, field)

    traces = True  # can report each token's probabilities (top_tokens, logprobs)

    def check_trace(self, top_tokens):
        if top_tokens and not self.traces:
            raise ParamError("top_tokens", f"토큰별 확률(top_tokens, logprobs)은 {self.engine} 엔진에서 볼 수 없습니다. 빼고 "
                                           f"보내거나 kogen serve --engine hf로 서버를 켜세요.")

    def __call__(self, ids, params, streamer=None, cancel=None, top_tokens=0):
        """Queue the request and wait for the model thread; returns summarize()'s dict or raises its error."""
        self.check_trace(top_tokens)
        if self.closed:
            raise RuntimeError(CLOSED)
        job = Job(ids, params, streamer, cancel, top_tokens=top_tokens)
        self.jobs.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result if job.output is None else summarize(self.tokenizer, *job.output)

    def stream(self, ids, params, top_tokens=0):
        """Yield text pieces while generating, then the summary dict."""
        self.check_trace(top_tokens)
        return stream_from(self, self.tokenizer, ids, params, new_trace(self.tokenizer, ids, params, top_tokens))

    def run(self):
        raise NotImplementedError


class Batcher(QueuedEngine):
    """The Hugging Face model behind a queue and one model thread that batches what it finds there."""
    engine = "hf"

    def __init__(self, model, tokenizer, max_time=30.0, max_batch=MAX_BATCH):
        self.max_batch = max_batch
        self.rows, self.cache, self.mask, self.stopping = [], None, None, False
        self.batch_sizes = []  # rows per step, for tests and the benchmark (last 1000)
        self.suppress = suppressed_tokens(model)
        super().__init__(model, tokenizer, max_time)

    @property
    def running(self):
        return len(self.rows)

    # --- the model thread -------------------------------------------------------------------------

    def run(self):
        while not (self.stopping and not self.rows):
            joining = self.take(block=not self.rows and not self.stopping)
            with self.lock, torch.inference_mode():
                self.step(joining)
        self.refuse_queued()

    def take(self, block):
        """Queued jobs that join the batch now; jobs that cannot be batched run alone right here. Meeting STOP sets
        `stopping`: nothing more is taken and the loop ends when the running rows are done."""
        joining = []
        while not self.stopping and len(self.rows) + len(joining) < self.max_batch:
            try:
                job = self.jobs.get(block=block and not joining)
            except queue.Empty:
                break
            if job is STOP:
                self.stopping = True
            elif batchable(job.params) and not job.traced:
                joining.append(job)
            else:
                with self.lock:
                    self.alone(job)
        return joining

    def alone(self, job):
        """run_model, as hf.Generator does: beam search, contrastive search, FUDGE, several sequences, a trace."""
        try:
            job.result = run_traced(self.model, self.tokenizer, job.ids, job.params, job.streamer, job.cancel,
                                    self.max_time, job.top_tokens)
        except Exception as e:
            job.error = e
        job.done.set()

    def step(self, joining):
        """One token for every running row, plus the first token of every joining row."""
        try:
            logits = []
            if self.rows:
                logits.append(self.forward_step())
            if joining:
                new_rows = [self.start_row(job) for job in joining]
                joining = [r for r in new_rows if r is not None]
                if joining:
                    logits.append(self.prefill(joining))
                    self.rows += joining
            if not self.rows:
                return
            logits = torch.cat(logits)
        except Exception as e:  # the model itself failed: every row in this step fails
            for row in self.rows + [r for r in joining if isinstance(r, Row)]:
                self.finish(row, error=e)
            self.rows, self.cache, self.mask = [], None, None
            return
        self.batch_sizes = (self.batch_sizes + [len(self.rows)])[-1000:]
        scores = self.masked(logits)
        greedy = scores.argmax(-1).tolist()
        keep = []
        for i, row in enumerate(self.rows):
            try:
                if row.job.cancel is not None and row.job.cancel.is_set():
                    self.finish(row)
                elif row.add(greedy[i] if row.plain else row.pick(scores[i]), self.max_time):
                    self.finish(row)
                else:
                    keep.append(i)
            except Exception as e:  # this row alone fails; the others go on
                self.finish(row, error=e)
        self.keep(keep)

    def masked(self, logits):
        """(B, V) float scores with the masks that are one rule for every row applied to all rows at once: the model's
        suppressed tokens and no </s> before a row's min_new_tokens. The rules of SuppressTokensLogitsProcessor and
        MinNewTokensLengthLogitsProcessor, written as two index assignments because those processors work on one
        length of input_ids (rows differ here) and compare the whole vocabulary on every call: through them, row by
        row, these two masks took a third of a 16-row step."""
        scores = logits.float()
        if self.suppress:
            scores[:, self.suppress] = -float("inf")
        short = [i for i, row in enumerate(self.rows) if row.n_new < row.params["min_new_tokens"]]
        if short:
            scores[short, self.tokenizer.eos_token_id] = -float("inf")
        return scores

    def start_row(self, job):
        try:
            return Row(job, self.tokenizer)
        except Exception as e:
            job.error = e
            job.done.set()

    def forward_step(self):
        """(B, V) logits of the running rows' next tokens, one forward pass on their last tokens."""
        last = torch.tensor([[row.tokens[-1]] for row in self.rows])
        positions = self.mask.sum(-1, keepdim=True)  # only real tokens count: padding has no position
        self.mask = torch.cat([self.mask, torch.ones_like(last)], 1)
        out = self.model(input_ids=last.to(self.model.device), attention_mask=self.mask.to(self.model.device),
                         position_ids=positions.to(self.model.device), cache=self.cache, use_cache=True)
        self.cache = out.cache
        return out.logits[:, -1].cpu()

    def prefill(self, rows):
        """(b, V) logits after the joining rows' prompts (one left-padded pass); their cache joins the batch's."""
        width = max(len(r.tokens) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(r.tokens)) + r.tokens for r in rows])
        mask = torch.tensor([[0] * (width - len(r.tokens)) + [1] * len(r.tokens) for r in rows])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        dev = self.model.device
        out = self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=positions.to(dev),
                         cache=DynamicCache(), use_cache=True)
        self.merge(out.cache, mask)
        return out.logits[:, -1].cpu()

    def merge(self, cache, mask):
        """Stack a new (b, H, T', D) cache under the running one, left-padding the shorter to the same length."""
        if self.cache is None:
            self.cache, self.mask = cache, mask
            return
        width = max(self.mask.shape[1], mask.shape[1])
        for old, new in zip(self.cache.layers, cache.layers):
            old.keys = torch.cat([left_pad(old.keys, width), left_pad(new.keys, width)])
            old.values = torch.cat([left_pad(old.values, width), left_pad(new.values, width)])
        self.mask = torch.cat([left_pad(self.mask, width), left_pad(mask, width)])

    def keep(self, indices):
        """Drop finished rows from the batch, and the columns that are padding in every row left."""
        if len(indices) == len(self.rows):
            return
        self.rows = [self.rows[i] for i in indices]
        if not self.rows:
            self.cache, self.mask = None, None
            return
        index = torch.tensor(indices)
        self.mask = self.mask[index]
        first = int(self.mask.any(0).int().argmax())  # leading columns with no real token left
        self.mask = self.mask[:, first:]
        for layer in self.cache.layers:
            layer.keys = layer.keys[index.to(layer.keys.device), :, first:]
            layer.values = layer.values[index.to(layer.values.device), :, first:]

    def finish(self, row, error=None):
        job = row.job
        if error is None:
            job.output = (row.n_prompt, torch.tensor([row.tokens]), time.perf_counter() - row.start,
                          row.params["max_new_tokens"])
        else:
            job.error = error
        if job.streamer:
            job.streamer.end()
        job.done.set()


def left_pad(x, width):
    """Zeros on the left of the time axis (dim 2 of a (B, H, T, D) cache, dim 1 of a (B, T) mask) up to `width`."""
    dim = 2 if x.dim() == 4 else 1
    missing = width - x.shape[dim]
    if missing == 0:
        return x
    shape = list(x.shape)
    shape[dim] = missing
    return torch.cat([x.new_zeros(shape), x], dim)
