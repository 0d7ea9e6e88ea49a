"""Exercise files made from the solutions, and the friendly message for a TODO left undone.

    python -m kogen.exercises           # (re)write step1_basic_generation.py ... from solutions/
    python -m kogen.exercises --check   # exit 1 with a diff summary when an exercise is out of date

The solution is the one source of truth (nbgrader's markers). In solutions/stepN_solution.py:

    # BEGIN SOLUTION 토크나이저를 불러오세요. 찾아볼 것: ...   <- the hint (concept + API to look up), required
    #   comment lines right below BEGIN continue the hint      <- kept in the exercise too
    # API: PreTrainedTokenizerFast.from_pretrained(path, ...)  <- the signature: `kogen hint`'s second level only
    tokenizer = PreTrainedTokenizerFast.from_pretrained(path, ...)   <- the code: `kogen hint`'s third level
    # END SOLUTION

becomes, in the exercise,

    # TODO 1-2: 토크나이저를 불러오세요.
    #   comment lines right below BEGIN continue the hint
    tokenizer = todo()

The hole keeps what the region defines: `a, b = todo()` when it assigns names, `return todo()` when
it returns, else a bare `todo()`; so the exercise parses, lints, and stops exactly at its first
hole. `todo()` raises TodoError, a SystemExit: run as a script it prints a Korean message with the
TODO's number, file:line and hint instead of a traceback, and student code's `except Exception`
cannot swallow it. Any other uncaught error in a course file ends with the same Korean explanation
`kogen check` gives (see course_excepthook).
"""
import argparse
import ast
import difflib
import linecache
import os
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STEPS = {1: "step1_basic_generation.py", 2: "step2_generation_strategies.py", 3: "step3_parameter_tuning.py",
         4: "step4_model_training.py", 5: "step5_web_service.py"}
BEGIN = re.compile(r"^(\s*)# BEGIN SOLUTION\b:?[ \t]*(.*?)\s*$")
END = re.compile(r"^\s*# END SOLUTION\s*$")
TODO = re.compile(r"^\s*# TODO (\d+-\d+): ?(.*?)\s*$")
IMPORTS_TODO = re.compile(r"^from kogen\.exercises import .*\btodo\b", re.M)


class MarkerError(ValueError):
    """A solution whose BEGIN/END SOLUTION markers cannot be turned into an exercise."""


class TodoError(SystemExit):
    """A `todo()` hole reached at run time."""

    def __init__(self, todo_id, hint, filename, lineno):
        self.todo_id, self.hint, self.filename, self.lineno = todo_id, hint, filename, lineno
        super().__init__(self.message())

    def message(self, rerun=True):
        where = f"{display_path(self.filename)}:{self.lineno}"
        label = f"TODO {self.todo_id}" if self.todo_id else "TODO"
        lines = [f"✋ {label}을(를) 아직 채우지 않았습니다 ({where})"]
        hint = self.hint.splitlines() or ["(힌트 주석이 없습니다)"]
        lines += [f"   힌트: {hint[0]}"] + [f"         {h}" for h in hint[1:]]
        lines.append(f"   → {self.lineno}번째 줄의 todo()를 코드로 바꾼 뒤 다시 실행하세요.")
        step = re.search(r"step(\d)", Path(self.filename).name)
        if step and rerun:
            lines.append(f"   채점: kogen check step{step.group(1)}   막히면: kogen hint step{step.group(1)}")
        return "\n".join(lines)


def display_path(filename):
    """The path relative to the current folder when it is inside it (what a student typed)."""
    try:
        rel = os.path.relpath(filename)
    except ValueError:  # another drive on Windows
        return filename
    return filename if rel.startswith("..") else rel


def hint_above(filename, lineno):
    """(todo id, hint) from the `# TODO n-m: ...` comment block right above line `lineno`."""
    linecache.checkcache(filename)
    lines, notes = linecache.getlines(filename), []
    i = lineno - 2
    while 0 <= i < len(lines) and lines[i].strip().startswith("#"):
        m = TODO.match(lines[i])
        if m:
            return m.group(1), "\n".join([m.group(2)] + notes)
        notes.insert(0, lines[i].strip()[1:].strip())
        i -= 1
    return None, ""


def todo():
    """A hole in an exercise: stop here with the hint written above this line."""
    frame = sys._getframe(1)
    filename, lineno = frame.f_code.co_filename, frame.f_lineno
    raise TodoError(*hint_above(filename, lineno), filename, lineno)


def course_excepthook(kind, exc, tb):
    """Every course file imports `todo`, so importing this module is where a step gets its Korean help:
    an uncaught error ends with kogen check's explanation (kogen.explain) under a short traceback."""
    from .explain import excepthook
    excepthook(kind, exc, tb)


if sys.excepthook is sys.__excepthook__:  # leave IPython's or a debugger's hook alone
    sys.excepthook = course_excepthook


# --- making exercises -------------------------------------------------------------------------

def hole(body, where):
    """The line that replaces a solution region: what the region defines, bound to todo()."""
    try:
        tree = ast.parse(textwrap.dedent("\n".join(body)))
    except SyntaxError as e:
        raise MarkerError(f"{where}: BEGIN/END SOLUTION 사이가 완결된 문장이 아닙니다({e.msg}).") from None
    if not tree.body:
        raise MarkerError(f"{where}: BEGIN/END SOLUTION 사이에 코드가 없습니다.")
    names = []
    for node in tree.body:
        if isinstance(node, ast.Return):
            return "return todo()"
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
        for target in targets:
            names += [n.id for n in ast.walk(target) if isinstance(n, ast.Name) and n.id not in names]
    return f"{', '.join(names)} = todo()" if names else "todo()"


API = re.compile(r"^\s*# API: ?(.*?)\s*$")


@dataclass
class Region:
    """One BEGIN/END SOLUTION region: its three hint levels (concept → API → code) and where it is."""
    start: int           # index of the BEGIN line
    end: int             # index of the END line
    indent: str
    concept: list        # the BEGIN text and the comment lines below it: kept in the exercise
    api: list            # `# API:` comment lines: the signature, shown only by `kogen hint`
    body: list           # the code


def regions(source, name="solution"):
    """The solution's marked regions, in order; MarkerError for markers that cannot make an exercise."""
    lines, found, i = source.splitlines(), [], 0
    while i < len(lines):
        m = BEGIN.match(lines[i])
        if not m:
            if END.match(lines[i]):
                raise MarkerError(f"{name}:{i + 1}: BEGIN SOLUTION 없이 END SOLUTION이 나왔습니다.")
            i += 1
            continue
        region, start = Region(i, -1, m.group(1), [m.group(2)], [], []), i + 1
        if not m.group(2):
            raise MarkerError(f"{name}:{start}: BEGIN SOLUTION 뒤에 한국어 힌트를 쓰세요(예: '# BEGIN SOLUTION 모델을 불러오세요').")
        i += 1
        while i < len(lines) and lines[i].strip().startswith("#") and not END.match(lines[i]) \
                and not BEGIN.match(lines[i]):  # comment lines right below BEGIN continue the hint
            api = API.match(lines[i])
            region.api.append(api.group(1)) if api else region.concept.append(lines[i])
            i += 1
        while i < len(lines) and not END.match(lines[i]):
            if BEGIN.match(lines[i]):
                raise MarkerError(f"{name}:{i + 1}: {start}번째 줄의 BEGIN SOLUTION이 닫히기 전에 또 BEGIN SOLUTION이 나왔습니다.")
            region.body.append(lines[i])
            i += 1
        if i == len(lines):
            raise MarkerError(f"{name}:{start}: BEGIN SOLUTION을 닫는 END SOLUTION이 없습니다.")
        region.end = i
        found.append(region)
        i += 1
    if not found:
        raise MarkerError(f"{name}: BEGIN SOLUTION 표시가 하나도 없습니다. 실습 파일에는 빈칸이 있어야 합니다.")
    return found


def make_exercise(source, step, name="solution"):
    """The exercise text for a solution's text: every marked region becomes a numbered TODO."""
    lines, out, done = source.splitlines(), [], 0
    for n, r in enumerate(regions(source, name), 1):
        out += lines[done:r.start]
        out += [f"{r.indent}# TODO {step}-{n}: {r.concept[0]}", *r.concept[1:],
                r.indent + hole(r.body, f"{name}:{r.start + 1}")]
        done = r.end + 1
    out += lines[done:]
    if not IMPORTS_TODO.search(source):
        raise MarkerError(f"{name}: 'from kogen.exercises import todo'가 없어 실습 파일의 todo()가 정의되지 않습니다.")
    return "\n".join(out) + "\n"


def solution_path(step, root=REPO):
    return Path(root) / "solutions" / f"step{step}_solution.py"


def exercise_path(step, root=REPO):
    return Path(root) / STEPS[step]


def build(root=REPO):
    """{step: (exercise path, the text it should have)}."""
    out = {}
    for step in STEPS:
        src = solution_path(step, root)
        out[step] = exercise_path(step, root), make_exercise(src.read_text(encoding="utf-8"), step, src.name)
    return out


def stale(root=REPO):
    """[(step, exercise path, wanted text, unified diff lines)] for each exercise that is out of date."""
    found = []
    for step, (path, want) in build(root).items():
        have = path.read_text(encoding="utf-8") if path.exists() else ""
        if have != want:
            diff = difflib.unified_diff(have.splitlines(), want.splitlines(), f"{path.name} (지금)",
                                        f"{path.name} (solutions에서 만든 것)", lineterm="", n=1)
            found.append((step, path, want, list(diff)))
    return found


def filled(path, want):
    """True when `path` has fewer todo() holes than a fresh exercise: a student's work, not to overwrite."""
    count = lambda text: len(re.findall(r"\btodo\(\)", text))
    return path.exists() and count(path.read_text(encoding="utf-8")) < count(want)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m kogen.exercises", description="solutions/에서 실습 파일 만들기")
    p.add_argument("--check", action="store_true", help="쓰지 않고, 실습 파일이 최신이 아니면 종료 코드 1")
    p.add_argument("--force", action="store_true", help="TODO를 채운 실습 파일도 덮어쓰기")
    p.add_argument("--root", default=str(REPO), help="저장소 루트 (기본: kogen 패키지의 상위 폴더)")
    a = p.parse_args(argv)
    try:
        out_of_date = stale(a.root)
    except (MarkerError, OSError) as e:
        print(f"오류: {e}", file=sys.stderr)
        return 2
    skipped = []
    for step, path, want, diff in out_of_date:
        if a.check:
            changed = sum(1 for d in diff[2:] if d[:1] in "+-")
            print(f"{path.name}: solutions/{solution_path(step).name}에서 만든 것과 {changed}줄이 다릅니다:", file=sys.stderr)
            print("\n".join("    " + d for d in diff[:20]), file=sys.stderr)
        elif filled(path, want) and not a.force:
            skipped.append(path)
            print(f"건너뜀: {display_path(path)}에서 TODO를 채운 것 같습니다. 덮어쓰려면 --force", file=sys.stderr)
        else:
            path.write_text(want, encoding="utf-8")
            print(f"썼습니다: {display_path(path)}")
    if a.check and out_of_date:
        print("실습 파일이 정답과 어긋났습니다. 'python -m kogen.exercises'로 다시 만드세요.", file=sys.stderr)
        return 1
    if not out_of_date:
        print(f"실습 파일 {len(STEPS)}개가 모두 solutions/와 일치합니다.")
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
