"""`create_app`: the service's parts put together; `serve`: run it with uvicorn (`ticket-classifier serve`).

The request path, outside in: metrics (every answer counted and timed), guards (key, Host, Origin), then the
endpoint (Content-Type, body bounds, CSRF on forms, the micro-batcher). Each concern has its module:

    scoring.py   POST /predict, /explain, /similar      bodies.py   body bounds, JSON decoding, ticket models
    page.py      GET / and POST / (the triage page)     html.py     the page's HTML
    files.py     POST /route-file (a CSV routed)        guards.py   keys, Host, Origin, CSRF
    keys.py      the keys file and `keys` command       metrics.py  GET /metrics (Prometheus)
    feedback.py  POST /feedback (final queues back)
    context.py   what the endpoints share (router, limits, micro-batcher, decision log, audit sample, versions)

With a decision log (`--decision_log`, ticket_router/decision_log/) every routed ticket is recorded off the event
loop; with ``--audit_rate`` a seeded share of auto-routable tickets goes to a person. The service checks its
``model`` link every ``--reload_interval`` seconds and routes with a new version (after `calibrate` or `promote`)
without a restart; requests in flight finish on the version that scored them.

Scoring runs on one thread beside the event loop, fed by the micro-batcher (ticket_router/batching.py): concurrent
requests are scored together, `/health` answers while a batch is scored, and a full queue is a 503 with
Retry-After rather than a growing backlog. A micro-batch is scored as the router scores a file: sorted by length, in
batches of ``score_batch`` tickets, one batch per core at a time (`serve` makes the router with one worker per core).
Tickets of concurrent requests differ in length, and one call over all of them pads each to the longest: a
micro-batch of 32 `realistic` test tickets was scored 2.2x faster in sorted batches of 4 on two cores than in one
padded call (benchmarks/RESULTS.md, "The service: sorted small batches on every core").

On SIGTERM uvicorn stops taking connections, the requests in flight are answered, then the scoring thread finishes
what is queued.
"""

from __future__ import annotations

import ipaddress
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ..batching import QueueFull
from . import feedback, files, html, metrics, page, scoring
from .context import ServiceContext
from .guards import Guards, default_allowed_hosts
from .keys import KeyStore

VERSION = "0.1.0"
# Tickets per scoring call. Measured on two cores, 8 and 32 one-ticket clients (ONNX int8, benchmarks/RESULTS.md):
# 2 keeps both workers busy on the few tickets 8 clients leave waiting (266-271 requests/s; 4: 237; one padded call
# per micro-batch: 195-218) and is as fast as 4 at 32 clients (363-378 and 380 requests/s).
SCORE_BATCH = 2


def create_app(router, max_batch: int = 256, max_chars: int = 20_000, max_queue: int | None = None,
               batch_wait_ms: float = 5.0, docs: bool = False, score_batch: int = SCORE_BATCH,
               keys: KeyStore | None = None, allowed_hosts: list[str] | None = None, with_metrics: bool = True,
               decision_log=None, audit=None, store_text: bool = True, model_path=None, open_router=None,
               reload_interval: float = 10.0):
    """``router``: a `ticket_router.Router` (or anything with predict_proba, decisions, labels, rule).
    ``score_batch``: tickets per scoring call within a micro-batch (the router's ``batch_size``).
    ``keys``: every endpoint but /health needs a key of this store (None: no keys, for loopback).
    ``allowed_hosts``: the Host names answered (None or "*": any; `serve` passes the bind address and loopback).
    ``decision_log``: a `DecisionLog` every routed ticket is written to (``store_text``: with its text, else its
    hash only); ``audit``: an `AuditSample`. ``model_path``: the `model` link to watch every ``reload_interval``
    seconds, a new version loaded with ``open_router(path)``."""
    if not (isinstance(score_batch, int) and score_batch >= 1):
        raise ValueError(f"score_batch must be an integer >= 1, got {score_batch!r}")
    if audit is not None and audit.rate > 0 and decision_log is None:
        raise ValueError("--audit_rate needs --decision_log: an audit ticket's final queue is only useful recorded")
    service_metrics = metrics.ServiceMetrics() if with_metrics else None
    if service_metrics is not None and hasattr(router, "model_dir"):
        service_metrics.describe_model(router, getattr(router, "fingerprint", ""))
    service = ServiceContext(router, max_batch=max_batch, max_chars=max_chars, max_queue=max_queue,
                             batch_wait_ms=batch_wait_ms, score_batch=score_batch, metrics=service_metrics, keys=keys,
                             audit=audit, store_text=store_text, model_path=model_path, open_router=open_router)

    @asynccontextmanager
    async def lifespan(app):
        import asyncio

        service.start()
        if decision_log is not None:
            from ..decision_log.writer import LogWriter

            service.log_writer = LogWriter(decision_log)
            if service_metrics is not None:
                service_metrics.watch_log(service.log_writer)
        watcher = None
        if model_path is not None and open_router is not None and reload_interval > 0:
            await service.reload_if_moved()  # the lease on the version in use, at once
            watcher = asyncio.create_task(service.watch_model(reload_interval))
        yield
        if watcher is not None:
            watcher.cancel()
        # uvicorn has answered every request in flight by now; let the thread finish anything left queued.
        await run_in_threadpool(service.batcher.close, 30.0)
        if service.log_writer is not None:
            await run_in_threadpool(service.log_writer.close, 30.0)

    off = {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="ticket-classifier", version=VERSION, lifespan=lifespan, **({} if docs else off))
    app.state.context = service

    @app.exception_handler(ValidationError)
    async def readable_validation_error(request: Request, error: ValidationError):
        problems = [
            f"{'.'.join(str(part) for part in item.get('loc', ())) or 'body'}: {item.get('msg')}"
            for item in error.errors()
        ]
        too_big = any(item.get("type") in ("string_too_long", "too_long") for item in error.errors())
        return JSONResponse(status_code=413 if too_big else 422, content={"detail": problems})

    @app.exception_handler(QueueFull)
    async def busy(request: Request, error: QueueFull):
        return JSONResponse(status_code=503, content={"detail": f"busy: {error}"}, headers={"Retry-After": "1"})

    @app.exception_handler(page.PageRefused)
    async def page_refused(request: Request, error: page.PageRefused):
        return HTMLResponse(html.problem("Refused", error.message), status_code=error.status_code)

    @app.get("/health")
    async def health():
        """Up, and how the decision log fares (rows waiting, written, dropped, failed writes): a slow or down
        database never delays an answer, and is seen here."""
        if service.log_writer is None:
            return {"status": "ok"}
        log = service.log_writer.status()
        return {"status": "ok" if log["healthy"] else "degraded", "decision_log": log}

    @app.get("/info")
    async def info():
        batcher, router = service.batcher, service.router
        return {"labels": router.labels, "rule": router.rule.describe(), "backend": router.backend.name,
                "quantization": getattr(router.backend, "quantization", None),
                "model_version": getattr(getattr(router, "model_dir", None), "name", None),
                "model_fingerprint": getattr(router, "fingerprint", None),
                "decision_log": service.log_writer is not None,
                "audit_rate": service.audit.rate if service.audit is not None else 0.0,
                "max_batch": max_batch, "max_chars": max_chars, "max_body_bytes": service.max_body,
                "max_queue": batcher.max_queue if batcher else None, "queued": batcher.queued if batcher else 0,
                "score_batch": score_batch, "workers": getattr(router, "workers", 1),
                "keys": keys is not None, "version": VERSION}

    for part in (scoring, page, files, metrics, feedback):
        app.include_router(part.router)
    # Added last runs first: metrics see every answer, the guards' refusals included.
    app.add_middleware(Guards, keys=keys, allowed_hosts=allowed_hosts)
    if service_metrics is not None:
        app.add_middleware(metrics.RequestMetrics, metrics=service_metrics)
    return app


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, keys_file, insecure: bool) -> None:
    """Without keys the service answers anyone who reaches its port: loopback only, unless told --insecure."""
    if keys_file is None and not is_loopback(host) and not insecure:
        raise ValueError(f"--host {host} without --keys would let anyone who reaches the port route tickets: make a "
                         "key (ticket-classifier keys create --keys keys.json --name desk) and serve with --keys "
                         "keys.json, or pass --insecure")


def serve(model_dir, host: str = "127.0.0.1", port: int = 8000, max_batch: int = 256, max_chars: int = 20_000,
          backend: str = "torch", max_queue: int | None = None, batch_wait_ms: float = 5.0, docs: bool = False,
          workers: int | None = None, score_batch: int | None = None, keys_file=None,
          allowed_hosts: list[str] | None = None, insecure: bool = False, with_metrics: bool = True,
          decision_log: str | None = None, audit_rate: float = 0.0, audit_seed: int = 0, log_text: bool = True,
          reload_interval: float = 10.0) -> None:
    """``workers``: scoring calls run at once, each on one core (default: one per core this process may use)."""
    check_exposure(host, keys_file, insecure)
    try:
        import uvicorn
    except ImportError:
        raise ValueError("serve needs the serve extra: pip install 'ticket-classifier[serve]'") from None
    from ..router import Router, available_cores

    if not 0 <= reload_interval <= 60:
        raise ValueError(f"--reload_interval must be 0 (never) to 60 seconds, got {reload_interval}")
    audit = None
    if audit_rate:
        from ..decision_log.audit import AuditSample

        audit = AuditSample(audit_rate, audit_seed)
    log = None
    if decision_log is not None:
        from ..decision_log.store import DecisionLog

        log = DecisionLog.open(decision_log)
    keys = KeyStore(keys_file) if keys_file is not None else None
    cores = available_cores() if workers is None else workers

    def open_router(path):
        return Router(path, backend=backend, workers=cores)

    router = open_router(model_dir)
    app = create_app(router, max_batch=max_batch, max_chars=max_chars, max_queue=max_queue, batch_wait_ms=batch_wait_ms,
                     docs=docs, score_batch=SCORE_BATCH if score_batch is None else score_batch, keys=keys,
                     allowed_hosts=allowed_hosts or default_allowed_hosts(host), with_metrics=with_metrics,
                     decision_log=log, audit=audit, store_text=log_text, model_path=model_dir,
                     open_router=open_router, reload_interval=reload_interval)
    uvicorn.run(app, host=host, port=port, timeout_graceful_shutdown=30)
