"""The web service: a page, ratsnlp's `POST /api`, a JSON API with streaming, OpenAI-style completions.

    kogen serve --checkpoint-dir checkpoints/quick --model bundled    # waitress on http://127.0.0.1:9001

Step 5 of the course, the way ratsnlp's book does it (Flask's own server, fine for learning):

    app = get_web_service_app(inference_fn, model=model, tokenizer=tokenizer, model_name="...", device=device)
    app.run(host="127.0.0.1", port=9001)

Public functions
    create_app(model=None, tokenizer=None, model_name=None, device=None, inference_fn=None, max_time=MAX_TIME, ...,
               engine=None, max_in_flight=64) -> Flask
    get_web_service_app(inference_fn=None, *, model=None, tokenizer=None, model_name=None, device=None) -> Flask
        /api calls inference_fn(prompt, min_length, max_length, top_p, top_k, repetition_penalty,
        no_repeat_ngram_size, temperature) -- positionally, as ratsnlp did, with validated, converted
        values -- when given; every other endpoint uses model + tokenizer.
    serve(model=None, checkpoint_dir=None, host="127.0.0.1", port=9001, device=None)
        loads the model once (a step-4 checkpoint folder, a Hugging Face folder, a hub id or KOGEN_MODEL)
        and runs waitress until Ctrl+C. serve(..., backend=dict(url=...)) loads no model and forwards generation to
        an OpenAI-compatible server (kogen serve --backend URL; see kogen/serving/remote.py).
    load_for_serving(model=None, checkpoint_dir=None, device=None) -> (model, tokenizer, name, device)
        what serve loads; name says which checkpoint or model it is.
    start_server(app, host="127.0.0.1", port=0, threads=None) -> waitress server running in a daemon thread
        (tests, benchmarks; threads: max_in_flight + 8 spares by default); `.effective_port` is its port. stop_server(server) stops it.

Endpoints (bad input is always a 4xx JSON {"error": {"field", "message", "param", "type"}}, never a 500)
    GET  /                the page: templates/index.html + static/
    GET  /healthz         {"status": "ok", "model", "device", "max_context", "safety", "engine", "queued", "in_flight",
                          "max_in_flight"} (+ "backend": its URL, with `kogen serve --backend`); answered at once,
                          never behind generation
    GET  /metrics         Prometheus text: requests by endpoint and status, in flight, queued, time to first token,
                          end-to-end latency, generated tokens
    GET  /api/params      the parameter table (ranges, Korean labels and help) and the presets
    POST /api             ratsnlp's API. All eight fields are required: prompt, min_length, max_length, top_p,
                          top_k, repetition_penalty, no_repeat_ngram_size, temperature (numbers or numeric
                          strings; a missing one is a 400 where ratsnlp gave a 500). Like ratsnlp it samples
                          (do_sample=True). min_length/max_length count tokens *including* the prompt
                          (max_length <= 512 and the model's context), so with P prompt tokens they become
                          max_new_tokens = max(1, max_length - P) and
                          min_new_tokens = min(max(0, min_length - P), max_new_tokens).
                          -> {"result": prompt + continuation}
    POST /api/generate    {"prompt", any of generation.PARAMS, "stream": false} -> {"texts", "completions",
                          "prompt_tokens", "new_tokens", "seconds", "tokens_per_s", "finish_reason"} where
                          finish_reason is "stop" (</s>), "length" or "time" (hit the time limit).
                          "stream": true answers server-sent events: `data: {"text": chunk}` per piece,
                          then `event: done` with the same summary (one sequence, num_beams=1 only).
                          "top_tokens": N (0-20) adds "tokens": per sequence, per generated token {"id", "text",
                          "token", "p_raw" (the model's probability), "p" (after penalties, FUDGE, temperature,
                          top-k, top-p: what it was drawn from), "logprob", "top": N alternatives}; a stream sends
                          each piece's tokens with it (greedy and sampling only: not with beams or contrastive).
                          penalty_alpha > 0 switches to contrastive search (with top_k candidates);
                          control ("긍정"/"부정"/"무해", or positive/negative/safe) + control_strength steer with FUDGE.
    POST /v1/completions  OpenAI's completions API: model, prompt, max_tokens (16), temperature (1; 0 means
                          greedy), top_p, n, seed, echo, stream, logprobs (0-5: tokens, token_logprobs of the
                          raw model, top_logprobs, text_offset), stop (a string or up to 4: the text is cut before
                          it, finish_reason "stop"; streams hold back what may start one); top_k, repetition_penalty,
                          no_repeat_ngram_size, min_tokens, penalty_alpha (then temperature defaults to 0
                          and top_k to 4), control, control_strength as extras (openai client: extra_body=...).
    GET  /v1/models       the one model served (with max_model_len, its context length, as vLLM reports it)
    Safety (create_app(safety=...), kogen serve --safety; serve's default "flag"): responses of /api/generate
                          and /v1/completions carry "safety" (the classifier's score, label, bias); "block" and
                          "regenerate" refuse a toxic prompt or output with a 422 (type "safety_block"); a
                          stream is scored as it grows and ends with `event: blocked` (OpenAI stream:
                          finish_reason "content_filter").
    /eval/..., /ab/...    human evaluation studies and A/B tests (with `db`): see kogen/serving/
    Security (create_app(security=...), kogen serve --api-key/--allow-origin/--allow-host/--rate-limit; see
                          kogen/serving/security.py): POST bodies must be JSON (415), cross-site browser POSTs are
                          403, a Host other than localhost/loopback on a loopback server is 400; with keys every
                          endpoint but the pages, /healthz and the results views needs `Authorization: Bearer KEY`
                          (401, OpenAI's shape); generation over the per-client rate limit is 429 + Retry-After.

Concurrent requests are batched by one model thread (serving/batcher.py; serving/ct2.py for --engine ct2);
each generation stops after KOGEN_MAX_TIME seconds (default 30). Past `max_in_flight` generating requests
(create_app/serve argument, `kogen serve --max-in-flight`, default 64) the answer is a 503 with Retry-After.

This module is the public door (step 5 imports it); the code lives in kogen/serving/ (app.py, openai.py,
service.py, hf.py, remote.py, http.py, server.py). `kogen serve --backend URL` puts all of the above in front of an
OpenAI-compatible server (vLLM, or another kogen): see kogen/serving/remote.py.
"""
from .serving.app import MAX_TIME, REPO, RATSNLP_FIELDS, create_app, get_web_service_app
from .serving.hf import Cancelled, Generator, Streamer
from .serving.http import MAX_BODY, error_response
from .serving.server import load_for_serving, serve, start_server, stop_server

__all__ = ["MAX_TIME", "REPO", "RATSNLP_FIELDS", "create_app", "get_web_service_app", "Cancelled", "Generator",
           "Streamer", "MAX_BODY", "error_response", "load_for_serving", "serve", "start_server", "stop_server"]
