"""What every endpoint of the service shares: the router, the limits, the micro-batcher, the metrics and the keys.

`create_app` (ticket_router/service/app.py) makes one `ServiceContext` and keeps it on ``app.state.context``; the
endpoints reach it through the `context` dependency. Every path that scores a ticket goes through `score`, that is
through the micro-batcher: one queue, one bound, 503 with Retry-After when it is full.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np
from fastapi import HTTPException, Request

from ..batching import MicroBatcher
from ..explain import MAX_PASSES, occlusion_inputs
from .bodies import body_limit, ticket_models


@dataclass
class ServiceContext:
    router: object
    max_batch: int = 256
    max_chars: int = 20_000
    max_queue: int | None = None
    batch_wait_ms: float = 5.0
    score_batch: int = 2
    metrics: object | None = None  # ticket_router.service.metrics.ServiceMetrics
    keys: object | None = None  # ticket_router.service.keys.KeyStore
    batcher: MicroBatcher | None = field(default=None, init=False)

    def __post_init__(self):
        self.max_body = body_limit(self.max_batch, self.max_chars)
        # /similar and /explain take one ticket (and a k): their bodies are bounded at one ticket's size.
        self.one_ticket_body = body_limit(1, self.max_chars)
        self.Ticket, self.Batch = ticket_models(self.max_batch, self.max_chars)

    def start(self) -> None:
        """The scoring thread (at application start-up)."""
        router, score_batch = self.router, self.score_batch

        def score(subjects, descriptions, vectors=False):
            return router.predict_proba(subjects, descriptions, batch_size=score_batch, vectors=vectors)

        self.batcher = MicroBatcher(score, max_batch=self.max_batch, max_wait=self.batch_wait_ms / 1000,
                                    max_queue=self.max_queue or 4 * self.max_batch,
                                    on_batch=self.metrics.observe_batch if self.metrics else None)
        if self.metrics:
            self.metrics.watch_queue(lambda: self.batcher.queued)

    async def score(self, subjects: list[str], descriptions: list[str], vectors: bool = False):
        """Probabilities of these tickets (and their sentence vectors when ``vectors``), through the micro-batcher."""
        return await asyncio.wrap_future(self.batcher.submit(subjects, descriptions, vectors))

    async def score_with_variants(self, subject: str, description: str, vectors: bool = False):
        """The ticket and its occlusion variants (ticket_router/explain.py) as one job of at most ``max_batch``
        texts: their probabilities (the ticket's first), the ticket's sentence vector when ``vectors``, and the units.
        The variants are at most ``max_batch - 1``: with the ticket itself, never more than one job may hold."""
        if self.max_batch < 2:
            raise HTTPException(422, detail="explaining a ticket scores it with its variants: it needs --max_batch 2 "
                                            "or more")
        subjects, descriptions, units = occlusion_inputs(subject, description, min(MAX_PASSES, self.max_batch - 1))
        scored = await self.score(subjects, descriptions, vectors)
        probabilities, sentence_vectors = scored if vectors else (scored, None)
        return probabilities, (None if sentence_vectors is None else sentence_vectors[:1]), units

    def decisions(self, probabilities: np.ndarray) -> list[dict]:
        """The router's decisions, counted in the metrics (tickets routed, auto or triage, per queue)."""
        decisions = self.router.decisions(probabilities)
        if self.metrics:
            self.metrics.count_routed(decisions)
        return decisions


def context(request: Request) -> ServiceContext:
    """The dependency every endpoint takes."""
    return request.app.state.context
