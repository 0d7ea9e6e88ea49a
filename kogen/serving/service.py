"""What the routes call: the engine under the safety policy. One object per app, in app.extensions["kogen"]."""
import threading
from dataclasses import dataclass, field

from flask import current_app

from ..generation import ParamError


@dataclass
class Service:
    engine: object  # hf.Generator (or another engine with encode, __call__, stream, max_context); None: /api only
    name: str
    device: str
    safety: str = "off"
    threshold: float = 0.5
    inference_fn: object = None  # the student's step-5 function, answers /api
    lock: threading.Lock = field(default_factory=threading.Lock)

    def need_model(self):
        if self.engine is None:
            raise ParamError("model", "이 서버는 inference_fn만 받아 /api만 쓸 수 있습니다. get_web_service_app(..., "
                                      "model=model, tokenizer=tokenizer)로 만들면 다른 기능도 켜집니다.")
        return self.engine

    def generate(self, prompt, ids, params, top_tokens=0):
        """The engine's summary dict, with "safety" added under a policy; raises Blocked when refused.
        top_tokens > 0 adds each token's probabilities and that many alternatives ("tokens")."""
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
        pieces = self.engine.stream(ids, params, **(dict(top_tokens=top_tokens) if top_tokens else {}))
        if self.safety == "off":
            return pieces
        check_prompt_safety(prompt, self.safety, self.threshold)
        return guard_stream(pieces, self.safety, self.threshold)


def service():
    return current_app.extensions["kogen"]["service"]
