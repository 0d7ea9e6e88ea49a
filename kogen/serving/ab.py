"""A/B tests of the live service: each browser gets a sticky arm (a decoding preset on the served model),
every generated output shown is an impression, and the reader's thumbs up/down or copy is its outcome.

    kogen serve --model bundled --ab A=recommended --ab B=contrastive
    # http://127.0.0.1:9001/           the page, decoding chosen by the browser's arm (the arm is not shown)
    # http://127.0.0.1:9001/ab/results per-arm positive rates with Wilson intervals and a z-test

Arms differ by decoding preset only; one model serves them all (models per arm are not supported),
and A/B outputs come whole, not streamed (the impression id must come back with them).

Routes
    POST /ab/generate   {"prompt", "max_new_tokens"?} -> {"impression_id", "arm", "texts", "completions", ...};
                        the session cookie is set on first use; the impression is committed before answering
    POST /ab/outcome    {"impression_id", "kind": "up"|"down"|"copy"} -> 201; 409 for a second rating
    GET  /ab/results    per arm: impressions, up, down, copy, positive rate (an up or a copy) + Wilson 95%,
                        and each arm against the first: two-proportion z-test p-value (page, or ?format=json)
"""
import hashlib
import re
import secrets

from flask import Blueprint, jsonify, make_response, render_template, request

from ..evaluation.stats import two_proportion_z, wilson
from ..generation import PARAM_BY_NAME, PRESETS, ParamError, check_params, coerce
from . import state

ARM = re.compile(r"^[\w-]{1,32}$")
SESSION = re.compile(r"^[0-9a-f]{32}$")
SESSION_COOKIE = "kogen_ab"
OUTCOMES = ("up", "down", "copy")
MAX_NEW_TOKENS = 50  # the page's default, as on the main page

bp = Blueprint("ab", __name__, url_prefix="/ab")


def parse_arms(specs):
    """["A=recommended", "B=greedy"] -> {"A": "recommended", "B": "greedy"}; {} for none."""
    arms = {}
    for spec in specs or []:
        name, eq, preset = spec.partition("=")
        if not (eq and ARM.match(name)):
            raise ValueError(f"--ab {spec!r}: '이름=프리셋' 형식이어야 합니다(예: --ab A=recommended --ab B=contrastive). "
                             f"팔마다 모델을 다르게 하는 것은 지원하지 않습니다.")
        if preset not in PRESETS:
            raise ValueError(f"--ab {spec!r}: 알 수 없는 프리셋 {preset!r}입니다. 쓸 수 있는 프리셋: {', '.join(PRESETS)}")
        if name in arms:
            raise ValueError(f"--ab: 팔 이름 {name!r}가 두 번 나옵니다. 팔마다 다른 이름을 쓰세요.")
        arms[name] = preset
    if len(arms) == 1:
        raise ValueError("--ab는 두 번 이상 주세요(비교할 팔이 둘 이상이어야 합니다).")
    return arms


def arm_for(session, arms):
    """Sticky and balanced: a hash of the session id picks the arm, so the same browser always gets the
    same one (also after a restart) and nothing but the session id has to be kept."""
    names = sorted(arms)
    return names[int(hashlib.sha256(session.encode()).hexdigest(), 16) % len(names)]


def session_id():
    """(id, new): the browser's A/B session from its cookie, or a fresh one to set."""
    sid = request.cookies.get(SESSION_COOKIE)
    if sid and SESSION.match(sid):
        return sid, False
    return secrets.token_hex(16), True


def with_session(resp, sid, new):
    if new:
        resp.set_cookie(SESSION_COOKIE, sid, max_age=90 * 24 * 3600, samesite="Lax", httponly=True)
    return resp


def page():
    """The home page while an A/B test runs (replaces the service's index, see serving.register)."""
    st = state()
    sid, new = session_id()
    html = render_template("ab.html", model_name=st["model_name"], device=st["device"],
                           config=dict(max_new_tokens=MAX_NEW_TOKENS))
    return with_session(make_response(html), sid, new)


@bp.post("/generate")
def generate():
    from .http import json_body
    st = state()
    body, (sid, new) = json_body(), session_id()
    unknown = sorted(set(body) - {"prompt", "max_new_tokens"})
    if unknown:
        raise ParamError(unknown[0], "A/B 시험 중에는 prompt와 max_new_tokens만 보낼 수 있습니다(디코딩 설정은 서버가 정합니다).")
    if body.get("prompt") is None:
        raise ParamError("prompt", "필수 항목이 빠졌습니다. 이어 쓸 문장을 prompt에 넣으세요.")
    arm = arm_for(sid, st["arms"])
    preset = st["arms"][arm]
    length = coerce(PARAM_BY_NAME["max_new_tokens"], body.get("max_new_tokens", MAX_NEW_TOKENS))
    params = check_params(dict(PRESETS[preset]["params"], max_new_tokens=length))
    ids = st["gen"].encode(body["prompt"], params)
    out = st["generate"](body["prompt"], ids, params)  # a 422 if the safety policy refuses it: no impression
    # the output is about to be shown: that is the impression, on disk before the answer leaves
    impression = st["store"].add_impression(sid, arm, preset, body["prompt"])
    return with_session(jsonify(dict(out, impression_id=impression, arm=arm)), sid, new)


@bp.post("/outcome")
def outcome():
    from .http import json_body
    body, (sid, _) = json_body(), session_id()
    impression = body.get("impression_id")
    if isinstance(impression, bool) or not isinstance(impression, int) or impression < 1:
        raise ParamError("impression_id", "생성 응답에서 받은 impression_id(양의 정수)를 보내세요.")
    kind = body.get("kind")
    if kind not in OUTCOMES:
        raise ParamError("kind", f"{kind!r}은(는) 알 수 없는 반응입니다. up(좋아요), down(싫어요), copy(복사) 중 하나여야 합니다.")
    outcome_id = state()["store"].add_outcome(impression, sid, kind)
    return jsonify(outcome_id=outcome_id, impression_id=impression, kind=kind), 201


def summarize(counts, arms):
    """Per arm: counts, positive rate and its Wilson interval; each arm against the first by a z-test."""
    seen = {(c["arm"], c["preset"]) for c in counts}
    counts = counts + [dict(arm=a, preset=p, impressions=0, up=0, down=0, copy=0, positive=0)
                       for a, p in sorted(arms.items()) if (a, p) not in seen]  # an arm nobody has seen yet
    rows = []
    for c in sorted(counts, key=lambda c: (c["arm"], c["preset"])):
        n, k = c["impressions"], c["positive"] or 0
        rows.append(dict(arm=c["arm"], preset=c["preset"], active=arms.get(c["arm"]) == c["preset"], impressions=n,
                         up=c["up"] or 0, down=c["down"] or 0, copy=c["copy"] or 0, positive=k,
                         rate=round(k / n, 4) if n else None, rate_ci=[round(x, 4) for x in wilson(k, n)]))
    if rows:
        base = rows[0]
        for r in rows[1:]:
            z, p = two_proportion_z(r["positive"], r["impressions"], base["positive"], base["impressions"])
            r["vs"], r["z"], r["p_value"] = base["arm"], round(z, 3), round(p, 4)
    return rows


@bp.get("/results")
def results():
    st = state()
    rows = summarize(st["store"].ab_counts(), st["arms"])
    if request.args.get("format") == "json":
        return jsonify(arms=rows, current=st["arms"])
    table = [[r["arm"], r["preset"] + ("" if r["active"] else " (지난 실험)"), r["impressions"], r["up"], r["down"],
              r["copy"], "-" if r["rate"] is None else f"{r['rate']:.3f}",
              f"[{r['rate_ci'][0]:.3f}, {r['rate_ci'][1]:.3f}]",
              f"{r['vs']} 대비 z={r['z']}, p={r['p_value']}" if "vs" in r else "기준"] for r in rows]
    notes = ["긍정 비율 = 좋아요 또는 복사를 받은 노출 / 전체 노출. 구간은 Wilson 95%, 비교는 첫 팔과의 두 비율 z-검정입니다.",
             "p < 0.05면 그 차이가 우연만으로는 잘 나오지 않는다는 뜻입니다. 결과를 보며 중간에 멈추면 p-값이 실제보다 작게 "
             "나오니, 노출 수를 먼저 정해 두세요."]
    return render_template("results.html", title="A/B 시험 결과", notes=notes, links=[("/", "생성 페이지")],
                           tables=[("팔별 결과", ["팔", "프리셋", "노출", "좋아요", "싫어요", "복사", "긍정 비율",
                                                 "95% 구간(Wilson)", "비교"], table)])
