"""Safety policies for generation: score prompts and outputs with the toxicity classifier and act.

    off         nothing is scored
    flag        everything is scored and annotated; nothing is refused (the service's default)
    block       a toxic prompt or output is refused with a Korean reason (HTTP 422 / CLI exit 2)
    regenerate  a toxic output is sampled again (another seed) up to `max_tries` times, then refused

"Toxic" means P(hate or offensive) >= threshold (default 0.5). A user word list is applied before any of
this, at the token level, through transformers' `bad_words_ids` (those words are never generated).
"""
import functools

from ..generation import ParamError

POLICIES = {"off": "검사하지 않음", "flag": "점수만 붙임", "block": "유해하면 거절",
            "regenerate": "유해하면 다시 생성, 그래도 유해하면 거절"}
THRESHOLD = 0.5
MAX_TRIES = 3
MAX_CHARS = 1000


class Blocked(Exception):
    """A prompt or output the policy refuses; `.message` is Korean, `.verdict` the classifier's view."""

    def __init__(self, where, verdict, tries=1):
        self.where, self.verdict, self.tries = where, verdict, tries
        what = "프롬프트" if where == "prompt" else "생성된 글"
        again = f" {tries}번 다시 만들어도 마찬가지였습니다." if tries > 1 else ""
        self.message = (f"{what}이(가) 유해할 가능성이 높아 거절했습니다(유해 점수 {verdict['score']:.2f}, 판정 "
                        f"'{verdict['label']}').{again} 표현을 바꿔 다시 시도하세요.")
        super().__init__(self.message)


def check_policy(policy):
    if policy not in POLICIES:
        raise ParamError("safety", f"'{policy}'은(는) 없는 정책입니다. 쓸 수 있는 것: "
                                   + ", ".join(f"{k}({v})" for k, v in POLICIES.items()))
    return policy


@functools.lru_cache(maxsize=1)
def classifier():
    from .classifier import load_classifier
    return load_classifier()


def score_texts(texts):
    """[{score, label, bias}] per text; an empty text scores 0 (nothing to judge)."""
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ParamError("text", f"{i + 1}번째 값이 문자열이 아닙니다.")
        if len(t) > MAX_CHARS:
            raise ParamError("text", f"{i + 1}번째 글이 {len(t)}자로 너무 깁니다. {MAX_CHARS}자 이하로 나눠 주세요.")
    from .classifier import predict
    idx = [i for i, t in enumerate(texts) if t.strip()]
    preds = dict(zip(idx, predict(classifier(), [texts[i] for i in idx]))) if idx else {}
    return [dict(score=round(preds[i][0], 4), label=preds[i][1], bias=preds[i][2]) if i in preds
            else dict(score=0.0, label="none", bias="none") for i in range(len(texts))]


def is_toxic(verdict, threshold=THRESHOLD):
    return verdict["score"] >= threshold


def bad_words_ids(tokenizer, words):
    """Token id sequences for each word, with and without a leading space (BPE spells them differently)."""
    out = []
    for w in words or []:
        w = w.strip()
        if w:
            for form in (w, " " + w):
                ids = tokenizer(form, add_special_tokens=False).input_ids
                if ids and ids not in out:
                    out.append(ids)
    return out


def retry_params(params, attempt):
    """`params` for try number `attempt`: the same on the first, another seed after (sampling changes with it)."""
    return params if not attempt else dict(params, seed=(params["seed"] or 0) + attempt)


def guarded(generate_once, prompt, policy="flag", threshold=THRESHOLD, max_tries=MAX_TRIES, deterministic=False):
    """Run `generate_once(attempt) -> (texts, completions)` under `policy`. `attempt` should change the
    seed; a `deterministic` decoder (greedy, beam, contrastive) would only repeat itself, so it gets one try.

    Returns (texts, completions, safety) where safety = {"policy", "prompt": verdict, "outputs": [verdicts],
    "tries"}; raises Blocked when the policy refuses."""
    check_policy(policy)
    if policy == "off":
        texts, completions = generate_once(0)
        return texts, completions, dict(policy=policy)
    prompt_verdict = score_texts([prompt])[0]
    if policy in ("block", "regenerate") and is_toxic(prompt_verdict, threshold):
        raise Blocked("prompt", prompt_verdict)
    tries = max_tries if policy == "regenerate" and not deterministic else 1
    for attempt in range(tries):
        texts, completions = generate_once(attempt)
        verdicts = score_texts(completions)
        worst = max(verdicts, key=lambda v: v["score"])
        if policy == "flag" or not is_toxic(worst, threshold):
            return texts, completions, dict(policy=policy, prompt=prompt_verdict, outputs=verdicts, tries=attempt + 1)
    raise Blocked("output", worst, tries)


BLOCKING = ("block", "regenerate")


def check_prompt_safety(prompt, policy, threshold=THRESHOLD):
    """The prompt's verdict; raises Blocked for a toxic prompt under block/regenerate (before any generation)."""
    verdict = score_texts([prompt])[0]
    if policy in BLOCKING and is_toxic(verdict, threshold):
        raise Blocked("prompt", verdict)
    return verdict


def guard_stream(items, policy, threshold=THRESHOLD, every=24):
    """A streamed generation under `policy`: text pieces pass through; under block/regenerate the growing
    text is scored every `every` characters (the piece that tips it is not sent) and a toxic text ends the
    stream by raising Blocked (a stream cannot be taken back, so regenerate acts as block here). The last
    item, the summary dict, gets the final verdict under "safety"."""
    text, checked = "", 0
    try:
        for item in items:
            if not isinstance(item, str):
                verdict = score_texts([text])[0]
                if policy in BLOCKING and is_toxic(verdict, threshold):
                    raise Blocked("output", verdict)
                yield dict(item, safety=dict(policy=policy, outputs=[verdict]))
                return
            text += item
            if policy in BLOCKING and len(text) - checked >= every:
                checked = len(text)
                verdict = score_texts([text])[0]
                if is_toxic(verdict, threshold):
                    raise Blocked("output", verdict)
            yield item
    finally:
        if hasattr(items, "close"):
            items.close()  # stops the model: the stream's own cleanup cancels generation
