"""`kogen safety score [FILE]` and the safety flags of `kogen generate`."""
import json
import sys

from .filter import POLICIES, THRESHOLD


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


def cmd_bias(a):
    from .bias import run_bias
    _, report = run_bias(a.model or ["bundled"], a.n, a.seed, a.out, a.data_dir, a.mitigate)
    print(f"보고서: {report} (같은 폴더에 results.json과 bias.png)")


def add_bias_parser(sub):
    b = sub.add_parser("bias", help="집단만 바꾼 프롬프트로 감정·유해성 차이 재기 (보고서 + 그림)")
    b.add_argument("--model", action="append", help="여러 번 쓸 수 있음 (기본: bundled)")
    b.add_argument("-n", type=int, default=20, help="템플릿 × 용어마다 샘플 수 (기본 20)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", default="reports/bias")
    b.add_argument("--data-dir", default=None, help="NSMC 폴더 (감정 판정기 학습용; 기본: KOGEN_NSMC_DIR)")
    b.add_argument("--mitigate", nargs="?", const=4.0, default=None, metavar="λ",
                   help="완화 전후 비교: 모델마다 FUDGE로 '무해' 쪽으로 조종해(강도 λ, 기본 4) 한 번 더 잽니다")
    b.set_defaults(func=cmd_bias)


def add_safety_parser(sub):
    s = sub.add_parser("safety", help="유해성 분류기: kogen safety score [파일] (비우면 표준 입력)")
    ss = s.add_subparsers(dest="safety_command", required=True)
    sc = ss.add_parser("score", help="한 줄에 글 하나: 줄마다 JSON {text, score, label, bias} 한 줄")
    sc.add_argument("file", nargs="?", help="UTF-8 텍스트 파일 (비우면 표준 입력)")
    sc.set_defaults(func=cmd_score)


