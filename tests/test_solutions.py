"""The solutions run as students run them (`python solutions/stepN_solution.py` from the repo root), offline
on the bundled model, and what they print shows what the step teaches. Steps 4 and 5 run end to end in
test_check.py (training on a tiny NSMC folder, serving on a free port)."""
import os
import re
import socket
import subprocess
import sys

import pytest

from kogen.exercises import REPO, solution_path


def run(step, **env):
    # one thread: the bundled model is tiny, and a busy machine's thread contention costs more than it gives
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", **env)
    r = subprocess.run([sys.executable, str(solution_path(step).relative_to(REPO))], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_step1_offline_falls_back_to_the_bundled_model_and_its_loop_matches_generate(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "KOGEN_MODEL"}
    r = subprocess.run([sys.executable, "solutions/step1_solution.py"], cwd=REPO, capture_output=True, text=True,
                       timeout=300, env=dict(env, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path), OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "내장 소형 한국어 GPT-2로 대신합니다" in r.stderr, "one line says the hub model was replaced"
    assert "모델: 내장 소형 모델 (skt/kogpt2-base-v2 대신)" in r.stdout, "says the bundled model runs, not KoGPT2"
    assert "▁" in r.stdout  # the tokens table
    table = r.stdout.split("== 3.")[1].split("== 4.")[0]
    assert table.count("✅") == 4 and "❌" not in table, table
    loop, cached = map(float, re.search(r"새 토큰 150개: 루프 ([\d.]+)s, generate ([\d.]+)s", table).groups())
    assert loop > 1.5 * cached, f"at 150 tokens the KV cache shows: loop {loop}s vs generate {cached}s"
    repeats = int(re.search(r"되풀이된 3-gram: (\d+)번", r.stdout).group(1))
    assert repeats >= 0


def test_step2_draws_the_candidates_compares_four_strategies_and_reproduces_with_a_seed():
    out = run(2, KOGEN_MODEL="bundled").stdout
    for name in ("greedy", "beam=3", "top-k=50", "top-p=0.92"):
        assert out.count(f"\n{name} ") == 2, f"{name}: one row per prompt"
    assert "seed=42 두 번이 같은가? ✅ 같음" in out, out
    table = out.split("== 0.")[1].split("== 1.")[0]
    rows = re.findall(r"^\s+(\d+)\s+(0\.\d{3})\s+(█+)\s+([✓✗])\s+([✓✗])\s+(0\.\d{3})\s+(0\.\d{3})\s+'", table, re.M)
    assert [int(r[0]) for r in rows] == list(range(1, 11)), table
    probs = [float(r[1]) for r in rows]
    assert probs == sorted(probs, reverse=True) and len(rows[0][2]) >= len(rows[-1][2]), "bars follow the probability"
    assert float(rows[0][5]) > probs[0] > float(rows[0][6]), "T=0.7 sharpens the top token, T=1.5 flattens it"
    cuts = [int(n) for n in re.findall(r"T=[\d.]+이면 (\d+)위", table)]
    assert len(cuts) == 3 and cuts[1] < cuts[0] < cuts[2], f"top-p keeps fewer at T=0.7, more at 1.5: {cuts}"
    assert out.count("네 가지 방법 비교") == 1, "the heading is printed once"


def test_step3_no_repeat_row_has_no_repeated_trigram_and_sweeps_temperature():
    out = run(3, KOGEN_MODEL="bundled").stdout
    row = re.search(r"^no_repeat_ngram_size=3\s+(\d+)\s", out, re.M)
    assert row and row.group(1) == "0", out
    temps = re.findall(r"^\s+(0\.3|0\.7|1\.0|1\.5)\s+(\d\.\d\d)\s", out, re.M)
    assert [t for t, _ in temps] == ["0.3", "0.7", "1.0", "1.5"], out
    assert float(temps[-1][1]) >= float(temps[0][1]), "distinct-2 does not fall from 0.3 to 1.5"


@pytest.mark.parametrize("step", [1, 2, 3, 4, 5])
def test_solution_docstring_says_what_you_learn_and_how_to_run(step):
    doc = solution_path(step).read_text(encoding="utf-8").split('"""')[1]
    assert "배울 것" in doc and f"kogen check step{step}" in doc and f"solutions/step{step}_solution.py" in doc



def test_step5_on_a_port_in_use_says_what_to_do_in_korean(free_port, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", free_port))
        s.listen()
        env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", KOGEN_MODEL="bundled",
                   KOGEN_PORT=str(free_port), KOGEN_CHECKPOINT_DIR=str(tmp_path))
        r = subprocess.run([sys.executable, "solutions/step5_solution.py"], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=120)
    assert r.returncode == 1 and f"포트 {free_port}이(가) 이미 쓰이고 있습니다" in r.stderr and "KOGEN_PORT=9002" in r.stderr
    assert "Address already in use" not in r.stderr, r.stderr
