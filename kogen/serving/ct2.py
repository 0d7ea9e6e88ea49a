"""The CTranslate2 engine (`kogen serve --engine ct2 --compute-type int8`): the served model converted once,
then CTranslate2's C++ decoder behind the same interface as the Hugging Face engine (see batcher.py).

Conversion: the loaded model and kogen's tokenizer (not AutoTokenizer, which breaks KoGPT2's vocabulary) go
through ctranslate2's TransformersConverter into the user cache (KOGEN_CACHE or ~/.cache/kogen/ct2/<hash of
config and weights>), written to a temporary folder and renamed, so a killed conversion leaves nothing half-made.
It is stored in float32; int8/int16/float16 are applied when it is loaded (`compute_type`).

Batching: the model thread takes the oldest queued request and every queued one with the same decoding
parameters, and runs them as one `generate_batch` call; a callback streams each row's tokens and stops a row
whose client hung up or whose max_time passed. Requests that arrive while a batch runs wait for the next one
(CTranslate2 does not let rows join a running batch).

What this engine does not do, answered with a 400 before anything runs (listed in the README):
contrastive search (penalty_alpha > 0), FUDGE (control), several samples at once (do_sample with
num_return_sequences > 1) and a seeded sample (do_sample with seed: ctranslate2.set_random_seed does not reach the
thread that samples, so the same seed did not give the same text here). Greedy and beam search in float32 give the
Hugging Face engine's tokens; repetition_penalty is CTranslate2's own and can pick other tokens than HF's.
"""
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from ..generation import ParamError, suppressed_tokens
from .batcher import STOP, QueuedEngine

UNSUPPORTED = {"penalty_alpha": "contrastive search(penalty_alpha>0)", "control": "감정 제어(FUDGE, control)"}


def available():
    import importlib.util
    return importlib.util.find_spec("ctranslate2") is not None


def cache_root():
    return Path(os.environ.get("KOGEN_CACHE") or Path.home() / ".cache" / "kogen") / "ct2"


def fingerprint(model):
    """A hash of the config and the weights: a fine-tuned checkpoint gets its own conversion."""
    h = hashlib.sha256(model.config.to_json_string().encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def convert(model, tokenizer, root=None):
    """The CTranslate2 folder for `model` (converted now if the cache has none); atomic: temp folder, then rename."""
    from ctranslate2.converters import TransformersConverter

    class Converter(TransformersConverter):  # the model and tokenizer we already loaded, not from_pretrained's
        def load_model(self, *args, **kwargs):
            return model

        def load_tokenizer(self, *args, **kwargs):
            return tokenizer

    root = Path(root or cache_root())
    folder = root / fingerprint(model)
    if (folder / "model.bin").exists():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".converting-"))
    try:
        model.config.save_pretrained(tmp / "hf")  # AutoConfig reads it; weights and tokenizer come from memory
        Converter(str(tmp / "hf")).convert(str(tmp / "ct2"), quantization="float32", force=True)
        try:
            os.rename(tmp / "ct2", folder)
        except OSError:  # another process finished first: its folder is as good as ours
            if not (folder / "model.bin").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def group_key(params):
    """Requests with equal keys share one generate_batch call (the seed only matters to sampling, refused here)."""
    return json.dumps({k: v for k, v in params.items() if k != "seed"}, sort_keys=True)


SMALL_MODEL = 20_000_000  # parameters: below this CTranslate2 gets one CPU thread (see cpu_threads)


def cpu_threads(model):
    """CTranslate2's threads per batch: torch's count, except one for a small model. Measured on 2 cores
    (benchmarks/bench_server.py, one client): the bundled 5M model ran 1,595 tok/s on one thread and 360 on two (its
    threads wait on each other and on the server's), KoGPT2's shape 52 on one and 58 on two."""
    small = sum(p.numel() for p in model.parameters()) < SMALL_MODEL
    return 1 if small else torch.get_num_threads()


class Ct2Engine(QueuedEngine):
    engine = "ct2"
    traces = False  # CTranslate2 gives the chosen tokens' log-probabilities, not the processed distribution

    def __init__(self, model, tokenizer, compute_type="int8", max_time=30.0, max_batch=32, folder=None):
        import ctranslate2
        self.folder = folder or convert(model, tokenizer)
        device = "cuda" if str(model.device).startswith("cuda") else "cpu"
        self.generator = ctranslate2.Generator(str(self.folder), device=device, compute_type=compute_type,
                                               intra_threads=cpu_threads(model))
        self.compute_type, self.max_batch, self.pending = compute_type, max_batch, []
        suppress = suppressed_tokens(model) or []
        self.suppress = [[t] for t in tokenizer.convert_ids_to_tokens(list(suppress))] or None
        super().__init__(model, tokenizer, max_time)

    def encode(self, prompt, params, field="max_new_tokens"):
        for name, what in UNSUPPORTED.items():
            if params[name]:
                raise ParamError(name, f"{what}는 ct2 엔진에서 쓸 수 없습니다. 빼고 보내거나 kogen serve --engine hf로 "
                                       f"서버를 켜세요.")
        if params["do_sample"] and params["num_return_sequences"] > 1:
            raise ParamError("num_return_sequences", "ct2 엔진은 샘플링 결과를 한 번에 하나만 만듭니다. 1로 하거나 "
                                                     "kogen serve --engine hf로 서버를 켜세요.")
        if params["do_sample"] and params["seed"] is not None:
            raise ParamError("seed", "ct2 엔진은 요청별 시드를 지킬 수 없습니다. seed를 빼거나 kogen serve --engine hf로 "
                                     "서버를 켜세요.")
        return super().encode(prompt, params, field)

    def run(self):
        stopping = False
        while True:  # nothing below raises: the queue, json keys and list filters; run_group's errors go to its jobs
            if not self.pending and not stopping:
                self.pending.append(self.jobs.get())
            while not stopping and not self.jobs.empty():
                self.pending.append(self.jobs.get())
            stopping = stopping or STOP in self.pending
            self.pending = [j for j in self.pending if j is not STOP]
            if not self.pending:
                break
            key = group_key(self.pending[0].params)
            group = [j for j in self.pending if group_key(j.params) == key][:self.max_batch]
            self.pending = [j for j in self.pending if j not in group]
            with self.lock:
                try:
                    self.run_group(group)
                except Exception as e:  # never let the model thread die: the waiting requests get the error
                    for job in group:
                        if not job.done.is_set():
                            job.error = e
                            job.done.set()
        self.refuse_queued()

    def run_group(self, jobs):
        """One generate_batch call for jobs with the same parameters; each job gets its own summary."""
        p, start = jobs[0].params, time.perf_counter()
        prompts = [self.tokenizer.convert_ids_to_tokens(job.ids[0].tolist()) for job in jobs]
        for job in jobs:
            if job.streamer:
                job.streamer.put(job.ids[0])

        def step(result):  # per generated token of greedy/sampled rows; True stops that row
            job = jobs[result.batch_id]
            if job.streamer:
                job.streamer.put(torch.tensor([result.token_id]))
            return bool((job.cancel is not None and job.cancel.is_set())
                        or (self.max_time and time.perf_counter() - start > self.max_time))

        try:
            results = self.generator.generate_batch(
                prompts, max_length=p["max_new_tokens"], min_length=p["min_new_tokens"],
                include_prompt_in_result=False, return_end_token=True, beam_size=p["num_beams"],
                num_hypotheses=p["num_return_sequences"], repetition_penalty=p["repetition_penalty"],
                no_repeat_ngram_size=p["no_repeat_ngram_size"], suppress_sequences=self.suppress,
                sampling_topk=(p["top_k"] or 0) if p["do_sample"] else 1,
                sampling_topp=p["top_p"] if p["do_sample"] else 1.0,
                sampling_temperature=p["temperature"] if p["do_sample"] else 1.0,
                callback=step if p["num_beams"] == 1 else None)
        except Exception as e:
            results = [e] * len(jobs)
        seconds = time.perf_counter() - start
        for job, result in zip(jobs, results):
            if isinstance(result, Exception):
                job.error = result
            else:
                prompt = job.ids[0].tolist()
                out = pad_rows([prompt + seq for seq in result.sequences_ids], self.tokenizer.pad_token_id)
                job.output = (len(prompt), out, seconds, p["max_new_tokens"])
            if job.streamer:
                job.streamer.end()
            job.done.set()


def pad_rows(rows, pad):
    width = max(map(len, rows))
    return torch.tensor([row + [pad] * (width - len(row)) for row in rows])
