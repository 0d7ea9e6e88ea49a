"""Serving a class safely (kogen/serving/security.py), on real waitress servers on loopback with the bundled
model: JSON-only bodies (415), cross-site POSTs (403), a forged Host (400), API keys (401 in OpenAI's shape,
the official client with api_key=), per-client rate limits (429 + Retry-After, recovering), security headers,
no stack trace, the access log, and `kogen serve --host 0.0.0.0` warning without a key."""
import logging
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import requests

from kogen.serving.security import api_keys, bind_warning
from kogen.serving.store import Store
from kogen.web import create_app, start_server, stop_server
from test_study import make_study

PROMPT = "오늘 본 영화는"
ASCII_KEYS = ["key-alpha", "key-beta"]  # HTTP headers are latin-1: real keys are ASCII
RATSNLP = dict(prompt=PROMPT, min_length="1", max_length="8", top_p="0.9", top_k="5", repetition_penalty="1.0",
               no_repeat_ngram_size="0", temperature="1.0")


def serving(app):
    server = start_server(app)
    return server, f"http://127.0.0.1:{server.effective_port}"


@pytest.fixture(scope="module")
def open_server(model, tmp_path_factory):
    """No key (the default for a student), with /eval and /ab: every POST endpoint there is."""
    store = Store(tmp_path_factory.mktemp("sec") / "votes.db")
    make_study(store, "보안", n_prompts=3)
    server, url = serving(create_app(*model, model_name="bundled", db=store, ab={"A": "greedy", "B": "beam"},
                                     security=dict(allowed_origins=["https://class.example"])))
    yield url
    stop_server(server)


@pytest.fixture(scope="module")
def keyed(model):
    server, url = serving(create_app(*model, model_name="bundled", security=dict(api_keys=ASCII_KEYS)))
    yield url
    stop_server(server)


POSTS = [("/api", RATSNLP), ("/api/generate", dict(prompt=PROMPT, max_new_tokens=2)),
         ("/v1/completions", dict(model="bundled", prompt=PROMPT, max_tokens=2)),
         ("/eval/보안/vote", dict(token="1.aaaaaaaaaaaa." + "0" * 32, choice="A", rater="r")),
         ("/ab/generate", dict(prompt=PROMPT, max_new_tokens=2)), ("/ab/outcome", dict(impression_id=1, kind="up"))]


@pytest.mark.parametrize("path,body", POSTS, ids=[p for p, _ in POSTS])
def test_every_post_endpoint_refuses_text_plain_and_foreign_origins(open_server, path, body):
    import json
    raw = json.dumps(body).encode()
    plain = requests.post(open_server + path, data=raw, headers={"Content-Type": "text/plain"}, timeout=30)
    assert plain.status_code == 415 and "application/json" in plain.json()["error"]["message"], plain.text
    form = requests.post(open_server + path, data=body, timeout=30)  # a cross-site <form> posts this
    assert form.status_code == 415, form.text
    foreign = requests.post(open_server + path, json=body, headers={"Origin": "http://evil.example"}, timeout=30)
    assert foreign.status_code == 403 and "--allow-origin" in foreign.json()["error"]["message"], foreign.text
    fetch_meta = requests.post(open_server + path, json=body, headers={"Sec-Fetch-Site": "cross-site"}, timeout=30)
    assert fetch_meta.status_code == 403, "a cross-site fetch without Origin is refused too"


def test_same_origin_and_allowed_origins_still_work(open_server):
    body = dict(prompt=PROMPT, max_new_tokens=2)
    same = requests.post(open_server + "/api/generate", json=body, headers={"Origin": open_server,
                                                                           "Sec-Fetch-Site": "same-origin"}, timeout=60)
    assert same.status_code == 200, same.text
    allowed = requests.post(open_server + "/api/generate", json=body, headers={"Origin": "https://class.example"},
                            timeout=60)
    assert allowed.status_code == 200 and allowed.headers["Access-Control-Allow-Origin"] == "https://class.example"
    preflight = requests.options(open_server + "/api/generate", headers={
        "Origin": "https://class.example", "Access-Control-Request-Method": "POST"}, timeout=30)
    assert preflight.ok and "Authorization" in preflight.headers["Access-Control-Allow-Headers"]


def test_a_forged_host_is_refused_and_loopback_names_are_not(open_server):
    port = open_server.rsplit(":", 1)[1]
    forged = requests.get(open_server + "/healthz", headers={"Host": f"rebind.evil.example:{port}"}, timeout=30)
    assert forged.status_code == 400 and "--allow-host" in forged.json()["error"]["message"], forged.text
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert requests.get(open_server + "/healthz", headers={"Host": host}, timeout=30).status_code == 200, host


def test_allow_host_and_a_network_bind_accept_their_names(model):
    app = create_app(*model, security=dict(allowed_hosts=["Lab.Example"]))
    assert app.test_client().get("/healthz", headers={"Host": "lab.example:9001"}).status_code == 200
    app = create_app(*model, security=dict(bind_host="0.0.0.0"))
    client = app.test_client()
    assert client.get("/healthz", headers={"Host": "192.168.0.10:9001"}).status_code == 200, "the instructor's IP"
    assert client.get("/healthz", headers={"Host": "evil.example"}).status_code == 400, "names still need --allow-host"
    # step 5's app.run(host="0.0.0.0"): Flask's own server says where it listens in SERVER_NAME
    step5 = create_app(*model).test_client()
    assert step5.get("/healthz", headers={"Host": "192.168.0.10:9001"},
                     environ_overrides={"SERVER_NAME": "0.0.0.0"}).status_code == 200
    assert step5.get("/healthz", headers={"Host": "192.168.0.10:9001"}).status_code == 400, "loopback by default"


def test_keys_401_in_openai_shape_and_the_right_key_works(keyed):
    body = dict(prompt=PROMPT, max_new_tokens=2)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {ASCII_KEYS[0]}"}):
        r = requests.post(keyed + "/api/generate", json=body, headers=headers, timeout=30)
        err = r.json()["error"]
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer"), r.text
        assert err["code"] == "invalid_api_key" and err["type"] == "invalid_request_error" and "키" in err["message"]
    for key in ASCII_KEYS:
        r = requests.post(keyed + "/api/generate", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        assert r.status_code == 200, r.text
    assert requests.get(keyed + "/v1/models", timeout=30).status_code == 401
    assert requests.get(keyed + "/healthz", timeout=30).status_code == 200, "/healthz stays open"
    page = requests.get(keyed + "/", timeout=30)
    assert page.status_code == 200 and "auth.js" in page.text, "the page loads and asks for the key itself"


def test_the_openai_client_works_with_api_key(keyed):
    good = openai.OpenAI(base_url=keyed + "/v1", api_key=ASCII_KEYS[1], max_retries=0, timeout=60)
    assert good.completions.create(model="bundled", prompt=PROMPT, max_tokens=3).choices[0].text is not None
    bad = openai.OpenAI(base_url=keyed + "/v1", api_key="nope", max_retries=0, timeout=60)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.models.list()
    assert e.value.code == "invalid_api_key"


def test_metrics_is_protected_by_the_key(model):
    app = create_app(*model, security=dict(api_keys=ASCII_KEYS))
    if "/metrics" not in {r.rule for r in app.url_map.iter_rules()}:  # added by the batching work
        app.add_url_rule("/metrics", "metrics", lambda: "kogen_requests_total 1\n")
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {ASCII_KEYS[0]}"}).status_code == 200


def test_a_burst_over_the_limit_gets_429_then_recovers(model):
    # 60 a minute = one a second per client; 3 at once. Each key is its own client.
    server, url = serving(create_app(*model, security=dict(api_keys=ASCII_KEYS, rate_limit=60, rate_burst=3)))
    try:
        def call(key):
            return requests.post(url + "/api/generate", json=dict(prompt=PROMPT, max_new_tokens=2),
                                 headers={"Authorization": f"Bearer {key}"}, timeout=60)
        with ThreadPoolExecutor(8) as pool:
            burst = list(pool.map(call, [ASCII_KEYS[0]] * 10))
        codes = sorted(r.status_code for r in burst)
        assert set(codes) == {200, 429} and 3 <= codes.count(200) <= 5, codes
        limited = next(r for r in burst if r.status_code == 429)
        wait = int(limited.headers["Retry-After"])
        assert 1 <= wait <= 2 and "초 뒤에" in limited.json()["error"]["message"], limited.text
        assert call(ASCII_KEYS[1]).status_code == 200, "another student's key has its own bucket"
        time.sleep(wait + 0.1)
        assert call(ASCII_KEYS[0]).status_code == 200, "the limit recovers"
    finally:
        stop_server(server)


def test_security_headers_and_no_stack_trace(model):
    app = create_app(*model)

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals /home/x/kogen/serving/app.py line 1")
    server, url = serving(app)
    try:
        page = requests.get(url + "/", timeout=30)
        csp = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert page.headers["X-Content-Type-Options"] == "nosniff" and page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["Referrer-Policy"] == "no-referrer"
        r = requests.get(url + "/boom", timeout=30)
        assert r.status_code == 500 and "secret" not in r.text and "Traceback" not in r.text, r.text
        assert r.json()["error"]["type"] == "server_error" and r.headers["X-Content-Type-Options"] == "nosniff"
    finally:
        stop_server(server)


def test_one_access_log_line_per_request_without_the_prompt(model, caplog):
    secret = "비밀스러운 프롬프트"
    app = create_app(*model, security=dict(api_keys=ASCII_KEYS))
    server, url = serving(app)
    auth = {"Authorization": f"Bearer {ASCII_KEYS[0]}"}
    try:
        for log_prompts in (False, True):
            app.extensions["kogen_security"].log_prompts = log_prompts
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="kogen.access"):
                requests.post(url + "/api/generate", json=dict(prompt=secret, max_new_tokens=3, min_new_tokens=3),
                              headers=auth, timeout=60)
                requests.post(url + "/api/generate", json=dict(prompt=secret, max_new_tokens=4, min_new_tokens=4,
                                                                stream=True), headers=auth, timeout=60).close()
                requests.get(url + "/healthz", timeout=30)
                deadline = time.monotonic() + 10
                while len(caplog.records) < 3 and time.monotonic() < deadline:
                    time.sleep(0.05)  # a stream's line is written when it closes
            lines = sorted(r.getMessage() for r in caplog.records if r.name == "kogen.access")
            assert len(lines) == 3, lines
            post3, post4 = sorted((x for x in lines if x.startswith("POST")), key=lambda x: "tokens=4" in x)
            assert post3.startswith("POST /api/generate 200 ") and "tokens=3" in post3, lines
            assert "client=127.0.0.1 key=" in post3 and "tokens=4" in post4, "a stream's tokens come from its summary"
            assert ASCII_KEYS[0] not in " ".join(lines), "never the key itself"
            assert (secret in post3 and secret in post4) == log_prompts, lines
            assert any(x.startswith("GET /healthz 200") for x in lines)
        odd = requests.post(url + "/api/generate", json=[secret], headers=auth, timeout=30)
        assert odd.status_code == 400, "logging prompts never turns a bad body into a 500"
    finally:
        stop_server(server)


def test_keys_come_from_flags_and_env_and_open_binds_warn():
    assert api_keys(["a", " b "], env="b,c,, d") == ("a", "b", "c", "d")
    assert api_keys(None, env="") == ()
    for bad in ("수업키", "two words"):
        with pytest.raises(ValueError, match="영문"):
            api_keys([bad], env="")
    assert bind_warning("127.0.0.1", ()) is None and bind_warning("localhost", ()) is None
    assert bind_warning("0.0.0.0", ("k",)) is None
    assert "--api-key" in bind_warning("0.0.0.0", ())


def test_kogen_serve_on_all_addresses_without_a_key_prints_the_warning(free_port):
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    env.pop("KOGEN_API_KEY", None)
    cmd = [sys.executable, "-m", "kogen", "serve", "--model", "bundled", "--host", "0.0.0.0", "--port", str(free_port),
           "--device", "cpu"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline()  # printed before the model loads
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert "경고" in first and "0.0.0.0" in first and "--api-key" in first, first
