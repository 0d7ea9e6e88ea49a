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
