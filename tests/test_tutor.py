"""The student's loop around the checker: graded hints remembered per TODO, a per-file reset with a backup,
and `kogen check --watch` re-checking on save (a real subprocess, stopped with Ctrl+C's signal)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from kogen import tutor
from kogen.exercises import REPO, STEPS, exercise_path, regions, solution_path


@pytest.fixture
def course(tmp_path):
    for step in STEPS:
        shutil.copy(exercise_path(step), tmp_path)
    return tmp_path


def test_hint_climbs_concept_api_code_and_remembers_the_level_per_todo(course, capsys):
    outs = []
    for name in ("Step1", "1", "step1", "step1"):
        assert tutor.hint(name, course) == 0
        outs.append(capsys.readouterr().out)
    assert "TODO 1-1" in outs[0] and "힌트 1/3: 개념" in outs[0] and "os.environ.get" in outs[0], outs[0]
    assert "힌트 2/3: API" in outs[1] and "os.environ.get(이름, 기본값)" in outs[1], outs[1]
    assert "힌트 3/3: 코드" in outs[2] and 'MODEL_NAME = os.environ.get("KOGEN_MODEL"' in outs[2], outs[2]
    assert "힌트 3/3" in outs[3], "the last level stays"
    assert json.loads((course / ".kogen" / "hints.json").read_text()) == {"1-1": 3}
    tutor.hint("step2", course)
    assert "TODO 2-1" in capsys.readouterr().out and tutor.load_levels(course) == {"1-1": 3, "2-1": 1}


def filled_in(step):
    """The exercise as a student who filled every hole would have it: TODO comments kept, code in place."""
    text = exercise_path(step).read_text(encoding="utf-8")
    for region in regions(solution_path(step).read_text(encoding="utf-8")):
        holes = [line for line in text.splitlines() if line.strip().endswith("todo()")]
        text = text.replace(holes[0], "\n".join(region.body), 1)
    return text


def test_hint_for_a_filled_file_that_fails_points_at_the_failing_todo(course, capsys):
    text = filled_in(2).replace("top_p=0.92, top_k=0,", "top_p=0.92,")
    (course / STEPS[2]).write_text(text, encoding="utf-8")
    tutor.hint("step2", course)
    out = capsys.readouterr().out
    assert "TODO 2-3" in out and "채점에서 실패한 곳" in out, out


def test_reset_restores_one_exercise_and_keeps_a_backup(course, capsys):
    mine = "# 내가 쓴 코드\n"
    (course / STEPS[3]).write_text(mine, encoding="utf-8")
    (course / STEPS[1]).write_text(mine, encoding="utf-8")
    assert tutor.reset("Step3", course) == 0
    assert (course / STEPS[3]).read_text(encoding="utf-8") == exercise_path(3).read_text(encoding="utf-8")
    assert (course / STEPS[1]).read_text(encoding="utf-8") == mine, "other steps are left alone"
    backups = list((course / ".kogen" / "backup").glob("step3_*.py"))
    assert len(backups) == 1 and backups[0].read_text(encoding="utf-8") == mine
    assert "되돌렸습니다" in capsys.readouterr().out


def wait_for(log, text, after=0, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        content = log.read_text(encoding="utf-8", errors="replace")
        if text in content[after:]:
            return content.index(text, after) + len(text)
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared:\n{log.read_text(encoding='utf-8', errors='replace')}")


def test_watch_checks_again_on_save_and_stops_on_ctrl_c(course):
    log = course / "watch.log"
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "kogen", "check", "--watch", "step1"], cwd=course, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        seen = wait_for(log, "❌")  # the untouched exercise fails at its first TODO
        shutil.copy(solution_path(1), course / STEPS[1])  # "save" a finished file
        seen = wait_for(log, "저장을 감지했습니다", seen)
        wait_for(log, "✅", seen)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    assert "감시를 끝냈습니다" in log.read_text(encoding="utf-8")
