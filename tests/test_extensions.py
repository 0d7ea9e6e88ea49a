"""The advanced lessons run as a student runs them (a subprocess, offline) in their --quick mode."""
import os
import subprocess
import sys
from pathlib import Path


from conftest import write_nsmc

REPO = Path(__file__).resolve().parent.parent


def run_lesson(name, tmp_path):
    data = write_nsmc(tmp_path / "nsmc", n_train=200, n_test=40, malformed=False)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "KOGEN_NSMC_DIR": data, "OMP_NUM_THREADS": "1"}
    env.pop("KOGEN_MODEL", None)
    r = subprocess.run([sys.executable, str(REPO / "extensions" / name), "--quick"], capture_output=True, text=True,
                       env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    return r.stdout


def test_contrastive_lesson_shows_one_step_and_the_comparison(tmp_path):
    out = run_lesson("ext1_contrastive_search.py", tmp_path)
    for words in ("한 단계 들여다보기", "| 후보 | prob | penalty | score |", "[contrastive]",
                  "| contrastive α0.6 k4 |", "| α=0.9 |"):
        assert words in out, (words, out)


def test_fudge_lesson_reweights_a_step_and_scores_with_an_independent_judge(tmp_path):
    out = run_lesson("ext2_fudge_control.py", tmp_path)
    for words in ("FUDGE가 다시 매긴 상위 6개", "NSMC test 정확도", "| FUDGE λ=4 |", "| 제어 없음 |", "[부정]",
                  "미세조정 모델 줄은 건너뜁니다"):
        assert words in out, (words, out)


def test_prompt_design_lesson_compares_five_prompts(tmp_path):
    out = run_lesson("ext3_prompt_design.py", tmp_path)
    for style in ("| plain |", "| label word |", "| instruction |", "| rating |", "| few-shot |", "가장 잘 통한 프롬프트"):
        assert style in out, (style, out)
    assert "</s>" in out, "the few-shot prompt is shown with its separator"
