"""HTTP service (FastAPI + uvicorn, the `serve` extra): POST /predict, GET /health, GET /info.

Scoring runs on one thread beside the event loop, fed by a micro-batcher (ticket_router/batching.py): concurrent
requests are scored together, `/health` answers while a batch is scored, and a full queue is a 503 with
Retry-After rather than a growing backlog. A micro-batch is scored as the router scores a file: sorted by length, in
batches of ``score_batch`` tickets, one batch per core at a time (`serve` makes the router with one worker per core).
Tickets of concurrent requests differ in length, and one call over all of them pads each to the longest: a
micro-batch of 32 `realistic` test tickets was scored 2.2x faster in sorted batches of 4 on two cores than in one
padded call (benchmarks/RESULTS.md, "The service: sorted small batches on every core").

Bodies are bounded before they are read (Content-Length) and while they stream; malformed JSON of any kind is a 400;
fields and batches have limits (413). On SIGTERM uvicorn stops taking connections, the requests in flight are
answered, then the scoring thread finishes what is queued.
"""


import asyncio
import json
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

from .batching import MicroBatcher, QueueFull

VERSION = "0.1.0"
SMALL_BODY = 64 * 1024  # bytes parsed on the event loop (well under a millisecond)
# Tickets per scoring call. Measured on two cores, 8 and 32 one-ticket clients (ONNX int8, benchmarks/RESULTS.md):
# 2 keeps both workers busy on the few tickets 8 clients leave waiting (266-271 requests/s; 4: 237; one padded call
# per micro-batch: 195-218) and is as fast as 4 at 32 clients (363-378 and 380 requests/s).
SCORE_BATCH = 2


def body_limit(max_batch: int, max_chars: int) -> int:
    """Bytes a request may hold: every ticket at the longest subject and description, each character written as
    a 6-byte JSON escape (\\u00e9), plus room for keys and punctuation."""
    return max_batch * (2 * max_chars * 6 + 256) + 1024


def create_app(router, max_batch: int = 256, max_chars: int = 20_000, max_queue: int | None = None,
               batch_wait_ms: float = 5.0, docs: bool = False, score_batch: int = SCORE_BATCH):
    """``router``: a `ticket_router.Router` (or anything with predict_proba, decisions, labels, rule).
    ``score_batch``: tickets per scoring call within a micro-batch (the router's ``batch_size``)."""
    if not (isinstance(score_batch, int) and score_batch >= 1):
        raise ValueError(f"score_batch must be an integer >= 1, got {score_batch!r}")
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    from . import page
    from .explain import MAX_PASSES, explanation, occlusion_inputs
    from pydantic import BaseModel, ConfigDict, Field, ValidationError
    from starlette.concurrency import run_in_threadpool

    max_body = body_limit(max_batch, max_chars)
    state = {}

    class Ticket(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        subject: str = Field(default="", max_length=max_chars)
        description: str = Field(default="", max_length=max_chars)

    class Batch(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        tickets: list[Ticket] = Field(min_length=1, max_length=max_batch)

    @asynccontextmanager
    async def lifespan(app):
        batcher = MicroBatcher(lambda s, d: router.predict_proba(s, d, batch_size=score_batch), max_batch=max_batch,
                               max_wait=batch_wait_ms / 1000, max_queue=max_queue or 4 * max_batch)
        state["batcher"] = batcher
        yield
        # uvicorn has answered every request in flight by now; let the thread finish anything left queued.
        await run_in_threadpool(batcher.close, 30.0)

    off = {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="ticket-classifier", version=VERSION, lifespan=lifespan, **({} if docs else off))

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

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise HTTPException(400, detail=f"Content-Length {declared!r} is not a number")
            if int(declared) > max_body:
                raise HTTPException(413, detail=f"body of {int(declared)} bytes; at most {max_body}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                raise HTTPException(413, detail=f"body over {max_body} bytes")
        return bytes(body)

    def decode(body: bytes):
        """The JSON body (400 when it is not JSON)."""
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as error:  # JSONDecodeError is a ValueError
            raise HTTPException(400, detail=f"malformed JSON: {str(error)[:200]}") from None

    def parse(body: bytes):
        """JSON to validated tickets."""
        payload = decode(body)
        if isinstance(payload, dict) and "tickets" in payload:
            if isinstance(payload["tickets"], list) and len(payload["tickets"]) > max_batch:
                raise HTTPException(413, detail=f"batch of {len(payload['tickets'])} tickets; at most {max_batch}")
            return Batch.model_validate(payload).tickets, True
        if not isinstance(payload, dict):
            raise HTTPException(422, detail=f"expected a JSON object, got {type(payload).__name__}")
        return [Ticket.model_validate(payload)], False

    async def score_with_variants(subject: str, description: str):
        """The ticket and its occlusion variants (ticket_router/explain.py), scored through the /predict queue as one
        job of at most max_batch texts: their probabilities, the ticket's first, and the occluded units."""
        if max_batch < 2:
            raise HTTPException(422, detail="explaining a ticket scores it with its variants: it needs --max_batch 2 "
                                            "or more")
        subjects, descriptions, units = occlusion_inputs(subject, description, min(MAX_PASSES, max_batch - 1))
        return await asyncio.wrap_future(state["batcher"].submit(subjects, descriptions)), units

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/info")
    async def info():
        batcher = state.get("batcher")
        return {"labels": router.labels, "rule": router.rule.describe(), "backend": router.backend.name,
                "quantization": getattr(router.backend, "quantization", None),
                "max_batch": max_batch, "max_chars": max_chars, "max_body_bytes": max_body,
                "max_queue": batcher.max_queue if batcher else None, "queued": batcher.queued if batcher else 0,
                "score_batch": score_batch, "workers": getattr(router, "workers", 1),
                "version": VERSION}

    @app.post("/predict")
    async def predict(request: Request):
        """One ticket ({"subject", "description"}) or a batch ({"tickets": [...]})."""
        body = await read_body(request)
        # A large body takes a while to parse: off the event loop. A small one is parsed here, sparing a thread hop.
        tickets, is_batch = parse(body) if len(body) < SMALL_BODY else await run_in_threadpool(parse, body)
        empty = [i for i, t in enumerate(tickets) if not (t.subject.strip() or t.description.strip())]
        if empty:
            raise HTTPException(422, detail=f"ticket(s) {empty[:10]} have no text: give a subject or a description")
        future = state["batcher"].submit([t.subject for t in tickets], [t.description for t in tickets])
        decisions = router.decisions(await asyncio.wrap_future(future))
        return {"predictions": decisions} if is_batch else decisions[0]

    @app.get("/", response_class=HTMLResponse)
    async def triage_page():
        """The triage page (ticket_router/page.py)."""
        return page.home(router.labels, router.rule.describe())

    async def read_form(request: Request):
        declared = request.headers.get("content-length")
        if declared is None or not declared.isdigit() or int(declared) > max_body:
            raise HTTPException(413, detail=f"a form of at most {max_body} bytes, with its Content-Length")
        return await request.form(max_files=1, max_fields=8, max_part_size=max_body)

    @app.post("/", response_class=HTMLResponse)
    async def triage_ticket(request: Request):
        """One ticket from the page's form: decision and why, prediction set, words that decided, similar tickets."""
        form = await read_form(request)
        subject, description = str(form.get("subject") or ""), str(form.get("description") or "")
        error = ("give a subject or a description" if not (subject.strip() or description.strip()) else
                 f"a field holds more than {max_chars} characters" if max(len(subject), len(description)) > max_chars
                 else "")
        if error:
            return HTMLResponse(page.home(router.labels, router.rule.describe(), error, subject[:max_chars],
                                          description[:max_chars]), status_code=422)
        probabilities, units = await score_with_variants(subject, description)
        decision = router.decisions(probabilities[:1])[0]
        predicted = router.labels.index(decision["label"])
        threshold = router.rule.label_thresholds[predicted]
        reason = page.why(decision, threshold, predicted in router.rule.triage_ids)
        similar = None
        if router.similar_index is not None:
            similar = (await run_in_threadpool(router.similar_tickets, [subject], [description], 5))[0]
        return page.result(subject, description, decision, reason, explanation(probabilities, units, router.labels),
                           similar, router.set_alpha, router.rule.describe())

    @app.post("/route-file")
    async def route_file(request: Request):
        """A CSV uploaded from the page, routed and sent back as a CSV download (at most max_batch rows)."""
        import tempfile

        from .tables import escape_formulas, read_input, route_frame

        form = await read_form(request)
        upload = form.get("file")
        columns = str(form.get("text_columns") or "subject description").split()
        if upload is None or not hasattr(upload, "read"):
            return HTMLResponse(page.home(router.labels, router.rule.describe(), "choose a CSV file"), status_code=422)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "upload.csv"
            path.write_bytes(await upload.read())
            try:
                frame = read_input(path, columns, "error")
                if len(frame) > max_batch:
                    raise ValueError(f"{len(frame)} rows; the page routes at most {max_batch} (the service's --max_batch)")
                too_long = [c for c in columns if frame[c].astype(str).str.len().max() > max_chars]
                if too_long:
                    raise ValueError(f"column(s) {too_long} hold more than {max_chars} characters in a row")
            except ValueError as problem:
                message = str(problem).replace(str(path), getattr(upload, "filename", None) or "the upload")
                return HTMLResponse(page.home(router.labels, router.rule.describe(), message), status_code=422)
        routed = await run_in_threadpool(route_frame, router, frame, columns)
        name = Path(getattr(upload, "filename", None) or "tickets.csv").stem
        return Response(escape_formulas(routed).to_csv(index=False), media_type="text/csv",
                        headers={"Content-Disposition": f"attachment; filename=\"{quote(name)}_routed.csv\""})

    @app.post("/similar")
    async def similar(request: Request):
        """The ``k`` (default 5, at most 20) training tickets most similar to one ticket, from the export's index:
        {"subject", "description", "k"}."""
        from .similar import MAX_K

        payload = decode(await read_body(request))
        if not isinstance(payload, dict):
            raise HTTPException(422, detail=f"expected a JSON object, got {type(payload).__name__}")
        k = payload.pop("k", 5)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise HTTPException(422, detail=f"k must be an integer from 1 to {MAX_K}, got {k!r}")
        ticket = Ticket.model_validate(payload)
        if not (ticket.subject.strip() or ticket.description.strip()):
            raise HTTPException(422, detail="the ticket has no text: give a subject or a description")
        if router.similar_index is None:
            raise HTTPException(404, detail="this export has no similar-ticket index (trained without similar_index)")
        found = await run_in_threadpool(router.similar_tickets, [ticket.subject], [ticket.description], k)
        return {"similar": found[0]}

    @app.post("/explain")
    async def explain(request: Request):
        """The words that decided one ticket ({"subject", "description"}): occlusion, at most MAX_PASSES + 1 texts
        scored through the same queue as /predict (ticket_router/explain.py)."""
        tickets, is_batch = parse(await read_body(request))
        if is_batch:
            raise HTTPException(422, detail="/explain takes one ticket ({\"subject\", \"description\"}), not a batch")
        ticket = tickets[0]
        if not (ticket.subject.strip() or ticket.description.strip()):
            raise HTTPException(422, detail="the ticket has no text: give a subject or a description")
        probabilities, units = await score_with_variants(ticket.subject, ticket.description)
        return explanation(probabilities, units, router.labels)

    return app


def serve(model_dir, host: str = "127.0.0.1", port: int = 8000, max_batch: int = 256, max_chars: int = 20_000,
          backend: str = "torch", max_queue: int | None = None, batch_wait_ms: float = 5.0, docs: bool = False,
          workers: int | None = None, score_batch: int | None = None) -> None:
    """``workers``: scoring calls run at once, each on one core (default: one per core this process may use)."""
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError:
        raise ValueError("serve needs the serve extra: pip install 'ticket-classifier[serve]'") from None
    from .router import Router, available_cores

    router = Router(model_dir, backend=backend, workers=available_cores() if workers is None else workers)
    app = create_app(router, max_batch=max_batch, max_chars=max_chars, max_queue=max_queue, batch_wait_ms=batch_wait_ms,
                     docs=docs, score_batch=SCORE_BATCH if score_batch is None else score_batch)
    uvicorn.run(app, host=host, port=port, timeout_graceful_shutdown=30)
