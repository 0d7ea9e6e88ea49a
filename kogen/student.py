"""Running a student's file for `kogen check`; what went wrong is explained by kogen.explain.

Whatever a student's file does wrong (a TODO left, a syntax error, a misspelt argument, a wrong type)
ends as a message naming the file:line, the statement and a likely fix. Scripts run in a child
process through `python -m kogen.check --run FILE REPORT`, which writes that message to REPORT.
"""
import contextlib
import importlib.util
import inspect
import linecache
import os
import runpy
import subprocess
import sys
from pathlib import Path

from .exercises import REPO, STEPS, TodoError, display_path
from .explain import explain  # noqa: F401  (kogen.check imports it from here)


class CheckFailed(Exception):
    """The student's code ran but did not do what the step asks; the message says what and where."""


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
