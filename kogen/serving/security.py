"""Serving a class safely: API keys, same-origin browsers only, a Host check against DNS rebinding, per-client
rate limits, security headers and one access-log line per request. Plain hooks on the app (register), set by
`kogen serve --api-key/--allow-origin/--allow-host/--rate-limit/--rate-burst/--log-prompts`.

Order of the checks, before any route runs (each refusal is the one JSON error shape, in Korean):
    Host (400) -> cross-site browser request (403) -> API key (401) -> JSON body (415) -> rate limit (429)
The default (no key, loopback, no rate limit in create_app) changes nothing for a student's own requests.
"""
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from flask import current_app, g, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from .http import error_response

log = logging.getLogger("kogen.access")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}  # OPTIONS: a CORS preflight carries no key
OPEN_ENDPOINTS = {"static", "kogen.index", "kogen.healthz",  # the page asks for the key itself (static/auth.js)
                  "eval.studies", "eval.page", "eval.results", "eval.results_csv", "ab.results"}  # pages, tallies
GENERATION_ENDPOINTS = {"kogen.ratsnlp_api", "kogen.generate_api", "openai.completions", "ab.generate"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
           "Referrer-Policy": "no-referrer"}
RATE_LIMIT, RATE_BURST = 20.0, 10  # per client: one request every 3 s on average, 10 at once (kogen serve's default)


@dataclass
class Config:
    api_keys: tuple = ()  # empty: no key needed
    allowed_origins: tuple = ()  # cross-site browser origins allowed to call the API ("*": any)
    allowed_hosts: tuple = ()  # Host names accepted besides localhost / loopback IPs ("*": any)
    rate_limit: float = 0  # generation requests per minute per client; 0: no limit
    rate_burst: int = RATE_BURST
    log_prompts: bool = False
    bind_host: str = None  # where the server listens (serve/start_server say); None: loopback unless WSGI says
    buckets: dict = field(default_factory=dict, repr=False)  # client -> (tokens, time)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def api_keys(flags=None, env=None):
    """--api-key values plus KOGEN_API_KEY (comma-separated), blanks dropped, order kept."""
    env = os.environ.get("KOGEN_API_KEY", "") if env is None else env
    keys = [k.strip() for k in [*(flags or []), *env.split(",")] if k and k.strip()]
    for key in keys:  # an HTTP header carries ASCII only: a browser cannot even send a Korean key
        if not (key.isascii() and key.isprintable()) or " " in key:
            raise ValueError(f"API 키 {key!r}는 쓸 수 없습니다. 영문·숫자·기호로만(공백 없이) 만드세요. "
                             f"예: --api-key class-2024-xyz")
    return tuple(dict.fromkeys(keys))


def is_loopback(host):
    host = (host or "").strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_ip(host):
    try:
        ipaddress.ip_address((host or "").strip("[]"))
        return True
    except ValueError:
        return False


def bind_warning(host, keys):
    """The Korean warning for a server open to the network without a key (None when there is nothing to say)."""
    if is_loopback(host) or keys:
        return None
    return (f"[kogen] 경고: {host}에 API 키 없이 엽니다. 같은 네트워크의 누구나 모델을 쓰고 투표를 넣을 수 있습니다. "
            f"수업에서는 --api-key 키(또는 KOGEN_API_KEY=키)를 주고 학생들에게 키를 나눠 주세요.")


def fingerprint(key):
    return hashlib.sha256(key.encode()).hexdigest()[:8]  # names a key in logs and buckets, never the key


# --- the checks, in order ------------------------------------------------------------------------------------

def check_host(cfg):
    """DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 sends Host: evil.example."""
    name = urlsplit("//" + request.host).hostname or ""
    bound = cfg.bind_host or request.environ.get("SERVER_NAME")  # Flask's app.run puts its address there
    if cfg.bind_host is None and not is_ip(bound):
        bound = "127.0.0.1"  # waitress says "waitress.invalid": assume the default address
    if "*" in cfg.allowed_hosts or name in cfg.allowed_hosts or is_loopback(name) or name == bound.lower():
        return None
    if not is_loopback(bound) and is_ip(name):  # open to the network: students type the instructor's address
        return None
    return error_response(400, "Host", f"이 서버는 Host '{request.host}'로 부르는 요청을 받지 않습니다(DNS 리바인딩 "
                                       f"방지). 실제 이름으로 쓰려면 kogen serve --allow-host {name or '이름'}을 주세요.")


def check_origin(cfg):
    """A state-changing request from another site's page (CSRF) -> 403, unless --allow-origin names it."""
    if request.method in SAFE_METHODS:
        return None
    origin = request.headers.get("Origin")
    if origin is not None:
        if urlsplit(origin).netloc.lower() == request.host.lower() or allowed_origin(cfg, origin):
            return None
    elif request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none"):
        return None  # no Origin, no cross-site fetch metadata: curl, requests, the openai client
    return error_response(403, "Origin", f"다른 사이트({origin or '알 수 없음'})의 페이지에서 보낸 요청은 받지 않습니다. "
                                         f"믿을 수 있는 주소라면 kogen serve --allow-origin {origin or 'URL'}을 주세요.")


def allowed_origin(cfg, origin):
    return "*" in cfg.allowed_origins or origin.rstrip("/").lower() in cfg.allowed_origins


def presented_key(cfg):
    """The configured key the request carries (Authorization: Bearer KEY), else None."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return None
    return next((k for k in cfg.api_keys if hmac.compare_digest(k.encode(), given.strip().encode())), None)


def check_key(cfg):
    if not cfg.api_keys or request.method == "OPTIONS" or request.endpoint in OPEN_ENDPOINTS:
        return None
    g.kogen_key = presented_key(cfg)
    if g.kogen_key is not None:
        return None
    given = "Authorization" in request.headers
    message = ("API 키가 틀렸습니다. 강사에게 받은 키를 다시 확인하세요." if given else
               "이 서버는 API 키가 필요합니다. Authorization: Bearer 키 헤더를 붙이세요(openai 클라이언트는 api_key=키).")
    body = error_response(401, None, message)[0].get_json()
    body["error"]["code"] = "invalid_api_key"  # OpenAI's code for a missing or wrong key
    return jsonify(body), 401, {"WWW-Authenticate": 'Bearer realm="kogen"'}


def client_id(cfg):
    """Who a rate limit and a log line are about: the key when each student has their own, else the address."""
    key = g.get("kogen_key")
    return f"key:{fingerprint(key)}" if key and len(cfg.api_keys) > 1 else request.remote_addr or "-"


def take_token(cfg, client, now):
    """Token bucket: `rate_burst` requests at once, refilled at rate_limit per minute. 0 or seconds to wait."""
    rate = cfg.rate_limit / 60
    with cfg.lock:
        tokens, last = cfg.buckets.get(client, (cfg.rate_burst, now))
        tokens = min(cfg.rate_burst, tokens + (now - last) * rate)
        if tokens >= 1:
            cfg.buckets[client] = (tokens - 1, now)
            return 0
        cfg.buckets[client] = (tokens, now)
        if len(cfg.buckets) > 10_000:  # forget clients whose buckets are full again
            full = [c for c, (t, at) in cfg.buckets.items() if t + (now - at) * rate >= cfg.rate_burst]
            for c in full:
                del cfg.buckets[c]
        return (1 - tokens) / rate


def check_rate(cfg):
    if cfg.rate_limit <= 0 or request.endpoint not in GENERATION_ENDPOINTS:
        return None
    wait = take_token(cfg, client_id(cfg), time.monotonic())
    if not wait:
        return None
    seconds = max(1, math.ceil(wait))
    resp, status = error_response(429, None, f"요청이 너무 많습니다(한 사람당 1분에 {cfg.rate_limit:g}번, 한꺼번에 "
                                             f"{cfg.rate_burst}번까지). {seconds}초 뒤에 다시 해 보세요.")
    resp.headers["Retry-After"] = str(seconds)
    return resp, status


def check_json(cfg):
    """Every POST body here is JSON; a form or text/plain body (what a cross-site page can send without a
    preflight) is refused before it is read."""
    if request.method in SAFE_METHODS or request.routing_exception is not None or request.is_json:
        return None
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit and (request.content_length or 0) > limit:
        raise RequestEntityTooLarge()  # too big is the first thing to say
    given = request.mimetype or "없음"
    return error_response(415, "Content-Type", f"JSON으로 보내세요: Content-Type: application/json 헤더가 필요합니다"
                                               f"(지금: {given}).")


CHECKS = (check_host, check_origin, check_key, check_json, check_rate)  # a refused body costs no quota


# --- after the route: headers, CORS for allowed origins, the access log ------------------------------------------

def add_headers(cfg, resp):
    for key, value in HEADERS.items():
        resp.headers.setdefault(key, value)
    origin = request.headers.get("Origin")
    if origin and cfg.allowed_origins and allowed_origin(cfg, origin):
        resp.headers.update({"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                             "Access-Control-Allow-Headers": "Authorization, Content-Type",
                             "Access-Control-Allow-Methods": "GET, POST"})
    return resp


TOKENS = re.compile(rb'"(?:new_tokens|completion_tokens)": ?(\d+)')


def count_tokens(resp, seen):
    """New tokens from a JSON answer now, or from a stream's summary as it passes by (appended to `seen`)."""
    if resp.mimetype != "text/event-stream":
        m = TOKENS.search(resp.get_data()) if resp.is_json and not resp.direct_passthrough else None
        seen.extend([int(m[1])] if m else [])
        return
    inner = resp.response

    def watched():
        try:
            for chunk in inner:
                m = TOKENS.search(chunk if isinstance(chunk, bytes) else chunk.encode())
                seen.extend([int(m[1])] if m else [])
                yield chunk
        finally:  # a hung-up client: close the route's generator now, so the engine stops
            getattr(inner, "close", lambda: None)()
    resp.response = watched()


def access_line(status):
    """The log line for this request, finished when the response is closed (a stream: when it ends)."""
    key, start, seen = g.get("kogen_key"), g.kogen_start, []
    head = [request.method, request.path, str(status)]
    tail = [f"client={request.remote_addr or '-'}" + (f" key={fingerprint(key)}" if key else "")]
    if g.get("kogen_prompt") is not None:
        tail.append("prompt=" + json.dumps(g.kogen_prompt, ensure_ascii=False))

    def line():
        latency = f"{time.perf_counter() - start:.3f}s"
        return " ".join([*head, latency, f"tokens={seen[-1] if seen else '-'}", *tail])
    return line, seen


def register(app, cfg=None):
    """The checks before every request, headers and the access-log line after; `cfg` a Config or a dict of its
    fields. Keeps it in app.extensions["kogen_security"] (bind() updates the address)."""
    cfg = cfg if isinstance(cfg, Config) else Config(**(cfg or {}))
    cfg.api_keys, cfg.allowed_hosts = tuple(cfg.api_keys), tuple(h.lower() for h in cfg.allowed_hosts)
    cfg.allowed_origins = tuple(o.rstrip("/").lower() for o in cfg.allowed_origins)
    app.extensions["kogen_security"] = cfg

    @app.before_request
    def checks():
        g.kogen_start = time.perf_counter()
        for check in CHECKS:
            refused = check(cfg)
            if refused is not None:
                return refused
        body = request.get_json(silent=True) if cfg.log_prompts and request.method == "POST" else None
        g.kogen_prompt = body.get("prompt") if isinstance(body, dict) else None  # now: a route may pop it

    @app.after_request
    def finish(resp):
        add_headers(cfg, resp)
        if "kogen_start" in g:  # else a before_request hook before ours refused it
            line, seen = access_line(resp.status_code)
            count_tokens(resp, seen)
            resp.call_on_close(lambda: log.info(line()))
        return resp
    return cfg


def bind(app, host):
    """Tell the app where its server listens (serve, start_server): the Host check depends on it."""
    cfg = app.extensions.get("kogen_security")
    if cfg is not None:
        cfg.bind_host = host


def log_to_stderr():
    """`kogen serve`: the access log on the terminal, one line per request."""
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
