"""POST /route-file: a CSV uploaded from the triage page, routed and sent back as a CSV download (at most
``max_batch`` rows, each field at most ``max_chars`` characters). A column ``id`` holds the desk's ticket ids (made
up where absent); each row comes back with its ``id``, and is logged under it with a decision log.

The upload is parsed and checked in a worker thread, its tickets are scored through the micro-batcher as one job
(503 when the queue is full), and the routed CSV is written in a worker thread: nothing of it runs on the event loop.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import quote

import pandas as pd
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ..contract import TICKET_ID_LENGTH
from ..tables import escape_formulas, frame_texts, read_input, routed_frame
from .context import ServiceContext, context
from .page import checked_form, home

router = APIRouter()


def read_upload(data: bytes, filename: str, columns: list[str], max_rows: int, max_chars: int):
    """The uploaded CSV as a frame and its texts; ValueError naming the file when it cannot be routed here."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "upload.csv"
        path.write_bytes(data)
        try:
            frame = read_input(path, columns, "error")
        except ValueError as problem:
            raise ValueError(str(problem).replace(str(path), filename)) from None
    if len(frame) > max_rows:
        raise ValueError(f"{len(frame)} rows; the page routes at most {max_rows} (the service's --max_batch)")
    too_long = [c for c in columns if frame[c].astype(str).str.len().max() > max_chars]
    if too_long:
        raise ValueError(f"column(s) {too_long} hold more than {max_chars} characters in a row")
    if "id" in frame.columns and frame["id"].astype(str).str.strip().str.len().max() > TICKET_ID_LENGTH:
        raise ValueError(f"column 'id' holds a ticket id longer than {TICKET_ID_LENGTH} characters")
    return frame, frame_texts(frame, columns)


def ticket_ids(frame, has_text) -> list:
    """The desk's ids of the rows with text (column ``id``; None where blank: one is made up)."""
    if "id" not in frame.columns:
        return [None] * int(has_text.sum())
    return [None if pd.isna(value) or not str(value).strip() else str(value).strip()
            for value in frame.loc[has_text, "id"]]


def routed_csv(router, frame, has_text, probabilities, answers: list[dict], fields: dict | None = None) -> str:
    """The routed CSV (formula-looking cells escaped): every row with its routing and its ticket id; an audit
    ticket's row goes to triage with the model's suggestion left blank."""
    routed = routed_frame(router, frame, has_text, probabilities, fields)
    if "id" not in routed.columns:
        routed.insert(0, "id", None)
    rows = routed.index[has_text]
    routed.loc[rows, "id"] = [answer["id"] for answer in answers]
    if answers and "audit" in answers[0]:
        audited = [answer["audit"] for answer in answers]
        routed["audit"] = False
        routed.loc[rows, "audit"] = audited
        hidden = rows[audited]
        routed.loc[hidden, "route"] = "triage"
        for column in ("predicted", "score", "routing_score", "top3", "prediction_set"):
            if column in routed.columns:
                routed.loc[hidden, column] = None
    return escape_formulas(routed).to_csv(index=False)


@router.post("/route-file")
async def route_file(request: Request, service: ServiceContext = Depends(context)):
    form = await checked_form(request, service)
    upload = form.get("file")
    columns = str(form.get("text_columns") or "subject description").split()
    if upload is None or not hasattr(upload, "read"):
        return home(request, service, "choose a CSV file", status_code=422)
    filename = getattr(upload, "filename", None) or "the upload"
    try:
        frame, (subjects, descriptions, has_text) = await run_in_threadpool(
            read_upload, await upload.read(), filename, columns, service.max_batch, service.max_chars)
    except ValueError as problem:
        return home(request, service, str(problem), status_code=422)
    router, probabilities, answers, fields = service.router, None, [], None
    if has_text.any():
        texts = subjects[has_text].tolist(), descriptions[has_text].tolist()
        ids = ticket_ids(frame, has_text)
        scored = await service.score(*texts)
        router, probabilities, fields = scored.router, scored.probabilities, scored.fields
        answers = service.decide(scored, *texts, ids, "file")
    text = await run_in_threadpool(routed_csv, router, frame, has_text, probabilities, answers, fields)
    name = Path(getattr(upload, "filename", None) or "tickets.csv").stem
    return Response(text, media_type="text/csv",
                    headers={"Content-Disposition": f"attachment; filename=\"{quote(name)}_routed.csv\""})
