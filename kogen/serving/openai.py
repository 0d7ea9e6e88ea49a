"""OpenAI's completions API on kogen's parameters: /v1/completions (+ stream) and /v1/models."""
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
OPENAI_OTHER = {"model", "prompt", "stream", "echo", "user", "temperature", "stream_options"}
OPENAI_NEUTRAL = {"frequency_penalty": 0, "presence_penalty": 0, "best_of": 1, "logit_bias": {}}  # only these values
OPENAI_REASON = {"stop": "stop", "length": "length", "time": "length"}  # OpenAI has no time limit reason

bp = Blueprint("openai", __name__)


def openai_params(body):
    """OpenAI completion fields -> checked PARAMS, errors named with OpenAI's field names."""
    raw = {}
    for key, value in body.items():
        if key in OPENAI_NAMES:
            raw[OPENAI_NAMES[key]] = value
        elif key in OPENAI_NEUTRAL or key in ("stop", "suffix", "logprobs"):
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
    from ..safety.filter import Blocked
    from .app import check_streamable, log_stream_failure
    svc, body = service(), json_body()
    prompt, params = openai_prompt(body), openai_params(body)
    stream, echo = flag(body, "stream"), flag(body, "echo")
    ids = svc.need_model().encode(prompt, params, "max_tokens")
    head = dict(id=f"cmpl-{uuid.uuid4().hex[:24]}", object="text_completion", created=int(time.time()), model=svc.name)
    if not stream:
        out = svc.generate(prompt, ids, params)
        choices = [dict(index=i, text=(prompt if echo else "") + c, logprobs=None, finish_reason=OPENAI_REASON[r])
                   for i, (c, r) in enumerate(zip(out["completions"], out["finish_reasons"]))]
        usage = dict(prompt_tokens=out["prompt_tokens"], completion_tokens=out["new_tokens"],
                     total_tokens=out["prompt_tokens"] + out["new_tokens"])
        return jsonify(dict(head, choices=choices, usage=usage, **({"safety": out["safety"]} if "safety" in out else {})))
    check_streamable(params, "n")
    items = svc.stream(prompt, ids, params)

    def choice(text, reason=None):
        return dict(head, choices=[dict(index=0, text=text, logprobs=None, finish_reason=reason)])

    def events():
        try:
            if echo:
                yield sse(choice(prompt))
            for item in items:
                yield sse(choice(item)) if isinstance(item, str) else sse(choice("", OPENAI_REASON[item["finish_reason"]]))
        except Blocked as b:  # OpenAI's own name for a stop by a content filter
            yield sse(dict(choice("", "content_filter"), error=dict(message=b.message, type="safety_block")))
        except Exception:
            log_stream_failure()
            yield sse({"error": {"message": "생성 중 서버 오류가 났습니다.", "type": "server_error"}})
        yield "data: [DONE]\n\n"
    return event_stream(events())


@bp.get("/v1/models")
def models():
    return jsonify(object="list", data=[dict(id=service().name, object="model", created=0, owned_by="kogen")])
