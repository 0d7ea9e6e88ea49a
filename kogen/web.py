"""The web service: a page, ratsnlp's `POST /api`, a JSON API with streaming, OpenAI-style completions.

    kogen serve --checkpoint-dir checkpoints/quick --model bundled    # waitress on http://127.0.0.1:9001

Step 5 of the course, the way ratsnlp's book does it (Flask's own server, fine for learning):

    app = get_web_service_app(inference_fn, model=model, tokenizer=tokenizer, model_name="...", device=device)
    app.run(host="127.0.0.1", port=9001)

Public functions
    create_app(model=None, tokenizer=None, model_name=None, device=None, inference_fn=None, max_time=MAX_TIME) -> Flask
    get_web_service_app(inference_fn=None, *, model=None, tokenizer=None, model_name=None, device=None) -> Flask
        /api calls inference_fn(prompt, min_length, max_length, top_p, top_k, repetition_penalty,
        no_repeat_ngram_size, temperature) -- positionally, as ratsnlp did, with validated, converted
        values -- when given; every other endpoint uses model + tokenizer.
    serve(model=None, checkpoint_dir=None, host="127.0.0.1", port=9001, device=None)
        loads the model once (a step-4 checkpoint folder, a Hugging Face folder, a hub id or KOGEN_MODEL)
        and runs waitress until Ctrl+C.
    load_for_serving(model=None, checkpoint_dir=None, device=None) -> (model, tokenizer, name, device)
        what serve loads; name says which checkpoint or model it is.
    start_server(app, host="127.0.0.1", port=0, threads=8) -> waitress server running in a daemon thread
        (tests, benchmarks); `.effective_port` is its port. stop_server(server) stops it.

Endpoints (bad input is always a 4xx JSON {"error": {"field", "message", "param", "type"}}, never a 500)
    GET  /                the page: templates/index.html + static/
    GET  /healthz         {"status": "ok", "model", "device", "max_context", "safety"}
    GET  /api/params      the parameter table (ranges, Korean labels and help) and the presets
    POST /api             ratsnlp's API. All eight fields are required: prompt, min_length, max_length, top_p,
                          top_k, repetition_penalty, no_repeat_ngram_size, temperature (numbers or numeric
                          strings; a missing one is a 400 where ratsnlp gave a 500). Like ratsnlp it samples
                          (do_sample=True). min_length/max_length count tokens *including* the prompt
                          (max_length <= 512 and the model's context), so with P prompt tokens they become
                          max_new_tokens = max(1, max_length - P) and
                          min_new_tokens = min(max(0, min_length - P), max_new_tokens).
                          -> {"result": prompt + continuation}
    POST /api/generate    {"prompt", any of generation.PARAMS, "stream": false} -> {"texts", "completions",
                          "prompt_tokens", "new_tokens", "seconds", "tokens_per_s", "finish_reason"} where
                          finish_reason is "stop" (</s>), "length" or "time" (hit the time limit).
                          "stream": true answers server-sent events: `data: {"text": chunk}` per piece,
                          then `event: done` with the same summary (one sequence, num_beams=1 only).
                          penalty_alpha > 0 switches to contrastive search (with top_k candidates);
                          control ("긍정"/"부정", or positive/negative) + control_strength steer with FUDGE.
    POST /v1/completions  OpenAI's completions API: model, prompt, max_tokens (16), temperature (1; 0 means
                          greedy), top_p, n, seed, echo, stream; top_k, repetition_penalty,
                          no_repeat_ngram_size, min_tokens, penalty_alpha (then temperature defaults to 0
                          and top_k to 4), control, control_strength as extras (openai client: extra_body=...).
    GET  /v1/models       the one model served
    Safety (create_app(safety=...), kogen serve --safety; serve's default "flag"): responses of /api/generate
                          and /v1/completions carry "safety" (the classifier's score, label, bias); "block" and
                          "regenerate" refuse a toxic prompt or output with a 422 (type "safety_block"); a
                          stream is scored as it grows and ends with `event: blocked` (OpenAI stream:
                          finish_reason "content_filter").
    /eval/..., /ab/...    human evaluation studies and A/B tests (with `db`): see kogen/serving/

Model calls are serialized by one lock (requests are not); each generation stops after KOGEN_MAX_TIME
seconds (default 30) through generate's `max_time`.
"""
import json
import os
import threading
import time
import uuid
from pathlib import Path

import torch
from flask import Flask, Response, jsonify, render_template, request
from transformers import StoppingCriteria, TextIteratorStreamer
from werkzeug.exceptions import HTTPException

from .generation import (PARAM_BY_NAME, PARAMS, PRESETS, Param, ParamError, check_params, check_prompt, coerce, encode_prompt,
                         control_processor, max_context, range_text, run_model, split_outputs)

REPO = Path(__file__).resolve().parent.parent
MAX_BODY = 64 * 1024  # a 1000-character prompt plus parameters is a few KB
MAX_TIME = float(os.environ.get("KOGEN_MAX_TIME", 30))
RATSNLP_FIELDS = ["prompt", "min_length", "max_length", "top_p", "top_k", "repetition_penalty",
                  "no_repeat_ngram_size", "temperature"]
LENGTHS = {"min_length": Param("min_length", int, 10, 0, 512), "max_length": Param("max_length", int, 20, 1, 512)}
# OpenAI's names for PARAMS, then the PARAMS it shares; temperature is handled apart (0 means greedy)
OPENAI_NAMES = {"max_tokens": "max_new_tokens", "min_tokens": "min_new_tokens", "n": "num_return_sequences",
                **{k: k for k in ("seed", "top_p", "top_k", "repetition_penalty", "no_repeat_ngram_size",
                                  "penalty_alpha", "control", "control_strength")}}
OPENAI_OTHER = {"model", "prompt", "stream", "echo", "user", "temperature", "stream_options"}
OPENAI_NEUTRAL = {"frequency_penalty": 0, "presence_penalty": 0, "best_of": 1, "logit_bias": {}}  # only these values
OPENAI_REASON = {"stop": "stop", "length": "length", "time": "length"}  # OpenAI has no time limit reason


class Cancelled(StoppingCriteria):
    """A stopping criterion that ends generation once `event` is set (a streaming client went away)."""

    def __init__(self, event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class Streamer(TextIteratorStreamer):
    """Decodes the new tokens after the prompt's, so the first piece keeps its leading space
    (decoded alone, "▁영화" loses it and the page would show "오늘 영화는영화")."""

    def put(self, value):
        if self.next_tokens_are_prompt:  # the first call carries the prompt
            self.next_tokens_are_prompt = False
            self.token_cache = value.reshape(-1).tolist()
            self.print_len = len(self.tokenizer.decode(self.token_cache, **self.decode_kwargs))
            return
        super().put(value)


class Generator:
    """The one model and its tokenizer behind a lock: model calls run one at a time."""

    def __init__(self, model, tokenizer, max_time=MAX_TIME):
        self.model, self.tokenizer, self.max_time = model, tokenizer, max_time
        self.lock = threading.Lock()
        self.max_context = max_context(model)

    def encode(self, prompt, params, field="max_new_tokens"):
        """Prompt ids after checking what depends on the model: context length, FUDGE's tokenizer."""
        control_processor(params, self.tokenizer)
        return encode_prompt(self.tokenizer, prompt, params["max_new_tokens"], self.max_context, field)

    @torch.inference_mode()
    def __call__(self, ids, params, streamer=None, cancel=None):
        """model.generate on checked params, one call at a time; returns summarize()'s dict."""
        with self.lock:
            start = time.perf_counter()
            out = run_model(self.model, self.tokenizer, ids, params, streamer,
                            [Cancelled(cancel)] if cancel else None, self.max_time)
            seconds = time.perf_counter() - start
        return self.summarize(ids.shape[1], out.cpu(), seconds, params["max_new_tokens"])

    def summarize(self, n_prompt, out, seconds, max_new_tokens):
        """Texts (prompt included), completions (without), token counts and why each sequence stopped."""
        eos = self.tokenizer.eos_token_id
        texts, completions = split_outputs(self.tokenizer, out, n_prompt)
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

    def stream(self, ids, params):
        """Yield text pieces while generating, then the summary dict (a thread runs generate)."""
        streamer = Streamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        cancel, result = threading.Event(), {}

        def work():
            try:
                result.update(self(ids, params, streamer, cancel))
            except Exception as e:  # generate never reached streamer.end(): unblock the reader
                result["error"] = e
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        try:
            for piece in streamer:
                if piece:
                    yield piece
        finally:  # also runs when the client hangs up and the server closes this generator
            cancel.set()
            thread.join()  # a cancelled generate stops within one step; the summary comes after it
        if "error" in result:
            raise result["error"]
        yield result


def error_response(status, field, message):
    # one shape for every endpoint; "param"/"type" are what OpenAI clients read
    kind = "invalid_request_error" if status < 500 else "server_error"
    return jsonify(error=dict(field=field, message=message, param=field, type=kind)), status


def json_body():
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise ParamError("body", '요청 본문이 JSON 객체가 아닙니다. {"prompt": "...", ...} 형식의 JSON을 보내세요.')
    return body


def flag(body, key):
    return coerce(Param(key, bool, False), body.get(key, False))


def sse(data, event=None):
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n"


def event_stream(events):  # no caching, no buffering: a proxy in front must pass each piece on at once
    return Response(events, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def check_streamable(params, n_field="num_return_sequences"):
    if params["num_beams"] > 1 or params["num_return_sequences"] > 1:
        raise ParamError(n_field if params["num_return_sequences"] > 1 else "num_beams",
                         "스트리밍은 결과 하나(num_return_sequences=1, num_beams=1)일 때만 됩니다. stream을 끄세요.")


def param_table():
    return [dict(name=p.name, kind=p.kind.__name__, default=p.default, low=p.low, high=p.high, low_open=p.low_open,
                 label=p.label, help=p.help, range=range_text(p), choices=list(p.choices)) for p in PARAMS]


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


def create_app(model=None, tokenizer=None, model_name=None, device=None, inference_fn=None, max_time=MAX_TIME,
               db=None, ab=None, safety="off", safety_threshold=None):
    """The Flask app; `model` + `tokenizer` serve every endpoint, `inference_fn` (optional) answers /api.
    With `db` (a SQLite path or serving.Store) it also serves /eval studies, and with `ab` ({arm: preset}) an A/B test."""
    if model is None and inference_fn is None:
        raise ValueError("create_app에 model과 tokenizer(또는 /api용 inference_fn)를 넘기세요.")
    app = Flask(__name__, template_folder=str(REPO / "templates"), static_folder=str(REPO / "static"))
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.json.ensure_ascii = False  # Korean stays readable in responses
    gen = Generator(model, tokenizer, max_time) if model is not None else None
    lock = gen.lock if gen else threading.Lock()
    name = model_name or getattr(model, "name_or_path", None) or "model"
    device = str(device or (model.device if model is not None else "cpu"))

    from .safety.filter import (THRESHOLD, Blocked, check_policy, check_prompt_safety, guard_stream, guarded,
                                retry_params)
    check_policy(safety)
    threshold = THRESHOLD if safety_threshold is None else safety_threshold

    def safe_generate(prompt, ids, params):
        """gen() under the safety policy: the summary dict with "safety" added, or raises Blocked."""
        if safety == "off":
            return gen(ids, params)
        runs = []

        def once(attempt):
            runs.append(gen(ids, retry_params(params, attempt)))
            return runs[-1]["texts"], runs[-1]["completions"]
        _, _, verdicts = guarded(once, prompt, safety, threshold, deterministic=not params["do_sample"])
        return dict(runs[-1], safety=verdicts)

    def safe_stream(ids, params):
        return gen.stream(ids, params) if safety == "off" else guard_stream(gen.stream(ids, params), safety, threshold)

    def need_model():
        if gen is None:
            raise ParamError("model", "이 서버는 inference_fn만 받아 /api만 쓸 수 있습니다. get_web_service_app(..., "
                                      "model=model, tokenizer=tokenizer)로 만들면 다른 기능도 켜집니다.")
        return gen

    @app.get("/")
    def index():
        config = dict(params=param_table(), presets=PRESETS)
        return render_template("index.html", presets=PRESETS, config=config, model_name=name, device=device)

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok", model=name, device=device, max_context=gen.max_context if gen else None,
                       safety=safety)

    @app.get("/api/params")
    def params_doc():
        return jsonify(params=param_table(), presets=PRESETS, ratsnlp_fields=RATSNLP_FIELDS)

    @app.post("/api")
    def ratsnlp_api():
        body = json_body()
        for field in RATSNLP_FIELDS:
            if body.get(field) is None:
                raise ParamError(field, f"필수 항목이 빠졌습니다. /api에는 {', '.join(RATSNLP_FIELDS)}를 모두 보내세요.")
        prompt = check_prompt(body["prompt"])
        min_len, max_len = (coerce(LENGTHS[f], body[f]) for f in ("min_length", "max_length"))
        if min_len > max_len:
            raise ParamError("min_length", f"{min_len}은(는) max_length({max_len}) 이하여야 합니다.")
        params = check_params(dict({f: body[f] for f in RATSNLP_FIELDS[3:]}, do_sample=True))
        if gen is not None:  # with a model we know its context, for inference_fn too
            ids = gen.encode(prompt, dict(params, max_new_tokens=1))
            if max_len > gen.max_context:
                raise ParamError("max_length", f"{max_len}은(는) 너무 큽니다. 프롬프트를 포함해 모델 최대 길이 "
                                               f"{gen.max_context}토큰 이하여야 합니다.")
        if inference_fn is not None:
            with lock:  # the student's function uses the same model as the other endpoints
                out = inference_fn(prompt, min_len, max_len, *(params[f] for f in RATSNLP_FIELDS[3:]))
            return jsonify(out if isinstance(out, dict) else {"result": out})
        n = ids.shape[1]  # ratsnlp's lengths include the prompt; generate's new-token counts do not
        max_new = max(1, max_len - n)
        params.update(max_new_tokens=max_new, min_new_tokens=min(max(0, min_len - n), max_new))
        return jsonify(result=gen(ids, params)["texts"][0])

    @app.post("/api/generate")
    def generate_api():
        body = json_body()
        stream, prompt = flag(body, "stream"), body.pop("prompt", None)
        body.pop("stream", None)
        if prompt is None:
            raise ParamError("prompt", "필수 항목이 빠졌습니다. 이어 쓸 문장을 prompt에 넣으세요.")
        params = check_params(body)
        ids = need_model().encode(prompt, params)
        if not stream:
            return jsonify(safe_generate(prompt, ids, params))
        check_streamable(params)
        if safety != "off":
            check_prompt_safety(prompt, safety, threshold)  # refused before anything streams

        def events():
            try:
                for item in safe_stream(ids, params):
                    yield sse({"text": item}) if isinstance(item, str) else sse(item, "done")
            except Blocked as b:
                yield sse(dict(error=dict(field=b.where, message=b.message, type="safety_block"), safety=b.verdict),
                          "blocked")
            except Exception:
                app.logger.exception("generation failed while streaming")
                yield sse({"error": {"field": None, "message": "생성 중 서버 오류가 났습니다. 서버 로그를 보세요."}}, "error")
        return event_stream(events())

    @app.post("/v1/completions")
    def completions():
        body = json_body()
        prompt, params = openai_prompt(body), openai_params(body)
        stream, echo = flag(body, "stream"), flag(body, "echo")
        ids = need_model().encode(prompt, params, "max_tokens")
        head = dict(id=f"cmpl-{uuid.uuid4().hex[:24]}", object="text_completion", created=int(time.time()), model=name)
        if not stream:
            out = safe_generate(prompt, ids, params)
            choices = [dict(index=i, text=(prompt if echo else "") + c, logprobs=None, finish_reason=OPENAI_REASON[r])
                       for i, (c, r) in enumerate(zip(out["completions"], out["finish_reasons"]))]
            usage = dict(prompt_tokens=out["prompt_tokens"], completion_tokens=out["new_tokens"],
                         total_tokens=out["prompt_tokens"] + out["new_tokens"])
            return jsonify(dict(head, choices=choices, usage=usage, **({"safety": out["safety"]} if "safety" in out else {})))
        check_streamable(params, "n")
        if safety != "off":
            check_prompt_safety(prompt, safety, threshold)

        def events():
            def choice(text, reason=None):
                return dict(head, choices=[dict(index=0, text=text, logprobs=None, finish_reason=reason)])
            try:
                if echo:
                    yield sse(choice(prompt))
                for item in safe_stream(ids, params):
                    if isinstance(item, str):
                        yield sse(choice(item))
                    else:
                        yield sse(choice("", OPENAI_REASON[item["finish_reason"]]))
            except Blocked as b:  # OpenAI's own name for a stop by a content filter
                yield sse(dict(choice("", "content_filter"), error=dict(message=b.message, type="safety_block")))
            except Exception:
                app.logger.exception("generation failed while streaming")
                yield sse({"error": {"message": "생성 중 서버 오류가 났습니다.", "type": "server_error"}})
            yield "data: [DONE]\n\n"
        return event_stream(events())

    @app.get("/v1/models")
    def models():
        return jsonify(object="list", data=[dict(id=name, object="model", created=0, owned_by="kogen")])

    @app.errorhandler(ParamError)
    def bad_param(e):
        return error_response(400, e.field, e.message)

    @app.errorhandler(Blocked)
    def blocked(e):  # 422: the request was valid, its content is refused by the safety policy
        resp, status = error_response(422, e.where, e.message)
        body = resp.get_json()
        body["error"]["type"], body["safety"] = "safety_block", e.verdict
        return jsonify(body), status

    @app.errorhandler(HTTPException)
    def http_error(e):
        allowed = ", ".join(getattr(e, "valid_methods", None) or [])
        messages = {404: f"없는 주소입니다: {request.path}. 쓸 수 있는 주소: /, /api, /api/generate, /api/params, "
                         f"/v1/completions, /v1/models, /healthz",
                    405: f"{request.path}에는 {request.method} 요청을 쓸 수 없습니다. 허용: {allowed}",
                    413: f"요청이 너무 큽니다. 최대 {MAX_BODY // 1024}KB까지 받습니다. 프롬프트를 줄이세요."}
        resp, status = error_response(e.code, None, messages.get(e.code, e.description))
        if allowed:
            resp.headers["Allow"] = allowed
        return resp, status

    @app.errorhandler(Exception)
    def internal_error(e):
        app.logger.exception("unhandled error")
        return error_response(500, None, "서버 내부 오류입니다. 서버를 실행한 터미널의 로그를 확인하세요.")

    if db is not None or ab:  # human evaluation and A/B tests: kogen/serving/, votes in one SQLite file
        from .serving import register
        register(app, gen, db, ab, name, device, generate=safe_generate)  # A/B outputs pass the safety policy too
    return app


def get_web_service_app(inference_fn=None, *, model=None, tokenizer=None, model_name=None, device=None):
    """ratsnlp's name for the app factory, as step 5 of the course calls it."""
    return create_app(model, tokenizer, model_name, device, inference_fn=inference_fn)


def start_server(app, host="127.0.0.1", port=0, threads=8):
    """waitress in a daemon thread; port 0 picks a free one (see `.effective_port`)."""
    from waitress import create_server
    server = create_server(app, host=host, port=port, threads=threads)
    threading.Thread(target=server.run, daemon=True).start()
    return server


def stop_server(server):
    server.task_dispatcher.shutdown()  # workers first: a finishing one wakes the loop through the trigger
    server.close()  # then the listening socket and the trigger


def load_for_serving(model=None, checkpoint_dir=None, device=None):
    """(model, tokenizer, name, device): a step-4 checkpoint on its base model, else a folder or hub id."""
    from .deploy import GenerationDeployArguments, load_for_inference
    from .models import BUNDLED_MODEL_DIR, load_model, requested_model_name
    if checkpoint_dir:
        args = GenerationDeployArguments(pretrained_model_name=model, downstream_model_dir=checkpoint_dir)
        lm, tokenizer, device = load_for_inference(args, device)
        name = f"{args.pretrained_model_name} + {os.path.basename(args.downstream_model_checkpoint_fpath)}"
        return lm, tokenizer, name, device
    lm, tokenizer, path = load_model(model, device)
    name = "bundled" if Path(path) == BUNDLED_MODEL_DIR else requested_model_name(model)  # say so after a fallback
    return lm, tokenizer, name, lm.device


def serve(model=None, checkpoint_dir=None, host="127.0.0.1", port=9001, device=None, db=None, ab=None,
          safety="flag", safety_threshold=None):
    """Load the model once, then serve it with waitress until Ctrl+C. `db`: the votes' SQLite file
    (default: KOGEN_DB or the user's data folder); `ab`: ["A=PRESET", "B=PRESET"] runs an A/B test."""
    from waitress import create_server

    from .serving.ab import parse_arms
    from .serving.store import Store
    from .safety.filter import check_policy, classifier
    check_policy(safety)
    arms, store = parse_arms(ab), Store(db)  # bad --ab fails before the slow model load
    if db or os.environ.get("KOGEN_DB") or arms:
        store.open()  # a chosen database that cannot be opened fails now, not at the first vote
    lm, tokenizer, name, device = load_for_serving(model, checkpoint_dir, device)
    if safety != "off":
        classifier()  # load it now: a missing classifier file fails at start, not at the first request
    app = create_app(lm, tokenizer, name, device, db=store, ab=arms, safety=safety, safety_threshold=safety_threshold)
    try:
        server = create_server(app, host=host, port=port, threads=8)  # threads: streams hold one each
    except OSError as e:
        raise ValueError(f"{host}:{port}에서 서버를 열 수 없습니다({e.strerror}). 이미 켜 둔 서버를 끄거나 "
                         f"--port {port + 1}처럼 다른 포트를 쓰세요.") from None
    print(f"[kogen] 웹 서비스: http://{host}:{port} (모델 {name}, 장치 {device}) — 끝내려면 Ctrl+C", flush=True)
    print(f"[kogen] 사람 평가: http://{host}:{port}/eval" + (f" · A/B 시험 {arms}: http://{host}:{port}/ab/results"
          if arms else "") + f" (저장: {store.path})", flush=True)
    server.run()
