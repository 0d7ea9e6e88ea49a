"""Running the app: load the model once, then waitress (serve); or a server in a thread (tests, benchmarks)."""
import os
import threading
from pathlib import Path

from .app import create_app


def server_threads(app):
    """One waitress thread per request in flight (a stream holds one) plus spares for /healthz and the 503s."""
    from .service import SPARE_THREADS
    return app.extensions["kogen"]["service"].max_in_flight + SPARE_THREADS


def start_server(app, host="127.0.0.1", port=0, threads=None):
    """waitress in a daemon thread; port 0 picks a free one (see `.effective_port`)."""
    from waitress import create_server
    server = create_server(app, host=host, port=port, threads=threads or server_threads(app))
    threading.Thread(target=server.run, daemon=True).start()
    return server


def stop_server(server):
    server.task_dispatcher.shutdown()  # workers first: a finishing one wakes the loop through the trigger
    server.close()  # then the listening socket and the trigger


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
          safety="flag", safety_threshold=None, max_in_flight=None, engine="hf", compute_type="int8"):
    """Load the model once, then serve it with waitress until Ctrl+C. `db`: the votes' SQLite file
    (default: KOGEN_DB or the user's data folder); `ab`: ["A=PRESET", "B=PRESET"] runs an A/B test;
    `max_in_flight`: generating requests at once, past it a 503 with Retry-After; `engine`: "hf" (the batcher) or
    "ct2" (CTranslate2 at `compute_type`, the model converted once into the user cache)."""
    from waitress import create_server

    from ..safety.filter import check_policy, classifier
    from .ab import parse_arms
    from .service import MAX_IN_FLIGHT
    from .store import Store
    check_policy(safety)
    if max_in_flight is not None and max_in_flight < 1:
        raise ValueError(f"--max-in-flight {max_in_flight}은(는) 1 이상이어야 합니다(기본 {MAX_IN_FLIGHT}).")
    arms, store = parse_arms(ab), Store(db)  # bad --ab fails before the slow model load
    if db or os.environ.get("KOGEN_DB") or arms:
        store.open()  # a chosen database that cannot be opened fails now, not at the first vote
    lm, tokenizer, name, device = load_for_serving(model, checkpoint_dir, device)
    if safety != "off":
        classifier()  # load it now: a missing classifier file fails at start, not at the first request
    app = create_app(lm, tokenizer, name, device, db=store, ab=arms, safety=safety, safety_threshold=safety_threshold,
                     max_in_flight=max_in_flight or MAX_IN_FLIGHT, engine=make_engine(engine, lm, tokenizer, compute_type))
    try:
        server = create_server(app, host=host, port=port, threads=server_threads(app))
    except OSError as e:
        raise ValueError(f"{host}:{port}에서 서버를 열 수 없습니다({e.strerror}). 이미 켜 둔 서버를 끄거나 "
                         f"--port {port + 1}처럼 다른 포트를 쓰세요.") from None
    print(f"[kogen] 웹 서비스: http://{host}:{port} (모델 {name}, 장치 {device}) — 끝내려면 Ctrl+C", flush=True)
    print(f"[kogen] 사람 평가: http://{host}:{port}/eval" + (f" · A/B 시험 {arms}: http://{host}:{port}/ab/results"
          if arms else "") + f" (저장: {store.path})", flush=True)
    server.run()
