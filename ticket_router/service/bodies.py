"""Request bodies: bounded before they are read (Content-Length) and while they stream, JSON only where JSON is
expected (415 otherwise), decoded off the event loop when large, validated into tickets (422 / 413 with the field).
"""

from __future__ import annotations

import json

from fastapi import HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..contract import TICKET_ID_LENGTH

SMALL_BODY = 64 * 1024  # bytes decoded on the event loop (well under a millisecond); larger bodies go to a thread
JSON_TYPES = ("application/json",)


def body_limit(max_batch: int, max_chars: int) -> int:
    """Bytes a request may hold: every ticket at the longest subject and description, each character written as
    a 6-byte JSON escape (\\u00e9), plus room for keys and punctuation."""
    return max_batch * (2 * max_chars * 6 + 256) + 1024


def ticket_models(max_batch: int, max_chars: int):
    """The pydantic models of one ticket and of a batch, with the service's limits."""

    class Ticket(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        subject: str = Field(default="", max_length=max_chars)
        description: str = Field(default="", max_length=max_chars)
        # The desk's ticket id (INC0012345), echoed in the answer and kept in the decision log; made up when absent.
        id: str | None = Field(default=None, min_length=1, max_length=TICKET_ID_LENGTH, pattern=r"\S")

    class Batch(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        tickets: list[Ticket] = Field(min_length=1, max_length=max_batch)

    return Ticket, Batch


def require_json(request: Request) -> None:
    """415 unless the body is declared JSON: a form post from another site (text/plain, urlencoded, multipart) never
    reaches a JSON endpoint, and a browser cannot send application/json across sites without a CORS preflight,
    which this service never grants."""
    declared = request.headers.get("content-type", "")
    media_type = declared.split(";", 1)[0].strip().lower()
    if media_type not in JSON_TYPES:
        raise HTTPException(415, detail=f"Content-Type {declared or '(none)'!r}: send application/json")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 from its Content-Length or as soon as the stream passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(400, detail=f"Content-Length {declared!r} is not a number")
        if int(declared) > limit:
            raise HTTPException(413, detail=f"body of {int(declared)} bytes; at most {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, detail=f"body over {limit} bytes")
    return bytes(body)


def decode(body: bytes):
    """The JSON body (400 when it is not JSON)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:  # JSONDecodeError is a ValueError
        raise HTTPException(400, detail=f"malformed JSON: {str(error)[:200]}") from None


async def off_the_loop(function, body: bytes, *args):
    """``function(body, *args)``: here for a small body, in a thread for a large one (parsing megabytes of JSON
    would stall every other request)."""
    return function(body, *args) if len(body) < SMALL_BODY else await run_in_threadpool(function, body, *args)
