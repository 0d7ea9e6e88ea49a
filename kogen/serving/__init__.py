"""Serving room: the web service (app, engines, OpenAI API), human evaluation studies (/eval) and A/B tests (/ab).

    store.py   the SQLite store: the only SQL, where every vote and A/B event is written
    study.py   `kogen study create|list|export` and the /eval routes (rating page, JSON API, results)
    ab.py      `kogen serve --ab A=PRESET --ab B=PRESET`: sticky arms, impressions, outcomes, /ab/results
    app.py     create_app: the page, /healthz, /api, /api/generate; openai.py: /v1/completions, /v1/models
    service.py the engine under the safety policy (what every route calls); http.py: error shape, SSE, handlers
    batcher.py the default engine: one model thread batching concurrent requests (where a request waits);
               the engine interface every engine offers is documented there
    hf.py      the serialized Hugging Face engine (model.generate behind one lock), streaming helpers
    ct2.py     the CTranslate2 engine (kogen serve --engine ct2); metrics.py: GET /metrics
    remote.py  the remote engine of `kogen serve --backend URL`: any OpenAI-compatible server (vLLM) makes the tokens
    server.py  load_for_serving, serve (waitress), start_server/stop_server for tests and benchmarks
    security.py keys, same-origin POSTs, the Host check, rate limits, headers, the access log (hooks on the app)

Routes translate HTTP into Service/store calls and back; the model is reached only through an engine.
"""
from flask import current_app

from .store import Conflict, NotFound, Store, StoreError


def register(app, gen, db, arms=None, model_name=None, device=None, generate=None):
    """Add /eval (and /ab when `arms` is given) to the service's app (serving/app.py); `db` is a path or a Store.
    `generate(prompt, ids, params)` is how A/B outputs are made (the service's, under its safety policy);
    without it, gen(ids, params)."""
    from .http import error_response
    from . import ab, study
    store = db if isinstance(db, Store) else Store(db)
    arms = ab.parse_arms(arms) if isinstance(arms, (list, tuple)) else arms  # ["A=greedy", ...] or {"A": "greedy"}
    generate = generate or (lambda prompt, ids, params: gen(ids, params))
    app.extensions.setdefault("kogen", {}).update(gen=gen, generate=generate, store=store, arms=arms or {},
                                                  model_name=model_name, device=device)
    app.register_blueprint(study.bp)
    if arms:
        if gen is None:
            raise ValueError("A/B 시험(--ab)에는 모델이 필요합니다. create_app에 model과 tokenizer를 넘기세요.")
        app.register_blueprint(ab.bp)
        app.view_functions["kogen.index"] = ab.page  # the home page becomes the A/B page: same service, arm's decoding

    # store errors -> HTTP: unknown -> 404, taken -> 409, cannot open or busy -> 503 (never a 500)
    app.register_error_handler(NotFound, lambda e: error_response(404, getattr(e, "field", None), str(e)))
    app.register_error_handler(Conflict, lambda e: error_response(409, getattr(e, "field", None), str(e)))
    app.register_error_handler(StoreError, lambda e: error_response(503, None, str(e)))
    return app


def state():
    """What register() stored for the routes: gen, generate, store, arms, model_name, device."""
    return current_app.extensions["kogen"]
