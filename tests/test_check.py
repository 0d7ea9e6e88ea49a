"""`kogen check`: every solution passes, every untouched exercise fails with its TODO, and a broken file
(syntax error, misspelt argument, wrong type, wrong behaviour) gets a Korean message with the step, the
line and a fix, never a crash."""
import re

import pytest

from kogen import check
from kogen.exercises import STEPS, exercise_path, solution_path


@pytest.mark.parametrize("step", STEPS)
def test_solution_passes_its_check(step):
    ok, message = check.check_step(step, solution_path(step))
    assert ok, message


@pytest.mark.parametrize("step", STEPS)
def test_untouched_exercise_fails_with_its_first_todo_in_korean(step):
    ok, message = check.check_step(step, exercise_path(step))
    assert not ok
    assert f"TODO {step}-" in message and "힌트:" in message and "todo()" in message, message
    assert "Traceback" not in message


def test_check_all_stops_at_the_first_failing_step_and_shows_progress(capsys):
    assert check.main([]) == 1
    out = capsys.readouterr().out
    assert "1단계" in out and "❌" in out and "TODO 1-1" in out and "kogen check step1" in out, out
    assert "2단계" not in out and "[□□□□□] 0/5" in out, "stops at the first failure, like rustlings"


def test_all_steps_passing_shows_progress_and_a_reward(monkeypatch, capsys):
    monkeypatch.setattr(check, "check_step", lambda step, path: (True, ""))
    assert check.main([], solutions=True) == 0
    out = capsys.readouterr().out
    assert out.count("✅") == 5 and "[■■■■■] 5/5" in out and "🎉" in out, out


def test_some_steps_passing_points_to_the_next_step(monkeypatch, capsys):
    monkeypatch.setattr(check, "check_step", lambda step, path: (True, ""))
    assert check.main(["step2", "3"]) == 0
    assert "다음: kogen check step4" in capsys.readouterr().out


def test_unknown_step_is_a_korean_usage_error(capsys):
    assert check.main(["step9"]) == 2
    assert "step1 … step5" in capsys.readouterr().err


@pytest.fixture
def broken(tmp_path):
    """broken(step, old, new) -> (course root, line number): the solution with one edit, as the exercise file."""
    def make(step, old, new):
        text = solution_path(step).read_text(encoding="utf-8")
        assert old in text, old
        text = text.replace(old, new, 1)
        (tmp_path / STEPS[step]).write_text(text, encoding="utf-8")
        return tmp_path, text[:text.index(new)].count("\n") + 1
    return make


def run_check(root, step, capsys):
    assert check.main([f"step{step}"], root=root) == 1, "a broken file fails its step"
    return capsys.readouterr().out


def reported_line(out, step):
    """The line the message points at: a statement spanning lines is named by its first line."""
    return int(re.search(rf"{STEPS[step]}:(\d+)", out).group(1))


def test_syntax_error_names_the_step_the_line_and_what_to_look_for(broken, capsys):
    root, line = broken(1, "def greedy_generate(model, tokenizer, prompt, max_new_tokens=30, min_new_tokens=0):",
                        "def greedy_generate(model, tokenizer, prompt, max_new_tokens=30, min_new_tokens=0)")
    out = run_check(root, 1, capsys)
    assert "1단계" in out and "문법 오류" in out and f"{STEPS[1]}:{line}" in out and "콜론" in out, out


def test_misspelt_generate_argument_suggests_the_right_name(broken, capsys):
    root, line = broken(2, "num_beams=3, max_new_tokens=max_new_tokens,", "num_beam=3, max_new_tokens=max_new_tokens,")
    out = run_check(root, 2, capsys)
    assert "2단계" in out and f"{STEPS[2]}:{line}" in out and "num_beam" in out and "'num_beams'" in out, out


def test_number_passed_as_a_string_to_generate_says_to_drop_the_quotes(broken, capsys):
    root, line = broken(3, "temperature=0.9, top_k=50, top_p=0.92,", 'temperature="0.9", top_k=50, top_p=0.92,')
    out = run_check(root, 3, capsys)
    assert "3단계" in out and line - 2 <= reported_line(out, 3) <= line, out
    assert 'temperature="0.9"' in out and "따옴표를 빼고 숫자 0.9" in out, out


def test_undefined_name_suggests_the_close_one(broken, capsys):
    root, line = broken(1, "next_id = next_logits.argmax(dim=-1, keepdim=True)",
                        "next_id = next_logit.argmax(dim=-1, keepdim=True)")
    out = run_check(root, 1, capsys)
    assert f"{STEPS[1]}:{line}" in out and "'next_logits'" in out, out


def test_wrong_behaviour_shows_expected_actual_and_the_likely_mistake(broken, capsys):
    root, _ = broken(2, "top_p=0.92, top_k=0,", "top_p=0.92,")
    out = run_check(root, 2, capsys)
    assert "기대:" in out and "실제:" in out and "top_k=0이 빠졌습니다" in out and "top_p_generate" in out, out


def test_unseeded_sampling_that_never_varies_is_caught(broken, capsys):
    root, _ = broken(2, "do_sample=True, top_k=50,", "do_sample=False, top_k=50,")
    out = run_check(root, 2, capsys)
    assert "top_k_generate" in out and "do_sample=True" in out, out


@pytest.mark.parametrize("text, words", [
    ("import sys\nsys.exit(3)\n", "sys.exit"),
    ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
    ("", "MODEL_NAME 변수가 없습니다"),
    ("import os\nMODEL_NAME = os.environ.get('KOGEN_MODEL', 'skt/kogpt2-base-v2')\ngreedy_generate = 3\n",
     "load_model_and_tokenizer 함수가 없습니다"),
])
def test_file_that_exits_raises_or_lacks_functions_never_crashes_the_checker(tmp_path, text, words):
    path = tmp_path / STEPS[1]
    path.write_text(text, encoding="utf-8")
    ok, message = check.check_step(1, path)
    assert not ok and words in message, message


def test_error_in_the_server_part_of_step5_is_explained_from_the_child_process(broken):
    root, line = broken(5, "    app.run(host=HOST, port=PORT)\n", "    app.run(host=HOST, port=PORTS)\n")
    ok, message = check.check_step(5, root / STEPS[5])
    assert not ok and f"{STEPS[5]}:{line}" in message and "'PORT'" in message, message


def test_step5_inference_fn_that_does_not_sample_is_caught(broken):
    root, _ = broken(5, "output_ids = model.generate(input_ids, do_sample=True, min_length=min_length,",
                     "output_ids = model.generate(input_ids, min_length=min_length,")
    ok, message = check.check_step(5, root / STEPS[5])
    assert not ok and "모두 같은 글" in message and "do_sample=True" in message, message


@pytest.mark.parametrize("old, new, words", [
    ("no_repeat_ngram_size=no_repeat_ngram_size, temperature=temperature)", "no_repeat_ngram_size=no_repeat_ngram_size)",
     "temperature가 반영되지 않았습니다"),
    ("top_p=top_p, top_k=top_k,", "top_k=top_k,", "top_p가 반영되지 않았습니다"),
])
def test_step5_inference_fn_that_drops_a_sampling_setting_is_caught(broken, old, new, words):
    root, _ = broken(5, old, new)
    ok, message = check.check_step(5, root / STEPS[5])
    assert not ok and words in message, message


def test_step4_run_that_leaves_an_older_configurations_checkpoint_in_front_is_caught(broken):
    # its own Trainer instead of get_trainer(args): nothing sets the older run's checkpoints aside
    root, _ = broken(4, "    trainer = get_trainer(args)\n",
                     "    from pytorch_lightning import Trainer\n    from pytorch_lightning.callbacks import ModelCheckpoint\n"
                     "    trainer = Trainer(max_epochs=args.epochs, logger=False, enable_progress_bar=False, callbacks=[\n"
                     "        ModelCheckpoint(dirpath=args.downstream_model_dir, filename=\"{epoch}-{val_loss:.2f}\", "
                     "monitor=\"val_loss\")])\n")
    ok, message = check.check_step(4, root / STEPS[4])
    assert not ok and check.STALE_CHECKPOINT in message and "get_trainer(args)" in message, message


def test_step_names_accept_the_forms_students_type():
    assert check.parse_steps(["Step1", "2", "step3", "STEP4", "step5_web_service.py"]) == [1, 2, 3, 4, 5]
