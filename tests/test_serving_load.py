"""The service under load, on a real waitress server with real concurrent clients: /healthz answers while
30 streams run, past --max-in-flight a 503 with Retry-After, the batcher (seeds keep their meaning, a hang-up
frees its row, a failing row fails alone) and /metrics."""
import threading
import time

import pytest
import requests

from kogen.web import create_app, start_server, stop_server

PROMPT = "오늘 본 영화는"
LONG = dict(prompt=PROMPT, max_new_tokens=200, min_new_tokens=200, stream=True)


@pytest.fixture
def serve(model):
    """serve(**create_app kwargs) -> base url of a server that is stopped after the test."""
    servers = []

    def start(**kw):
        servers.append(start_server(create_app(*model, model_name="bundled", device="cpu", **kw)))
        return f"http://127.0.0.1:{servers[-1].effective_port}"
    yield start
    for server in servers:
        stop_server(server)


def open_streams(url, n, body=LONG):
    """n streaming responses, each past its first event (so each is provably running); close them after."""
    streams = [None] * n

    def one(i):
        r = requests.post(url + "/api/generate", json=body, stream=True, timeout=120)
        lines = r.iter_lines()
        next(line for line in lines if line.startswith(b"data: "))
        streams[i] = (r, lines)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(streams), "every stream must have started"
    return streams


def wait_for(predicate, seconds=30):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def health(url):
    return requests.get(url + "/healthz", timeout=10).json()


def test_healthz_answers_at_once_while_30_streams_run(serve):
    url = serve()
    streams = open_streams(url, 30)
    try:
        start = time.perf_counter()
        h = health(url)
        seconds = time.perf_counter() - start
        assert h["in_flight"] == 30, "all 30 streams must still be running while /healthz answers"
        assert seconds < 1.0, f"/healthz took {seconds:.2f}s behind 30 streams (goal: < 0.1 s)"
    finally:
        for r, _ in streams:
            r.close()
    wait_for(lambda: health(url)["in_flight"] == 0)


def test_past_max_in_flight_the_service_answers_503_with_retry_after(serve):
    url = serve(max_in_flight=2)
    streams = open_streams(url, 2)
    try:
        for path, body in (("/api/generate", dict(prompt=PROMPT, max_new_tokens=2)),
                           ("/v1/completions", dict(model="m", prompt=PROMPT, max_tokens=2))):
            r = requests.post(url + path, json=body, timeout=10)
            assert r.status_code == 503 and r.headers["Retry-After"] == "1", (path, r.status_code, r.text)
            assert "다시 보내세요" in r.json()["error"]["message"] and r.json()["error"]["type"] == "server_error"
        h = health(url)
        assert (h["in_flight"], h["max_in_flight"]) == (2, 2), h
    finally:
        for r, _ in streams:
            r.close()
    wait_for(lambda: health(url)["in_flight"] == 0)  # a hung-up stream gives its slot back
    assert requests.post(url + "/api/generate", json=dict(prompt=PROMPT, max_new_tokens=2), timeout=30).ok


# --- the batcher ---------------------------------------------------------------------------------

def run_together(engine, jobs):
    """Run [(ids, params)] on `engine` from one thread each, released at once; their summaries in order."""
    results, gate = [None] * len(jobs), threading.Barrier(len(jobs))

    def one(i):
        gate.wait()
        try:
            results[i] = engine(*jobs[i])
        except Exception as e:
            results[i] = e
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


PROMPTS = ["오늘 본 영화는", "이 영화 정말 최악이다 시간이", "배우들의 연기가", "감독의 다음 작품이 기대되는"]


def test_batched_requests_give_the_text_they_give_alone(model):
    from kogen.generation import check_params, generate
    from kogen.serving.batcher import Batcher
    engine = Batcher(*model)
    cases = [dict(max_new_tokens=12),
             dict(max_new_tokens=10, do_sample=True, seed=7, top_p=0.9, temperature=0.8),
             dict(max_new_tokens=14, do_sample=True, seed=123, top_k=20, repetition_penalty=1.3),
             dict(max_new_tokens=9, min_new_tokens=9, no_repeat_ngram_size=2)]
    jobs = [(engine.encode(p, check_params(c)), check_params(c)) for p, c in zip(PROMPTS, cases)]
    alone = [engine(*job)["texts"] for job in jobs]
    for _ in range(2):
        together = [r["texts"] for r in run_together(engine, jobs * 3)]
        assert together == alone * 3, "a request must give the same text alone or in a batch (seeded ones too)"
    assert max(engine.batch_sizes) > 1, "the requests must really have shared a forward pass"
    for prompt, case, texts in zip(PROMPTS, cases, alone):  # and what model.generate gives alone
        assert texts == generate(*model, prompt, **case), case


def test_a_failing_row_fails_alone_and_the_batch_completes(model):
    from kogen.generation import check_params
    from kogen.serving.batcher import Batcher
    engine = Batcher(*model)
    good = check_params(dict(max_new_tokens=8, min_new_tokens=8))
    bad = dict(good, do_sample=True, temperature=0.0)  # slipped past validation: generate's warper refuses it
    ids = engine.encode(PROMPT, good)
    results = run_together(engine, [(ids, good), (ids, bad), (ids, good)])
    assert isinstance(results[1], ValueError), results[1]
    assert results[0]["texts"] == results[2]["texts"] == engine(ids, good)["texts"]
    assert engine(ids, good)["new_tokens"] == 8, "the batcher must keep working after a failed row"


def test_a_hung_up_stream_frees_its_row_without_disturbing_the_others(model):
    from kogen.generation import check_params
    from kogen.serving.batcher import Batcher
    engine = Batcher(*model)
    long, short = (check_params(dict(max_new_tokens=n, min_new_tokens=n)) for n in (200, 40))
    ids = engine.encode(PROMPT, long)
    alone = engine(ids, short)["texts"]
    hung = engine.stream(ids, long)
    next(hung)
    others = run_together(engine, [(ids, short)] * 3 + [(ids, dict(long, max_new_tokens=1, min_new_tokens=1))])
    hung.close()  # what waitress does when the client hangs up
    assert engine.running == 0 or all(r.params["max_new_tokens"] != 200 for r in engine.rows), "the row must leave"
    assert [r["texts"] for r in others[:3]] == [alone] * 3
    wait_for(lambda: engine.running == 0)
    assert engine(ids, short)["texts"] == alone


def test_beam_contrastive_and_fudge_run_alone_beside_the_batch(model):
    from kogen.generation import check_params, generate
    from kogen.serving.batcher import Batcher
    engine = Batcher(*model)
    cases = [dict(max_new_tokens=8), dict(max_new_tokens=8, num_beams=3, num_return_sequences=2),
             dict(max_new_tokens=8, penalty_alpha=0.6, top_k=4), dict(max_new_tokens=8, control="긍정")]
    jobs = [(engine.encode(PROMPT, check_params(c)), check_params(c)) for c in cases]
    for case, out in zip(cases, run_together(engine, jobs)):
        assert out["texts"] == generate(*model, PROMPT, **case), case


def test_close_lets_running_rows_finish_then_ends_the_model_thread(model):
    from kogen.generation import check_params
    from kogen.serving.batcher import Batcher
    engine = Batcher(*model)
    params = check_params(dict(max_new_tokens=30, min_new_tokens=30))
    ids = engine.encode(PROMPT, params)
    alone = engine(ids, params)["texts"]
    running = engine.stream(ids, params)
    next(running)  # a row in the decode loop
    engine.close()
    assert not engine.thread.is_alive(), "close() must end the model thread"
    assert list(running)[-1]["texts"] == alone, "the request that was running must finish as it would have"
    with pytest.raises(RuntimeError, match="멈추는 중"):
        engine(ids, params)


def test_stop_server_ends_the_apps_model_thread(model):
    app = create_app(*model, model_name="bundled", device="cpu")
    server = start_server(app)
    url = f"http://127.0.0.1:{server.effective_port}"
    assert requests.post(url + "/api/generate", json=dict(prompt=PROMPT, max_new_tokens=3), timeout=60).ok
    engine = app.extensions["kogen"]["service"].engine
    stop_server(server)
    assert not engine.thread.is_alive(), "a stopped server must not leave its model thread (and model) behind"


# --- /metrics ------------------------------------------------------------------------------------

def metric(text, name):
    """The value of one sample line `name` (with its labels) in Prometheus' text format."""
    line = next((line for line in text.splitlines() if line.startswith(name + " ")), None)
    assert line is not None, f"{name} missing from /metrics"
    return float(line.split()[-1])


def test_metrics_count_requests_tokens_and_time_to_first_token(serve):
    url = serve()
    assert requests.post(url + "/api/generate", json=dict(prompt=PROMPT, max_new_tokens=5, min_new_tokens=5),
                         timeout=30).ok
    r = requests.post(url + "/api/generate", json=dict(prompt=PROMPT, max_new_tokens=4, min_new_tokens=4, stream=True),
                      timeout=30)
    assert "event: done" in r.text
    assert requests.post(url + "/api/generate", json=dict(prompt=PROMPT, top_k=-1), timeout=30).status_code == 400
    r = requests.get(url + "/metrics", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain"), r.headers
    text = r.text
    assert metric(text, 'kogen_requests_total{endpoint="/api/generate",status="200"}') == 2
    assert metric(text, 'kogen_requests_total{endpoint="/api/generate",status="400"}') == 1
    assert metric(text, "kogen_generated_tokens_total") == 9
    assert metric(text, "kogen_time_to_first_token_seconds_count") == 1
    latency = 'kogen_request_seconds_count{endpoint="/api/generate"}'  # observed when waitress closes the response
    wait_for(lambda: metric(requests.get(url + "/metrics", timeout=10).text, latency) == 3)
    assert metric(text, "kogen_requests_in_flight") == 0 and metric(text, "kogen_requests_queued") == 0
