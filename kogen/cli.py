"""The `kogen` command: generate, train, serve, check.

    kogen generate "안녕하세요" --do-sample --top-p 0.92 -n 3
    kogen generate "이 영화는" --penalty-alpha 0.6 --top-k 4         # contrastive search
    kogen generate "이 영화는" --do-sample --control 긍정              # FUDGE sentiment control
    kogen train --quick --data-dir ../shared/data/nsmc --output-dir checkpoints/quick
    kogen train --quick --accelerator cpu --devices 2 --strategy ddp    # 2 processes, global batch 2 x 32
    kogen serve --model checkpoints/quick/hf_model
    kogen serve --backend http://127.0.0.1:8000/v1                      # in front of vLLM (or another kogen serve)
    kogen eval --model bundled --preset greedy --preset contrastive --prompts nsmc-test:100 --out reports/eval1
    kogen check step1            # kogen check --watch: again on every save
    kogen hint step1             # concept → API → code for the first unfinished or failing TODO
    kogen reset step1            # the exercise again, the old file kept in .kogen/backup/
"""
import argparse
import json
import os
import sys

from .generation import PARAM_BY_NAME, PARAMS

MAX_SAMPLES = 1000  # kogen generate -n: batched in chunks of the web's cap (num_return_sequences' range)
from .safety.cli import add_bias_parser, add_generate_flags, add_safety_parser
from .serving.study import add_study_parser


def add_generation_args(p):
    """One flag per row of generation.PARAMS: --top-k, --no-repeat-ngram-size, ..."""
    for prm in PARAMS:
        flag = "--" + prm.name.replace("_", "-")
        if prm.kind is bool:
            p.add_argument(flag, action="store_true", default=None, help=prm.help)
        elif prm.kind is str:  # checked by check_params, whose message is Korean (argparse's is not)
            p.add_argument(flag, default=None, help=f"{prm.help} ({' 또는 '.join(prm.choices)})")
        else:
            many = prm.name == "num_return_sequences"  # the CLI batches -n in chunks; the web keeps its cap
            extra = ["-n"] if many else []
            note = f", 1~{MAX_SAMPLES}개를 {prm.high}개씩 나눠 생성" if many else ""
            p.add_argument(*extra, flag, type=prm.kind, default=None, help=f"{prm.help} (기본 {prm.default}{note})")


def cmd_generate(a):
    from .generation import check_params, check_prompt, generate_completions
    from .models import load_model
    from .safety.cli import read_words
    from .safety.filter import bad_words_ids, check_policy, guarded, retry_params
    from .generation import ParamError
    params = {prm.name: getattr(a, prm.name) for prm in PARAMS}
    n, chunk = params["num_return_sequences"] or 1, PARAM_BY_NAME["num_return_sequences"].high  # the web's cap
    if not 1 <= n <= MAX_SAMPLES:
        raise ParamError("num_return_sequences", f"-n은 1~{MAX_SAMPLES} 사이여야 합니다(받은 값: {n}).")
    params["num_return_sequences"] = min(n, chunk)
    checked = check_params(params)
    check_prompt(a.prompt), check_policy(a.safety)  # fail before the slow model load
    words = read_words(a.bad_words)
    model, tok, _ = load_model(a.model, a.device)
    bad = bad_words_ids(tok, words)

    def once(attempt):
        """n samples in batches of at most `chunk`; with a seed, batch i gets seed + 1000·i (retries add 1..3)."""
        texts, completions = [], []
        for i, start in enumerate(range(0, n, chunk)):
            p = dict(retry_params(params, attempt), num_return_sequences=min(chunk, n - start))
            if i and p["seed"] is not None:
                p["seed"] += 1000 * i
            t, c = generate_completions(model, tok, a.prompt, p, bad_words_ids=bad)
            texts, completions = texts + t, completions + c
        return texts, completions
    texts, _, safety = guarded(once, a.prompt, a.safety, a.safety_threshold, deterministic=not checked["do_sample"])
    for i, text in enumerate(texts):
        verdict = safety.get("outputs", [None] * len(texts))[i]
        if a.json:
            line = {"prompt": a.prompt, "text": text, **({"safety": verdict} if verdict else {})}
            print(json.dumps(line, ensure_ascii=False))
        else:
            print(text.replace("\n", " "))
            if verdict:
                print(f"[안전 {safety['policy']}] 유해 점수 {verdict['score']:.2f}, 판정 {verdict['label']}, "
                      f"편향 {verdict['bias']}", file=sys.stderr)


QUICK = dict(epochs=1, batch_size=32, learning_rate=5e-4, max_seq_length=32, max_train_examples=40_000,
             max_val_examples=2_000, val_check_interval=0.5, pretrained_model_name="bundled")


def cmd_train(a):
    from .training import GenerationTrainArguments, fine_tune
    kw = dict(QUICK) if a.quick else {}
    for name in ("epochs", "batch_size", "learning_rate", "max_seq_length", "seed", "max_steps", "log_every_n_steps",
                 "devices", "num_nodes", "strategy", "accelerator"):
        if getattr(a, name) is not None:
            kw[name] = getattr(a, name)
    if a.model:
        kw["pretrained_model_name"] = a.model
    if a.max_train_examples:
        kw["max_train_examples"] = a.max_train_examples
    args = GenerationTrainArguments(downstream_corpus_name=a.corpus, downstream_corpus_root_dir=a.data_dir,
                                    downstream_model_dir=a.output_dir,
                                    fp16=a.fp16, **kw)
    best, export_dir = fine_tune(args)
    if export_dir is None:  # another process of a DDP run; rank 0 reports
        return
    curve = os.path.join(args.downstream_model_dir, "training_curve.png")
    print(f"가장 좋은 체크포인트: {best}\nHugging Face 형식으로 내보낸 모델: {export_dir}\n"
          + (f"학습 곡선: {curve}\n" if os.path.exists(curve) else "") +
          f"써 보기: kogen generate \"긍정 아 정말\" --model {export_dir} --do-sample --top-p 0.92")


def add_security_flags(s):
    """kogen serve's guards for a class (kogen/serving/security.py)."""
    from .serving.security import RATE_BURST, RATE_LIMIT
    s.add_argument("--api-key", action="append", metavar="키", help="요청마다 Authorization: Bearer 키를 요구 (여러 번 "
                                                                   "쓸 수 있음; KOGEN_API_KEY=키1,키2도 됨)")
    s.add_argument("--allow-origin", action="append", default=[], metavar="URL",
                   help="이 사이트의 페이지가 API를 부르도록 허용 (예: https://class.example)")
    s.add_argument("--allow-host", action="append", default=[], metavar="이름",
                   help="localhost·IP 말고 이 Host 이름으로 부르는 요청도 받음 (예: myserver.local)")
    s.add_argument("--rate-limit", type=float, default=RATE_LIMIT, metavar="N",
                   help=f"생성 요청: 한 사람(키, 없으면 주소)당 1분에 N번 (기본 {RATE_LIMIT:g}, 0이면 끔)")
    s.add_argument("--rate-burst", type=int, default=RATE_BURST, metavar="N", help=f"한꺼번에 N번까지 (기본 {RATE_BURST})")
    s.add_argument("--log-prompts", action="store_true", help="접근 기록에 프롬프트 글도 남김 (기본: 남기지 않음)")


def cmd_serve(a):
    from .web import serve
    key = a.backend_api_key or os.environ.get("KOGEN_BACKEND_API_KEY")  # the variable keeps the key out of `ps`
    backend = dict(url=a.backend, model=a.backend_model, api_key=key, timeout=a.backend_timeout,
                   connect_timeout=a.backend_connect_timeout) if a.backend else None
    serve(model=a.model, checkpoint_dir=a.checkpoint_dir, host=a.host, port=a.port, device=a.device, db=a.db, ab=a.ab,
          safety=a.safety, safety_threshold=a.safety_threshold, api_keys=a.api_key, allowed_origins=a.allow_origin,
          allowed_hosts=a.allow_host, rate_limit=a.rate_limit, rate_burst=a.rate_burst, log_prompts=a.log_prompts,
          backend=backend, max_in_flight=a.max_in_flight, engine=a.engine, compute_type=a.compute_type)


def cmd_eval(a):
    from .evaluation.report import run_eval
    report = run_eval(a.model or ["bundled"], a.preset or ["greedy", "recommended"], a.prompts, a.max_new_tokens,
                      a.seed, a.out, a.reference_model, a.data_dir, not a.no_sentiment,
                      command="kogen " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["eval"] else "kogen eval")
    print(f"보고서: {report} (같은 폴더에 results.json과 그림 PNG)")


def cmd_check(a):
    from .check import main as check_main
    from .tutor import watch
    return watch(a.steps, a.solutions) if a.watch else check_main(a.steps, a.solutions)


def cmd_hint(a):
    from .tutor import hint
    return hint(a.step)


def cmd_reset(a):
    from .tutor import reset
    return reset(a.step)


def build_parser():
    p = argparse.ArgumentParser(prog="kogen", description="한국어 GPT-2 생성 실습 도구 (KoGPT2 / 내장 소형 모델)")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="프롬프트를 이어 쓰기")
    g.add_argument("prompt")
    g.add_argument("--model", help="허브 id, 폴더, 또는 'bundled' (기본: KOGEN_MODEL 또는 skt/kogpt2-base-v2)")
    g.add_argument("--device", help="cuda, cpu, mps (기본: 자동)")
    g.add_argument("--json", action="store_true", help="한 줄에 JSON 하나로 출력")
    add_generation_args(g)
    add_generate_flags(g)
    g.set_defaults(func=cmd_generate)

    t = sub.add_parser("train", help="NSMC로 미세조정(체크포인트 + Hugging Face 폴더 저장)")
    t.add_argument("--model", help="시작 모델 (기본: KOGEN_MODEL 또는 skt/kogpt2-base-v2; --quick이면 bundled)")
    t.add_argument("--data-dir", default=None, help="ratings_train.txt / ratings_test.txt 폴더 (기본: KOGEN_NSMC_DIR 또는 자동 다운로드)")
    t.add_argument("--corpus", choices=["nsmc", "lines"], default="nsmc",
                   help="nsmc: 긍정/부정 + 리뷰; lines: --data-dir의 train.txt / test.txt, 한 줄에 예제 하나")
    t.add_argument("--output-dir", default="checkpoints/nsmc-generation")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--learning-rate", type=float)
    t.add_argument("--max-seq-length", type=int)
    t.add_argument("--max-steps", type=int)
    t.add_argument("--max-train-examples", type=int)
    t.add_argument("--seed", type=int)
    t.add_argument("--log-every-n-steps", type=int, help="metrics.csv에 train_loss를 몇 스텝마다 쓸지 (기본 10)")
    t.add_argument("--accelerator", help="auto(기본: GPU가 있으면 GPU), cpu, gpu")
    t.add_argument("--devices", type=int, help="한 컴퓨터에서 쓸 GPU 수(또는 --accelerator cpu일 때 CPU 프로세스 수, 기본 1). "
                                               "--batch-size는 장치 하나의 배치입니다")
    t.add_argument("--num-nodes", type=int, help="컴퓨터 수 (torchrun, SLURM; 기본 1)")
    t.add_argument("--strategy", help="auto(기본), ddp, fsdp(GPU만)")
    t.add_argument("--fp16", action=argparse.BooleanOptionalAction, default=None,
                   help="혼합 정밀도 (기본: GPU나 bf16 연산을 지원하는 CPU면 켬)")
    t.add_argument("--quick", action="store_true", help="2코어 CPU에서 약 7분: 내장 모델, 1 epoch, 리뷰 4만 개")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("serve", help="웹 서비스 (http://127.0.0.1:9001)")
    s.add_argument("--model", help="허브 id 또는 폴더 (기본: KOGEN_MODEL)")
    s.add_argument("--checkpoint-dir", help="4단계 체크포인트 폴더 (GenerationDeployArguments)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=int(os.environ.get("KOGEN_PORT", 9001)))
    s.add_argument("--device", help="cuda, cpu, mps (기본: 자동)")
    s.add_argument("--db", help="평가·A/B 기록 SQLite 파일 (기본: KOGEN_DB 또는 ~/.local/share/kogen/kogen.db)")
    s.add_argument("--safety", default="flag", help="안전 정책: off, flag(점수만, 기본), block(거절), regenerate(다시 생성)")
    s.add_argument("--safety-threshold", type=float, default=None, help="이 유해 점수 이상이면 유해로 봅니다 (기본 0.5)")
    s.add_argument("--ab", action="append", metavar="팔=프리셋", help="A/B 시험: --ab A=recommended --ab B=contrastive")
    add_security_flags(s)
    s.add_argument("--backend", metavar="URL", help="생성을 OpenAI 호환 서버(vLLM, 다른 kogen serve)에 맡김: 그 base_url "
                   "(예: http://127.0.0.1:8000/v1). 모델을 읽지 않으며, --model을 주면 그 토크나이저로 길이를 미리 검사합니다")
    s.add_argument("--backend-model", help="백엔드의 모델 이름 (기본: 백엔드 /models의 첫 모델)")
    s.add_argument("--backend-api-key", help="백엔드의 API 키 (기본: KOGEN_BACKEND_API_KEY)")
    s.add_argument("--backend-timeout", type=float, default=60.0, help="백엔드의 답을 기다릴 초, 넘으면 504 (기본 60)")
    s.add_argument("--backend-connect-timeout", type=float, default=5.0, help="백엔드에 연결할 때 기다릴 초 (기본 5)")
    s.add_argument("--max-in-flight", type=int, metavar="N", help="동시에 처리할 생성 요청 수 (기본 64); 넘으면 503과 "
                                                                   "Retry-After로 잠시 뒤 다시 보내라고 답합니다")
    s.add_argument("--engine", choices=["hf", "ct2"], default="hf",
                   help="hf: Hugging Face + 동적 배칭(기본, 모든 기능); ct2: CTranslate2(더 빠름, 대조 탐색·FUDGE·시드 없음)")
    s.add_argument("--compute-type", default="int8", help="ct2 엔진의 정밀도: int8(CPU 기본), float32, int16, float16, "
                                                          "int8_float16 ...")
    s.set_defaults(func=cmd_serve)

    e = sub.add_parser("eval", help="모델 × 디코딩 설정을 같은 프롬프트로 비교해 보고서(report.md, results.json, PNG) 쓰기")
    e.add_argument("--model", action="append", help="여러 번 쓸 수 있음: 허브 id, 폴더, 또는 'bundled' (기본: bundled)")
    e.add_argument("--preset", action="append", help="여러 번 쓸 수 있음: greedy, beam, top_k, top_p, contrastive, "
                                                     "recommended (기본: greedy, recommended)")
    e.add_argument("--prompts", default="nsmc-test:100", help="nsmc-test:N(NSMC test 리뷰의 앞 5토큰, 나머지가 참조) "
                                                            "또는 한 줄에 프롬프트 하나인 파일")
    e.add_argument("--max-new-tokens", type=int, default=48)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", default="reports/eval", help="보고서 폴더")
    e.add_argument("--reference-model", default="bundled", help="모든 시스템의 글을 같은 잣대로 잴 참조 모델")
    e.add_argument("--data-dir", default=None, help="NSMC 폴더 (기본: KOGEN_NSMC_DIR 또는 자동 다운로드)")
    e.add_argument("--no-sentiment", action="store_true", help="감정 조건 정확도(판정기 학습 약 20초)를 건너뜀")
    e.set_defaults(func=cmd_eval)

    c = sub.add_parser("check", help="실습 파일 자동 채점 (예: kogen check step1)")
    c.add_argument("steps", nargs="*", help="step1 ... step5 (비우면 전부 차례로)")
    c.add_argument("--solutions", action="store_true", help="실습 파일 대신 solutions/ 를 채점")
    c.add_argument("--watch", action="store_true", help="파일을 저장할 때마다 다시 채점 (끝내기: Ctrl+C)")
    c.set_defaults(func=cmd_check)
    h = sub.add_parser("hint", help="첫 빈칸(또는 채점에서 실패한 곳)의 다음 힌트: 개념 → API → 코드")
    h.add_argument("step", help="step1 ... step5 (Step1, 1도 됩니다)")
    h.set_defaults(func=cmd_hint)
    r = sub.add_parser("reset", help="실습 파일 하나를 처음 상태로 (원래 파일은 .kogen/backup/에 보관)")
    r.add_argument("step", help="step1 ... step5")
    r.set_defaults(func=cmd_reset)
    add_study_parser(sub)  # kogen study create|list|export (kogen/serving/study.py)
    add_safety_parser(sub)  # kogen safety score (kogen/safety/cli.py)
    add_bias_parser(sub)  # kogen bias (kogen/safety/bias.py)
    return p


def main(argv=None):
    from .data import DataError
    from .deploy import CheckpointError
    from .generation import ParamError
    from .models import ModelNotFoundError
    from .safety.classifier import ClassifierFileError
    from .safety.filter import Blocked
    a = build_parser().parse_args(argv)
    try:
        return a.func(a) or 0
    except (ModelNotFoundError, DataError, CheckpointError, ParamError, ValueError, Blocked, ClassifierFileError) as e:
        print(f"kogen {a.command}: 오류: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\n중단했습니다. kogen train은 같은 명령으로 다시 실행하면 마지막 체크포인트에서 이어집니다.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
