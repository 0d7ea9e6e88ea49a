"""The CTranslate2 engine: converted once into the cache (atomically), greedy float32 equal to Hugging Face's
tokens, batched and streamed through the real server, clear 400s for what it cannot do."""
import json
import threading

import pytest
import requests

from kogen.generation import check_params, generate
from kogen.web import create_app, start_server, stop_server

ct2 = pytest.importorskip("kogen.serving.ct2")
pytest.importorskip("ctranslate2")
PROMPTS = ["오늘 본 영화는", "이 영화 정말 최악이다 시간이", "배우들의 연기가", "감독의 다음 작품이 기대되는"]


@pytest.fixture(scope="module")
def engine(model, tmp_path_factory):
    root = tmp_path_factory.mktemp("ct2cache")
    folder = ct2.convert(*model, root=root)
    assert ct2.convert(*model, root=root) == folder, "the second call must reuse the conversion"
    assert [p.name for p in root.iterdir()] == [folder.name], "nothing half-written may stay in the cache"
    return ct2.Ct2Engine(*model, compute_type="float32", folder=folder)


def test_greedy_float32_equals_hugging_face_token_for_token_also_batched(engine, model):
    cases = [dict(max_new_tokens=20), dict(max_new_tokens=12, min_new_tokens=12), dict(max_new_tokens=15,
             no_repeat_ngram_size=2), dict(max_new_tokens=10, num_beams=3, num_return_sequences=2)]
    jobs = [(prompt, case) for prompt in PROMPTS for case in cases]
    results = [None] * len(jobs)

    def one(i):
        prompt, case = jobs[i]
        params = check_params(case)
        results[i] = engine(engine.encode(prompt, params), params)["texts"]
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (prompt, case), texts in zip(jobs, results):
        assert texts == generate(*model, prompt, **case), (prompt, case)


def test_ct2_server_streams_and_refuses_what_it_cannot_do(engine, model):
    server = start_server(create_app(*model, model_name="bundled", device="cpu", engine=engine))
    url = f"http://127.0.0.1:{server.effective_port}"
    try:
        assert requests.get(url + "/healthz", timeout=10).json()["engine"] == "ct2"
        r = requests.post(url + "/api/generate", json=dict(prompt=PROMPTS[0], max_new_tokens=8, stream=True), timeout=30)
        pieces = [json.loads(line[6:])["text"] for line in r.text.splitlines()
                  if line.startswith("data: ") and '"text"' in line]
        assert PROMPTS[0] + "".join(pieces) == generate(*model, PROMPTS[0], max_new_tokens=8)[0]
        for extra, field in ((dict(penalty_alpha=0.6, top_k=4), "penalty_alpha"), (dict(control="긍정"), "control"),
                             (dict(do_sample=True, seed=3), "seed")):
            r = requests.post(url + "/api/generate", json=dict(prompt=PROMPTS[0], **extra), timeout=30)
            assert r.status_code == 400 and r.json()["error"]["field"] == field, r.text
            assert "--engine hf" in r.json()["error"]["message"]
    finally:
        stop_server(server)
    assert not engine.thread.is_alive(), "stop_server must end the ct2 model thread too"
