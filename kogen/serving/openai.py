"""OpenAI's completions API on kogen's parameters: /v1/completions (+ stream) and /v1/models."""
import math
import time
import uuid

from flask import Blueprint, jsonify

from ..generation import PARAM_BY_NAME, Param, ParamError, check_params, coerce
from .http import event_stream, flag, json_body, sse
from .service import limited, service

# OpenAI's names for PARAMS, then the PARAMS it shares; temperature is handled apart (0 means greedy)
OPENAI_NAMES = {"max_tokens": "max_new_tokens", "min_tokens": "min_new_tokens", "n": "num_return_sequences",
                **{k: k for k in ("seed", "top_p", "top_k", "repetition_penalty", "no_repeat_ngram_size",
                                  "penalty_alpha", "control", "control_strength")}}
OPENAI_OTHER = {"model", "prompt", "stream", "echo", "user", "temperature", "stream_options", "logprobs", "stop"}
OPENAI_NEUTRAL = {"frequency_penalty": 0, "presence_penalty": 0, "best_of": 1, "logit_bias": {}}  # only these values
OPENAI_REASON = {"stop": "stop", "length": "length", "time": "length"}  # OpenAI has no time limit reason

bp = Blueprint("openai", __name__)


def openai_params(body):
    """OpenAI completion fields -> checked PARAMS, errors named with OpenAI's field names."""
    raw = {}
    for key, value in body.items():
        if key in OPENAI_NAMES:
            raw[OPENAI_NAMES[key]] = value
        elif key in OPENAI_NEUTRAL or key == "suffix":
            if value not in (OPENAI_NEUTRAL.get(key), None):
                raise ParamError(key, f"이 서버는 {key}를 지원하지 않습니다. 빼고 보내세요.")
        elif key not in OPENAI_OTHER:
            raise ParamError(key, f"알 수 없는 매개변수입니다. 쓸 수 있는 이름: "
                                  f"{', '.join(sorted(set(OPENAI_NAMES) | OPENAI_OTHER))}")
    contrastive = coerce(PARAM_BY_NAME["penalty_alpha"], raw.get("penalty_alpha") or 0) > 0
    # contrastive search is deterministic: no sampling unless a temperature is asked for (then a 400)
    temperature = coerce(Param("temperature", float, 1.0, 0.0, 2.0), body.get("temperature", 0 if contrastive else 1.0))
    raw.setdefault("max_new_tokens", 16)  # OpenAI's default max_tokens
    raw.setdefault("top_k", 4 if contrastive else 0)  # OpenAI has no top-k: off unless asked for
    if temperature > 0:
        raw.update(do_sample=True, temperature=temperature)
    try:
        return check_params(raw)
    except ParamError as e:
        back = {v: k for k, v in OPENAI_NAMES.items()}
        raise ParamError(back.get(e.field, e.field), e.message) from None


def openai_stops(body):
    """OpenAI's `stop`: None, a string or a list of up to 4 non-empty strings -> a list."""
    stop = body.get("stop")
    stops = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or len(stops) > 4 or not all(isinstance(x, str) and x for x in stops):
        raise ParamError("stop", "빈 문자열이 아닌 문자열 하나, 또는 그런 문자열 최대 4개의 목록이어야 합니다.")
    return stops


def first_stop(text, stops):
    """Index where the earliest stop string starts in `text`, or None."""
    found = [i for i in (text.find(x) for x in stops) if i >= 0]
    return min(found) if found else None


def held_back(text, stops):
    """How many characters at the end of `text` could still be the start of a stop string."""
    return max((k for x in stops for k in range(1, len(x)) if text.endswith(x[:k])), default=0)


def openai_logprobs(tokens, n, offset=0, cut=None):
    """OpenAI's logprobs object from a trace's token dicts (raw model log-probabilities, as vLLM reports
    them); tokens that start at or after `cut` (a stop string) are left out; offsets index the choice's text."""
    out = dict(tokens=[], token_logprobs=[], top_logprobs=[], text_offset=[])
    for t in tokens:
        if cut is not None and offset >= cut:
            break
        out["tokens"].append(t["text"]), out["token_logprobs"].append(t["logprob"]), out["text_offset"].append(offset)
        out["top_logprobs"].append({a["token"]: round(math.log(max(a["p_raw"], 1e-12)), 6) for a in t["top"][:n]})
        offset += len(t["text"])
    return out


def cut_at_stops(items, stops):
    """A stream of text pieces cut before the first stop string: text that may begin one is held back until
    it is clear; on a stop the upstream generation is closed (cancelled) and ("stop", tokens) is yielded
    in place of the summary. Pieces keep their .tokens."""
    buf, tokens = "", []
    for item in items:
        if not isinstance(item, str):
            if buf:
                yield piece_with(buf, tokens)
            yield item
            return
        buf, tokens = buf + str(item), tokens + list(getattr(item, "tokens", None) or [])
        at = first_stop(buf, stops)
        if at is not None:
            items.close()  # the client has what it asked for: stop generating
            if at:
                yield piece_with(buf[:at], tokens)
            yield ("stop", None)
            return
        keep = held_back(buf, stops)
        if len(buf) > keep:
            yield piece_with(buf[:len(buf) - keep], tokens)
            buf, tokens = buf[len(buf) - keep:], []


def piece_with(text, tokens):
    from .hf import Piece
    piece = Piece(text)
    piece.tokens = tokens
    return piece


def openai_prompt(body):
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ParamError("prompt", "문자열 하나(또는 문자열 하나짜리 목록)여야 합니다. 토큰 id 목록이나 여러 프롬프트는 "
                                   "지원하지 않습니다.")
    return prompt


@bp.post("/v1/completions")
@limited
def completions():
    from ..decoding.trace import check_top_tokens
    from ..safety.filter import Blocked
    from .app import check_streamable, log_stream_failure
    svc, body = service(), json_body()
    prompt, params, stops = openai_prompt(body), openai_params(body), openai_stops(body)
    n_logprobs = check_top_tokens(body.get("logprobs"), params, "logprobs", 5)
    want_logprobs = body.get("logprobs") is not None
    trace_n = max(1, n_logprobs) if want_logprobs else 0  # logprobs=0: the chosen tokens only
    stream, echo = flag(body, "stream"), flag(body, "echo")
    ids = svc.need_model().encode(prompt, params, "max_tokens")
    head = dict(id=f"cmpl-{uuid.uuid4().hex[:24]}", object="text_completion", created=int(time.time()), model=svc.name)
    start = len(prompt) if echo else 0
    if not stream:
        out = svc.generate(prompt, ids, params, trace_n)
        choices = []
        for i, (c, r) in enumerate(zip(out["completions"], out["finish_reasons"])):
            cut = first_stop(c, stops)
            logprobs = openai_logprobs(out["tokens"][i], n_logprobs, start, None if cut is None else start + cut) \
                if want_logprobs else None
            choices.append(dict(index=i, text=(prompt if echo else "") + c[:cut], logprobs=logprobs,
                                finish_reason="stop" if cut is not None else OPENAI_REASON[r]))
        usage = dict(prompt_tokens=out["prompt_tokens"], completion_tokens=out["new_tokens"],
                     total_tokens=out["prompt_tokens"] + out["new_tokens"])
        return jsonify(dict(head, choices=choices, usage=usage, **({"safety": out["safety"]} if "safety" in out else {})))
    check_streamable(params, "n")
    items = svc.stream(prompt, ids, params, trace_n)
    if stops:
        items = cut_at_stops(items, stops)

    def choice(text, reason=None, logprobs=None):
        return dict(head, choices=[dict(index=0, text=text, logprobs=logprobs, finish_reason=reason)])

    def events():
        offset = start
        try:
            if echo:
                yield sse(choice(prompt))
            for item in items:
                if isinstance(item, str):
                    lp = openai_logprobs(item.tokens or [], n_logprobs, offset) if want_logprobs else None
                    offset += len(item)
                    yield sse(choice(str(item), logprobs=lp))
                else:
                    reason = "stop" if isinstance(item, tuple) else OPENAI_REASON[item["finish_reason"]]
                    yield sse(choice("", reason))
        except Blocked as b:  # OpenAI's own name for a stop by a content filter
            yield sse(dict(choice("", "content_filter"), error=dict(message=b.message, type="safety_block")))
        except Exception as e:
            yield sse({"error": {"message": log_stream_failure(e, "생성 중 서버 오류가 났습니다."), "type": "server_error"}})
        yield "data: [DONE]\n\n"
    return event_stream(events())


@bp.get("/v1/models")
def models():
    svc = service()  # max_model_len: the context length, named as vLLM names it (a kogen front reads it)
    return jsonify(object="list", data=[dict(id=svc.name, object="model", created=0, owned_by="kogen",
                                             max_model_len=svc.engine.max_context if svc.engine else None)])
