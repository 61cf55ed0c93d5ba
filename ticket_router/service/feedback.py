"""POST /feedback: final queues back from the desk (scope ``feedback``), into the decision log.

    {"id": "INC0012345", "queue": "Network"}                      one ticket
    {"feedback": [{"id": ..., "queue": ..., "closing_queue": ...}, ...]}   a batch (at most MAX_FEEDBACK)

``queue`` is the first queue a person chose (ticket_router/decision_log/feedback.py says why and where a desk's
system keeps it); ``closing_queue``, optional, where the ticket ended. The answer counts matched, unknown and changed
ids; sending the same feedback twice changes nothing. Written in a worker thread, after the decisions still waiting
in memory (a ticket routed a moment ago is matched).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..contract import TICKET_ID_LENGTH
from .bodies import decode, off_the_loop, read_body, require_json
from .context import ServiceContext, context

router = APIRouter(dependencies=[Depends(require_json)])
MAX_FEEDBACK = 10_000
QUEUE_LENGTH = 300


class FinalQueue(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    id: str = Field(min_length=1, max_length=TICKET_ID_LENGTH)
    queue: str = Field(min_length=1, max_length=QUEUE_LENGTH)
    closing_queue: str | None = Field(default=None, max_length=QUEUE_LENGTH)


class FinalQueues(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    feedback: list[FinalQueue] = Field(min_length=1, max_length=MAX_FEEDBACK)


def parse_feedback(body: bytes) -> list[FinalQueue]:
    payload = decode(body)
    if isinstance(payload, dict) and "feedback" in payload:
        if isinstance(payload["feedback"], list) and len(payload["feedback"]) > MAX_FEEDBACK:
            raise HTTPException(413, detail=f"{len(payload['feedback'])} final queues; at most {MAX_FEEDBACK} a request")
        return FinalQueues.model_validate(payload).feedback
    if not isinstance(payload, dict):
        raise HTTPException(422, detail=f"expected a JSON object, got {type(payload).__name__}")
    return [FinalQueue.model_validate(payload)]


@router.post("/feedback")
async def feedback(request: Request, service: ServiceContext = Depends(context)):
    if service.log_writer is None:
        raise HTTPException(409, detail="this service keeps no decision log: serve with --decision_log to take final "
                                        "queues back")
    body = await read_body(request, MAX_FEEDBACK * (TICKET_ID_LENGTH + 2 * QUEUE_LENGTH + 64) * 6 + 1024)
    items = await off_the_loop(parse_feedback, body)

    def store():
        from ..decision_log.feedback import apply_feedback

        service.log_writer.flush()  # the decisions still in memory first: an id routed a moment ago matches
        return apply_feedback(service.log_writer.log, [(i.id, i.queue, i.closing_queue) for i in items], "api",
                              known_queues=service.router.labels)

    try:
        return await run_in_threadpool(store)
    except Exception as error:  # noqa: BLE001  (the database down: say so, the desk sends it again)
        from ..decision_log.store import short

        raise HTTPException(503, detail=f"the decision log cannot take feedback now ({short(error)}); send it again",
                            headers={"Retry-After": "5"}) from None
