"""See inside generation: per-token probabilities before and after the decoding processors, the top
alternatives, OpenAI's logprobs and stop strings — checked against the model's own logits and against
generation without the trace, on a real server."""
import json
import math

import openai
import pytest
import requests
import torch

from kogen.generation import check_params
from kogen.web import Generator, create_app, start_server, stop_server

PROMPT = "오늘 본 영화는"


@pytest.fixture(scope="module")
def gen(model):
    return Generator(*model)


@pytest.fixture(scope="module")
def url(model):
    server = start_server(create_app(*model, model_name="bundled", device="cpu"))
    yield f"http://127.0.0.1:{server.effective_port}"
    stop_server(server)


def events(resp):
    out = []
    for block in resp.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((lines.get("event", "message"), lines["data"] if lines["data"] == "[DONE]" else json.loads(lines["data"])))
    return out


@pytest.mark.parametrize("kw", [dict(max_new_tokens=12),
                                dict(max_new_tokens=12, do_sample=True, top_k=5, temperature=0.7, seed=3),
                                dict(max_new_tokens=12, repetition_penalty=1.5, num_return_sequences=1)])
def test_trace_changes_nothing_and_its_pieces_join_into_the_completion(gen, kw):
    params = check_params(kw)
    ids = gen.encode(PROMPT, params)
    plain, traced = gen(ids, params), gen(ids, params, top_tokens=4)
    assert traced["texts"] == plain["texts"], "watching must not change what is generated"
    tokens = traced["tokens"][0]
    assert "".join(t["text"] for t in tokens) == traced["completions"][0]
    assert len(tokens) == traced["new_tokens"]
    for t in tokens:
        assert [a["p_raw"] for a in t["top"]] == sorted((a["p_raw"] for a in t["top"]), reverse=True)
        assert 0 < t["p"] <= 1 and math.isclose(t["logprob"], math.log(t["p_raw"]), abs_tol=1e-4)


def test_raw_probability_is_the_models_softmax_and_greedy_keeps_it(gen, model):
    lm, tok = model
    params = check_params(dict(max_new_tokens=3))
    ids = gen.encode(PROMPT, params)
    first = gen(ids, params, top_tokens=5)["tokens"][0][0]
    with torch.no_grad():
        probs = lm(ids).logits[0, -1].softmax(-1)
    top = probs.topk(5)
    assert [a["id"] for a in first["top"]] == top.indices.tolist()
    assert [a["p_raw"] for a in first["top"]] == pytest.approx(top.values.tolist(), abs=1e-5)
    assert first["id"] == top.indices[0].item() and first["p"] == pytest.approx(first["p_raw"], abs=1e-5)


def test_top_k_and_temperature_show_in_the_after_probabilities(gen):
    params = check_params(dict(max_new_tokens=4, do_sample=True, top_k=2, temperature=0.5, seed=0))
    tokens = gen(gen.encode(PROMPT, params), params, top_tokens=6)["tokens"][0]
    for t in tokens:
        kept = [a for a in t["top"] if a["p"] > 0]
        assert len(kept) <= 2 and sum(a["p"] for a in t["top"]) == pytest.approx(1, abs=1e-4)
        assert t["top"][0]["p"] >= t["top"][0]["p_raw"], "a low temperature sharpens the favourite"


def test_api_generate_returns_and_streams_top_tokens(url):
    body = dict(prompt=PROMPT, max_new_tokens=10, min_new_tokens=10, top_tokens=3)
    out = requests.post(url + "/api/generate", json=body, timeout=60).json()
    assert len(out["tokens"][0]) == 10 and all(len(t["top"]) == 3 for t in out["tokens"][0])
    streamed = events(requests.post(url + "/api/generate", json=dict(body, stream=True), timeout=60))
    pieces = [d for e, d in streamed if e == "message"]
    assert all("tokens" in d for d in pieces)
    assert [t["id"] for d in pieces for t in d["tokens"]] == [t["id"] for t in out["tokens"][0]][:sum(len(d["tokens"]) for d in pieces)]
    assert "".join(d["text"] for d in pieces) == out["completions"][0]


@pytest.mark.parametrize("body, field", [(dict(top_tokens=21), "top_tokens"), (dict(top_tokens="많이"), "top_tokens"),
                                         (dict(top_tokens=2, num_beams=2), "top_tokens"),
                                         (dict(top_tokens=2, penalty_alpha=0.6, top_k=4), "top_tokens")])
def test_bad_top_tokens_is_a_korean_400(url, body, field):
    r = requests.post(url + "/api/generate", json=dict(prompt=PROMPT, max_new_tokens=4, **body), timeout=60)
    assert r.status_code == 400 and r.json()["error"]["field"] == field
    assert any("\uac00" <= ch <= "\ud7a3" for ch in r.json()["error"]["message"])


def test_openai_logprobs_through_the_official_client(url):
    client = openai.OpenAI(base_url=url + "/v1", api_key="none")
    r = client.completions.create(model="bundled", prompt=PROMPT, max_tokens=8, temperature=0, logprobs=2,
                                  extra_body=dict(min_tokens=8))
    lp, text = r.choices[0].logprobs, r.choices[0].text
    assert "".join(lp.tokens) == text and len(lp.token_logprobs) == 8
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(8)]
    assert all(len(top) == 2 and max(top.values()) >= lp.token_logprobs[i] - 1e-6 for i, top in enumerate(lp.top_logprobs))
    echo = client.completions.create(model="bundled", prompt=PROMPT, max_tokens=8, temperature=0, logprobs=0,
                                     echo=True, extra_body=dict(min_tokens=8)).choices[0]
    assert echo.logprobs.text_offset[0] == len(PROMPT) and echo.logprobs.top_logprobs == [{}] * 8


def test_openai_stop_cuts_before_the_stop_string_plain_and_streamed(url):
    client = openai.OpenAI(base_url=url + "/v1", api_key="none")
    kw = dict(model="bundled", prompt=PROMPT, max_tokens=40, temperature=0, extra_body=dict(min_tokens=40))
    full = client.completions.create(**kw).choices[0].text
    stop = full[len(full) // 3: len(full) // 3 + 2]  # two characters from the middle of the greedy text
    cut = client.completions.create(stop=stop, **kw).choices[0]
    assert cut.finish_reason == "stop" and cut.text == full[:full.find(stop)]
    chunks = list(client.completions.create(stop=[stop, "없는 멈춤말"], stream=True, **kw))
    assert "".join(c.choices[0].text for c in chunks) == cut.text
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("body, field", [(dict(stop=["a", "b", "c", "d", "e"]), "stop"), (dict(stop=""), "stop"),
                                         (dict(stop=[1]), "stop"), (dict(logprobs=6), "logprobs"),
                                         (dict(logprobs=1, extra_body=None, penalty_alpha=0.6), "logprobs")])
def test_bad_stop_or_logprobs_is_a_400(url, body, field):
    body.pop("extra_body", None)
    r = requests.post(url + "/v1/completions", json=dict(model="bundled", prompt=PROMPT, max_tokens=4, **body), timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == field, r.text
