"""HTTP service (FastAPI + uvicorn, the `serve` extra): POST /predict, GET /health, GET /info.

Bad requests (malformed JSON, missing fields, wrong types, oversized batches or texts) get a 4xx with a
message that says what is wrong; the server keeps serving.
"""

import threading
from pathlib import Path


def create_app(model_dir: str | Path, max_batch: int = 256, max_chars: int = 20_000):
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, ConfigDict, Field, ValidationError

    from .predict import TicketRouter
    from .reports import top_k

    router = TicketRouter(model_dir)
    lock = threading.Lock()  # one forward pass at a time: torch already uses every core for one batch

    class Ticket(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        subject: str = Field(default="", max_length=max_chars)
        description: str = Field(default="", max_length=max_chars)

    class Batch(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        tickets: list[Ticket] = Field(min_length=1)

    app = FastAPI(title="ticket-classifier", version="0.1.0")

    @app.exception_handler(ValidationError)
    async def readable_validation_error(request: Request, error: ValidationError):
        problems = [
            f"{'.'.join(str(part) for part in item.get('loc', ())) or 'body'}: {item.get('msg')}"
            for item in error.errors()
        ]
        too_long = any(item.get("type") == "string_too_long" for item in error.errors())
        return JSONResponse(status_code=413 if too_long else 422, content={"detail": problems})

    def route(tickets: list[Ticket]) -> list[dict]:
        empty = [i for i, t in enumerate(tickets) if not (t.subject.strip() or t.description.strip())]
        if empty:
            raise HTTPException(422, detail=f"ticket(s) {empty[:10]} have no text: give a subject or a description")
        with lock:
            probabilities = router.predict_proba([t.subject for t in tickets], [t.description for t in tickets])
        _, _, routed = router.rule.decide(probabilities)
        return [
            {
                "label": top[0][0],
                "score": top[0][1],
                "top3": [{"label": label, "score": score} for label, score in top],
                "route": "auto" if auto else "triage",
            }
            for top, auto in zip(top_k(probabilities, router.labels), routed)
        ]

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.get("/info")
    def info():
        return {"model": str(Path(model_dir).resolve()), "labels": router.labels, "threshold": router.threshold,
                "max_batch": max_batch, "max_chars": max_chars}

    @app.post("/predict")
    async def predict(request: Request):
        """One ticket ({"subject", "description"}) or a batch ({"tickets": [...]})."""
        import json

        try:
            payload = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise HTTPException(400, detail=f"malformed JSON: {error}") from None
        if isinstance(payload, dict) and "tickets" in payload:
            if isinstance(payload["tickets"], list) and len(payload["tickets"]) > max_batch:
                raise HTTPException(413, detail=f"batch of {len(payload['tickets'])} tickets; at most {max_batch}")
            batch = Batch.model_validate(payload)
            return {"predictions": route(batch.tickets)}
        if not isinstance(payload, dict):
            raise HTTPException(422, detail=f"expected a JSON object, got {type(payload).__name__}")
        return route([Ticket.model_validate(payload)])[0]

    return app


def serve(model_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, max_batch: int = 256,
          max_chars: int = 20_000) -> None:
    try:
        import uvicorn
    except ImportError:
        raise ValueError("serve needs the serve extra: pip install 'ticket-classifier[serve]'") from None
    uvicorn.run(create_app(model_dir, max_batch=max_batch, max_chars=max_chars), host=host, port=port)
