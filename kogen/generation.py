"""Generation parameters: one table of names, ranges and Korean help, shared by the CLI, the web
API and its UI, plus the call that turns checked parameters into `model.generate` text.
"""
import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Param:
    name: str
    kind: type          # int, float, bool or str (str: one of `choices`)
    default: object
    low: float = None   # inclusive unless low_open
    high: float = None
    label: str = ""     # Korean, for the UI
    help: str = ""      # one line, Korean
    low_open: bool = False
    choices: tuple = ()  # str: the accepted values (aliases map onto them in `coerce`)


PARAMS = [
    Param("max_new_tokens", int, 50, 1, 512, "최대 새 토큰 수", "프롬프트 뒤에 새로 만들 토큰의 최대 개수"),
    Param("min_new_tokens", int, 0, 0, 512, "최소 새 토큰 수", "이만큼 만들기 전에는 </s>(끝)를 내지 않습니다"),
    Param("do_sample", bool, False, label="샘플링", help="끄면 greedy/beam(결정적), 켜면 확률에 따라 무작위로 고릅니다"),
    Param("num_beams", int, 1, 1, 8, "빔 개수", "1이면 greedy, 2 이상이면 beam search(후보 여러 개를 동시에 추적)"),
    Param("top_k", int, 50, 0, 1000, "top-k", "확률 상위 k개 토큰 중에서만 뽑기(0이면 끔)"),
    Param("top_p", float, 1.0, 0.0, 1.0, "top-p", "누적 확률이 p가 될 때까지의 토큰 중에서만 뽑기(nucleus)", low_open=True),
    Param("temperature", float, 1.0, 0.0, 5.0, "temperature", "낮으면 보수적, 높으면 다양하고 엉뚱해집니다", low_open=True),
    Param("repetition_penalty", float, 1.0, 1.0, 5.0, "반복 페널티", "이미 나온 토큰의 확률을 낮춥니다(1.0이면 끔)"),
    Param("no_repeat_ngram_size", int, 0, 0, 10, "반복 금지 n-gram", "같은 n-gram이 두 번 나오지 않게 막습니다(0이면 끔)"),
    Param("num_return_sequences", int, 1, 1, 8, "생성 개수", "한 번에 만들 결과 수(beam이면 빔 개수 이하)"),
    Param("seed", int, None, 0, 2**31 - 1, "시드", "같은 시드면 샘플링 결과가 같습니다(비우면 매번 다름)"),
    Param("penalty_alpha", float, 0.0, 0.0, 1.0, "대조 탐색 α",
          "0보다 크면 contrastive search: top_k개 후보 중 확률이 높고 앞 내용과 덜 닮은 토큰(보통 α=0.6, k=4)"),
    Param("control", str, None, label="제어(FUDGE)",
          help="긍정·부정: 그 감정으로 끝날 것 같은 토큰에, 무해: 유해하지 않게 끝날 것 같은 토큰에 판별기가 가산점을 "
               "줍니다(비우면 끔)",
          choices=("긍정", "부정", "무해")),
    Param("control_strength", float, 4.0, 0.0, 10.0, "제어 강도 λ",
          "FUDGE가 더하는 λ·log P(레이블|문장): 클수록 레이블은 또렷하지만 문장이 덜 자연스러워집니다"),
]
PARAM_BY_NAME = {p.name: p for p in PARAMS}
MAX_PROMPT_CHARS = 1000

# Named decoding strategies (the web UI's buttons). A preset sets only decoding knobs; length and
# seed stay as the user chose. Unlisted knobs go back to their PARAMS default.
PRESETS = {
    "greedy": dict(label="greedy", help="매 단계 가장 확률 높은 토큰 하나(결정적, 반복되기 쉬움)",
                   params=dict(do_sample=False, num_beams=1)),
    "beam": dict(label="beam search", help="후보 4개를 함께 추적해 전체 확률이 높은 문장(결정적)",
                 params=dict(do_sample=False, num_beams=4)),
    "top_k": dict(label="top-k 샘플링", help="상위 50개 토큰 중에서 확률대로 뽑기",
                  params=dict(do_sample=True, top_k=50)),
    "top_p": dict(label="top-p 샘플링", help="누적 확률 0.92까지의 토큰 중에서 뽑기(nucleus)",
                  params=dict(do_sample=True, top_k=0, top_p=0.92)),
    "contrastive": dict(label="contrastive", help="대조 탐색: 상위 4개 후보 중 확률이 높고 앞 내용과 덜 닮은 토큰(α=0.6, 결정적)",
                        params=dict(do_sample=False, num_beams=1, top_k=4, penalty_alpha=0.6)),
    "recommended": dict(label="추천", help="샘플링 + 반복 억제: 자연스럽고 덜 반복되는 문장",
                        params=dict(do_sample=True, repetition_penalty=1.5, no_repeat_ngram_size=3,
                                    temperature=0.9, top_k=50, top_p=0.92)),
}


class ParamError(ValueError):
    """A generation parameter that is missing, of the wrong type or out of range."""

    def __init__(self, field, message):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def range_text(p):
    if p.kind is bool:
        return "true 또는 false"
    if p.kind is str:
        return " 또는 ".join(p.choices) + " 중 하나"
    left = "(" if p.low_open else "["
    return f"{left}{p.low}, {p.high}] 범위의 {'정수' if p.kind is int else '실수'}"


def coerce(p, value):
    """Accept JSON numbers and numeric strings (ratsnlp's page sent strings); reject the rest."""
    if p.kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ParamError(p.name, f"{value!r}은(는) 올바른 값이 아닙니다. {range_text(p)}여야 합니다.")
    if p.kind is str:
        from .decoding.fudge import canonical_label  # the only str parameter today is the control label
        label = canonical_label(value) if isinstance(value, str) else None
        if label not in p.choices:
            raise ParamError(p.name, f"{value!r}은(는) 알 수 없는 값입니다. {range_text(p)}여야 합니다"
                                     f"(영어로 positive/negative/safe도 됩니다).")
        return label
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ParamError(p.name, f"{value!r}은(는) 숫자가 아닙니다. {range_text(p)}여야 합니다.")
    try:
        x = float(value)
    except ValueError:
        raise ParamError(p.name, f"{value!r}은(는) 숫자가 아닙니다. {range_text(p)}여야 합니다.") from None
    if not math.isfinite(x):
        raise ParamError(p.name, f"{value!r}은(는) 유한한 수가 아닙니다. {range_text(p)}여야 합니다.")
    if p.kind is int:
        if x != int(x):
            raise ParamError(p.name, f"{value!r}은(는) 정수가 아닙니다. {range_text(p)}여야 합니다.")
        x = int(x)
    too_low = x <= p.low if p.low_open else x < p.low
    if too_low or x > p.high:
        raise ParamError(p.name, f"{value!r}은(는) 범위를 벗어났습니다. {range_text(p)}여야 합니다.")
    return x


def check_prompt(prompt, field="prompt"):
    if not isinstance(prompt, str):
        raise ParamError(field, "문자열이어야 합니다.")
    if not prompt.strip():
        raise ParamError(field, "비어 있습니다. 이어 쓸 문장을 입력하세요.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ParamError(field, f"{len(prompt)}자로 너무 깁니다. {MAX_PROMPT_CHARS}자 이하로 줄이세요.")
    return prompt


def check_params(raw, allowed=None):
    """Validate a dict of generation parameters; unknown names are an error, None means default."""
    allowed = set(allowed or PARAM_BY_NAME)
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ParamError(unknown[0], f"알 수 없는 매개변수입니다. 쓸 수 있는 이름: {', '.join(sorted(allowed))}")
    out = {p.name: p.default for p in PARAMS}
    for name, value in raw.items():
        if value is not None:
            out[name] = coerce(PARAM_BY_NAME[name], value)
    if out["num_beams"] > 1 and out["num_return_sequences"] > out["num_beams"]:
        raise ParamError("num_return_sequences", f"beam search에서는 num_beams({out['num_beams']}) 이하여야 합니다.")
    if out["min_new_tokens"] > out["max_new_tokens"]:
        raise ParamError("min_new_tokens", f"max_new_tokens({out['max_new_tokens']}) 이하여야 합니다.")
    if not out["do_sample"] and out["num_beams"] == 1 and out["num_return_sequences"] > 1:
        raise ParamError("num_return_sequences", "greedy 디코딩은 늘 같은 결과 하나뿐입니다. do_sample=true 또는 num_beams>1로 하세요.")
    if out["penalty_alpha"] > 0:
        check_contrastive(out)
    return out


def check_contrastive(params):
    """Contrastive search is its own deterministic decoder: no beams, no sampling, k >= 1 candidates."""
    if params["num_beams"] > 1:
        raise ParamError("penalty_alpha", "contrastive search(penalty_alpha>0)는 beam search와 함께 쓸 수 없습니다. "
                                          "num_beams=1로 하거나 penalty_alpha=0으로 하세요.")
    if params["do_sample"]:
        raise ParamError("penalty_alpha", "contrastive search(penalty_alpha>0)는 샘플링하지 않는 결정적 방법입니다. "
                                          "do_sample=false로 하거나 penalty_alpha=0으로 하세요.")
    if params["top_k"] < 1:
        raise ParamError("top_k", "contrastive search는 top_k개 후보 중에서 고릅니다. top_k를 1 이상(보통 4)으로 하세요.")


def generate_kwargs(params, tokenizer):
    """The keyword arguments for `model.generate`; sampling knobs only when sampling."""
    kw = dict(max_new_tokens=params["max_new_tokens"], min_new_tokens=params["min_new_tokens"] or None,
              do_sample=params["do_sample"], num_beams=params["num_beams"],
              repetition_penalty=params["repetition_penalty"],
              no_repeat_ngram_size=params["no_repeat_ngram_size"],
              num_return_sequences=params["num_return_sequences"],
              pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    if params["do_sample"]:
        kw.update(top_k=params["top_k"], top_p=params["top_p"], temperature=params["temperature"])
    else:  # quiet transformers' "sampling flag not set" warnings
        kw.update(top_k=None, top_p=None, temperature=None)
    return {k: v for k, v in kw.items() if v is not None}


def max_context(model):
    """How many positions the model has (GPT-2: n_positions; most others: max_position_embeddings)."""
    cfg = model.config
    return getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", 1024)


def encode_prompt(tokenizer, prompt, max_new_tokens, limit, field="max_new_tokens"):
    """Prompt ids (1, P), after checking that prompt + new tokens fit the model's `limit` positions
    (past them GPT-2's position table has no row, and generate dies with an IndexError)."""
    check_prompt(prompt)
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    n = ids.shape[1]
    if n == 0:
        raise ParamError("prompt", "토큰이 하나도 나오지 않습니다. 글자가 있는 문장을 입력하세요.")
    if n >= limit:
        raise ParamError("prompt", f"{n}토큰으로 너무 깁니다. 모델 최대 길이 {limit}토큰보다 짧게 줄이세요.")
    if n + max_new_tokens > limit:
        raise ParamError(field, f"{max_new_tokens}은(는) 너무 큽니다. 프롬프트가 {n}토큰이라 [1, {limit - n}] "
                                f"범위여야 합니다(모델 최대 길이 {limit}토큰).")
    return ids


def control_processor(params, tokenizer):
    """FUDGE's LogitsProcessor for params["control"], or None (checks the discriminator's tokenizer)."""
    if not params["control"]:
        return None
    from .decoding.discriminator import TokenizerMismatchError
    from .decoding.fudge import FudgeLogitsProcessor
    try:
        return FudgeLogitsProcessor(params["control"], params["control_strength"], tokenizer=tokenizer)
    except TokenizerMismatchError as e:
        raise ParamError("control", str(e)) from None


def penalty_processors(params):
    """The repetition controls `model.generate` builds for these params (same classes): a row's own processors."""
    from transformers import LogitsProcessorList, NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor
    procs = LogitsProcessorList()
    if params["repetition_penalty"] != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(params["repetition_penalty"]))
    if params["no_repeat_ngram_size"]:
        procs.append(NoRepeatNGramLogitsProcessor(params["no_repeat_ngram_size"]))
    return procs


def suppressed_tokens(model):
    """Token ids the model never writes (the bundled model: <unk>, see its generation_config.json), or None."""
    return getattr(model.generation_config, "suppress_tokens", None) or None


def contrastive_processors(model, params, n_prompt, tokenizer):
    """What `model.generate` would apply for these params, for our own contrastive loop."""
    from transformers import MinNewTokensLengthLogitsProcessor, SuppressTokensLogitsProcessor
    procs = penalty_processors(params)
    if params["min_new_tokens"]:
        procs.append(MinNewTokensLengthLogitsProcessor(n_prompt, params["min_new_tokens"], tokenizer.eos_token_id))
    suppress = suppressed_tokens(model)
    if suppress:
        procs.append(SuppressTokensLogitsProcessor(suppress, device=model.device))
    return procs


def sampling_warpers(params):
    """The warpers `model.generate` appends after custom processors when sampling (same classes, same order):
    for our own loops (the batcher's rows) and for the trace's view of the distribution a token is drawn from."""
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper
    warpers = LogitsProcessorList()
    if not params["do_sample"]:
        return warpers
    if params["temperature"] != 1.0:
        warpers.append(TemperatureLogitsWarper(params["temperature"]))
    if params["top_k"]:
        warpers.append(TopKLogitsWarper(params["top_k"]))
    if params["top_p"] < 1.0:
        warpers.append(TopPLogitsWarper(params["top_p"]))
    return warpers


@torch.inference_mode()
def run_model(model, tokenizer, ids, params, streamer=None, stopping_criteria=None, max_time=None, bad_words_ids=None,
              trace=None):
    """Output ids (prompt included) for checked `params`: model.generate, or contrastive search when
    penalty_alpha > 0; FUDGE joins either as a logits processor when params["control"] is set.
    `bad_words_ids` (token id sequences) are never generated (a user's word list, see kogen.safety).
    `trace` (decoding.trace.Trace) goes last among the processors: it watches and changes nothing."""
    from transformers import LogitsProcessorList, MaxTimeCriteria, NoBadWordsLogitsProcessor, StoppingCriteriaList
    fudge = control_processor(params, tokenizer)
    extra = [NoBadWordsLogitsProcessor(bad_words_ids, tokenizer.eos_token_id)] if bad_words_ids else []
    if params["seed"] is not None:
        torch.manual_seed(params["seed"])
    ids = ids.to(model.device)
    stopping = StoppingCriteriaList(stopping_criteria or [])
    if params["penalty_alpha"] > 0:
        from .decoding.contrastive import contrastive_search
        procs = contrastive_processors(model, params, ids.shape[1], tokenizer)
        procs.extend(extra)
        if fudge:
            procs.append(fudge)
        if max_time:
            stopping.append(MaxTimeCriteria(max_time))
        return contrastive_search(model, ids, params["top_k"], params["penalty_alpha"], params["max_new_tokens"],
                                  tokenizer.eos_token_id, tokenizer.pad_token_id, procs, stopping, streamer)
    return model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), streamer=streamer, max_time=max_time,
                          stopping_criteria=stopping,
                          logits_processor=LogitsProcessorList(extra + [p for p in (fudge, trace) if p is not None]),
                          **generate_kwargs(params, tokenizer))


def split_outputs(tokenizer, out, n_prompt):
    """(texts with the prompt, completions without it) of generated ids `out` (one row per sequence).
    A completion is cut from the decoded whole, so it keeps its first space ("▁영화" decoded alone loses it)."""
    head = tokenizer.decode(out[0, :n_prompt], skip_special_tokens=True)
    texts = [tokenizer.decode(seq, skip_special_tokens=True) for seq in out]
    return texts, [t[len(head):] if t.startswith(head) else tokenizer.decode(seq[n_prompt:], skip_special_tokens=True)
                   for t, seq in zip(texts, out)]


def generate_completions(model, tokenizer, prompt, params, bad_words_ids=None):
    """(texts, completions) for `prompt` under `params` (checked here): the one call lessons, eval, studies
    and the CLI share."""
    params = check_params(params)
    ids = encode_prompt(tokenizer, prompt, params["max_new_tokens"], max_context(model))
    return split_outputs(tokenizer, run_model(model, tokenizer, ids, params, bad_words_ids=bad_words_ids).cpu(),
                         ids.shape[1])


def generate(model, tokenizer, prompt, streamer=None, bad_words_ids=None, **params):
    """Generate continuations of `prompt`; returns a list of texts, prompt included."""
    params = check_params(params)
    ids = encode_prompt(tokenizer, prompt, params["max_new_tokens"], max_context(model))
    out = run_model(model, tokenizer, ids, params, streamer, bad_words_ids=bad_words_ids)
    return [tokenizer.decode(seq, skip_special_tokens=True) for seq in out]
