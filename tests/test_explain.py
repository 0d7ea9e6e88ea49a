"""Korean help wherever a step runs: `python stepN_….py` with a mistake ends with the same explanation
`kogen check` gives (kogen.explain), naming the file:line in the student's file and the error that
actually happened. Each case is a real subprocess on a solution with one deliberate mistake."""
import os
import re
import subprocess
import sys

import pytest

from kogen import check
from kogen.check import write_tiny_nsmc
from kogen.exercises import REPO, STEPS, solution_path

CASES = {  # name: (step, old, new, words the explanation must contain)
    "misspelt argument": (2, "do_sample=False, num_beams=3, max_new_tokens=max_new_tokens",
                          "do_samples=False, num_beams=3, max_new_tokens=max_new_tokens",
                          ["do_samples", "'do_sample'"]),
    "string for a number": (2, "do_sample=True, top_k=50,", 'do_sample=True, top_k="50",',
                            ['top_k에 문자열 "50"', "따옴표를 빼고"]),
    "out of range": (2, "do_sample=True, top_k=50,", "do_sample=True, top_k=-5,", ["top_k=-5", "[0, 1000]"]),
    "shape mismatch": (1, "next_id = next_logits.argmax(dim=-1, keepdim=True)", "next_id = next_logits.argmax(dim=-1)",
                       ["모양(shape)", "keepdim=True"]),
    "missing return": (1, "    return model.to(device).eval(), tokenizer\n", "    model.to(device).eval()\n",
                       ["load_model_and_tokenizer(...)", "return"]),
    "missing collate_fn": (4, "sampler=RandomSampler(train_dataset),\n                              collate_fn=collate_fn,",
                           "sampler=RandomSampler(train_dataset),\n                             ",
                           ["collate_fn=collate_fn", "오류가 드러난 곳"]),
}


def mistaken(tmp_path, step, old, new):
    """The solution with one edit, saved as the step's exercise file; (path, line of the edit)."""
    text = solution_path(step).read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    text = text.replace(old, new, 1)
    path = tmp_path / STEPS[step]
    path.write_text(text, encoding="utf-8")
    return path, text[:text.index(new)].count("\n") + 1


def run_script(path, tmp_path):
    env = dict(os.environ, KOGEN_MODEL="bundled", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO),
               KOGEN_NSMC_DIR=write_tiny_nsmc(tmp_path / "nsmc"), KOGEN_CHECKPOINT_DIR=str(tmp_path / "ckpt"),
               KOGEN_EPOCHS="1", KOGEN_BATCH_SIZE="8", KOGEN_MAX_TRAIN_EXAMPLES="0", KOGEN_MAX_VAL_EXAMPLES="0")
    return subprocess.run([sys.executable, path.name], cwd=path.parent, env=env, capture_output=True, text=True,
                          timeout=180)


@pytest.mark.parametrize("case", CASES)
def test_step_run_as_a_script_ends_with_the_korean_explanation_and_the_students_line(case, tmp_path):
    step, old, new, words = CASES[case]
    path, line = mistaken(tmp_path, step, old, new)
    r = run_script(path, tmp_path)
    assert r.returncode == 1, r.stderr[-2000:]
    err = r.stderr
    assert "Traceback (most recent call last)" in err, "the traceback stays: students learn to read one"
    tail = err[err.index("❌"):]
    shown = int(re.search(rf"{STEPS[step]}:(\d+)에서 오류", tail).group(1))
    assert line - 2 <= shown <= line + 3, (line, tail)  # a shape error surfaces where the tensors meet
    assert all(w in tail for w in words), tail
    assert f"kogen check step{step}" in tail and f"kogen hint step{step}" in tail, tail
    assert len(err[:err.index("❌")].splitlines()) < 25, "library frames are folded: " + err


def test_checker_gives_the_same_fix_as_the_script(tmp_path):
    step, old, new, _ = CASES["string for a number"]
    path, _ = mistaken(tmp_path, step, old, new)
    fix = re.search(r"고칠 곳: (.*)", run_script(path, tmp_path).stderr).group(1)
    ok, message = check.check_step(step, path)
    assert not ok and f"고칠 곳: {fix}" in message, (fix, message)


def test_checker_points_at_the_dataloader_without_collate_fn(tmp_path):
    step, old, new, _ = CASES["missing collate_fn"]
    path, line = mistaken(tmp_path, step, old, new)
    ok, message = check.check_step(step, path)
    assert not ok and f"{STEPS[step]}:{line}" in message and "collate_fn=collate_fn" in message, message


def test_two_mistakes_on_one_line_name_the_one_that_raised(tmp_path):
    # do_samples is misspelt and top_k quoted; generate compares top_k first, so that is the error
    path, _ = mistaken(tmp_path, 2, "do_sample=True, top_k=50,", 'do_samples=True, top_k="50",')
    ok, message = check.check_step(2, path)
    assert not ok and 'top_k에 문자열 "50"' in message and "do_samples" not in message.split("고칠 곳:")[1], message


def test_errors_outside_course_files_keep_pythons_own_traceback(tmp_path):
    script = tmp_path / "plain.py"
    script.write_text("import kogen.exercises\nraise ValueError('plain')\n", encoding="utf-8")
    r = subprocess.run([sys.executable, str(script)], env=dict(os.environ, PYTHONPATH=str(REPO)),
                       capture_output=True, text=True, timeout=60)
    assert "ValueError: plain" in r.stderr and "❌" not in r.stderr and "고칠 곳" not in r.stderr, r.stderr
