"""The web service on a real waitress server (loopback, free port) with the bundled model: the ratsnlp
/api, the JSON API and its SSE stream, the OpenAI endpoint through the official client, a table of
bad inputs, 16 concurrent clients, and `kogen serve` in its own process."""
import html
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import requests
import torch

from kogen.generation import PARAMS, check_params, generate
from kogen.models import BUNDLED_MODEL_DIR, read_config
from kogen.web import Generator, create_app, get_web_service_app, load_for_serving, start_server, stop_server

PROMPT = "오늘 본 영화는"
CONTEXT = read_config(BUNDLED_MODEL_DIR)["n_positions"]  # 256 now; the bundled model may be replaced
FITS = pytest.mark.skipif(CONTEXT >= 512, reason="the model's context is longer than any allowed length")
RATSNLP = dict(prompt=PROMPT, min_length="5", max_length="20", top_p="0.92", top_k="50",
               repetition_penalty="1.5", no_repeat_ngram_size="3", temperature="0.9")


@pytest.fixture(scope="module")
def url(model):
    server = start_server(create_app(*model, model_name="bundled", device="cpu"))
    yield f"http://127.0.0.1:{server.effective_port}"
    stop_server(server)


def post(url, path, body, **kw):
    return requests.post(url + path, json=body, timeout=60, **kw)


def read_events(resp):
    """[(event, data)] from a server-sent-event response."""
    events = []
    for block in resp.text.strip().split("\n\n"):
        event = re.search(r"^event: (.*)$", block, re.M)
        data = "".join(re.findall(r"^data: (.*)$", block, re.M))
        events.append((event.group(1) if event else "message", data if data == "[DONE]" else json.loads(data)))
    return events


# --- happy paths ---------------------------------------------------------------------------------

def test_healthz_names_model_and_device(url):
    r = requests.get(url + "/healthz", timeout=10)
    assert r.status_code == 200
    assert r.json() == dict(status="ok", model="bundled", device="cpu", max_context=CONTEXT, safety="off", engine="hf",
                            queued=0, in_flight=0, max_in_flight=64)


def test_page_renders_every_param_label_and_help_offline(url):
    page = requests.get(url + "/", timeout=10).text
    for p in PARAMS:
        assert f'name="{p.name}"' in page and p.label in page and html.escape(p.help) in page, p.name
    assert not re.search(r'(src|href)="(https?:)?//', page), "the page must not load anything from the network"
    for path in ("/static/app.js", "/static/style.css"):
        assert requests.get(url + path, timeout=10).status_code == 200, path


def test_ratsnlp_api_takes_numeric_strings_and_answers_result(url):
    r = post(url, "/api", RATSNLP)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"result"}
    assert r.json()["result"].startswith(PROMPT)


def test_ratsnlp_lengths_count_the_prompt(url, model):
    # top_k=1 sampling is greedy, so /api must equal greedy /api/generate with lengths minus the prompt
    n = len(model[1](PROMPT, add_special_tokens=False).input_ids)
    body = dict(RATSNLP, top_k="1", repetition_penalty="1.0", no_repeat_ngram_size="0", temperature="1.0",
                min_length=str(n + 6), max_length=str(n + 6))
    greedy = post(url, "/api/generate", dict(prompt=PROMPT, min_new_tokens=6, max_new_tokens=6)).json()
    assert greedy["new_tokens"] == 6
    assert post(url, "/api", body).json()["result"] == greedy["texts"][0]


def test_api_calls_inference_fn_positionally_with_converted_values():
    calls = []

    def inference_fn(prompt, min_length, max_length, top_p, top_k, repetition_penalty, no_repeat_ngram_size,
                     temperature):
        calls.append((prompt, min_length, max_length, top_p, top_k, repetition_penalty, no_repeat_ngram_size,
                      temperature))
        return {"result": prompt + " 끝"}

    client = get_web_service_app(inference_fn).test_client()
    r = client.post("/api", json=RATSNLP)
    assert r.status_code == 200 and r.json == {"result": PROMPT + " 끝"}
    assert calls == [(PROMPT, 5, 20, 0.92, 50, 1.5, 3, 0.9)]
    assert all(type(a) is type(b) for a, b in zip(calls[0], (PROMPT, 5, 20, 0.92, 50, 1.5, 3, 0.9)))
    r = client.post("/api/generate", json=dict(prompt=PROMPT))  # no model given: only /api works
    assert r.status_code == 400 and r.json["error"]["field"] == "model"


def test_step5_app_uses_inference_fn_for_api_and_the_model_for_the_rest(model):
    calls = []
    app = get_web_service_app(lambda *args: calls.append(args) or {"result": "학생 함수"}, model=model[0],
                              tokenizer=model[1], model_name="bundled", device="cpu")
    client = app.test_client()
    assert client.post("/api", json=RATSNLP).json == {"result": "학생 함수"} and len(calls) == 1
    if CONTEXT < 512:  # past the model's context: refused before the call
        r = client.post("/api", json=dict(RATSNLP, max_length=str(CONTEXT + 1)))
        assert r.status_code == 400 and r.json["error"]["field"] == "max_length" and len(calls) == 1
    assert client.post("/api/generate", json=dict(prompt=PROMPT, max_new_tokens=3)).status_code == 200
    assert client.get("/healthz").json["model"] == "bundled"


def test_generate_greedy_matches_library_generate(url, model):
    r = post(url, "/api/generate", dict(prompt=PROMPT, max_new_tokens=12))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["texts"] == generate(*model, PROMPT, max_new_tokens=12)
    assert out["texts"][0] == PROMPT + out["completions"][0]
    assert out["prompt_tokens"] > 0 and 0 < out["new_tokens"] <= 12 and out["tokens_per_s"] > 0


def test_seeded_sampling_repeats_and_numbers_may_be_strings(url):
    body = dict(prompt=PROMPT, do_sample="true", seed="7", top_p="0.92", max_new_tokens="10")
    first, second = post(url, "/api/generate", body).json(), post(url, "/api/generate", body).json()
    assert first["texts"] == second["texts"], "the same seed must give the same sample"


def test_beam_search_returns_the_requested_number_of_sequences(url):
    out = post(url, "/api/generate", dict(prompt=PROMPT, num_beams=4, num_return_sequences=3,
                                          max_new_tokens=8)).json()
    assert len(out["texts"]) == 3 and all(t.startswith(PROMPT) for t in out["texts"])


def streamed(url, body):
    """(text pieces, the done event's summary) of /api/generate's SSE answer to `body`."""
    r = post(url, "/api/generate", dict(body, stream=True), stream=True)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream"), r.text
    events = read_events(r)
    (_, done), = [e for e in events if e[0] == "done"]
    return [data["text"] for event, data in events if event == "message"], done


def test_sse_stream_pieces_add_up_to_the_greedy_text(url):
    body = dict(prompt=PROMPT, max_new_tokens=20, min_new_tokens=20)
    pieces, done = streamed(url, body)
    assert len(pieces) > 1, "text must arrive in pieces, not at once"
    assert "".join(pieces) == done["completions"][0]
    assert done["new_tokens"] == 20 and done["tokens_per_s"] > 0
    assert done["texts"] == post(url, "/api/generate", body).json()["texts"], "streaming must not change the text"


def test_closing_a_stream_cancels_the_generation(model, monkeypatch):
    from kogen.serving import hf
    gen, seen, summarize = Generator(*model), [], hf.summarize
    monkeypatch.setattr(hf, "summarize", lambda tok, n_prompt, out, *rest: seen.append(out.shape[1] - n_prompt)
                        or summarize(tok, n_prompt, out, *rest))
    params = check_params(dict(max_new_tokens=250, min_new_tokens=250))
    stream = gen.stream(gen.encode(PROMPT, params), params)
    next(stream)
    stream.close()  # what waitress does when the client hangs up
    assert not gen.lock.locked() and seen and seen[0] < 250, seen


def test_server_stays_usable_after_a_client_hangs_up_mid_stream(url):
    with post(url, "/api/generate", dict(prompt=PROMPT, max_new_tokens=200, min_new_tokens=200, stream=True),
              stream=True) as r:
        next(r.iter_lines())  # one piece, then hang up
    r = post(url, "/api/generate", dict(prompt=PROMPT, max_new_tokens=3))
    assert r.status_code == 200 and r.elapsed.total_seconds() < 10


def test_time_limit_stops_long_generations(model):
    client = create_app(*model, max_time=0.02).test_client()
    out = client.post("/api/generate", json=dict(prompt=PROMPT, max_new_tokens=200, min_new_tokens=200)).json
    assert out["finish_reason"] == "time" and out["new_tokens"] < 200, out


# --- OpenAI compatibility, through the official client --------------------------------------------

@pytest.fixture(scope="module")
def client(url):
    return openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=60)


def test_openai_client_lists_the_model(client):
    assert [m.id for m in client.models.list().data] == ["bundled"]


def test_openai_client_completion(client):
    r = client.completions.create(model="bundled", prompt=PROMPT, max_tokens=10, temperature=0.8, top_p=0.9, seed=1)
    assert r.object == "text_completion" and r.model == "bundled"
    assert r.choices[0].text and r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.completion_tokens <= 10 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_openai_client_stream_equals_plain_greedy(client):
    kw = dict(model="bundled", prompt=PROMPT, max_tokens=12, temperature=0, extra_body=dict(min_tokens=12))
    plain = client.completions.create(**kw).choices[0].text
    chunks = list(client.completions.create(stream=True, **kw))
    assert "".join(c.choices[0].text for c in chunks) == plain
    assert chunks[-1].choices[0].finish_reason == "length"


def test_openai_client_sees_validation_errors(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="bundled", prompt=PROMPT, max_tokens=0)
    assert e.value.body["param"] == "max_tokens" and "[1, 512]" in e.value.body["message"]


# --- bad input: always a 4xx JSON error naming the field ------------------------------------------

LONG = "가" * 1001
BAD = [  # path, body (bytes = raw), field, part of the message
    ("/api/generate", b"not json", "body", "JSON"),
    ("/api/generate", [1, 2], "body", "JSON"),
    ("/api/generate", {}, "prompt", "필수"),
    ("/api/generate", {"prompt": ""}, "prompt", "비어"),
    ("/api/generate", {"prompt": "   "}, "prompt", "비어"),
    ("/api/generate", {"prompt": 123}, "prompt", "문자열"),
    ("/api/generate", {"prompt": LONG}, "prompt", "1000자"),
    ("/api/generate", {"prompt": PROMPT, "top_p": "NaN"}, "top_p", "(0.0, 1.0]"),
    ("/api/generate", b'{"prompt": "a", "temperature": NaN}', "temperature", "유한"),
    ("/api/generate", b'{"prompt": "a", "temperature": Infinity}', "temperature", "유한"),
    ("/api/generate", {"prompt": PROMPT, "top_p": 0}, "top_p", "(0.0, 1.0]"),
    ("/api/generate", {"prompt": PROMPT, "temperature": 0}, "temperature", "(0.0, 5.0]"),
    ("/api/generate", {"prompt": PROMPT, "top_k": -1}, "top_k", "[0, 1000]"),
    ("/api/generate", {"prompt": PROMPT, "top_k": "abc"}, "top_k", "숫자가 아닙니다"),
    ("/api/generate", {"prompt": PROMPT, "top_k": 1.5}, "top_k", "정수"),
    ("/api/generate", {"prompt": PROMPT, "repetition_penalty": True}, "repetition_penalty", "숫자가 아닙니다"),
    ("/api/generate", {"prompt": PROMPT, "num_beams": 9}, "num_beams", "[1, 8]"),
    ("/api/generate", {"prompt": PROMPT, "max_new_tokens": 0}, "max_new_tokens", "[1, 512]"),
    pytest.param("/api/generate", {"prompt": PROMPT, "max_new_tokens": min(CONTEXT, 512)}, "max_new_tokens",
                 f"모델 최대 길이 {CONTEXT}", marks=FITS),
    ("/api/generate", {"prompt": PROMPT, "do_sample": "maybe"}, "do_sample", "true 또는 false"),
    ("/api/generate", {"prompt": PROMPT, "foo": 1}, "foo", "알 수 없는"),
    ("/api/generate", {"prompt": PROMPT, "num_return_sequences": 3}, "num_return_sequences", "greedy"),
    ("/api/generate", {"prompt": PROMPT, "min_new_tokens": 20, "max_new_tokens": 10}, "min_new_tokens", "이하"),
    ("/api/generate", {"prompt": PROMPT, "stream": True, "num_beams": 2}, "num_beams", "스트리밍"),
    ("/api/generate", {"prompt": PROMPT, "stream": "maybe"}, "stream", "true 또는 false"),
    ("/api", {k: v for k, v in RATSNLP.items() if k != "max_length"}, "max_length", "필수"),
    ("/api", dict(RATSNLP, prompt=None), "prompt", "필수"),
    ("/api", dict(RATSNLP, min_length="abc"), "min_length", "숫자가 아닙니다"),
    ("/api", dict(RATSNLP, min_length="30"), "min_length", "max_length(20) 이하"),
    ("/api", dict(RATSNLP, max_length="600"), "max_length", "[1, 512]"),
    pytest.param("/api", dict(RATSNLP, max_length=str(CONTEXT + 1)), "max_length", f"모델 최대 길이 {CONTEXT}",
                 marks=FITS),
    ("/api", dict(RATSNLP, temperature="0"), "temperature", "(0.0, 5.0]"),
    ("/api", dict(RATSNLP, temprature="0.9"), "temprature", "알 수 없는 항목"),
    ("/api", dict(RATSNLP, top_p="nan"), "top_p", "유한"),
    ("/v1/completions", {"model": "m", "prompt": PROMPT, "max_tokens": 0}, "max_tokens", "[1, 512]"),
    ("/v1/completions", {"model": "m", "prompt": PROMPT, "temperature": 2.5}, "temperature", "[0.0, 2.0]"),
    ("/v1/completions", {"model": "m", "prompt": PROMPT, "temperature": 0, "n": 3}, "n", "greedy"),
    ("/v1/completions", {"model": "m", "prompt": [PROMPT, PROMPT]}, "prompt", "하나"),
    ("/v1/completions", {"model": "m"}, "prompt", "문자열"),
    ("/v1/completions", {"model": "m", "prompt": PROMPT, "frequency_penalty": 0.5}, "frequency_penalty", "지원하지"),
    ("/v1/completions", {"model": "m", "prompt": PROMPT, "stream": True, "n": 2}, "n", "스트리밍"),
    ("/v1/completions", {"model": "m", "prompt": PROMPT, "echo": "yes"}, "echo", "true 또는 false"),
    pytest.param("/v1/completions", {"model": "m", "prompt": PROMPT, "max_tokens": min(CONTEXT, 512)}, "max_tokens",
                 f"모델 최대 길이 {CONTEXT}", marks=FITS),
    ("/v1/completions", {"model": "m", "prompt": PROMPT, "bogus": 1}, "bogus", "알 수 없는"),
    ("/api/generate", {"prompt": PROMPT, "penalty_alpha": 1.2}, "penalty_alpha", "[0.0, 1.0]"),
    ("/api/generate", {"prompt": PROMPT, "penalty_alpha": 0.6, "num_beams": 4}, "penalty_alpha", "num_beams=1"),
    ("/api/generate", {"prompt": PROMPT, "penalty_alpha": 0.6, "do_sample": True}, "penalty_alpha", "do_sample=false"),
    ("/api/generate", {"prompt": PROMPT, "penalty_alpha": 0.6, "top_k": 0}, "top_k", "1 이상"),
    ("/api/generate", {"prompt": PROMPT, "control": "행복"}, "control", "긍정 또는 부정"),
    ("/api/generate", {"prompt": PROMPT, "control": "긍정", "control_strength": -1}, "control_strength", "[0.0, 10.0]"),
    ("/v1/completions", {"model": "m", "prompt": PROMPT, "penalty_alpha": 2}, "penalty_alpha", "[0.0, 1.0]"),
    ("/v1/completions", {"model": "m", "prompt": PROMPT, "control": "neutral"}, "control", "긍정 또는 부정"),
]


def case_id(i, case):
    path, _, field, _ = case.values if hasattr(case, "values") else case
    return f"{i:02d}{path}:{field}"


@pytest.mark.parametrize("path,body,field,message", BAD, ids=[case_id(i, b) for i, b in enumerate(BAD)])
def test_bad_input_gets_400_naming_the_field(url, path, body, field, message):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = requests.post(url + path, data=raw, headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["field"] == field and message in err["message"], err


@pytest.mark.parametrize("method,path,data,status,message", [
    ("GET", "/nope", None, 404, "없는 주소"),
    ("GET", "/api", None, 405, "POST"),
    ("POST", "/healthz", None, 405, "GET"),
    ("POST", "/api/generate", b"x" * 100_000, 413, "64KB"),
])
def test_http_errors_are_json(url, method, path, data, status, message):
    r = requests.request(method, url + path, data=data, timeout=30)
    assert r.status_code == status and message in r.json()["error"]["message"], r.text


def test_odd_values_for_every_param_are_rejected_never_500(url):
    for p in PARAMS:
        for value in ([], {}, "", "1e999", -1e9, "🙂"):
            r = post(url, "/api/generate", {"prompt": PROMPT, p.name: value})
            assert r.status_code == 400 and r.json()["error"]["field"] == p.name, (p.name, value, r.text)


# --- contrastive search and FUDGE through the service ---------------------------------------------

def test_contrastive_and_control_through_api_generate_match_the_library(url, model):
    for extra in (dict(penalty_alpha=0.6, top_k=4), dict(control="긍정", control_strength="2", do_sample=True, seed=5),
                  dict(penalty_alpha="0.6", top_k=3, control="negative")):
        r = post(url, "/api/generate", dict(prompt=PROMPT, max_new_tokens=16, **extra))
        assert r.status_code == 200, r.text
        assert r.json()["texts"] == generate(*model, PROMPT, max_new_tokens=16, **extra), extra


def test_contrastive_streams_over_sse(url, model):
    r = post(url, "/api/generate", dict(prompt=PROMPT, max_new_tokens=16, penalty_alpha=0.6, top_k=4, stream=True))
    events = read_events(r)
    assert events[-1][0] == "done"
    text = "".join(d["text"] for e, d in events if e == "message")
    assert PROMPT + text == generate(*model, PROMPT, max_new_tokens=16, penalty_alpha=0.6, top_k=4)[0]


def test_openai_completions_take_penalty_alpha_and_control_as_extras(client, model):
    out = client.completions.create(model="bundled", prompt=PROMPT, max_tokens=12,
                                    extra_body=dict(penalty_alpha=0.6, top_k=4))
    assert PROMPT + out.choices[0].text == generate(*model, PROMPT, max_new_tokens=12, penalty_alpha=0.6, top_k=4)[0]
    out = client.completions.create(model="bundled", prompt=PROMPT, max_tokens=12, temperature=0,
                                    extra_body=dict(control="긍정", control_strength=3))
    assert PROMPT + out.choices[0].text == generate(*model, PROMPT, max_new_tokens=12, control="긍정",
                                                    control_strength=3.0)[0]
    with pytest.raises(openai.BadRequestError, match="do_sample=false"):
        client.completions.create(model="bundled", prompt=PROMPT, temperature=0.8, extra_body=dict(penalty_alpha=0.6))


def test_params_doc_has_the_contrastive_preset_and_control_choices(url):
    doc = requests.get(url + "/api/params", timeout=10).json()
    assert doc["presets"]["contrastive"]["params"] == dict(do_sample=False, num_beams=1, top_k=4, penalty_alpha=0.6)
    control = next(p for p in doc["params"] if p["name"] == "control")
    assert control["choices"] == ["긍정", "부정", "무해"] and control["kind"] == "str"


def test_foreign_tokenizer_with_control_is_a_400_naming_the_mismatch(tmp_path):
    from test_decoding import tiny_foreign_model
    from kogen.models import load_model
    lm, tok, _ = load_model(str(tiny_foreign_model(tmp_path)), "cpu")
    app = create_app(lm, tok, model_name="tiny", device="cpu")
    r = app.test_client().post("/api/generate", json=dict(prompt="이 영화는", control="긍정"))
    assert r.status_code == 400 and r.json["error"]["field"] == "control" and "토크나이저" in r.json["error"]["message"]


# --- load ----------------------------------------------------------------------------------------

def test_16_concurrent_clients_get_no_errors(url):
    requests_ = [("/api/generate", dict(prompt=PROMPT, max_new_tokens=4, do_sample=True)),
                 ("/api", dict(RATSNLP, max_length="8")),
                 ("/v1/completions", dict(model="bundled", prompt=PROMPT, max_tokens=4)),
                 ("/api/generate", dict(prompt=PROMPT, max_new_tokens=4, stream=True))]

    def client(i):
        with requests.Session() as s:
            return [s.post(url + path, json=body, timeout=120) for path, body in requests_]

    with ThreadPoolExecutor(16) as pool:
        responses = [r for rs in pool.map(client, range(16)) for r in rs]
    failed = [(r.url, r.status_code, r.text[:200]) for r in responses if r.status_code != 200]
    assert len(responses) == 64 and not failed, failed
    assert all("event: done" in r.text for r in responses if r.url.endswith("/api/generate") and "text/event" in
               r.headers["Content-Type"])


# --- `kogen serve`: the production entry point, in its own process -----------------------------------

def test_serve_loads_the_best_step4_checkpoint_onto_its_base_model(model, tmp_path):
    state = {f"model.{k}": v.clone() for k, v in model[0].state_dict().items()}
    state["model.transformer.ln_f.bias"] += 1.0  # so we can tell the checkpoint's weights from the base model's
    torch.save({"state_dict": state}, tmp_path / "epoch=0-val_loss=2.00.ckpt")
    lm, _, name, device = load_for_serving("bundled", str(tmp_path), "cpu")
    assert torch.equal(lm.transformer.ln_f.bias, state["model.transformer.ln_f.bias"])
    assert name == "bundled + epoch=0-val_loss=2.00.ckpt" and str(device) == "cpu"


def test_kogen_serve_runs_waitress_and_reports_a_busy_port(free_port):
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "kogen", "serve", "--model", "bundled", "--port", str(free_port), "--device", "cpu"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, health = time.monotonic() + 90, None
        while health is None and proc.poll() is None and time.monotonic() < deadline:
            try:
                health = requests.get(f"http://127.0.0.1:{free_port}/healthz", timeout=5).json()
            except requests.ConnectionError:
                time.sleep(0.3)
        assert health and health["model"] == "bundled" and health["device"] == "cpu", proc.poll()
        # a second server on the same port: a clear message and exit code 2, not a traceback
        busy = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert busy.returncode == 2 and "다른 포트" in busy.stderr and "Traceback" not in busy.stderr, busy.stderr
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert f"http://127.0.0.1:{free_port}" in out and "웹 서비스" in out, (out, err)
