"""The remote engine: kogen in front of any OpenAI-compatible completions server (vLLM, or another `kogen serve`).

    kogen serve --backend http://127.0.0.1:8000/v1 [--backend-model NAME] [--backend-api-key KEY] [--model DIR]

`Remote` has hf.Generator's interface (`engine`, `max_context`, `encode`, `__call__`, `stream`), so the page, /api,
/api/generate (+ SSE) and /v1/completions keep kogen's validation, safety policy and answers; only the tokens are
made on the backend. How the gaps between kogen and an OpenAI server are closed:

- Parameters. The routes have run check_params already. PARAMS go out as OpenAI fields (max_tokens, temperature 0
  for greedy, top_p, n, seed) plus vLLM's sampling extras (top_k, repetition_penalty, min_tokens). What an
  OpenAI-compatible server cannot do (num_beams > 1, penalty_alpha, control, no_repeat_ngram_size, top_tokens /
  logprobs) is a Korean 400 naming the parameter before any request: vLLM drops fields it does not know with
  only a log line, and a student would get other text than asked for without knowing.
- Tokens. With a tokenizer (`--model` names the backend's model: only its tokenizer and config.json are read, no
  weights) the prompt and prompt + max_new_tokens are checked here, with the hf engine's messages. Without one
  the backend judges: its 400 ("maximum context length ...") becomes kogen's JSON 400, the field named as the
  route names it. ratsnlp's /api counts its lengths with the prompt; without a tokenizer it learns the prompt's
  token count from the backend's `usage` (a one-token completion: one more request).
- Faults. No connection → 502, no answer within `timeout` s (`--backend-timeout`; connecting:
  `--backend-connect-timeout`) → 504, the backend's 5xx or a refused key → 502, its 400/422 → 400: always the
  app's one JSON error shape, in Korean (werkzeug's BadGateway/GatewayTimeout carry the message to its handler).
  A stream's request is sent before the first event, so these keep their status there too; a failure after the
  first piece ends the stream with the route's error event. Closing a stream (the client hung up) closes the
  upstream response, and vLLM aborts a request whose client went away.
- Client. `requests` rather than the `openai` package: it gives the (connect, read) timeout pair, no hidden
  retries, the backend's raw error body to translate, vLLM's extras as plain JSON fields, and `close()` on a
  streamed response. The official client is what the tests use to prove the front is itself OpenAI-compatible.
"""
import json
import time
from dataclasses import dataclass

import requests
from werkzeug.exceptions import BadGateway, GatewayTimeout

from ..generation import ParamError, check_prompt, encode_prompt
from .openai import OPENAI_NAMES

# (parameter, is it at its "off" value?, what it is, what to do): what an OpenAI-compatible server cannot do
CANNOT = [("num_beams", lambda p: p["num_beams"] == 1, "beam search", "num_beams=1로 하세요"),
          ("penalty_alpha", lambda p: p["penalty_alpha"] == 0, "contrastive search", "penalty_alpha=0으로 하세요"),
          ("control", lambda p: not p["control"], "FUDGE 제어", "control을 빼세요"),
          ("no_repeat_ngram_size", lambda p: p["no_repeat_ngram_size"] == 0, "반복 금지 n-gram",
           "0으로 하고 반복은 repetition_penalty로 줄이세요")]
REASONS = {"stop": "stop", "length": "length"}  # anything else (vLLM's "abort", None) counts as "length"


@dataclass
class Prompt:
    """What `Remote.encode` hands to `__call__`/`stream` in place of token ids: the text, the ids when a local
    tokenizer counted them, and the name the route gives max_new_tokens (to name fields in the backend's 400s)."""
    text: str
    field: str
    engine: object
    ids: object = None  # (1, P) tensor, with a local tokenizer

    @property
    def shape(self):  # ratsnlp's /api reads ids.shape[1], the prompt's token count
        return self.ids.shape if self.ids is not None else (1, self.engine.count_tokens(self))


class Remote:
    """An OpenAI-compatible completions server at `url` (its base URL, as the openai client's base_url)."""
    engine = "remote"

    def __init__(self, url, model, api_key=None, tokenizer=None, max_context=None, timeout=60.0, connect_timeout=5.0):
        self.url, self.model, self.tokenizer, self.max_context = url.rstrip("/"), model, tokenizer, max_context
        self.timeouts = (connect_timeout, timeout)
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.session = requests.Session()  # keep-alive to the backend; urllib3's pool is thread-safe
        self.session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=32))
        self.session.mount("https://", requests.adapters.HTTPAdapter(pool_maxsize=32))

    def encode(self, prompt, params, field="max_new_tokens"):
        """A Prompt, after refusing what the backend cannot do and (with a tokenizer) checking the lengths."""
        check_prompt(prompt)
        self.refuse(params)
        ids = None
        if self.tokenizer is not None and self.max_context:
            ids = encode_prompt(self.tokenizer, prompt, params["max_new_tokens"], self.max_context, field)
        return Prompt(prompt, field, self, ids)

    def __call__(self, prompt, params, top_tokens=0):
        """One completion request; returns hf.summarize()'s dict (seconds: the round trip)."""
        self.refuse_trace(prompt, top_tokens)
        start = time.perf_counter()
        resp = self.post(self.body(prompt, params), prompt)
        try:
            out = resp.json()
            choices = sorted(out["choices"], key=lambda c: c.get("index", 0))
            completions, reasons = [c["text"] for c in choices], [c.get("finish_reason") for c in choices]
        except (ValueError, KeyError, TypeError):
            raise BadGateway(f"백엔드({self.url})의 답이 OpenAI completions 형식이 아닙니다. 백엔드 서버를 확인하세요.") from None
        return self.summary(prompt, completions, reasons, out.get("usage") or {}, time.perf_counter() - start)

    def stream(self, prompt, params, top_tokens=0):
        """Text pieces as the backend sends them, then the summary dict. The request goes out now, so a backend
        that is down or refuses answers with its status before the first event."""
        self.refuse_trace(prompt, top_tokens)
        start = time.perf_counter()
        resp = self.post(self.body(prompt, params, stream=True), prompt, stream=True)
        return self.pieces(resp, prompt, start)

    def pieces(self, resp, prompt, start):
        text, reason, usage = "", None, {}
        try:
            for line in resp.iter_lines(chunk_size=None):  # chunk_size None: each piece as it arrives
                if not line.startswith(b"data:") or line[5:].strip() == b"[DONE]":
                    continue
                chunk = json.loads(line[5:])
                if chunk.get("error"):  # e.g. the backend's own safety filter or server error
                    raise BadGateway(f"백엔드가 생성을 멈췄습니다: {chunk['error'].get('message')}")
                for c in chunk.get("choices") or []:
                    if c.get("text"):
                        text += c["text"]
                        yield c["text"]
                    reason = c.get("finish_reason") or reason
                usage = chunk.get("usage") or usage  # vLLM sends it last with stream_options.include_usage
        except (requests.RequestException, ValueError) as e:
            if timed_out(e):
                raise GatewayTimeout(self.timeout_message()) from None
            raise BadGateway(f"백엔드({self.url})와의 연결이 생성 중에 끊겼습니다. 백엔드 서버의 로그를 보세요.") from None
        finally:  # also when the client hung up: drop the upstream request
            resp.close()
        yield self.summary(prompt, [text], [reason], usage, time.perf_counter() - start)

    def summary(self, prompt, completions, reasons, usage, seconds):
        """hf.summarize()'s keys; token counts from the backend's usage (or the local tokenizer), else None."""
        n_prompt, n_new = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if self.tokenizer is not None:
            n_prompt = n_prompt or (prompt.ids.shape[1] if prompt.ids is not None else None)
            n_new = n_new if n_new is not None else sum(len(self.tokenizer(c, add_special_tokens=False).input_ids)
                                                        for c in completions)
        reasons = [REASONS.get(r, "length") for r in reasons]
        return dict(texts=[prompt.text + c for c in completions], completions=completions, finish_reasons=reasons,
                    finish_reason=reasons[0], prompt_tokens=n_prompt, new_tokens=n_new, seconds=round(seconds, 4),
                    tokens_per_s=round(n_new / seconds, 1) if n_new is not None and seconds > 0 else None)

    def count_tokens(self, prompt):
        """The prompt's token count as the backend counts it (usage of a one-token completion)."""
        resp = self.post(dict(model=self.model, prompt=prompt.text, max_tokens=1, temperature=0), prompt)
        try:
            return int(resp.json()["usage"]["prompt_tokens"])
        except (ValueError, KeyError, TypeError):
            raise BadGateway("백엔드가 usage(토큰 수)를 알려 주지 않아 /api의 길이를 셀 수 없습니다. kogen serve에 --model로 "
                             "백엔드 모델의 토크나이저를 주세요.") from None

    def refuse(self, params):
        """A 400 naming the first parameter the backend cannot honour (CANNOT)."""
        for name, off, what, fix in CANNOT:
            if not off(params):
                raise ParamError(name, f"이 서버는 생성을 백엔드({self.url})에 맡기므로 {what}({name})을(를) 쓸 수 "
                                       f"없습니다(OpenAI 호환 서버에 없는 기능). {fix}.")

    def refuse_trace(self, prompt, top_tokens):
        if top_tokens:
            field = "logprobs" if prompt.field == "max_tokens" else "top_tokens"
            raise ParamError(field, f"이 서버는 생성을 백엔드({self.url})에 맡기므로 토큰별 확률({field})을 볼 수 "
                                    f"없습니다. {field}를 빼세요.")

    def body(self, prompt, params, stream=False):
        """Checked PARAMS as an OpenAI completions request with vLLM's extras; knobs at their "off" value stay out."""
        p = params
        body = dict(model=self.model, prompt=prompt.text, max_tokens=p["max_new_tokens"], n=p["num_return_sequences"],
                    temperature=p["temperature"] if p["do_sample"] else 0)  # temperature 0: greedy
        if p["do_sample"]:
            body.update(top_p=p["top_p"], **({"top_k": p["top_k"]} if p["top_k"] else {}))
        if p["min_new_tokens"]:
            body["min_tokens"] = p["min_new_tokens"]
        if p["repetition_penalty"] != 1.0:
            body["repetition_penalty"] = p["repetition_penalty"]
        if p["seed"] is not None:
            body["seed"] = p["seed"]
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        return body

    def post(self, body, prompt, stream=False):
        try:
            resp = self.session.post(self.url + "/completions", json=body, headers=self.headers, stream=stream,
                                     timeout=self.timeouts)
        except requests.Timeout:
            raise GatewayTimeout(self.timeout_message()) from None
        except requests.RequestException as e:
            raise BadGateway(f"백엔드({self.url})에 연결할 수 없습니다({type(e).__name__}). 백엔드 서버(vLLM 등)가 "
                             f"켜져 있는지 확인하세요.") from None
        if resp.status_code != 200:
            raise self.error(resp, prompt)
        return resp

    def timeout_message(self):
        return (f"백엔드({self.url})가 {self.timeouts[1]:g}초 안에 답하지 않았습니다. 백엔드가 바쁘거나 멈췄습니다. "
                f"잠시 뒤 다시 하거나 --backend-timeout을 늘리세요.")

    def error(self, resp, prompt):
        """The backend's non-200 answer as kogen's: 400/422 → ParamError naming the route's field, else 502/504."""
        try:
            body = resp.json()
            err = body.get("error") if isinstance(body.get("error"), dict) else body  # OpenAI's shape, or vLLM's older
            message, param = err.get("message"), err.get("param")
        except (ValueError, AttributeError):
            message, param = resp.text[:200], None
        status = resp.status_code
        if status in (400, 422):
            field = param if prompt.field == "max_tokens" else OPENAI_NAMES.get(param, param)  # /v1: OpenAI's names
            return ParamError(field, f"백엔드가 요청을 거절했습니다: {message}")
        if status in (408, 504):
            return GatewayTimeout(self.timeout_message())
        hint = " --backend-api-key(또는 KOGEN_BACKEND_API_KEY)를 확인하세요." if status in (401, 403) else \
            " 백엔드 서버의 로그를 보세요."
        return BadGateway(f"백엔드({self.url})가 HTTP {status}로 답했습니다: {message}.{hint}")


def timed_out(e):
    """A timeout, also in a streamed body (there requests reports urllib3's ReadTimeoutError as a ConnectionError)."""
    from urllib3.exceptions import ReadTimeoutError
    return isinstance(e, requests.Timeout) or any(isinstance(a, ReadTimeoutError) for a in e.args)


def connect(url, model=None, api_key=None, tokenizer_model=None, timeout=60.0, connect_timeout=5.0):
    """A Remote engine, after checking that `url` is an OpenAI-compatible server (GET /models lists models);
    otherwise a ValueError whose Korean message says what to do (`kogen serve` prints it and exits 2).
    `tokenizer_model` (a folder or hub id; `--model`) lets the front count tokens itself."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"--backend {url!r}: http://127.0.0.1:8000/v1처럼 http(s)://로 시작하는 주소를 주세요.")
    if not (timeout > 0 and connect_timeout > 0):
        raise ValueError(f"--backend-timeout({timeout:g})과 --backend-connect-timeout({connect_timeout:g})은 0보다 큰 초여야 "
                         f"합니다.")
    url = url.rstrip("/")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    hint = ("--backend에는 OpenAI 클라이언트의 base_url과 같은 주소(vLLM이면 http://127.0.0.1:8000/v1처럼 끝이 /v1)를 "
            "주세요.")
    try:
        resp = requests.get(url + "/models", headers=headers, timeout=(connect_timeout, timeout))
    except requests.RequestException as e:
        raise ValueError(f"백엔드 {url}에 연결할 수 없습니다({type(e).__name__}). vLLM(vllm serve ...)이나 다른 "
                         f"kogen serve가 그 주소에서 켜져 있는지 확인하세요. {hint}") from None
    if resp.status_code in (401, 403):
        raise ValueError(f"백엔드 {url}가 API 키를 거절했습니다(HTTP {resp.status_code}). --backend-api-key(또는 "
                         f"KOGEN_BACKEND_API_KEY)에 백엔드의 키를 주세요.")
    try:
        models = resp.json()["data"] if resp.status_code == 200 else None
        ids = [m["id"] for m in models]
        limits = {m["id"]: m.get("max_model_len") for m in models}  # vLLM (and kogen) report the context length
    except (ValueError, KeyError, TypeError):
        ids = None
    if not ids:
        raise ValueError(f"{url}/models의 답(HTTP {resp.status_code})이 OpenAI 호환 서버의 모델 목록이 아닙니다. {hint}")
    if model and model not in ids:
        raise ValueError(f"백엔드에 모델 {model!r}이(가) 없습니다. 있는 모델: {', '.join(ids)}. --backend-model을 고치세요.")
    model = model or ids[0]
    tokenizer, context = local_tokenizer(tokenizer_model) if tokenizer_model else (None, None)
    return Remote(url, model, api_key, tokenizer, limits.get(model) or context, timeout, connect_timeout)


def local_tokenizer(name):
    """(tokenizer, context length) of a folder or cached hub id: the tokenizer and config.json only, no weights,
    and no fallback to the bundled model (another tokenizer would count other tokens)."""
    from ..models import load_tokenizer, read_config, resolve_model
    path = resolve_model(name, fallback=False)
    config = read_config(path)
    return load_tokenizer(path), config.get("max_position_embeddings") or config.get("n_positions", 1024)
