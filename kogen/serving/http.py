"""HTTP plumbing shared by every route: one error shape, JSON bodies, server-sent events, error handlers."""
import json

from flask import Response, jsonify, request
from werkzeug.exceptions import HTTPException

from ..generation import Param, ParamError, coerce

MAX_BODY = 64 * 1024  # a 1000-character prompt plus parameters is a few KB
ENDPOINTS = "/, /api, /api/generate, /api/params, /v1/completions, /v1/models, /healthz, /metrics"


def error_response(status, field, message):
    # one shape for every endpoint; "param"/"type" are what OpenAI clients read
    kind = "invalid_request_error" if status < 500 else "server_error"
    return jsonify(error=dict(field=field, message=message, param=field, type=kind)), status


def json_body():
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise ParamError("body", '요청 본문이 JSON 객체가 아닙니다. {"prompt": "...", ...} 형식의 JSON을 보내세요.')
    return body


def flag(body, key):
    return coerce(Param(key, bool, False), body.get(key, False))


def sse(data, event=None):
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n"


def event_stream(events):  # no caching, no buffering: a proxy in front must pass each piece on at once
    return Response(events, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def register_errors(app):
    """Every failure becomes the one JSON error shape: bad parameters 400, HTTP errors in Korean, never a
    stack trace (the log gets it)."""
    from ..safety.filter import Blocked

    @app.errorhandler(ParamError)
    def bad_param(e):
        return error_response(400, e.field, e.message)

    @app.errorhandler(Blocked)
    def blocked(e):  # 422: the request was valid, its content is refused by the safety policy
        resp, status = error_response(422, e.where, e.message)
        body = resp.get_json()
        body["error"]["type"], body["safety"] = "safety_block", e.verdict
        return jsonify(body), status

    @app.errorhandler(HTTPException)
    def http_error(e):
        allowed = ", ".join(getattr(e, "valid_methods", None) or [])
        messages = {404: f"없는 주소입니다: {request.path}. 쓸 수 있는 주소: {ENDPOINTS}",
                    405: f"{request.path}에는 {request.method} 요청을 쓸 수 없습니다. 허용: {allowed}",
                    413: f"요청이 너무 큽니다. 최대 {MAX_BODY // 1024}KB까지 받습니다. 프롬프트를 줄이세요."}
        resp, status = error_response(e.code, None, messages.get(e.code, e.description))
        if allowed:
            resp.headers["Allow"] = allowed
        for key, value in (getattr(e, "headers", None) or {}).items():  # e.g. Retry-After on a 503 or 429
            resp.headers[key] = value
        return resp, status

    @app.errorhandler(Exception)
    def internal_error(e):
        app.logger.exception("unhandled error")
        return error_response(500, None, "서버 내부 오류입니다. 서버를 실행한 터미널의 로그를 확인하세요.")
