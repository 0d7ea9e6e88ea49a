"""Running the app: load the model once, then waitress (serve); or a server in a thread (tests, benchmarks)."""
import os
import threading
from pathlib import Path

from .app import create_app


def server_threads(app):
    """One waitress thread per request in flight (a stream holds one) plus spares for /healthz and the 503s."""
    from .service import MAX_IN_FLIGHT, SPARE_THREADS
    svc = app.extensions.get("kogen", {}).get("service")  # any other WSGI app (a test's stub): the default
    return (svc.max_in_flight if svc else MAX_IN_FLIGHT) + SPARE_THREADS


def start_server(app, host="127.0.0.1", port=0, threads=None):
    """waitress in a daemon thread; port 0 picks a free one (see `.effective_port`)."""
    from waitress import create_server

    from .security import bind
    bind(app, host)  # the Host check depends on where the server listens
    server = create_server(app, host=host, port=port, threads=threads or server_threads(app))
    server.flask_app = app  # server.application is waitress' wrapper of it
    threading.Thread(target=server.run, daemon=True).start()
    return server


def stop_server(server):
    """Stop a start_server() server as if its process ended: workers, then every connection (kept-alive ones too, so
    a client's next request is refused), the listening socket and the trigger, then the app's model thread."""
    from waitress.channel import HTTPChannel
    server.task_dispatcher.shutdown()  # workers first: a finishing one wakes the loop through the trigger
    closed = threading.Event()

    def close():
        for channel in list(server._map.values()):  # the listening socket and the trigger are in the map too
            # a connection's handle_close also wakes a worker still writing to it
            (channel.handle_close if isinstance(channel, HTTPChannel) else channel.close)()
        closed.set()
    try:  # in the loop's own thread: closed from here, its select() could meet a closed descriptor (EBADF)
        server.trigger.pull_trigger(close)
        done = closed.wait(5)
    except OSError:  # the trigger is closed already
        done = False
    if not done:  # the loop has ended
        close()
    kogen = server.flask_app.extensions.get("kogen")
    engine = kogen["service"].engine if kogen else None
    if hasattr(engine, "close"):  # the model thread ends too (a batcher holds the model until then)
        engine.close()


def load_for_serving(model=None, checkpoint_dir=None, device=None):
    """(model, tokenizer, name, device): a step-4 checkpoint on its base model, else a folder or hub id."""
    from ..deploy import GenerationDeployArguments, load_for_inference
    from ..models import BUNDLED_MODEL_DIR, load_model, requested_model_name
    if checkpoint_dir:
        args = GenerationDeployArguments(pretrained_model_name=model, downstream_model_dir=checkpoint_dir)
        lm, tokenizer, device = load_for_inference(args, device)
        name = f"{args.pretrained_model_name} + {os.path.basename(args.downstream_model_checkpoint_fpath)}"
        return lm, tokenizer, name, device
    lm, tokenizer, path = load_model(model, device)
    name = "bundled" if Path(path) == BUNDLED_MODEL_DIR else requested_model_name(model)  # say so after a fallback
    return lm, tokenizer, name, lm.device


def load_backend(backend, model=None, checkpoint_dir=None, arms=None):
    """The remote engine of `kogen serve --backend` (serving/remote.py), checked before anything is served: the URL
    is an OpenAI-compatible server, and every A/B arm's preset is one it can run (else each request would fail)."""
    from ..generation import PRESETS, ParamError, check_params
    from .remote import connect
    if checkpoint_dir:
        raise ValueError("--backend와 --checkpoint-dir은 함께 쓸 수 없습니다. 백엔드(vLLM 등)에 내보낸 hf_model 폴더를 "
                         "띄우고 kogen에는 --backend만 주세요.")
    engine = connect(tokenizer_model=model, **backend)  # not an OpenAI-compatible server: ValueError, exit 2
    for arm, preset in (arms or {}).items():
        try:
            engine.refuse(check_params(PRESETS[preset]["params"]))
        except ParamError as e:
            raise ValueError(f"--ab {arm}={preset}: {e.message}") from None
    return engine


def make_engine(kind, model, tokenizer, compute_type="int8"):
    """None for "hf" (create_app makes its batcher), a ct2.Ct2Engine for "ct2"."""
    if kind == "hf":
        return None
    from . import ct2
    if kind != "ct2":
        raise ValueError(f"알 수 없는 엔진입니다: {kind}. hf 또는 ct2 중 하나를 쓰세요.")
    if not ct2.available():
        raise ValueError("ct2 엔진에는 CTranslate2가 필요합니다. pip install ctranslate2 후 다시 켜거나 --engine hf를 쓰세요.")
    print(f"[kogen] CTranslate2로 변환된 모델을 준비합니다(처음 한 번만 변환, {ct2.cache_root()}) ...", flush=True)
    try:
        return ct2.Ct2Engine(model, tokenizer, compute_type)
    except ValueError as e:  # e.g. a compute type this CPU cannot run
        raise ValueError(f"ct2 엔진을 켤 수 없습니다({e}). --compute-type float32 또는 --engine hf를 쓰세요.") from None


def serve(model=None, checkpoint_dir=None, host="127.0.0.1", port=9001, device=None, db=None, ab=None,
          safety="flag", safety_threshold=None, api_keys=None, allowed_origins=(), allowed_hosts=(), rate_limit=0,
          rate_burst=None, log_prompts=False, backend=None, max_in_flight=None, engine="hf", compute_type="int8"):
    """Load the model once, then serve it with waitress until Ctrl+C. `db`: the votes' SQLite file
    (default: KOGEN_DB or the user's data folder); `ab`: ["A=PRESET", "B=PRESET"] runs an A/B test.
    `api_keys` (plus KOGEN_API_KEY), origins, hosts, rate limit (per minute, burst), log_prompts: security.py.
    `backend`: remote.connect's arguments (url, model, api_key, timeouts): no model is loaded, an OpenAI-compatible
    server makes the tokens, and `model` names its tokenizer (optional, see serving/remote.py).
    `max_in_flight`: generating requests at once, past it a 503 with Retry-After; `engine`: "hf" (the batcher) or
    "ct2" (CTranslate2 at `compute_type`, the model converted once into the user cache)."""
    from waitress import create_server

    from ..safety.filter import check_policy, classifier
    from .ab import parse_arms
    from . import security
    from .service import MAX_IN_FLIGHT
    from .store import Store
    check_policy(safety)
    if max_in_flight is not None and max_in_flight < 1:
        raise ValueError(f"--max-in-flight {max_in_flight}은(는) 1 이상이어야 합니다(기본 {MAX_IN_FLIGHT}).")
    if backend and engine != "hf":
        raise ValueError("--backend와 --engine ct2는 함께 쓸 수 없습니다. 백엔드가 토큰을 만들므로 --engine을 빼세요.")
    keys = security.api_keys(api_keys)
    guard = security.Config(api_keys=keys, allowed_origins=tuple(allowed_origins or ()),
                            allowed_hosts=tuple(allowed_hosts or ()), rate_limit=rate_limit or 0,
                            rate_burst=security.RATE_BURST if rate_burst is None else rate_burst,
                            log_prompts=log_prompts, bind_host=host)
    warning = security.bind_warning(host, keys)
    if warning:
        print(warning, flush=True)  # before the slow model load, where the instructor is still looking
    arms, store = parse_arms(ab), Store(db)  # bad --ab fails before the slow model load
    remote = load_backend(backend, model, checkpoint_dir, arms) if backend else None  # before anything is written
    if db or os.environ.get("KOGEN_DB") or arms:
        store.open()  # a chosen database that cannot be opened fails now, not at the first vote
    if remote:
        lm, tokenizer, name, device = None, None, remote.model, remote.url
    else:
        lm, tokenizer, name, device = load_for_serving(model, checkpoint_dir, device)
    if safety != "off":
        classifier()  # load it now: a missing classifier file fails at start, not at the first request
    app = create_app(lm, tokenizer, name, device, db=store, ab=arms, safety=safety, safety_threshold=safety_threshold,
                     security=guard, max_in_flight=max_in_flight or MAX_IN_FLIGHT,
                     engine=remote or make_engine(engine, lm, tokenizer, compute_type))
    try:
        server = create_server(app, host=host, port=port, threads=server_threads(app))
    except OSError as e:
        raise ValueError(f"{host}:{port}에서 서버를 열 수 없습니다({e.strerror}). 이미 켜 둔 서버를 끄거나 "
                         f"--port {port + 1}처럼 다른 포트를 쓰세요.") from None
    where = f"백엔드 {device}의 모델 {name}" if backend else f"모델 {name}, 장치 {device}"
    print(f"[kogen] 웹 서비스: http://{host}:{port} ({where}) — 끝내려면 Ctrl+C", flush=True)
    print(f"[kogen] 사람 평가: http://{host}:{port}/eval" + (f" · A/B 시험 {arms}: http://{host}:{port}/ab/results"
          if arms else "") + f" (저장: {store.path})", flush=True)
    if keys:
        print(f"[kogen] API 키 {len(keys)}개가 필요합니다. 페이지는 처음 한 번 키를 묻습니다; 키를 담은 링크: "
              f"http://{host}:{port}/#key=키", flush=True)
    security.log_to_stderr()
    server.run()
