"""The shipped toxicity classifier, `kogen safety score`, and the generation policies (off / flag / block /
regenerate) with a user word list, on the bundled model."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from kogen.generation import ParamError, generate
from kogen.safety.classifier import SAFETY_DIR, ClassifierFileError, load_classifier
from kogen.safety.filter import Blocked, bad_words_ids, check_policy, guarded, score_texts

CLEAN = "배우들 연기가 너무 좋았고 정말 재밌게 봤어요"
INSULT = "이 병신 같은 새끼 꺼져라 쓰레기야"


def kogen(*argv, stdin=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "kogen", *argv], capture_output=True, text=True, env=env,
                          input=stdin, timeout=300)


def test_shipped_classifier_is_small_and_ranks_an_insult_above_a_compliment():
    size = sum(f.stat().st_size for f in SAFETY_DIR.iterdir())
    assert size <= 10_000_000, size
    clean, insult = score_texts([CLEAN, INSULT])
    assert insult["score"] > 0.5 > clean["score"], (clean, insult)
    assert insult["label"] in ("offensive", "hate") and clean["label"] == "none"


def test_score_command_keeps_one_line_per_input_line_including_empty_ones(tmp_path):
    r = kogen("safety", "score", stdin=f"{CLEAN}\n\n{INSULT}\n")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["text"] for x in lines] == [CLEAN, "", INSULT]
    assert lines[1] == {"text": "", "score": 0.0, "label": "none", "bias": "none"}
    assert set(lines[0]) == {"text", "score", "label", "bias"} and lines[2]["score"] > lines[0]["score"]
    f = tmp_path / "in.txt"
    f.write_text(f"{INSULT}\n", encoding="utf-8")
    assert json.loads(kogen("safety", "score", str(f)).stdout)["score"] == lines[2]["score"]


def test_score_command_refuses_oversized_lines_and_missing_files(tmp_path):
    r = kogen("safety", "score", stdin="가" * 1001 + "\n")
    assert r.returncode == 2 and "1000자 이하" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = kogen("safety", "score", str(tmp_path / "none.txt"))
    assert r.returncode == 2 and "none.txt" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_missing_or_corrupt_classifier_names_the_file_and_how_to_rebuild(tmp_path):
    with pytest.raises(ClassifierFileError, match="train_safety_classifier.py"):
        load_classifier(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(SAFETY_DIR, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ClassifierFileError, match="손상"):
        load_classifier(broken)


def test_unknown_policy_lists_the_valid_ones():
    with pytest.raises(ParamError) as e:
        check_policy("strict")
    assert all(p in e.value.message for p in ("off", "flag", "block", "regenerate"))


def fake_generation(outputs):
    calls = []

    def once(attempt):
        calls.append(attempt)
        text = outputs[min(attempt, len(outputs) - 1)]
        return ["프롬프트 " + text], [text]
    return once, calls


def test_flag_annotates_but_never_refuses():
    once, _ = fake_generation([INSULT])
    texts, _, safety = guarded(once, "프롬프트", "flag")
    assert texts == ["프롬프트 " + INSULT] and safety["outputs"][0]["score"] > 0.5


def test_block_refuses_a_toxic_output_and_a_toxic_prompt():
    once, _ = fake_generation([INSULT])
    with pytest.raises(Blocked) as e:
        guarded(once, "프롬프트", "block")
    assert e.value.where == "output" and "거절" in e.value.message
    once, calls = fake_generation([CLEAN])
    with pytest.raises(Blocked) as e:
        guarded(once, INSULT, "block")
    assert e.value.where == "prompt" and calls == [], "a refused prompt is never generated from"


def test_regenerate_tries_again_then_blocks():
    once, calls = fake_generation([INSULT, CLEAN])
    texts, _, safety = guarded(once, "프롬프트", "regenerate")
    assert calls == [0, 1] and texts == ["프롬프트 " + CLEAN] and safety["tries"] == 2
    once, calls = fake_generation([INSULT])
    with pytest.raises(Blocked) as e:
        guarded(once, "프롬프트", "regenerate", max_tries=3)
    assert calls == [0, 1, 2] and e.value.tries == 3
    once, calls = fake_generation([INSULT, CLEAN])
    with pytest.raises(Blocked):
        guarded(once, "프롬프트", "regenerate", deterministic=True)
    assert calls == [0], "greedy would only repeat itself: one try"


def test_bad_words_are_never_generated(bundled):
    model, tok = bundled
    free = generate(model, tok, "이 영화는 정말", max_new_tokens=20, min_new_tokens=20)[0]
    word = free[len("이 영화는 정말"):].split()[0]  # the first word greedy writes
    bad = bad_words_ids(tok, [word])
    blocked = generate(model, tok, "이 영화는 정말", max_new_tokens=20, min_new_tokens=20, bad_words_ids=bad)[0]
    assert word not in blocked[len("이 영화는 정말"):].split()[:1] and blocked != free
    contrastive = generate(model, tok, "이 영화는 정말", max_new_tokens=20, penalty_alpha=0.6, top_k=4, bad_words_ids=bad)[0]
    new_ids = tok(contrastive, add_special_tokens=False).input_ids
    assert not any(new_ids[i:i + len(b)] == b for b in bad for i in range(len(new_ids))), contrastive


def test_generate_cli_with_safety(tmp_path):
    r = kogen("generate", "이 영화는", "--model", "bundled", "--max-new-tokens", "8", "--safety", "flag", "--json")
    assert r.returncode == 0, r.stderr
    assert set(json.loads(r.stdout)["safety"]) == {"score", "label", "bias"}
    r = kogen("generate", INSULT, "--model", "bundled", "--max-new-tokens", "8", "--safety", "block")
    assert r.returncode == 2 and "프롬프트" in r.stderr and "거절" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = kogen("generate", "이 영화는", "--safety", "strict")
    assert r.returncode == 2 and "regenerate" in r.stderr
    words = tmp_path / "words.txt"
    words.write_text("정말\n", encoding="utf-8")
    r = kogen("generate", "이 영화는", "--model", "bundled", "--max-new-tokens", "20", "--bad-words", str(words))
    assert r.returncode == 0 and "정말" not in r.stdout[len("이 영화는"):], r.stdout


def test_a_stream_is_cut_when_the_growing_text_turns_toxic():
    from kogen.safety.filter import guard_stream
    closed = []

    def pieces():
        try:
            for word in ["오늘 영화 ", "재밌었어요 ", "근데 옆자리 ", "이 병신 같은 ", "새끼 꺼져라 ", "쓰레기야 ", "진짜"]:
                yield word
            yield {"finish_reason": "length"}
        finally:
            closed.append(True)
    sent = []
    with pytest.raises(Blocked) as e:
        for item in guard_stream(pieces(), "block", every=8):
            sent.append(item)
    assert e.value.where == "output" and closed == [True], "the model stream is closed (generation cancelled)"
    assert "쓰레기야 " not in sent and "진짜" not in sent, sent
    flagged = list(guard_stream(iter(["배우들 연기가 ", "좋았다", {"finish_reason": "stop"}]), "flag"))
    assert flagged[:2] == ["배우들 연기가 ", "좋았다"] and flagged[2]["safety"]["outputs"][0]["label"] == "none"


@pytest.fixture(scope="module")
def safe_urls(bundled):
    import torch

    from kogen.web import create_app, start_server, stop_server
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    servers = {policy: start_server(create_app(*bundled, model_name="bundled", device="cpu", safety=policy))
               for policy in ("flag", "block")}
    yield {policy: f"http://127.0.0.1:{s.effective_port}" for policy, s in servers.items()}
    for s in servers.values():
        stop_server(s)
    torch.set_num_threads(threads)


def test_service_annotates_outputs_under_flag(safe_urls):
    import requests
    r = requests.post(safe_urls["flag"] + "/api/generate", json=dict(prompt=INSULT, max_new_tokens=8), timeout=60)
    assert r.status_code == 200, r.text
    safety = r.json()["safety"]
    assert safety["policy"] == "flag" and safety["prompt"]["score"] > 0.5 and set(safety["outputs"][0]) == {
        "score", "label", "bias"}
    r = requests.post(safe_urls["flag"] + "/api/generate", json=dict(prompt="이 영화는", max_new_tokens=8, stream=True),
                      timeout=60)
    done = [b for b in r.text.split("\n\n") if b.startswith("event: done")]
    assert done and '"safety"' in done[0], r.text
    r = requests.post(safe_urls["flag"] + "/v1/completions", json=dict(model="m", prompt="이 영화는", max_tokens=8),
                      timeout=60)
    assert r.status_code == 200 and "outputs" in r.json()["safety"], r.text
    assert requests.get(safe_urls["flag"] + "/healthz", timeout=10).json()["safety"] == "flag"


def test_service_refuses_a_toxic_prompt_under_block_with_a_korean_422(safe_urls):
    import requests
    for body in (dict(prompt=INSULT), dict(prompt=INSULT, stream=True)):
        r = requests.post(safe_urls["block"] + "/api/generate", json=dict(body, max_new_tokens=8), timeout=60)
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["type"] == "safety_block" and err["field"] == "prompt" and "거절" in err["message"]
        assert r.json()["safety"]["score"] > 0.5
    r = requests.post(safe_urls["block"] + "/v1/completions", json=dict(model="m", prompt=INSULT), timeout=60)
    assert r.status_code == 422 and r.json()["error"]["type"] == "safety_block"
    ok = requests.post(safe_urls["block"] + "/api/generate", json=dict(prompt=CLEAN, max_new_tokens=8), timeout=60)
    assert ok.status_code == 200 and ok.json()["safety"]["outputs"][0]["score"] < 0.5, ok.text


def test_tfidf_part_round_trips_through_its_array_files(tmp_path):
    """scikit-learn keeps coef_ in Fortran order; written as a raw buffer it would come back transposed."""
    import numpy as np

    from kogen.safety import tfidf
    texts = ["정말 재밌다", "최악의 영화", "배우 연기 좋다", "돈 아깝다", "강력 추천", "시간 낭비"] * 3
    vec, (model,) = tfidf.fit(texts, [[0, 1, 0, 1, 2, 1] * 3])
    tfidf.save(tmp_path, vec, [model], ("hate",))
    vec2, (model2,) = tfidf.load(tmp_path, ("hate",))
    probe = ["재밌다 최고", "낭비 최악"]
    assert np.allclose(tfidf.proba(vec, model, probe), tfidf.proba(vec2, model2, probe), atol=1e-5)


def test_label_agrees_with_the_score():
    import numpy as np

    from kogen.safety.classifier import hate_label
    assert hate_label(np.array([0.39, 0.35, 0.26])) == "offensive", "0.61 toxic in total is not 'none'"
    assert hate_label(np.array([0.6, 0.1, 0.3])) == "none"
    assert hate_label(np.array([0.2, 0.3, 0.5])) == "hate"
