"""The Flask app: the page, ratsnlp's `POST /api` and kogen's JSON API with streaming (see kogen/web.py for the
endpoint reference). Routes translate HTTP into Service calls and back; they hold no model logic."""
import logging
import os
from pathlib import Path

from flask import Blueprint, Flask, jsonify, render_template

from ..generation import PARAMS, PRESETS, Param, ParamError, check_params, check_prompt, coerce, range_text
from .http import MAX_BODY, event_stream, flag, json_body, register_errors, sse
from .service import MAX_IN_FLIGHT, Service, limited, service

REPO = Path(__file__).resolve().parent.parent.parent
MAX_TIME = float(os.environ.get("KOGEN_MAX_TIME", 30))
RATSNLP_FIELDS = ["prompt", "min_length", "max_length", "top_p", "top_k", "repetition_penalty",
                  "no_repeat_ngram_size", "temperature"]
LENGTHS = {"min_length": Param("min_length", int, 10, 0, 512), "max_length": Param("max_length", int, 20, 1, 512)}

bp = Blueprint("kogen", __name__)


def check_streamable(params, n_field="num_return_sequences"):
    if params["num_beams"] > 1 or params["num_return_sequences"] > 1:
        raise ParamError(n_field if params["num_return_sequences"] > 1 else "num_beams",
                         "스트리밍은 결과 하나(num_return_sequences=1, num_beams=1)일 때만 됩니다. stream을 끄세요.")


def param_table():
    return [dict(name=p.name, kind=p.kind.__name__, default=p.default, low=p.low, high=p.high, low_open=p.low_open,
                 label=p.label, help=p.help, range=range_text(p), choices=list(p.choices)) for p in PARAMS]


@bp.get("/")
def index():
    svc = service()
    config = dict(params=param_table(), presets=PRESETS, inference_fn=svc.inference_fn is not None)
    return render_template("index.html", presets=PRESETS, config=config, model_name=svc.name, device=svc.device)


@bp.get("/healthz")
def healthz():
    svc = service()
    backend = getattr(svc.engine, "url", None)  # a remote engine names the server that makes the tokens
    # answered by a spare waitress thread without touching the engine's lock: never waits behind generation
    return jsonify(status="ok", model=svc.name, device=svc.device, safety=svc.safety,
                   max_context=svc.engine.max_context if svc.engine else None,
                   engine=getattr(svc.engine, "engine", None), queued=getattr(svc.engine, "queued", 0),
                   in_flight=svc.in_flight, max_in_flight=svc.max_in_flight,
                   **({"backend": backend} if backend else {}))


@bp.get("/api/params")
def params_doc():
    return jsonify(params=param_table(), presets=PRESETS, ratsnlp_fields=RATSNLP_FIELDS)


@bp.post("/api")
@limited
def ratsnlp_api():
    svc, body = service(), json_body()
    unknown = sorted(set(body) - set(RATSNLP_FIELDS))
    if unknown:  # a typo ("temprature") must not silently fall back to nothing
        raise ParamError(unknown[0], f"알 수 없는 항목입니다. /api가 받는 항목: {', '.join(RATSNLP_FIELDS)}. 다른 매개변수는 "
                                     f"/api/generate에 보내세요.")
    for field in RATSNLP_FIELDS:
        if body.get(field) is None:
            raise ParamError(field, f"필수 항목이 빠졌습니다. /api에는 {', '.join(RATSNLP_FIELDS)}를 모두 보내세요.")
    prompt = check_prompt(body["prompt"])
    min_len, max_len = (coerce(LENGTHS[f], body[f]) for f in ("min_length", "max_length"))
    if min_len > max_len:
        raise ParamError("min_length", f"{min_len}은(는) max_length({max_len}) 이하여야 합니다.")
    params = check_params(dict({f: body[f] for f in RATSNLP_FIELDS[3:]}, do_sample=True))
    if svc.engine is not None:  # with a model we know its context, for inference_fn too
        ids = svc.engine.encode(prompt, dict(params, max_new_tokens=1))
        if svc.engine.max_context and max_len > svc.engine.max_context:  # a remote backend may not say
            raise ParamError("max_length", f"{max_len}은(는) 너무 큽니다. 프롬프트를 포함해 모델 최대 길이 "
                                           f"{svc.engine.max_context}토큰 이하여야 합니다.")
    if svc.inference_fn is not None:
        with svc.lock:  # the student's function uses the same model as the other endpoints
            out = svc.inference_fn(prompt, min_len, max_len, *(params[f] for f in RATSNLP_FIELDS[3:]))
        return jsonify(out if isinstance(out, dict) else {"result": out})
    n = ids.shape[1]  # ratsnlp's lengths include the prompt; generate's new-token counts do not
    max_new = max(1, max_len - n)
    params.update(max_new_tokens=max_new, min_new_tokens=min(max(0, min_len - n), max_new))
    return jsonify(result=svc.engine(ids, params)["texts"][0])


@bp.post("/api/generate")
@limited
def generate_api():
    from ..safety.filter import Blocked
    from ..decoding.trace import check_top_tokens
    svc, body = service(), json_body()
    stream, prompt = flag(body, "stream"), body.pop("prompt", None)
    top_value = body.pop("top_tokens", None)
    body.pop("stream", None)
    if prompt is None:
        raise ParamError("prompt", "필수 항목이 빠졌습니다. 이어 쓸 문장을 prompt에 넣으세요.")
    params = check_params(body)
    top_tokens = check_top_tokens(top_value, params)
    ids = svc.need_model().encode(prompt, params)
    if not stream:
        return jsonify(svc.generate(prompt, ids, params, top_tokens))
    check_streamable(params)
    items = svc.stream(prompt, ids, params, top_tokens)  # a toxic prompt is refused here, before anything streams

    def events():
        try:
            for item in items:
                if not isinstance(item, str):
                    yield sse(item, "done")
                else:
                    tokens = getattr(item, "tokens", None)
                    yield sse({"text": str(item), **({"tokens": tokens} if tokens is not None else {})})
        except Blocked as b:
            yield sse(dict(error=dict(field=b.where, message=b.message, type="safety_block"), safety=b.verdict),
                      "blocked")
        except Exception as e:
            yield sse({"error": {"field": None, "message": log_stream_failure(e)}}, "error")
    return event_stream(events())


def log_stream_failure(e, message="생성 중 서버 오류가 났습니다. 서버 로그를 보세요."):
    """Log a failure after a stream began; returns its event's message (an HTTP error keeps its own: a remote
    backend's 502/504)."""
    from werkzeug.exceptions import HTTPException
    # the stream runs after the request's app context is gone (current_app fails there): app.logger by its name
    logging.getLogger(__name__).exception("generation failed while streaming")
    return e.description if isinstance(e, HTTPException) else message


def create_app(model=None, tokenizer=None, model_name=None, device=None, inference_fn=None, max_time=MAX_TIME,
               db=None, ab=None, safety="off", safety_threshold=None, engine=None, security=None,
               max_in_flight=MAX_IN_FLIGHT):
    """The Flask app; `model` + `tokenizer` serve every endpoint through a batcher.Batcher (or a ready `engine`,
    e.g. hf.Generator for one request at a time, a remote.Remote, a ct2.Ct2Engine), `inference_fn` (optional)
    answers /api. With `db` (a SQLite path or serving.Store) it also serves /eval studies, and with `ab`
    ({arm: preset}) an A/B test. Past `max_in_flight` generating requests at once the service answers 503.
    `security`: a security.Config or a dict of its fields (api_keys, allowed_origins, allowed_hosts, rate_limit,
    rate_burst, log_prompts, bind_host); the default asks nothing of a local student."""
    from ..safety.filter import THRESHOLD, check_policy
    from . import openai, security as sec
    from .batcher import Batcher
    from .metrics import register_metrics
    if model is None and inference_fn is None and engine is None:
        raise ValueError("create_app에 model과 tokenizer(또는 /api용 inference_fn)를 넘기세요.")
    check_policy(safety)
    app = Flask(__name__, template_folder=str(REPO / "templates"), static_folder=str(REPO / "static"))
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.json.ensure_ascii = False  # Korean stays readable in responses
    engine = engine or (Batcher(model, tokenizer, max_time) if model is not None else None)
    name = model_name or getattr(model, "name_or_path", None) or "model"
    device = str(device or (model.device if model is not None else "cpu"))
    svc = Service(engine, name, device, safety, THRESHOLD if safety_threshold is None else safety_threshold,
                  inference_fn, max_in_flight=max_in_flight)
    if engine is not None and hasattr(engine, "lock"):
        svc.lock = engine.lock  # inference_fn and the engine share one model
    app.extensions["kogen"] = dict(service=svc)
    register_metrics(app, svc)
    app.register_blueprint(bp)
    app.register_blueprint(openai.bp)
    register_errors(app)
    sec.register(app, security)  # keys, same-origin, Host, rate limits, headers, access log
    if db is not None or ab:  # human evaluation and A/B tests: kogen/serving/, votes in one SQLite file
        from . import register
        register(app, engine, db, ab, name, device, generate=svc.generate)  # A/B outputs pass the safety policy too
    return app


def get_web_service_app(inference_fn=None, *, model=None, tokenizer=None, model_name=None, device=None):
    """ratsnlp's name for the app factory, as step 5 of the course calls it."""
    return create_app(model, tokenizer, model_name, device, inference_fn=inference_fn)
