"""The JSON endpoints that score tickets: POST /predict, /explain and /similar (scope ``route``).

Each takes ``application/json`` only (415 otherwise), bounds its body before reading it, decodes a large body off the
event loop, and scores through the micro-batcher (503 with Retry-After when its queue is full). /explain and
/similar take one ticket, so their bodies are bounded at one ticket's size, not a batch's.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from ..explain import explanation
from ..similar import MAX_K
from .bodies import decode, off_the_loop, read_body, require_json
from .context import ServiceContext, context

router = APIRouter(dependencies=[Depends(require_json)])


def parse_tickets(body: bytes, service: ServiceContext):
    """JSON to validated tickets: one ({"subject", "description"}) or a batch ({"tickets": [...]})."""
    payload = decode(body)
    if isinstance(payload, dict) and "tickets" in payload:
        if isinstance(payload["tickets"], list) and len(payload["tickets"]) > service.max_batch:
            raise HTTPException(413, detail=f"batch of {len(payload['tickets'])} tickets; at most {service.max_batch}")
        return service.Batch.model_validate(payload).tickets, True
    if not isinstance(payload, dict):
        raise HTTPException(422, detail=f"expected a JSON object, got {type(payload).__name__}")
    return [service.Ticket.model_validate(payload)], False


def parse_one_ticket(body: bytes, service: ServiceContext, with_k: bool = False):
    """One ticket (and, for /similar, its ``k``): 422 for a batch, a bad k or no text."""
    payload = decode(body)
    if not isinstance(payload, dict):
        raise HTTPException(422, detail=f"expected a JSON object, got {type(payload).__name__}")
    if "tickets" in payload:
        raise HTTPException(422, detail="this endpoint takes one ticket ({\"subject\", \"description\"}), not a batch")
    k = None
    if with_k:
        k = payload.pop("k", 5)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise HTTPException(422, detail=f"k must be an integer from 1 to {MAX_K}, got {k!r}")
    ticket = service.Ticket.model_validate(payload)
    if not (ticket.subject.strip() or ticket.description.strip()):
        raise HTTPException(422, detail="the ticket has no text: give a subject or a description")
    return ticket, k


@router.post("/predict")
async def predict(request: Request, service: ServiceContext = Depends(context)):
    """One ticket ({"subject", "description"}) or a batch ({"tickets": [...]})."""
    body = await read_body(request, service.max_body)
    tickets, is_batch = await off_the_loop(parse_tickets, body, service)
    empty = [i for i, t in enumerate(tickets) if not (t.subject.strip() or t.description.strip())]
    if empty:
        raise HTTPException(422, detail=f"ticket(s) {empty[:10]} have no text: give a subject or a description")
    subjects, descriptions = [t.subject for t in tickets], [t.description for t in tickets]
    scored = await service.score(subjects, descriptions)
    answers = service.decide(scored, subjects, descriptions, [t.id for t in tickets], "predict")
    return {"predictions": answers} if is_batch else answers[0]


@router.post("/explain")
async def explain(request: Request, service: ServiceContext = Depends(context)):
    """The words that decided one ticket ({"subject", "description"}): occlusion, the ticket and at most
    ``max_batch - 1`` (and at most 64) variants scored as one job of the /predict queue (ticket_router/explain.py)."""
    body = await read_body(request, service.one_ticket_body)
    ticket, _ = await off_the_loop(parse_one_ticket, body, service)
    scored, units = await service.score_with_variants(ticket.subject, ticket.description)
    return explanation(scored.probabilities, units, scored.router.labels)


@router.post("/similar")
async def similar(request: Request, service: ServiceContext = Depends(context)):
    """The ``k`` (default 5, at most 20) training tickets most similar to one ticket, from the export's index:
    {"subject", "description", "k"}. The ticket's sentence vector comes from the micro-batcher; the index is read
    (on first use) and searched in a worker thread."""
    body = await read_body(request, service.one_ticket_body)
    ticket, k = await off_the_loop(parse_one_ticket, body, service, True)
    if not service.router.has_similar_index:
        raise HTTPException(404, detail="this export has no similar-ticket index (trained without similar_index)")
    scored = await service.score([ticket.subject], [ticket.description], vectors=True)
    found = await run_in_threadpool(scored.router.similar_from_vectors, scored.vectors, k)
    return {"similar": found[0]}
