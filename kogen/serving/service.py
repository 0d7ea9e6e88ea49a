"""What the routes call: the engine under the safety policy, behind a bounded number of requests in flight.
One object per app, in app.extensions["kogen"]."""
import functools
import threading
from dataclasses import dataclass, field

from flask import current_app
from werkzeug.exceptions import ServiceUnavailable

from ..generation import ParamError

MAX_IN_FLIGHT = 64  # generating requests at once; past it a 503 (kogen serve --max-in-flight)
SPARE_THREADS = 8  # waitress threads beyond MAX_IN_FLIGHT: /healthz, the page and the 503s never wait
RETRY_AFTER = 1  # seconds, in the 503's Retry-After


@dataclass
class Service:
    engine: object  # an engine (hf.Generator, batcher.Batcher, ...: encode, __call__, stream, max_context); None: /api only
    name: str
    device: str
    safety: str = "off"
    threshold: float = 0.5
    inference_fn: object = None  # the student's step-5 function, answers /api
    lock: threading.Lock = field(default_factory=threading.Lock)
    max_in_flight: int = MAX_IN_FLIGHT
    in_flight: int = 0
    counter: threading.Lock = field(default_factory=threading.Lock)
    metrics: object = None  # metrics.Metrics (create_app sets it): generated tokens, time to first token

    def need_model(self):
        if self.engine is None:
            raise ParamError("model", "이 서버는 inference_fn만 받아 /api만 쓸 수 있습니다. get_web_service_app(..., "
                                      "model=model, tokenizer=tokenizer)로 만들면 다른 기능도 켜집니다.")
        return self.engine

    def admit(self):
        """Take a slot for one generating request, or refuse at once with a 503 (never wait, never hang)."""
        with self.counter:
            if self.in_flight >= self.max_in_flight:
                e = ServiceUnavailable(f"지금 요청이 많아 바쁩니다(동시에 {self.max_in_flight}개까지 처리합니다). "
                                       f"{RETRY_AFTER}초 뒤에 다시 보내세요.")
                e.headers = {"Retry-After": str(RETRY_AFTER)}  # http.py passes these on
                raise e
            self.in_flight += 1

    def release(self):
        with self.counter:
            self.in_flight -= 1

    def generate(self, prompt, ids, params, top_tokens=0):
        """The engine's summary dict, with "safety" added under a policy; raises Blocked when refused.
        top_tokens > 0 adds each token's probabilities and that many alternatives ("tokens")."""
        out = self.checked(prompt, ids, params, top_tokens)
        if self.metrics:
            self.metrics.generated(out)
        return out

    def checked(self, prompt, ids, params, top_tokens=0):
        from ..safety.filter import guarded, retry_params
        extra = dict(top_tokens=top_tokens) if top_tokens else {}  # engines without a trace never see it
        if self.safety == "off":
            return self.engine(ids, params, **extra)
        runs = []

        def once(attempt):
            runs.append(self.engine(ids, retry_params(params, attempt), **extra))
            return runs[-1]["texts"], runs[-1]["completions"]
        _, _, verdicts = guarded(once, prompt, self.safety, self.threshold, deterministic=not params["do_sample"])
        return dict(runs[-1], safety=verdicts)

    def stream(self, prompt, ids, params, top_tokens=0):
        """Text pieces then the summary; a toxic prompt is refused before anything streams (raises Blocked).
        With top_tokens > 0 each piece is an hf.Piece carrying its tokens' trace."""
        from ..safety.filter import check_prompt_safety, guard_stream
        if self.safety != "off":
            check_prompt_safety(prompt, self.safety, self.threshold)
        items = self.engine.stream(ids, params, **(dict(top_tokens=top_tokens) if top_tokens else {}))
        if self.metrics:
            items = self.metrics.watch(items)
        return items if self.safety == "off" else guard_stream(items, self.safety, self.threshold)


def service():
    return current_app.extensions["kogen"]["service"]


def limited(view):
    """A generating route under the in-flight bound: its slot is held until the answer is sent, for a stream
    until the last event is written or the client hangs up (the response's close)."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        svc = service()
        svc.admit()
        try:
            resp = current_app.make_response(view(*args, **kwargs))
        except BaseException:
            svc.release()
            raise
        if resp.is_streamed:
            resp.call_on_close(svc.release)
        else:
            svc.release()
        return resp
    return wrapper
