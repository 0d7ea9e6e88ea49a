"""Running a student's file and explaining what went wrong in it, in Korean.

Whatever a student's file does wrong (a TODO left, a syntax error, a misspelt argument, a wrong type)
ends as a message naming the file:line, the statement and a likely fix. Scripts run in a child
process through `python -m kogen.check --run FILE REPORT`, which writes that message to REPORT.
"""
import builtins
import contextlib
import difflib
import importlib.util
import inspect
import linecache
import os
import re
import runpy
import subprocess
import sys
import traceback
from pathlib import Path

from .exercises import REPO, STEPS, TodoError, display_path

# names a student might misspell: generate's settings and the course API's arguments
KNOWN_ARGS = ["input_ids", "attention_mask", "max_new_tokens", "min_new_tokens", "max_length", "min_length",
              "do_sample", "num_beams", "top_k", "top_p", "temperature", "repetition_penalty", "no_repeat_ngram_size",
              "num_return_sequences", "pad_token_id", "eos_token_id", "early_stopping", "length_penalty",
              "bos_token", "eos_token", "unk_token", "pad_token", "mask_token", "return_tensors", "skip_special_tokens",
              "pretrained_model_name", "downstream_corpus_name", "downstream_corpus_root_dir", "downstream_model_dir",
              "downstream_model_checkpoint_fpath", "max_seq_length", "batch_size", "learning_rate", "epochs", "seed",
              "max_train_examples", "max_val_examples", "args", "tokenizer", "corpus", "mode", "max_examples",
              "sampler", "collate_fn", "num_workers", "train_dataloaders", "val_dataloaders", "model", "model_name",
              "device", "host", "port", "keepdim", "dim"]
NUMERIC_ARGS = {"max_new_tokens", "min_new_tokens", "max_length", "min_length", "num_beams", "top_k", "top_p",
                "temperature", "repetition_penalty", "no_repeat_ngram_size", "num_return_sequences", "max_seq_length",
                "batch_size", "learning_rate", "epochs", "seed", "port", "dim"}

class CheckFailed(Exception):
    """The student's code ran but did not do what the step asks; the message says what and where."""


# --- explaining errors in a student's file ------------------------------------------------------

def student_frame(tb, path):
    """The innermost traceback entry inside the student's file (where to look), or None."""
    target = os.path.realpath(path)
    entries = [(fs, frame) for fs, (frame, _) in zip(traceback.extract_tb(tb), traceback.walk_tb(tb))
               if os.path.realpath(fs.filename) == target]
    return entries[-1] if entries else (None, None)


def statement_text(filename, first, last):
    return "\n".join(linecache.getline(filename, n).rstrip() for n in range(first, (last or first) + 1)).strip()


def suggest(name, candidates):
    close = difflib.get_close_matches(name, [c for c in candidates if c != name], n=1, cutoff=0.6)
    return f" 혹시 '{close[0]}'을(를) 쓰려던 것인가요?" if close else ""


def likely_fix(exc, code, frame):
    """A Korean sentence on what probably went wrong, from the exception and the failing statement."""
    msg = str(exc)
    quoted = re.findall(r"\b(\w+)\s*=\s*(['\"])([-+.\d]+)\2", code)  # top_k="50": a number in quotes
    numeric = [(n, v) for n, _, v in quoted if n in NUMERIC_ARGS]
    if numeric and isinstance(exc, (TypeError, ValueError)):
        n, v = numeric[0]
        return f"{n}에 문자열 \"{v}\"을(를) 넘겼습니다. 따옴표를 빼고 숫자 {v}(으)로 쓰세요."
    unused = re.search(r"model_kwargs` are not used by the model: \[(.*?)\]", msg)
    if unused:
        names = re.findall(r"'(\w+)'", unused.group(1))
        return (f"generate가 모르는 인자 {', '.join(names)}을(를) 넘겼습니다. 이름의 철자를 확인하세요."
                + suggest(names[0], KNOWN_ARGS) if names else "generate에 모르는 인자를 넘겼습니다.")
    unexpected = re.search(r"unexpected keyword argument '(\w+)'", msg)
    if unexpected:
        return f"'{unexpected.group(1)}'(이)라는 인자는 없습니다. 이름의 철자를 확인하세요." + suggest(unexpected.group(1), KNOWN_ARGS)
    if isinstance(exc, NameError) and getattr(exc, "name", None):
        pool = list(vars(builtins)) + (list(frame.f_globals) + list(frame.f_locals) if frame else [])
        return (f"'{exc.name}'이(가) 정의되지 않았습니다. 철자가 맞는지, import나 앞 줄의 정의를 빠뜨리지 않았는지 보세요."
                + suggest(exc.name, pool))
    if isinstance(exc, AttributeError) and getattr(exc, "name", None):
        return f"'{exc.name}'(이)라는 속성이나 메서드가 없습니다." + suggest(exc.name, dir(getattr(exc, "obj", None)))
    if isinstance(exc, (TypeError, ValueError)) and "generate(" in code:
        return "generate에 넘긴 값의 종류를 확인하세요: 길이·개수는 정수, top_p·temperature는 실수, do_sample은 True/False입니다."
    if isinstance(exc, RuntimeError) and ("size mismatch" in msg or "Missing key" in msg):
        return "체크포인트와 모델이 맞지 않습니다. 4단계에서 학습한 모델과 같은 KOGEN_MODEL을 쓰세요."
    if isinstance(exc, OSError) and "Address already in use" in msg:
        return "포트가 이미 쓰이고 있습니다. 켜 둔 서버를 끄거나 KOGEN_PORT=9002처럼 다른 포트를 쓰세요."
    return "이 줄을 정답 파일(solutions/)의 같은 부분과 비교해 보세요."


def explain(exc, path):
    """The Korean message for an exception raised while running the student's file at `path`."""
    if isinstance(exc, TodoError):
        return exc.message(rerun=False)
    if isinstance(exc, SyntaxError):
        where = f"{display_path(exc.filename or str(path))}:{exc.lineno}"
        text = (exc.text or "").rstrip()
        caret = " " * max(0, (exc.offset or 1) - 1 - (len(text) - len(text.lstrip()))) + "^"
        kind = "들여쓰기 오류" if isinstance(exc, IndentationError) else "문법 오류"
        return (f"{kind} ({where}): {exc.msg}\n   {text.strip()}\n   {caret}\n"
                f"   고칠 곳: 괄호와 따옴표의 짝, 줄 끝의 쉼표·콜론, 들여쓰기(스페이스 4칸)를 확인하세요. "
                f"오류는 표시된 줄이나 바로 앞 줄에 있습니다.")
    fs, frame = student_frame(exc.__traceback__, path)
    first = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
    if fs is None:  # raised before any line of the file ran (an import inside kogen, say)
        return f"{display_path(str(path))}을(를) 실행하다 오류가 났습니다.\n   {first}"
    code = statement_text(fs.filename, fs.lineno, getattr(fs, "end_lineno", None))
    code_lines = code.splitlines()
    shown = "\n".join("   | " + line for line in code_lines[:6]) + ("\n   | ..." if len(code_lines) > 6 else "")
    return (f"{display_path(fs.filename)}:{fs.lineno}에서 오류: {first}\n{shown}\n"
            f"   고칠 곳: {likely_fix(exc, code, frame)}")


# --- running a student's file ---------------------------------------------------------------------

def import_file(path):
    """Run the file as a module (its `if __name__ == "__main__":` part stays off) and return it."""
    name = f"kogen_student_{Path(path).stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up here
    try:
        linecache.checkcache(str(path))
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def function(module, name, path, kind="함수"):
    """module.name, or a CheckFailed saying it is missing (renamed or deleted by the student)."""
    if not hasattr(module, name) or (kind == "함수" and not callable(getattr(module, name))):
        raise CheckFailed(f"{display_path(str(path))}에 {name} {kind}가 없습니다. 이름을 바꾸거나 지우지 않았는지 확인하세요.")
    return getattr(module, name)


def where(fn):
    try:
        return f"{display_path(inspect.getsourcefile(fn))}:{inspect.getsourcelines(fn)[1]} {fn.__name__}"
    except (OSError, TypeError):
        return getattr(fn, "__name__", "?")


@contextlib.contextmanager
def environ(**values):
    """Set (str) or unset (None) environment variables for the block."""
    old = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, str(v))
    try:
        yield
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def child_env(**extra):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS="1", KOGEN_MODEL="bundled")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_script(path, report, log, **env):
    """The student's file as a script in a child process (`python -m kogen.check --run`)."""
    return subprocess.Popen([sys.executable, "-m", "kogen.check", "--run", str(path), str(report)],
                            cwd=course_root(), env=child_env(**env), stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)


def script_failure(path, report, log_path, rc):
    """CheckFailed from a child that ended badly: its explained error, else the tail of its output."""
    if Path(report).exists() and Path(report).read_text(encoding="utf-8").strip():
        return CheckFailed(Path(report).read_text(encoding="utf-8"))
    tail = Path(log_path).read_text(encoding="utf-8", errors="replace").strip().splitlines()[-12:]
    return CheckFailed(f"python {display_path(str(path))}이(가) 종료 코드 {rc}로 끝났습니다. 마지막 출력:\n"
                       + "\n".join("   | " + line for line in tail))


def run_file(path, report):
    """`python -m kogen.check --run FILE REPORT`: run FILE as __main__; on error write explain() to REPORT."""
    sys.argv = [str(path)]
    sys.path.insert(0, str(Path(path).resolve().parent))
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as e:
        if isinstance(e, TodoError) or e.code not in (0, None):
            message = explain(e, path) if isinstance(e, TodoError) else f"프로그램이 sys.exit({e.code!r})로 끝났습니다."
            Path(report).write_text(message, encoding="utf-8")
            return 1
    except BaseException as e:  # noqa: B902 - anything a student writes must end as a message
        Path(report).write_text(explain(e, path), encoding="utf-8")
        return 1
    return 0


def course_root():
    """The folder with the step files: the current one if it has them, else the repository kogen is in."""
    return Path.cwd() if (Path.cwd() / STEPS[1]).exists() else REPO
