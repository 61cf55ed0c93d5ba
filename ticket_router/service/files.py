"""POST /route-file: a CSV uploaded from the triage page, routed and sent back as a CSV download (at most
``max_batch`` rows, each field at most ``max_chars`` characters).

The upload is parsed and checked in a worker thread, its tickets are scored through the micro-batcher as one job
(503 when the queue is full), and the routed CSV is written in a worker thread: nothing of it runs on the event loop.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

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
    return frame, frame_texts(frame, columns)


def routed_csv(router, frame, has_text, probabilities) -> tuple[str, list[dict]]:
    """The routed CSV (formula-looking cells escaped) and the decisions made, for the metrics."""
    routed = routed_frame(router, frame, has_text, probabilities)
    made = routed[has_text]
    decisions = [{"route": route, "label": label} for route, label in zip(made["route"], made["predicted"])]
    return escape_formulas(routed).to_csv(index=False), decisions


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
    probabilities = None
    if has_text.any():
        probabilities = await service.score(subjects[has_text].tolist(), descriptions[has_text].tolist())
    text, decisions = await run_in_threadpool(routed_csv, service.router, frame, has_text, probabilities)
    if service.metrics:
        service.metrics.count_routed(decisions)
    name = Path(getattr(upload, "filename", None) or "tickets.csv").stem
    return Response(text, media_type="text/csv",
                    headers={"Content-Disposition": f"attachment; filename=\"{quote(name)}_routed.csv\""})
