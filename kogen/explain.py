"""The one Korean explainer for an error in a student's file, used by `kogen check` and by the steps.

    explain(exc, path)   # "step2_….py:42에서 오류: ValueError: …\n   | code\n   고칠 곳: …"

`kogen check` puts it in its report; a step run as `python stepN_….py` prints it under a short
traceback, through the `sys.excepthook` that importing `kogen.exercises` installs (active only when
the running script imported `todo`, i.e. a course file). Each rule reads the exception that actually
happened, so with several mistakes on one line the message names the one that raised.
"""
import ast
import builtins
import difflib
import linecache
import os
import re
import sys
import traceback
from pathlib import Path

from .exercises import TodoError, display_path

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
COLLATE_ERRORS = ("each element in list of batch should be of equal size", "stack expects each tensor to be equal size")
SHAPE_ERRORS = ("Tensors must have same number of dimensions", "cannot be concatenated", "Sizes of tensors must match",
                "must match the size of tensor", "shapes cannot be multiplied", "invalid for input of size",
                "Expected all tensors", "dimension out of range")


def student_frame(tb, path):
    """(FrameSummary, frame) of the innermost traceback entry inside the student's file, or (None, None)."""
    target = os.path.realpath(path)
    entries = [(fs, frame) for fs, (frame, _) in zip(traceback.extract_tb(tb), traceback.walk_tb(tb))
               if os.path.realpath(fs.filename) == target]
    return entries[-1] if entries else (None, None)


def statement_text(filename, first, last):
    return "\n".join(linecache.getline(filename, n).rstrip() for n in range(first, (last or first) + 1)).strip()


def suggest(name, candidates):
    close = difflib.get_close_matches(name, [c for c in candidates if c != name], n=1, cutoff=0.6)
    return f" 혹시 '{close[0]}'을(를) 쓰려던 것인가요?" if close else ""


def calls_in(path, name):
    """[(first line, last line, keyword names)] of every call to `name(...)` in the file."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return []
    return [(n.lineno, n.end_lineno, {k.arg for k in n.keywords}) for n in ast.walk(tree)
            if isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


def functions_without_return(path, code):
    """[(name, last line)] of the file's functions called in `code` that never `return` a value."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return []
    called = set(re.findall(r"\b(\w+)\s*\(", code))
    return [(f.name, f.end_lineno) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name in called
            and not any(isinstance(r, ast.Return) and r.value is not None for r in ast.walk(f))]


def returned_none(exc):
    return "NoneType" in str(exc) or (isinstance(exc, AttributeError) and getattr(exc, "obj", 0) is None)


# --- rules: each reads the exception, returns a Korean sentence or None ----------------------------

def misspelt_argument(exc, msg, code, frame, path):
    unused = re.search(r"model_kwargs` are not used by the model: \[(.*?)\]", msg)
    if unused:
        names = re.findall(r"'(\w+)'", unused.group(1)) or ["?"]
        return (f"generate가 모르는 인자 {', '.join(names)}을(를) 넘겼습니다. 이름의 철자를 확인하세요."
                + suggest(names[0], KNOWN_ARGS))
    unexpected = re.search(r"unexpected keyword argument '(\w+)'", msg)
    if unexpected:
        return f"'{unexpected.group(1)}'(이)라는 인자는 없습니다. 이름의 철자를 확인하세요." + suggest(unexpected.group(1), KNOWN_ARGS)
    return None


def string_for_number(exc, msg, code, frame, path):
    if not isinstance(exc, (TypeError, ValueError)):
        return None
    quoted = [(n, v) for n, _, v in re.findall(r"\b(\w+)\s*=\s*(['\"])([-+.\d]+)\2", code) if n in NUMERIC_ARGS]
    about_str = "'str'" in msg or "str" in type(exc).__name__
    for name, value in quoted:  # the quoted number this error is about: named in it, or a str comparison
        if about_str or f"`{name}`" in msg or name in msg:
            return f"{name}에 문자열 \"{value}\"을(를) 넘겼습니다. 따옴표를 빼고 숫자 {value}(으)로 쓰세요."
    if about_str and "not supported between instances of 'str'" in msg:
        return ("숫자가 와야 할 자리에 문자열(str)이 왔습니다. 따옴표로 싼 숫자나 환경 변수·input()처럼 글로 읽은 값이면 "
                "int(...)나 float(...)로 바꾸세요.")
    return None


def out_of_range(exc, msg, code, frame, path):
    from .generation import PARAM_BY_NAME, range_text
    m = re.search(r"`(\w+)` (?:\(=([^)]*)\) )?has to be", msg)
    if not isinstance(exc, ValueError) or not m:
        return None
    name = {"penalty": "repetition_penalty"}.get(m.group(1), m.group(1))
    given = re.search(r"but is (\S+)", msg)
    value = m.group(2) or (given.group(1) if given else "?")
    p = PARAM_BY_NAME.get(name)
    allowed = range_text(p) if p else "허용 범위 안의 값"
    extra = " 결정적으로 고르려면 do_sample=False를 쓰세요." if name == "temperature" else ""
    return f"{name}={value.rstrip('.,')}은(는) 허용되지 않는 값입니다. {name}은(는) {allowed}여야 합니다.{extra}"


def missing_collate_fn(exc, msg, code, frame, path):
    if not any(s in msg for s in COLLATE_ERRORS):
        return None
    return ("길이가 다른 리뷰들을 한 배치로 묶지 못했습니다. DataLoader에 collate_fn을 넘기지 않았기 때문입니다: "
            "DataLoader(..., collate_fn=collate_fn)처럼 넘기면 배치마다 <pad>를 채워 길이를 맞춥니다.")


def shape_mismatch(exc, msg, code, frame, path):
    if isinstance(exc, RuntimeError) and ("size mismatch" in msg or "Missing key" in msg):
        return "체크포인트와 모델이 맞지 않습니다. 4단계에서 학습한 모델과 같은 KOGEN_MODEL을 쓰세요."
    if not isinstance(exc, (RuntimeError, IndexError, ValueError)) or not any(s in msg for s in SHAPE_ERRORS):
        return None
    tip = (" 이어 붙일 토큰 id는 (1, 1) 모양이어야 합니다: argmax(dim=-1, keepdim=True)."
           if "cat" in code or "argmax" in code else "")
    return f"텐서의 모양(shape)이 맞지 않습니다. 이 줄에 쓰인 텐서마다 print(x.shape)로 모양을 찍어 보세요.{tip}"


def missing_return(exc, msg, code, frame, path):
    if not returned_none(exc):
        return None
    names = [name for name, _ in functions_without_return(path, code)]
    if names:
        return f"{names[0]}(...)이(가) 아무것도 돌려주지 않습니다(None). 함수 끝에 return을 빠뜨리지 않았는지 보세요."
    return "값이 None입니다. 이 값을 만든 함수가 return을 빠뜨리지 않았는지, 변수에 값을 넣었는지 보세요."


def undefined_name(exc, msg, code, frame, path):
    if isinstance(exc, NameError) and getattr(exc, "name", None):
        pool = list(vars(builtins)) + (list(frame.f_globals) + list(frame.f_locals) if frame else [])
        return (f"'{exc.name}'이(가) 정의되지 않았습니다. 철자가 맞는지, import나 앞 줄의 정의를 빠뜨리지 않았는지 보세요."
                + suggest(exc.name, pool))
    if isinstance(exc, AttributeError) and getattr(exc, "name", None):
        return f"'{exc.name}'(이)라는 속성이나 메서드가 없습니다." + suggest(exc.name, dir(getattr(exc, "obj", None)))
    return None


def other_known(exc, msg, code, frame, path):
    if isinstance(exc, OSError) and "Address already in use" in msg:
        return "포트가 이미 쓰이고 있습니다. 켜 둔 서버를 끄거나 KOGEN_PORT=9002처럼 다른 포트를 쓰세요."
    if isinstance(exc, (TypeError, ValueError)) and "generate(" in code:
        return "generate에 넘긴 값의 종류를 확인하세요: 길이·개수는 정수, top_p·temperature는 실수, do_sample은 True/False입니다."
    return None


RULES = [misspelt_argument, string_for_number, out_of_range, missing_collate_fn, shape_mismatch, missing_return,
         undefined_name, other_known]


def likely_fix(exc, code, frame, path):
    """A Korean sentence on what probably went wrong, from the exception and the failing statement."""
    msg = str(exc)
    for rule in RULES:
        text = rule(exc, msg, code, frame, path)
        if text:
            return text
    step = re.search(r"step(\d)", Path(path).name)
    where = f"kogen hint step{step.group(1)}" if step else "kogen hint"
    return (f"오류 메시지의 마지막 줄이 무엇이 잘못됐는지 말합니다. 이 줄에 쓰인 값들을 print로 찍어 확인해 보세요. "
            f"막히면: {where}")


def culprit(exc, path, fs):
    """(filename, first line, last line) the message should point at: where the fix goes when the error
    shows up elsewhere (a DataLoader made without collate_fn fails inside trainer.fit; a function without
    return fails where its None is used), else the failing frame."""
    if any(s in str(exc) for s in COLLATE_ERRORS):
        missing = [(a, b) for a, b, kw in calls_in(path, "DataLoader") if "collate_fn" not in kw]
        if missing:
            return str(path), *missing[0]
    if fs is None:
        return None
    if returned_none(exc):
        ends = functions_without_return(path, statement_text(fs.filename, fs.lineno, fs.end_lineno))
        if ends:
            return str(path), ends[0][1], ends[0][1]
    return fs.filename, fs.lineno, getattr(fs, "end_lineno", None)


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
    place = culprit(exc, path, fs)
    if place is None:  # raised before any line of the file ran (an import inside kogen, say)
        return f"{display_path(str(path))}을(를) 실행하다 오류가 났습니다.\n   {first}"
    filename, lineno, last = place
    code = statement_text(filename, lineno, last)
    code_lines = code.splitlines()
    shown = "\n".join("   | " + line for line in code_lines[:6]) + ("\n   | ..." if len(code_lines) > 6 else "")
    moved = fs is not None and fs.lineno != lineno  # the cause is elsewhere (see culprit)
    failing = statement_text(fs.filename, fs.lineno, fs.end_lineno) if moved else code
    surfaced = f"\n   (오류가 드러난 곳: {fs.lineno}번째 줄)" if moved else ""
    return (f"{display_path(filename)}:{lineno}에서 오류: {first}\n{shown}{surfaced}\n"
            f"   고칠 곳: {likely_fix(exc, failing, frame, path)}")


# --- a step run as a script ----------------------------------------------------------------------

def short_traceback(exc, path, keep_last=1):
    """The traceback with the student's frames and the last one or two, library frames in between folded."""
    target = os.path.realpath(path)
    frames = traceback.extract_tb(exc.__traceback__)
    lines, folded = ["Traceback (most recent call last):\n"], 0
    for i, fs in enumerate(frames):
        if os.path.realpath(fs.filename) == target or i >= len(frames) - keep_last:
            if folded:
                lines.append(f"  … (라이브러리 안 {folded}단계 생략)\n")
                folded = 0
            lines += traceback.format_list([fs])
        else:
            folded += 1
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


def course_script():
    """The running script's path when it is a course file (it imported kogen's `todo`), else None."""
    from .exercises import todo
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return path if path and getattr(main, "todo", None) is todo else None


def excepthook(kind, exc, tb, previous=sys.__excepthook__):
    """sys.excepthook for course files: a short traceback, then the same explanation `kogen check` gives."""
    path = course_script()
    if path is None or not isinstance(exc, Exception):
        return previous(kind, exc, tb)
    try:
        message = explain(exc, path)
        trace = short_traceback(exc, path)
    except Exception:  # noqa: BLE001 - never hide the student's error behind ours
        return previous(kind, exc, tb)
    step = re.search(r"step(\d)", Path(path).name)
    tail = f"\n   채점: kogen check step{step.group(1)}   힌트: kogen hint step{step.group(1)}" if step else ""
    sys.stderr.write(f"{trace}\n❌ {message}{tail}\n")
