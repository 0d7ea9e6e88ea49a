"""GET /metrics in Prometheus' text format: requests by endpoint and status, requests in flight and queued,
time to first token, end-to-end latency, generated tokens. One CollectorRegistry per app (tests make many)."""
import time

from flask import Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)  # seconds: a token on CPU .. a long answer


class Metrics:
    """The service's counters; Service calls `generated` and `first_token`, the hooks below the rest."""

    def __init__(self, svc):
        self.registry = r = CollectorRegistry()
        self.requests = Counter("kogen_requests", "HTTP requests answered", ["endpoint", "status"], registry=r)
        self.latency = Histogram("kogen_request_seconds", "end-to-end latency (a stream: until its last event)",
                                 ["endpoint"], buckets=BUCKETS, registry=r)
        self.ttft = Histogram("kogen_time_to_first_token_seconds", "time from the call to the first streamed piece",
                              buckets=BUCKETS, registry=r)
        self.tokens = Counter("kogen_generated_tokens", "new tokens generated", registry=r)
        Gauge("kogen_requests_in_flight", "generating requests admitted and not finished",
              registry=r).set_function(lambda: svc.in_flight)
        Gauge("kogen_requests_queued", "requests waiting for the model thread",
              registry=r).set_function(lambda: getattr(svc.engine, "queued", 0))

    def generated(self, summary):
        self.tokens.inc(summary.get("new_tokens") or 0)  # a remote backend may not report usage (None)

    def watch(self, items):
        """A stream's items, passed through; the first text piece is timed and the summary's tokens counted."""
        start, first = time.perf_counter(), True
        for item in items:
            if isinstance(item, str) and first:
                self.ttft.observe(time.perf_counter() - start)
                first = False
            elif isinstance(item, dict):
                self.generated(item)
            yield item


def register_metrics(app, svc):
    """Attach Metrics to `svc`, time every request, and serve GET /metrics."""
    metrics = svc.metrics = Metrics(svc)

    @app.before_request
    def started():
        g.kogen_start = time.perf_counter()

    @app.after_request
    def count(resp):
        endpoint = request.url_rule.rule if request.url_rule else "unknown"  # route patterns: bounded label values
        start = g.get("kogen_start", time.perf_counter())
        metrics.requests.labels(endpoint, str(resp.status_code)).inc()
        resp.call_on_close(lambda: metrics.latency.labels(endpoint).observe(time.perf_counter() - start))
        return resp

    app.add_url_rule("/metrics", "metrics", lambda: Response(generate_latest(metrics.registry),
                                                            mimetype=CONTENT_TYPE_LATEST))
    return metrics
