"""Human evaluation studies: generate every system's output once, then let people compare them blind.

    kogen study create 디코딩비교 --system A=bundled:greedy --system B=bundled:recommended --max-new-tokens 48
    kogen serve --model bundled        # then open http://127.0.0.1:9001/eval/디코딩비교
    kogen study export 디코딩비교 --csv votes.csv

Routes (the Blueprint `bp`; bad input is a 4xx JSON {"error": {...}} with a Korean message, never a 500)
    GET  /eval                      the studies (page, or ?format=json)
    GET  /eval/NAME                 the rating page; gives the browser a random rater id in a cookie
    GET  /eval/NAME/next?rater=ID   {"item": {"token", "prompt", "outputs": {"A", "B"}} or null, "done", "total"}:
                                    an item this rater has not voted on, sides in random order; the token
                                    records which side is which (HMAC-signed, no system names)
    POST /eval/NAME/vote            {"token", "choice": "A"|"B"|"tie"|"both_bad", "criteria"?: {"fluency"|
                                    "coherence"|"adherence": choice}, "rater"?} -> 201 {"vote_id", "reveal"}
                                    once committed; 409 if this rater already voted on the item
    GET  /eval/NAME/results         win rates (Wilson 95%), Bradley-Terry (3+ systems), votes to separate the
                                    leaders (page, or ?format=json); /eval/NAME/results.csv: every vote
"""
import hashlib
import hmac
import re
import secrets
import sys
from urllib.parse import quote

from flask import Blueprint, Response, jsonify, render_template, request

from ..generation import PRESETS, ParamError, check_params, check_prompt, generate_completions
from . import state
from .results import CRITERIA, leader_sentence, summarize, tables, votes_csv
from .store import NotFound, Store

NAME = re.compile(r"^[\w-]{1,64}$")  # \w includes Hangul: names go into URLs as they are
RATER = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TOKEN = re.compile(r"^(\d{1,12})\.([0-9a-f]{12})\.([0-9a-f]{32})$")
CHOICES = ("A", "B", "tie", "both_bad")  # the sides as the rater saw them
RATER_COOKIE = "kogen_rater"
MAX_SYSTEMS = 8

bp = Blueprint("eval", __name__, url_prefix="/eval")


class StudyError(ValueError):
    """Bad `kogen study` input; the message is one Korean line."""


# --- creating a study ------------------------------------------------------------------------------

def parse_system(spec):
    """"A=MODEL:PRESET" -> ("A", MODEL, PRESET); MODEL is bundled, a folder or a hub id."""
    label, eq, rest = spec.partition("=")
    model, colon, preset = rest.rpartition(":")
    if not (eq and colon and model and NAME.match(label)):
        raise StudyError(f"--system {spec!r}: '이름=모델:프리셋' 형식이어야 합니다 "
                         f"(예: --system A=bundled:greedy --system B=skt/kogpt2-base-v2:recommended).")
    if preset not in PRESETS:
        raise StudyError(f"--system {spec!r}: 알 수 없는 프리셋 {preset!r}입니다. 쓸 수 있는 프리셋: {', '.join(PRESETS)}")
    return label, model, preset


def read_prompts(path=None):
    """One prompt per line (blank lines skipped); without a file, the neutral openings of the lessons."""
    if path is None:
        from ..evaluation.compare import NEUTRAL_OPENINGS
        return list(NEUTRAL_OPENINGS)
    try:
        with open(path, encoding="utf-8") as f:
            prompts = [line.strip() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise StudyError(f"프롬프트 파일 {path}를 읽을 수 없습니다({getattr(e, 'strerror', None) or e}). "
                         f"한 줄에 프롬프트 하나인 UTF-8 텍스트 파일을 --prompts로 지정하세요.") from None
    if not prompts:
        raise StudyError(f"프롬프트 파일 {path}가 비어 있습니다. 한 줄에 프롬프트 하나씩 쓰세요.")
    for i, prompt in enumerate(prompts, 1):
        try:
            check_prompt(prompt)
        except ParamError as e:
            raise StudyError(f"{path} {i}번째 줄: {e.message}") from None
    return prompts


def continuation(model, tokenizer, prompt, params):
    """The text the model adds after `prompt`."""
    return generate_completions(model, tokenizer, prompt, params)[1][0]


def load_exact(name, device=None):
    """The model asked for, or an error: a study must never compare the bundled model under another name."""
    from ..models import load_causal_lm, load_tokenizer, resolve_model
    path = resolve_model(name, fallback=False)
    return load_causal_lm(path, device), load_tokenizer(path)


def say(msg):
    print(msg, file=sys.stderr, flush=True)


def create_study(store, name, specs, prompts, max_new_tokens=48, seed=0, device=None, log=say):
    """Check everything, generate each system's output for each prompt once (seeded), store it all in
    one transaction. Every pair of systems is compared on every prompt. Returns the study id."""
    if not NAME.match(name):
        raise StudyError(f"연구 이름 {name!r}는 쓸 수 없습니다. 글자, 숫자, _, - 로 64자 이내(공백·/ 없이)로 지으세요.")
    systems = [parse_system(s) for s in specs]
    labels = [s[0] for s in systems]
    if not 2 <= len(systems) <= MAX_SYSTEMS or len(set(labels)) != len(labels):
        raise StudyError(f"서로 다른 이름의 --system을 2~{MAX_SYSTEMS}개 주세요(지금 {', '.join(labels) or '없음'}).")
    params = [check_params(dict(PRESETS[preset]["params"], max_new_tokens=max_new_tokens)) for _, _, preset in systems]
    try:
        store.study(name)
        raise StudyError(f"'{name}' 평가 연구가 이미 있습니다. 다른 이름을 쓰거나 --db로 다른 데이터베이스를 쓰세요.")
    except NotFound:
        pass
    models = {}
    for _, model_name, _ in systems:  # each model loaded once, before any generation
        if model_name not in models:
            models[model_name] = load_exact(model_name, device)
    outputs = [[None] * len(systems) for _ in prompts]
    for s, ((label, model_name, preset), p) in enumerate(zip(systems, params)):
        log(f"[kogen] 시스템 {label} ({model_name}, {preset}): 프롬프트 {len(prompts)}개 생성 중")
        for i, prompt in enumerate(prompts):
            outputs[i][s] = continuation(*models[model_name], prompt, dict(p, seed=seed + i))
    settings = dict(max_new_tokens=max_new_tokens, seed=seed, params={label: p for (label, _, _), p in zip(systems, params)})
    pairs = [(s, t) for s in range(len(systems)) for t in range(s + 1, len(systems))]
    return store.create_study(name, settings, systems, prompts, outputs, pairs)


# --- the blind token: which side shows which system, signed so a rater cannot forge it ------------------

def mac(secret, study_id, item_id, rater, nonce, swapped):
    msg = f"{study_id}:{item_id}:{rater}:{nonce}:{int(swapped)}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()[:32]


def make_token(secret, study_id, item_id, rater, swapped):
    """"item.nonce.mac": the side order is in the MAC only, so the token itself does not tell it."""
    nonce = secrets.token_hex(6)
    return f"{item_id}.{nonce}.{mac(secret, study_id, item_id, rater, nonce, swapped)}"


def read_token(secret, study_id, rater, token):
    """(item id, swapped) from a token this server gave this rater for this study; else a 400."""
    m = TOKEN.match(token) if isinstance(token, str) else None
    if m:
        item_id, nonce, tag = int(m[1]), m[2], m[3]
        for swapped in (False, True):
            if hmac.compare_digest(tag, mac(secret, study_id, item_id, rater, nonce, swapped)):
                return item_id, swapped
    raise ParamError("token", "평가 토큰이 올바르지 않습니다. GET /eval/이름/next로 받은 token을 같은 평가자(rater)로 "
                              "그대로 보내세요.")


def canonical(choice, swapped):
    """A side the rater picked -> the stored choice relative to the item's (system_a, system_b)."""
    if choice in ("A", "B"):
        return "ab"[(choice == "B") != swapped]
    return choice


# --- routes ---------------------------------------------------------------------------------------------

def check_choice(value, field):
    if value not in CHOICES:
        raise ParamError(field, f"{value!r}은(는) 고를 수 없는 값입니다. A, B, tie(비김), both_bad(둘 다 나쁨) 중 하나여야 합니다.")
    return value


def rater_id(body=None):
    rater = (body or {}).get("rater") or request.args.get("rater") or request.cookies.get(RATER_COOKIE)
    if rater is None:
        raise ParamError("rater", "평가자 id가 없습니다. ?rater=... 또는 본문의 rater로 보내세요(페이지는 쿠키로 보냅니다).")
    if not isinstance(rater, str) or not RATER.match(rater):
        raise ParamError("rater", "평가자 id는 영문·숫자·_·- 로 된 64자 이내 문자열이어야 합니다.")
    return rater


def wants_json():
    return request.args.get("format") == "json"


@bp.get("")
def studies():
    rows = state()["store"].studies()
    if wants_json():
        return jsonify(studies=rows)
    body = [[r["name"], r["systems"], r["prompts"], r["items"], r["votes"]] for r in rows]
    return render_template("results.html", title="사람 평가 연구", notes=["만들기: kogen study create 이름 --system "
                           "A=bundled:greedy --system B=bundled:recommended"],
                           tables=[("연구 목록", ["이름", "시스템", "프롬프트", "항목", "투표"], body)],
                           links=[(f"/eval/{r['name']}", f"{r['name']} 평가하기") for r in rows])


@bp.get("/<name>")
def page(name):
    store = state()["store"]
    store.study(name)  # 404 for an unknown study
    rater = request.cookies.get(RATER_COOKIE)
    new = not (rater and RATER.match(rater))
    rater = secrets.token_hex(8) if new else rater
    config = dict(study=name, rater=rater, criteria=CRITERIA)
    resp = Response(render_template("eval.html", study=name, config=config))
    if new:  # a year: the same browser stays the same rater, so it cannot vote twice on an item
        resp.set_cookie(RATER_COOKIE, rater, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
    return resp


@bp.get("/<name>/next")
def next_item(name):
    store = state()["store"]
    study, rater = store.study(name), rater_id()
    item, done, total = store.next_item(study["id"], rater)
    if item is None:
        return jsonify(item=None, done=done, total=total, message="모든 항목을 평가했습니다. 고맙습니다!")
    swapped = secrets.randbelow(2) == 1
    left, right = (item["output_b"], item["output_a"]) if swapped else (item["output_a"], item["output_b"])
    token = make_token(store.open().secret, study["id"], item["id"], rater, swapped)
    return jsonify(item=dict(token=token, prompt=item["prompt"], outputs=dict(A=left, B=right)), done=done, total=total)


@bp.post("/<name>/vote")
def vote(name):
    from .http import json_body
    store = state()["store"]
    study, body = store.study(name), json_body()
    unknown = sorted(set(body) - {"token", "choice", "criteria", "rater"})
    if unknown:
        raise ParamError(unknown[0], "알 수 없는 항목입니다. token, choice, criteria, rater만 보내세요.")
    rater = rater_id(body)
    item_id, swapped = read_token(store.open().secret, study["id"], rater, body.get("token"))
    choice = check_choice(body.get("choice"), "choice")
    criteria = body.get("criteria") or {}
    if not isinstance(criteria, dict):
        raise ParamError("criteria", f"기준별 선택은 객체여야 합니다. 예: {{\"fluency\": \"A\"}} (기준: {', '.join(CRITERIA)})")
    for key, value in criteria.items():
        if key not in CRITERIA:
            raise ParamError(f"criteria.{key}", f"알 수 없는 기준입니다. 쓸 수 있는 기준: {', '.join(CRITERIA)}")
        check_choice(value, f"criteria.{key}")
    stored = {k: canonical(v, swapped) for k, v in criteria.items()}
    vote_id, sys_a, sys_b = store.add_vote(study["id"], item_id, rater, canonical(choice, swapped), stored)
    reveal = dict(A=sys_b, B=sys_a) if swapped else dict(A=sys_a, B=sys_b)
    return jsonify(vote_id=vote_id, choice=choice, reveal=reveal), 201


@bp.get("/<name>/results")
def results(name):
    store = state()["store"]
    study = store.study(name)
    res = summarize(study, store.systems(study["id"]), store.votes(study["id"]))
    if wants_json():
        return jsonify(res)
    notes = [f"투표 {res['votes']}개 · 평가자 {res['raters']}명 · 생성 길이 {study['settings']['max_new_tokens']}토큰, "
             f"시드 {study['settings']['seed']}", leader_sentence(res),
             "승률 = 이김 / (이김 + 짐): 비김과 '둘 다 나쁨'은 세기만 하고 승률에서는 뺍니다."]
    return render_template("results.html", title=f"평가 결과: {name}", notes=notes, tables=tables(res),
                           links=[(f"/eval/{name}", "평가 계속하기"), (f"/eval/{name}/results.csv", "투표 CSV 내려받기"),
                                  (f"/eval/{name}/results?format=json", "JSON")])


@bp.get("/<name>/results.csv")
def results_csv(name):
    store = state()["store"]
    study = store.study(name)
    resp = Response(votes_csv(name, store.votes(study["id"])), mimetype="text/csv")
    resp.headers["Content-Disposition"] = f"attachment; filename=votes.csv; filename*=UTF-8''{quote(name)}-votes.csv"
    return resp


# --- the `kogen study` command ------------------------------------------------------------------------

def add_study_parser(sub):
    """`kogen study create|list|export`, added to kogen.cli's subcommands."""
    p = sub.add_parser("study", help="사람 평가 연구: 만들기, 목록, 내보내기 (평가 페이지: /eval/이름)")
    ss = p.add_subparsers(dest="study_command", required=True)
    db_help = "SQLite 파일 (기본: KOGEN_DB 또는 ~/.local/share/kogen/kogen.db)"
    c = ss.add_parser("create", help="시스템마다 출력을 한 번 생성해 저장")
    c.add_argument("name", help="연구 이름 (주소 /eval/이름에 쓰임)")
    c.add_argument("--system", action="append", default=[], metavar="이름=모델:프리셋",
                   help=f"비교할 시스템 (2개 이상). 모델: bundled, 폴더, 허브 id; 프리셋: {', '.join(PRESETS)}")
    c.add_argument("--prompts", help="한 줄에 프롬프트 하나인 파일 (기본: 감정 중립 문장 20개)")
    c.add_argument("--max-new-tokens", type=int, default=48)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--device", help="cuda, cpu, mps (기본: 자동)")
    c.add_argument("--db", help=db_help)
    c.set_defaults(func=cmd_create)
    ls = ss.add_parser("list", help="연구 목록과 투표 수")
    ls.add_argument("--db", help=db_help)
    ls.set_defaults(func=cmd_list)
    e = ss.add_parser("export", help="모든 투표를 CSV로")
    e.add_argument("name")
    e.add_argument("--csv", required=True, help="쓸 CSV 파일")
    e.add_argument("--db", help=db_help)
    e.set_defaults(func=cmd_export)


def cmd_create(a):
    store = Store(a.db)
    prompts = read_prompts(a.prompts)
    create_study(store, a.name, a.system, prompts, a.max_new_tokens, a.seed, a.device)
    print(f"'{a.name}' 연구를 만들었습니다: 시스템 {len(a.system)}개, 프롬프트 {len(prompts)}개 ({store.path}).\n"
          f"평가: kogen serve --db {store.path} 를 켜고 http://127.0.0.1:9001/eval/{a.name} 을 여세요.")


def cmd_list(a):
    store = Store(a.db)
    rows = store.studies()
    if not rows:
        print(f"연구가 없습니다({store.path}). kogen study create로 만드세요.")
    for r in rows:
        print(f"{r['name']}\t시스템 {r['systems']}\t프롬프트 {r['prompts']}\t항목 {r['items']}\t투표 {r['votes']}")


def cmd_export(a):
    store = Store(a.db)
    study = store.study(a.name)
    votes = store.votes(study["id"])
    try:
        with open(a.csv, "w", encoding="utf-8", newline="") as f:
            f.write(votes_csv(a.name, votes))
    except OSError as e:
        raise StudyError(f"{a.csv}에 쓸 수 없습니다({e.strerror}). 다른 경로를 --csv로 주세요.") from None
    print(f"투표 {len(votes)}개를 {a.csv}에 썼습니다.")
