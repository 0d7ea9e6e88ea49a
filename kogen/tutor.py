"""The rest of the student's loop, rustlings' shape: graded hints, a per-file reset, a watch mode.

    kogen hint step1        # the next level (concept → API → code) for the first unfinished or failing TODO
    kogen reset step1       # the exercise from its solution again; the student's file kept in .kogen/backup/
    kogen check --watch     # check again whenever a step file is saved; Ctrl+C stops

Hint levels are remembered per TODO in .kogen/hints.json in the course folder (git-ignored). The three
levels come from the solution's markers (kogen.exercises.regions): the BEGIN text and the comments
under it, the `# API:` lines, then the code itself.
"""
import json
import re
import shutil
import sys
import textwrap
import time
from pathlib import Path

from .exercises import REPO, TODO, display_path, exercise_path, make_exercise, regions, solution_path
from .student import course_root

LEVELS = ("개념", "API", "코드")


def one_step(name):
    from .check import parse_steps
    steps = parse_steps([name])
    return steps[0]


def state_file(root):
    return Path(root) / ".kogen" / "hints.json"


def load_levels(root):
    path = state_file(root)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def save_levels(root, levels):
    path = state_file(root)
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(levels, indent=1), encoding="utf-8")


def todo_sites(path):
    """[(todo id, line of its hole (the line after the `# TODO` comment block), filled in?)] in order."""
    lines, sites = Path(path).read_text(encoding="utf-8").splitlines(), []
    for i, line in enumerate(lines):
        m = TODO.match(line)
        if m:
            j = i + 1
            while j < len(lines) and lines[j].strip().startswith("#"):
                j += 1
            filled = j >= len(lines) or not lines[j].strip().endswith("todo()")
            sites.append((m.group(1), j + 1, filled))
    return sites


def failing_todo(path, sites, message):
    """The TODO a checker message points at: the one in the function it names (`file:N name` points at the
    def line, the TODO is below it), else the last TODO above the line."""
    m = re.search(rf"{re.escape(Path(path).name)}:(\d+)", message)
    if not m or not sites:
        return sites[0][0] if sites else None
    line = int(m.group(1))
    text = Path(path).read_text(encoding="utf-8").splitlines()[line - 1].lstrip()
    if text.startswith("def "):
        below = [s for s in sites if s[1] > line]
        if below:
            return below[0][0]
    above = [s for s in sites if s[1] <= line]
    return (above or sites)[-1][0]


def target(step, root):
    """(todo id, why) of the TODO to help with, or (None, why) when there is none."""
    from .check import check_step
    path = exercise_path(step, root)
    if not path.exists():
        return None, f"{display_path(str(path))} 파일이 없습니다. kogen reset step{step}로 다시 만들 수 있습니다."
    sites = todo_sites(path)
    unfinished = [s for s in sites if not s[2]]
    if unfinished:
        return unfinished[0][0], "아직 채우지 않은 첫 빈칸"
    ok, message = check_step(step, path)
    if ok:
        return None, f"{step}단계는 채점을 통과했습니다. 더 볼 힌트가 없습니다."
    todo_id = failing_todo(path, sites, message)
    if todo_id is None:  # the # TODO comments are gone: the checker's message is the best help
        return None, f"# TODO 주석이 없어 어느 빈칸인지 알 수 없습니다. 채점 결과:\n{message}"
    return todo_id, "채점에서 실패한 곳"


def hint_text(step, todo_id, level, root):
    source = solution_path(step, root) if solution_path(step, root).exists() else solution_path(step)
    region = regions(source.read_text(encoding="utf-8"))[int(todo_id.split("-")[1]) - 1]
    if level == 1:
        lines = [region.concept[0]] + [c.strip().lstrip("#").strip() for c in region.concept[1:]]
    elif level == 2:
        lines = region.api
    else:
        lines = textwrap.dedent("\n".join(region.body)).splitlines()
    return "\n".join("   " + line for line in lines)


def hint(name, root=None):
    """`kogen hint stepN`: print the next level for the TODO to work on; returns the exit code."""
    step, root = one_step(name), Path(root) if root else course_root()
    todo_id, why = target(step, root)
    if todo_id is None:
        print(why)
        return 0
    levels = load_levels(root)
    level = min(levels.get(todo_id, 0) + 1, len(LEVELS))
    levels[todo_id] = level
    save_levels(root, levels)
    line = next(line for t, line, _ in todo_sites(exercise_path(step, root)) if t == todo_id)
    print(f"💡 TODO {todo_id} ({display_path(str(exercise_path(step, root)))}:{line}, {why}) — "
          f"힌트 {level}/{len(LEVELS)}: {LEVELS[level - 1]}\n{hint_text(step, todo_id, level, root)}")
    if level < len(LEVELS):
        print(f"   더 필요하면 다시: kogen hint step{step} (다음: {LEVELS[level]})")
    else:
        print(f"   마지막 힌트입니다. 고친 뒤: kogen check step{step}")
    return 0


def reset(name, root=None):
    """`kogen reset stepN`: the exercise made again from its solution; the student's file backed up first."""
    step, root = one_step(name), Path(root) if root else course_root()
    path, source = exercise_path(step, root), solution_path(step, root)
    source = source if source.exists() else solution_path(step, REPO)
    backup = None
    if path.exists():
        backup = Path(root) / ".kogen" / "backup" / f"{path.stem}.{time.strftime('%Y%m%d-%H%M%S')}.py"
        backup.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, backup)
    path.write_text(make_exercise(source.read_text(encoding="utf-8"), step, source.name), encoding="utf-8")
    levels = {k: v for k, v in load_levels(root).items() if not k.startswith(f"{step}-")}
    save_levels(root, levels)
    print(f"{display_path(str(path))}을(를) 처음 상태로 되돌렸습니다."
          + (f" 전에 쓰던 파일은 {display_path(str(backup))}에 있습니다." if backup else ""))
    return 0


def watch(steps=(), solutions=False, root=None, interval=0.5):
    """`kogen check --watch`: check, then check again each time one of the files changes, until Ctrl+C."""
    from .check import main as check_main
    from .check import parse_steps
    root = Path(root) if root else course_root()
    wanted = parse_steps(steps)
    files = [solution_path(s, root) if solutions else exercise_path(s, root) for s in wanted]

    def stamp():
        return [(f.stat().st_mtime_ns, f.stat().st_size) if f.exists() else None for f in files]
    seen = None
    try:
        while True:
            now = stamp()
            if now != seen:
                if seen is not None:
                    print(f"\n== 저장을 감지했습니다 ({time.strftime('%H:%M:%S')}): 다시 채점합니다 ==\n")
                seen = now
                check_main(steps, solutions, root)
                print("\n(파일을 저장하면 다시 채점합니다. 끝내려면 Ctrl+C)", flush=True)
            time.sleep(interval)
    except KeyboardInterrupt:
        print("\n감시를 끝냈습니다.", file=sys.stderr)
        return 0
