"""`kogen serve --backend`: kogen as the front end of an OpenAI-compatible server. The backend here is a second
real kogen server on loopback (the OpenAI-compatible server we have); the front is a kogen app with the remote
engine, also on waitress. Seeded and greedy answers through the front equal the backend's own; what the backend
cannot do is a 400 naming the parameter; a stopped backend is a 502, a slow one a 504, and a URL that is not an
OpenAI server stops `kogen serve` with exit code 2."""
import os
import re
import subprocess
import sys
import threading
import time

import openai
import pytest
import requests
from flask import Flask, Response, jsonify, request

from kogen.models import BUNDLED_MODEL_DIR, read_config
from kogen.serving.remote import connect
from kogen.web import create_app, start_server, stop_server
from test_web import PROMPT, RATSNLP, read_events, streamed

CONTEXT = read_config(BUNDLED_MODEL_DIR)["n_positions"]


def serving(app):
    server = start_server(app)
    return server, f"http://127.0.0.1:{server.effective_port}"


def front_app(backend_url, **kw):
    engine = connect(backend_url + "/v1", **kw)
    return create_app(engine=engine, model_name=engine.model, device=engine.url)


@pytest.fixture(scope="module")
def backend(model):
    server, url = serving(create_app(*model, model_name="bundled", device="cpu"))
    yield url
    stop_server(server)


@pytest.fixture(scope="module")
def front(backend):
    """The front without a tokenizer: the backend judges lengths."""
    server, url = serving(front_app(backend))
    yield url
    stop_server(server)


@pytest.fixture(scope="module")
def front_tok(backend):
    """The front with the backend model's tokenizer (`--model bundled`): lengths are checked here."""
    server, url = serving(front_app(backend, tokenizer_model="bundled"))
    yield url
    stop_server(server)


def post(url, path, body, **kw):
    return requests.post(url + path, json=body, timeout=60, **kw)


def same(front_url, backend_url, path, body):
    a, b = post(front_url, path, body), post(backend_url, path, body)
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    return a.json(), b.json()


# --- through the front, the backend's answers --------------------------------------------------------------

def test_healthz_and_models_name_the_backend(front, backend):
    health = requests.get(front + "/healthz", timeout=10).json()
    assert health["engine"] == "remote" and health["backend"] == backend + "/v1" and health["model"] == "bundled"
    assert health["max_context"] == CONTEXT, "the context length comes from the backend's /v1/models"
    assert [m["id"] for m in requests.get(front + "/v1/models", timeout=10).json()["data"]] == ["bundled"]


@pytest.mark.parametrize("body", [
    dict(prompt=PROMPT, max_new_tokens=12),  # greedy
    dict(prompt=PROMPT, max_new_tokens=12, min_new_tokens=12, do_sample=True, seed=7, top_p=0.92, top_k=30,
         temperature=0.8, repetition_penalty=1.3),  # seeded sampling with vLLM's extras
    dict(prompt=PROMPT, max_new_tokens=8, do_sample=True, seed=3, num_return_sequences=2),
], ids=["greedy", "seeded", "n2"])
def test_api_generate_through_the_front_equals_the_backend(front, front_tok, backend, body):
    for url in (front, front_tok):
        out, direct = same(url, backend, "/api/generate", body)
        for key in ("texts", "completions", "finish_reasons", "prompt_tokens", "new_tokens"):
            assert out[key] == direct[key], (url, key, out, direct)


def test_sse_through_the_front_streams_the_backends_pieces(front, backend):
    body = dict(prompt=PROMPT, max_new_tokens=20, min_new_tokens=20, do_sample=True, seed=11)
    pieces, done = streamed(front, body)
    assert len(pieces) > 1, "pieces must be forwarded as they arrive, not at once"
    assert "".join(pieces) == done["completions"][0] == post(backend, "/api/generate", body).json()["completions"][0]
    assert done["finish_reason"] == "length"


def test_ratsnlp_api_through_the_front_counts_the_prompt_like_the_backend(front, front_tok, backend):
    # top_k=1 sampling is greedy, so both must give the same text; lengths include the prompt in both
    body = dict(RATSNLP, top_k="1", no_repeat_ngram_size="0", min_length="12", max_length="12")
    for url in (front, front_tok):  # without a tokenizer the front asks the backend for the prompt's length
        out, direct = same(url, backend, "/api", body)
        assert out == direct, url


def test_openai_client_through_the_front_equals_the_backend(front, backend):
    clients = [openai.OpenAI(base_url=u + "/v1", api_key="x", max_retries=0, timeout=60) for u in (front, backend)]
    kw = dict(model="bundled", prompt=PROMPT, max_tokens=10, temperature=0.9, top_p=0.9, seed=5,
              extra_body=dict(top_k=20, min_tokens=10))
    via_front, direct = (c.completions.create(**kw) for c in clients)
    assert via_front.choices[0].text == direct.choices[0].text and via_front.usage == direct.usage
    chunks = list(clients[0].completions.create(stream=True, **kw))
    assert "".join(c.choices[0].text for c in chunks) == direct.choices[0].text
    assert chunks[-1].choices[0].finish_reason == "length"


def test_closing_a_stream_at_the_front_cancels_the_backends_generation(front, monkeypatch):
    from kogen.serving import batcher, hf
    seen, summarize = [], hf.summarize  # the backend runs in this process: watch how far its generation went
    for module in (hf, batcher):  # batched rows and requests that run alone
        monkeypatch.setattr(module, "summarize", lambda tok, n_prompt, out, *rest: seen.append(out.shape[1] - n_prompt)
                            or summarize(tok, n_prompt, out, *rest))
    with post(front, "/api/generate", dict(prompt=PROMPT, max_new_tokens=250, min_new_tokens=250, stream=True),
              stream=True) as r:
        next(r.iter_lines())  # one piece, then hang up
    deadline = time.monotonic() + 20
    while not seen and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen and seen[0] < 250, seen


# --- what stays kogen's: validation, and what the backend cannot do ---------------------------------------

@pytest.mark.parametrize("path,body,field", [
    ("/api/generate", dict(num_beams=2), "num_beams"),
    ("/api/generate", dict(penalty_alpha=0.6, top_k=4), "penalty_alpha"),
    ("/api/generate", dict(control="긍정"), "control"),
    ("/api/generate", dict(no_repeat_ngram_size=3), "no_repeat_ngram_size"),
    ("/api/generate", dict(top_tokens=3), "top_tokens"),
    ("/api/generate", dict(top_tokens=3, stream=True), "top_tokens"),
    ("/v1/completions", dict(model="bundled", logprobs=2), "logprobs"),
    ("/v1/completions", dict(model="bundled", penalty_alpha=0.6), "penalty_alpha"),
    ("/api", RATSNLP, "no_repeat_ngram_size"),
    ("/api/generate", dict(top_p=0), "top_p"),  # kogen's own check runs first, as without a backend
])
def test_what_the_backend_cannot_do_is_a_korean_400_naming_it(front, path, body, field):
    r = post(front, path, dict(dict(prompt=PROMPT), **body))
    assert r.status_code == 400 and r.json()["error"]["field"] == field, r.text
    if field != "top_p":
        assert "백엔드" in r.json()["error"]["message"], r.text


def test_too_long_for_the_backend_is_its_400_or_ours(front, front_tok):
    if CONTEXT >= 512:
        pytest.skip("the model's context is longer than any allowed length")
    body = dict(prompt=PROMPT, max_new_tokens=CONTEXT)
    judged_there, judged_here = post(front, "/api/generate", body), post(front_tok, "/api/generate", body)
    for r in (judged_there, judged_here):
        assert r.status_code == 400 and r.json()["error"]["field"] == "max_new_tokens", r.text
        assert f"모델 최대 길이 {CONTEXT}" in r.json()["error"]["message"], r.text
    assert "백엔드가 요청을 거절" in judged_there.json()["error"]["message"]
    r = post(front, "/v1/completions", dict(model="bundled", prompt=PROMPT, max_tokens=CONTEXT))
    assert r.status_code == 400 and r.json()["error"]["field"] == "max_tokens", "/v1 keeps OpenAI's names"


# --- faults: a clear 502/504 in Korean, never a hang --------------------------------------------------------

def test_stopped_backend_is_a_quick_502(model):
    server, backend_url = serving(create_app(*model, model_name="bundled", device="cpu"))
    front_server, url = serving(front_app(backend_url))
    assert post(url, "/api/generate", dict(prompt=PROMPT, max_new_tokens=2)).status_code == 200  # a kept-alive link
    stop_server(server)
    try:
        for stream in (False, True):
            start = time.monotonic()
            r = post(url, "/api/generate", dict(prompt=PROMPT, stream=stream))
            assert r.status_code == 502 and "연결할 수 없습니다" in r.json()["error"]["message"], r.text
            assert time.monotonic() - start < 5
    finally:
        stop_server(front_server)


@pytest.fixture
def slow_backend():
    """An OpenAI-looking stub that stalls for 5 s (released when the test ends): before answering, or, streaming,
    after its first piece."""
    app, release = Flask(__name__), threading.Event()
    app.get("/v1/models")(lambda: jsonify(object="list", data=[dict(id="slow", object="model")]))

    @app.post("/v1/completions")
    def completions():
        if not request.get_json().get("stream"):
            release.wait(5)
            return jsonify(choices=[])

        def events():
            yield 'data: {"choices": [{"index": 0, "text": " 첫 조각", "finish_reason": null}]}\n\n'
            release.wait(5)
            yield "data: [DONE]\n\n"
        return Response(events(), mimetype="text/event-stream")
    server, url = serving(app)
    yield url
    release.set()
    stop_server(server)


def test_slow_backend_is_a_504_within_the_timeout(slow_backend):
    server, url = serving(front_app(slow_backend, timeout=0.5))
    try:
        for path in ("/api/generate", "/v1/completions"):
            start = time.monotonic()
            r = post(url, path, dict(prompt=PROMPT))
            assert r.status_code == 504 and "0.5초" in r.json()["error"]["message"], r.text
            assert time.monotonic() - start < 3, "the timeout must answer, not the slow backend"
        start = time.monotonic()  # a stream that stalls after its first piece ends with an error event
        events = read_events(post(url, "/api/generate", dict(prompt=PROMPT, stream=True)))
        assert events[0] == ("message", {"text": " 첫 조각"}) and events[-1][0] == "error", events
        assert "0.5초" in events[-1][1]["error"]["message"] and time.monotonic() - start < 3, events
    finally:
        stop_server(server)


def test_connect_refuses_what_is_not_an_openai_server(backend, free_port):
    for url, message in ((backend, "OpenAI 호환"),  # kogen's own root, /v1 forgotten: /models is a 404
                         (f"http://127.0.0.1:{free_port}/v1", "연결할 수 없습니다"),
                         ("127.0.0.1:8000/v1", "http(s)://")):
        with pytest.raises(ValueError, match=re.escape(message)):
            connect(url, connect_timeout=2, timeout=5)
    with pytest.raises(ValueError, match="있는 모델: bundled"):
        connect(backend + "/v1", model="gpt-4")
    with pytest.raises(ValueError, match="0보다 큰"):
        connect(backend + "/v1", timeout=0)


def test_an_ab_arm_the_backend_cannot_run_stops_serve_at_start(backend):
    from kogen.serving.server import load_backend
    with pytest.raises(ValueError, match="--ab B=recommended: .*no_repeat_ngram_size"):
        load_backend(dict(url=backend + "/v1"), arms={"A": "greedy", "B": "recommended"})
    assert load_backend(dict(url=backend + "/v1"), arms={"A": "greedy", "B": "top_p"}).model == "bundled"


def test_kogen_serve_backend_exits_2_on_a_url_that_is_not_openai_and_serves_on_one_that_is(backend, free_port,
                                                                                           tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "kogen", "serve", "--port", str(free_port), "--safety", "off", "--backend"]
    db = tmp_path / "votes.db"
    bad = subprocess.run(cmd + [backend, "--db", str(db)], env=env, capture_output=True, text=True,
                         timeout=120)  # /v1 forgotten
    assert bad.returncode == 2, (bad.stdout, bad.stderr)
    assert "OpenAI 호환" in bad.stderr and "/v1" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    assert not db.exists(), "nothing is written before the backend is checked"
    proc = subprocess.Popen(cmd + [backend + "/v1", "--model", "bundled"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{free_port}"
    try:
        deadline, health = time.monotonic() + 90, None
        while health is None and proc.poll() is None and time.monotonic() < deadline:
            try:
                health = requests.get(url + "/healthz", timeout=5).json()
            except requests.ConnectionError:
                time.sleep(0.3)
        assert health and health["engine"] == "remote" and health["backend"] == backend + "/v1", proc.poll()
        out, direct = same(url, backend, "/api/generate", dict(prompt=PROMPT, max_new_tokens=8))
        assert out["texts"] == direct["texts"]
    finally:
        proc.terminate()
        stdout, stderr = proc.communicate(timeout=30)
    assert f"백엔드 {backend}/v1의 모델 bundled" in stdout, (stdout, stderr)
