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

    def generate(self, prompt, ids, params):
        """The engine's summary dict, with "safety" added under a policy; raises Blocked when refused."""
        from ..safety.filter import guarded, retry_params
        if self.safety == "off":
            return self.engine(ids, params)
        runs = []

        def once(attempt):
            runs.append(self.engine(ids, retry_params(params, attempt)))
            return runs[-1]["texts"], runs[-1]["completions"]
        _, _, verdicts = guarded(once, prompt, self.safety, self.threshold, deterministic=not params["do_sample"])
        return dict(runs[-1], safety=verdicts)

    def stream(self, prompt, ids, params):
        """Text pieces then the summary; a toxic prompt is refused before anything streams (raises Blocked)."""
        from ..safety.filter import check_prompt_safety, guard_stream
        if self.safety == "off":
            return self.engine.stream(ids, params)
        check_prompt_safety(prompt, self.safety, self.threshold)
        return guard_stream(self.engine.stream(ids, params), self.safety, self.threshold)


def service():
    return current_app.extensions["kogen"]["service"]
