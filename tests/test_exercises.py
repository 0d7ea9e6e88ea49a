"""Exercises are generated from the solutions: up to date, a numbered TODO with a hint per hole, and a
friendly Korean stop (no traceback) at the first hole left undone."""
import difflib
import linecache
import os
import re
import runpy
import shutil
import subprocess
import sys

import pytest

from kogen import exercises
from kogen.exercises import BEGIN, END, STEPS, TODO, MarkerError, TodoError, exercise_path, make_exercise, solution_path

REPO = exercises.REPO


def test_exercises_are_up_to_date_with_solutions():
    out_of_date = [path.name for _, path, _, _ in exercises.stale()]
    assert not out_of_date, (f"{out_of_date} differ from what solutions/ makes: run `python -m kogen.exercises` "
                             f"(a student who filled in the TODOs sees this fail, as expected)")


@pytest.mark.parametrize("step", STEPS)
def test_diff_between_exercise_and_solution_is_only_the_holes(step):
    sol = solution_path(step).read_text(encoding="utf-8").splitlines()
    ex = exercise_path(step).read_text(encoding="utf-8").splitlines()
    inside, region = set(), False  # solution lines from BEGIN to END, markers included
    for i, line in enumerate(sol):
        region = region or bool(BEGIN.match(line))
        if region:
            inside.add(i)
        region = region and not END.match(line)
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, sol, ex, autojunk=False).get_opcodes():
        if tag != "equal":
            assert set(range(i1, i2)) <= inside, f"solution lines {i1 + 1}-{i2} changed outside a region"
            assert all(TODO.match(line) or line.strip().endswith("todo()") for line in ex[j1:j2]), ex[j1:j2]
    holes = [line for line in ex if TODO.match(line)]
    assert len(holes) >= 3 and len(holes) == sum(line.strip().endswith("todo()") for line in ex)
    assert all(len(TODO.match(h).group(2)) > 10 for h in holes), "every TODO carries a Korean hint"
    assert [TODO.match(h).group(1) for h in holes] == [f"{step}-{n}" for n in range(1, len(holes) + 1)]


def test_hole_keeps_assigned_names_returns_and_bare_calls():
    src = """from kogen.exercises import todo


def f():
    # BEGIN SOLUTION 두 값을 만드세요
    #   a = 1, b = 2
    a = 1
    b = (
        2)
    # END SOLUTION
    # BEGIN SOLUTION 합을 돌려주세요
    return a + b
    # END SOLUTION


# BEGIN SOLUTION 불러 보세요
print(f())
# END SOLUTION
"""
    out = make_exercise(src, 9)
    assert "    # TODO 9-1: 두 값을 만드세요\n    #   a = 1, b = 2\n    a, b = todo()\n" in out
    assert "    # TODO 9-2: 합을 돌려주세요\n    return todo()\n" in out
    assert out.endswith("# TODO 9-3: 불러 보세요\ntodo()\n")
    compile(out, "exercise", "exec")


@pytest.mark.parametrize("body, words", [
    ("# BEGIN SOLUTION 힌트\nx = 1\n", "END SOLUTION이 없습니다"),
    ("# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n", "힌트"),
    ("# BEGIN SOLUTION 힌트\n# BEGIN SOLUTION 또\nx = 1\n# END SOLUTION\n", "또 BEGIN SOLUTION"),
    ("x = 1\n# END SOLUTION\n", "BEGIN SOLUTION 없이"),
    ("x = 1\n", "하나도 없습니다"),
    ("# BEGIN SOLUTION 힌트\nif x:\n# END SOLUTION\n", "완결된 문장"),
])
def test_bad_markers_are_errors_naming_the_line(body, words):
    with pytest.raises(MarkerError, match=words):
        make_exercise("from kogen.exercises import todo\n" + body, 1, "s.py")


def test_solution_without_todo_import_is_an_error():
    with pytest.raises(MarkerError, match="import todo"):
        make_exercise("# BEGIN SOLUTION 힌트\nx = 1\n# END SOLUTION\n", 1)


def copy_course(root):
    for step in STEPS:
        (root / "solutions").mkdir(exist_ok=True)
        shutil.copy(solution_path(step), root / "solutions")
        shutil.copy(exercise_path(step), root)


def test_check_mode_fails_with_a_diff_summary_and_regenerating_spares_filled_in_work(tmp_path, capsys):
    copy_course(tmp_path)
    assert exercises.main(["--check", "--root", str(tmp_path)]) == 0
    stale = tmp_path / STEPS[2]
    stale.write_text(stale.read_text(encoding="utf-8").replace("num_beams=3", "num_beams=4"), encoding="utf-8")
    assert exercises.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert STEPS[2] in err and "num_beams=4" in err and "python -m kogen.exercises" in err, err
    assert exercises.main(["--root", str(tmp_path)]) == 0 and exercises.stale(tmp_path) == []

    filled = tmp_path / STEPS[1]  # a student's work: fewer todo() than a fresh exercise
    filled.write_text(filled.read_text(encoding="utf-8").replace("MODEL_NAME = todo()", 'MODEL_NAME = "bundled"'),
                      encoding="utf-8")
    assert exercises.main(["--root", str(tmp_path)]) == 1
    assert 'MODEL_NAME = "bundled"' in filled.read_text(encoding="utf-8"), "a filled-in exercise was overwritten"
    assert exercises.main(["--root", str(tmp_path), "--force"]) == 0 and exercises.stale(tmp_path) == []


def test_untouched_exercise_run_as_a_script_prints_the_todo_in_korean_without_traceback():
    env = dict(os.environ, KOGEN_MODEL="bundled", OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, STEPS[1]], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    line = next(i for i, text in enumerate(exercise_path(1).read_text(encoding="utf-8").splitlines(), 1)
                if text.strip().endswith("todo()"))
    assert "TODO 1-1" in r.stderr and f"{STEPS[1]}:{line}" in r.stderr and "힌트:" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr, r.stderr


@pytest.fixture
def one_thread():
    """The part before a hole generates with the tiny bundled model: one thread is faster on a busy machine."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("step", [2, 3, 4, 5])
def test_first_hole_reached_stops_with_its_number_line_and_hint(step, monkeypatch, capsys, one_thread):
    monkeypatch.setenv("KOGEN_MODEL", "bundled")
    monkeypatch.setenv("KOGEN_CHECKPOINT_DIR", "/nonexistent")  # step 4 writes, step 5 reads: neither gets there
    with pytest.raises(TodoError) as e:
        runpy.run_path(str(exercise_path(step)), run_name="__main__")
    err = e.value
    assert err.todo_id.startswith(f"{step}-") and err.hint and err.code != 0
    assert linecache.getline(err.filename, err.lineno).strip().endswith("todo()")
    assert re.search(rf"# TODO {err.todo_id}: ", linecache.getline(err.filename, err.lineno - 1 - err.hint.count("\n")))
    assert f"{STEPS[step]}:{err.lineno}" in err.message() and f"kogen check step{step}" in err.message()


@pytest.mark.parametrize("step", STEPS)
def test_todo_comments_name_the_concept_and_api_but_not_the_code(step):
    for n, region in enumerate(exercises.regions(solution_path(step).read_text(encoding="utf-8")), 1):
        comment = "\n".join(region.concept)  # what the exercise shows above the hole
        assert region.api, f"TODO {step}-{n} has no '# API:' line, the second level of kogen hint"
        assert "찾아볼 것:" in comment, f"TODO {step}-{n} names no API to look up"
        for line in region.body:
            code = line.split("#")[0].strip()
            assert len(code) < 12 or code not in comment, f"TODO {step}-{n} gives its code away: {code}"
