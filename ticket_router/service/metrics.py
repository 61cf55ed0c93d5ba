"""`/metrics` in Prometheus' text format (prometheus-client), on the service's port, behind a key with the
``metrics`` scope when the service has keys.

What an operations team gets (all names start ``ticket_classifier_``):

| metric | type | labels | what |
| --- | --- | --- | --- |
| ``requests_total`` | counter | endpoint, method, status | requests answered |
| ``request_duration_seconds`` | histogram | endpoint, status | time to answer |
| ``batch_tickets`` | histogram | | tickets per scoring call of the micro-batcher |
| ``batch_duration_seconds`` | histogram | | time per scoring call |
| ``queue_tickets`` | gauge | | tickets waiting to be scored (503 past ``--max_queue``) |
| ``tickets_routed_total`` | counter | route, queue | tickets routed, auto or triage, by predicted queue |
| ``errors_total`` | counter | kind | ``server`` (5xx), ``busy`` (503 on a full queue) |
| ``model_info`` | info | version, fingerprint, backend, quantization, queues | the export the service routes with |
| ``audit_tickets_total`` | counter | | auto-routable tickets the audit sample sent to a person |
| ``decision_log_pending`` ... | gauges | | the decision log's writer: pending, written, dropped, failed_writes |

``endpoint`` is the path for the service's own paths and "other" for anything else, so a scanner probing random
paths cannot grow the label set. One registry per app (not the process-wide default): two services in one process
(tests) keep their counts apart. The request middleware is pure ASGI, a few microseconds a request.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Response

from .context import ServiceContext, context

ENDPOINTS = ("/", "/predict", "/explain", "/similar", "/route-file", "/health", "/info", "/metrics", "/login",
             "/feedback")
METHODS = ("GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServiceMetrics:
    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

        self.registry = registry = CollectorRegistry()
        prefix = "ticket_classifier_"
        self.requests = Counter(prefix + "requests", "HTTP requests answered", ["endpoint", "method", "status"],
                                registry=registry)
        self.latency = Histogram(prefix + "request_duration_seconds", "Time to answer a request",
                                 ["endpoint", "status"], buckets=LATENCY_BUCKETS, registry=registry)
        self.batch_tickets = Histogram(prefix + "batch_tickets", "Tickets per scoring call of the micro-batcher",
                                       buckets=BATCH_BUCKETS, registry=registry)
        self.batch_seconds = Histogram(prefix + "batch_duration_seconds", "Time per scoring call",
                                       buckets=LATENCY_BUCKETS, registry=registry)
        self.queue = Gauge(prefix + "queue_tickets", "Tickets waiting to be scored", registry=registry)
        self.routed = Counter(prefix + "tickets_routed", "Tickets routed, by route (auto or triage) and predicted queue",
                              ["route", "queue"], registry=registry)
        self.errors = Counter(prefix + "errors", "Answers that failed: server (5xx), busy (503, a full queue)",
                              ["kind"], registry=registry)
        self.model = Info(prefix + "model", "The export the service routes with", registry=registry)
        self.audited = Counter(prefix + "audit_tickets", "Auto-routable tickets the audit sample sent to a person",
                               registry=registry)
        # Labelled children by label values: `labels()` validates and locks on every call; a dict lookup does not.
        self._children: dict = {}

    def _child(self, metric, *values):
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def describe_model(self, router, fingerprint: str) -> None:
        self.model.info({"version": router.model_dir.name, "fingerprint": fingerprint,
                         "backend": router.backend.name,
                         "quantization": str(getattr(router.backend, "quantize", None) or "none"),
                         "queues": str(len(router.labels))})

    def watch_queue(self, read) -> None:
        self.queue.set_function(read)

    def observe_batch(self, tickets: int, seconds: float) -> None:
        self.batch_tickets.observe(tickets)
        self.batch_seconds.observe(seconds)

    def count_routed(self, answers, decisions=None) -> None:
        """Tickets routed: the route each was sent (an audit ticket: triage), by the queue the model predicted."""
        for answer, decision in zip(answers, decisions or answers):
            self._child(self.routed, answer["route"], decision["label"]).inc()
            if answer.get("audit"):
                self.audited.inc()

    def watch_log(self, writer) -> None:
        """The decision log's writer: rows waiting, written, dropped and failed writes, read at each scrape."""
        from prometheus_client import Gauge

        for name, what, read in (
                ("pending", "Decisions waiting to be written to the decision log", lambda: writer.pending),
                ("written", "Decisions written to the decision log", lambda: writer.written),
                ("dropped", "Decisions dropped: the log's buffer was full (the database slow or down)",
                 lambda: writer.dropped),
                ("failed_writes", "Writes to the decision log that failed and were retried",
                 lambda: writer.failed_writes)):
            Gauge(f"ticket_classifier_decision_log_{name}", what, registry=self.registry).set_function(read)

    def observe_request(self, path: str, method: str, status: int, seconds: float) -> None:
        endpoint = path if path in ENDPOINTS else "other"
        method = method if method in METHODS else "other"  # a bounded label set, whatever a client sends
        status_text = str(status)
        self._child(self.requests, endpoint, method, status_text).inc()
        self._child(self.latency, endpoint, status_text).observe(seconds)
        if status >= 500:
            self._child(self.errors, "busy" if status == 503 else "server").inc()

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RequestMetrics:
    """ASGI middleware: every answered request counted and timed, whatever answered it (a guard's 401 included)."""

    def __init__(self, app, metrics: ServiceMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500

        async def send_and_note(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.observe_request(scope["path"], scope["method"], status, time.perf_counter() - started)


router = APIRouter()


@router.get("/metrics")
async def metrics(service: ServiceContext = Depends(context)):
    """Prometheus' text format (a key with the ``metrics`` scope when the service has keys)."""
    if service.metrics is None:
        return Response("metrics are off (serve --no_metrics)\n", status_code=404, media_type="text/plain")
    body, content_type = service.metrics.exposition()
    return Response(body, media_type=content_type)
