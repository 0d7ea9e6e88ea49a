"""`kogen safety score [FILE]` and the safety flags of `kogen generate`."""
import json
import sys

from .filter import MAX_TRIES, POLICIES, THRESHOLD


def add_generate_flags(g):
    g.add_argument("--safety", default="off", help=f"안전 정책: {', '.join(f'{k}({v})' for k, v in POLICIES.items())} "
                                                   f"(기본 off)")
    g.add_argument("--safety-threshold", type=float, default=THRESHOLD, help="이 유해 점수 이상이면 유해로 봅니다 (기본 0.5)")
    g.add_argument("--bad-words", help="생성하지 않을 낱말 목록 파일(한 줄에 하나, bad_words_ids로 막음)")


def read_words(path):
    if not path:
        return []
    try:
        with open(path, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    except OSError as e:
        raise ValueError(f"--bad-words 파일을 읽을 수 없습니다: {path} ({e.strerror}).") from None


def cmd_score(a):
    from .filter import score_texts
    if a.file:
        try:
            with open(a.file, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"파일을 읽을 수 없습니다: {a.file} ({getattr(e, 'strerror', None) or e}). "
                             f"UTF-8 텍스트 파일을 주세요.") from None
    else:
        lines = sys.stdin.read().splitlines()
    for text, verdict in zip(lines, score_texts(lines)):
        print(json.dumps(dict(text=text, **verdict), ensure_ascii=False))


def add_safety_parser(sub):
    s = sub.add_parser("safety", help="유해성 분류기: kogen safety score [파일] (비우면 표준 입력)")
    ss = s.add_subparsers(dest="safety_command", required=True)
    sc = ss.add_parser("score", help="한 줄에 글 하나: 줄마다 JSON {text, score, label, bias} 한 줄")
    sc.add_argument("file", nargs="?", help="UTF-8 텍스트 파일 (비우면 표준 입력)")
    sc.set_defaults(func=cmd_score)


__all__ = ["add_generate_flags", "add_safety_parser", "read_words", "MAX_TRIES"]
