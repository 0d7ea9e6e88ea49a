"""The `kogen` command, run as a user runs it: a real subprocess."""
import json
import os
import subprocess
import sys

import pytest

from kogen.generation import generate


def kogen(*argv, env=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "kogen", *argv], capture_output=True, text=True, env=env, timeout=300)


def test_generate_prints_the_same_greedy_text_as_the_library(bundled):
    model, tok = bundled
    r = kogen("generate", "이 영화는", "--model", "bundled", "--max-new-tokens", "12", "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert lines == [{"prompt": "이 영화는", "text": generate(model, tok, "이 영화는", max_new_tokens=12)[0]}]


def test_generate_samples_n_reproducible_sequences():
    argv = ["generate", "배우들의 연기가", "--model", "bundled", "--do-sample", "--top-p", "0.92", "-n", "3",
            "--seed", "7", "--max-new-tokens", "10", "--min-new-tokens", "5"]
    a, b = kogen(*argv), kogen(*argv)
    assert a.returncode == 0, a.stderr
    assert len(a.stdout.splitlines()) == 3 and a.stdout == b.stdout


@pytest.mark.parametrize("argv, words", [
    (["--top-p", "1.5"], "top_p"),
    (["--temperature", "0"], "temperature"),
    (["--model", "./no-such-dir"], "./no-such-dir"),
    (["--model", "bundled", "--max-new-tokens", "400", "--min-new-tokens", "400"], "최대 길이 256"),
    (["--penalty-alpha", "1.5"], "penalty_alpha"),
    (["--penalty-alpha", "0.6", "--do-sample"], "do_sample=false"),
    (["--penalty-alpha", "0.6", "--num-beams", "3"], "num_beams=1"),
    (["--control", "중립"], "긍정 또는 부정"),
    (["--control", "긍정", "--control-strength", "50"], "control_strength"),
])
def test_bad_generate_input_is_one_clear_line_not_a_traceback(argv, words):
    r = kogen("generate", "안녕하세요", *argv)
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_generate_reaches_contrastive_search_and_fudge(bundled):
    model, tok = bundled
    r = kogen("generate", "이 영화는", "--model", "bundled", "--penalty-alpha", "0.6", "--top-k", "4",
              "--max-new-tokens", "20", env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    want = generate(model, tok, "이 영화는", penalty_alpha=0.6, top_k=4, max_new_tokens=20)[0]
    assert r.stdout.strip() == want.replace("\n", " ")
    argv = ["generate", "이 영화는", "--model", "bundled", "--do-sample", "--seed", "1", "--max-new-tokens", "16"]
    pos = kogen(*argv, "--control", "positive", "--control-strength", "2", env={"OMP_NUM_THREADS": "1"})
    assert pos.returncode == 0, pos.stderr
    assert pos.stdout.strip() == generate(model, tok, "이 영화는", do_sample=True, seed=1, max_new_tokens=16,
                                          control="긍정", control_strength=2.0)[0].replace("\n", " ")


def test_train_quick_writes_checkpoints_and_hf_folder(nsmc_dir, tmp_path):
    out = tmp_path / "out"
    r = kogen("train", "--quick", "--data-dir", nsmc_dir, "--output-dir", str(out), "--max-seq-length", "16")
    assert r.returncode == 0, r.stderr[-2000:]
    names = os.listdir(out)
    assert any(n.startswith("epoch=0-val_loss=") for n in names) and "last.ckpt" in names, names
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(os.listdir(out / "hf_model"))
    r = kogen("generate", "긍정", "--model", str(out / "hf_model"), "--max-new-tokens", "5")
    assert r.returncode == 0 and r.stdout.startswith("긍정"), r.stderr


def test_train_with_missing_data_names_the_path(tmp_path):
    r = kogen("train", "--quick", "--data-dir", str(tmp_path / "none"), "--output-dir", str(tmp_path / "o"))
    assert r.returncode == 2 and "ratings_train.txt" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_ctrl_c_stops_without_export_and_the_next_run_resumes(tmp_path):
    import signal
    import time

    from conftest import write_nsmc
    data, out = write_nsmc(tmp_path / "nsmc", n_train=4000, n_test=16), tmp_path / "out"
    argv = [sys.executable, "-m", "kogen", "train", "--quick", "--data-dir", data, "--output-dir", str(out),
            "--max-seq-length", "16"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 240
    while not (out / "last.ckpt").exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.5)  # last.ckpt appears after 100 of the epoch's 125 steps
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "이어집니다" in err and "Traceback" not in err, err[-1500:]
    assert not (out / "hf_model").exists(), "an interrupted run must not export a model"
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and "이어서 학습합니다" in r.stderr, r.stderr[-1500:]
    assert (out / "hf_model" / "model.safetensors").exists()


def test_generate_n_beyond_the_web_cap_is_batched_in_chunks():
    r = kogen("generate", "이 영화는", "--model", "bundled", "--do-sample", "-n", "20", "--seed", "1",
              "--max-new-tokens", "4", "--json")
    assert r.returncode == 0, r.stderr
    texts = [json.loads(line)["text"] for line in r.stdout.splitlines()]
    assert len(texts) == 20 and len(set(texts)) > 8, "20 samples, and later chunks are not copies of the first"
    r = kogen("generate", "이 영화는", "--model", "bundled", "-n", "5000")
    assert r.returncode == 2 and "1~1000" in r.stderr, r.stderr
