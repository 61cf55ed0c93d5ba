"""What every endpoint of the service shares: the router in use, the limits, the micro-batcher, the metrics, the keys,
the decision log and the audit sample.

`create_app` (ticket_router/service/app.py) makes one `ServiceContext` and keeps it on ``app.state.context``; the
endpoints reach it through the `context` dependency. Every path that scores a ticket goes through `score`, that is
through the micro-batcher: one queue, one bound, 503 with Retry-After when it is full. A batch is scored by the
version in use when the batch is taken, and its answers are decided by that same version (`Scored.router`): a new
version picked up meanwhile (`watch_model`) never mixes one version's probabilities with another's rule.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool

from ..batching import MicroBatcher
from ..explain import MAX_PASSES, occlusion_inputs
from .bodies import body_limit, ticket_models

logger = logging.getLogger(__name__)


@dataclass
class Scored:
    """Rows scored by one version: its router, the probabilities, (when asked for) the sentence vectors, and the
    extra fields' probabilities ({name: array})."""

    router: object
    probabilities: np.ndarray
    vectors: np.ndarray | None = None
    fields: dict = field(default_factory=dict)

    def rows(self, part: slice) -> "Scored":
        return Scored(self.router, self.probabilities[part], None if self.vectors is None else self.vectors[part],
                      {name: values[part] for name, values in self.fields.items()})


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
    log_writer: object | None = None  # ticket_router.decision_log.writer.LogWriter
    audit: object | None = None  # ticket_router.decision_log.audit.AuditSample
    store_text: bool = True
    model_path: Path | None = None  # the `model` link (or folder) to watch for new versions
    open_router: object | None = None  # path -> Router, for a new version
    batcher: MicroBatcher | None = field(default=None, init=False)

    def __post_init__(self):
        self.max_body = body_limit(self.max_batch, self.max_chars)
        # /similar and /explain take one ticket (and a k): their bodies are bounded at one ticket's size.
        self.one_ticket_body = body_limit(1, self.max_chars)
        self.Ticket, self.Batch = ticket_models(self.max_batch, self.max_chars)
        self.failed_target: str | None = None

    def start(self) -> None:
        """The scoring thread (at application start-up)."""
        score_batch = self.score_batch

        def score(subjects, descriptions, vectors=False):
            router = self.router  # the version in use now scores this whole batch
            if not hasattr(router, "score"):  # a stand-in router with predict_proba alone (tests)
                result = router.predict_proba(subjects, descriptions, batch_size=score_batch, vectors=vectors)
                return Scored(router, *result) if vectors else Scored(router, result)
            scores = router.score(subjects, descriptions, batch_size=score_batch, vectors=vectors)
            return Scored(router, scores.probabilities, scores.vectors, scores.fields)

        self.batcher = MicroBatcher(score, max_batch=self.max_batch, max_wait=self.batch_wait_ms / 1000,
                                    max_queue=self.max_queue or 4 * self.max_batch,
                                    on_batch=self.metrics.observe_batch if self.metrics else None)
        if self.metrics:
            self.metrics.watch_queue(lambda: self.batcher.queued)

    async def score(self, subjects: list[str], descriptions: list[str], vectors: bool = False) -> Scored:
        """These tickets scored through the micro-batcher (with their sentence vectors when ``vectors``)."""
        return await asyncio.wrap_future(self.batcher.submit(subjects, descriptions, vectors))

    async def score_with_variants(self, subject: str, description: str, vectors: bool = False):
        """The ticket and its occlusion variants (ticket_router/explain.py) as one job of at most ``max_batch``
        texts: the `Scored` rows (the ticket's first; vectors, when asked, of the ticket alone) and the units.
        The variants are at most ``max_batch - 1``: with the ticket itself, never more than one job may hold."""
        if self.max_batch < 2:
            raise HTTPException(422, detail="explaining a ticket scores it with its variants: it needs --max_batch 2 "
                                            "or more")
        subjects, descriptions, units = occlusion_inputs(subject, description, min(MAX_PASSES, self.max_batch - 1))
        scored = await self.score(subjects, descriptions, vectors)
        if scored.vectors is not None:
            scored.vectors = scored.vectors[:1]
        return scored, units

    def decide(self, scored: Scored, subjects, descriptions, ticket_ids, source: str) -> list[dict]:
        """The answers for scored tickets: the scoring version's decisions, each with its id; the audit sample's
        tickets sent to a person with the suggestion hidden; every decision counted in the metrics and handed to the
        decision log (written off the event loop, `LogWriter`)."""
        from ..decision_log import audit as audit_sample
        from ..decision_log.records import new_ticket_id

        router = scored.router
        decisions = router.decisions(scored.probabilities, scored.fields) if scored.fields else router.decisions(
            scored.probabilities)
        ids = [ticket_id or new_ticket_id() for ticket_id in ticket_ids]
        audits = audit_sample.draw(decisions, ids, self.audit)
        answers = audit_sample.answers(decisions, ids, audits, self.audit)
        if self.metrics:
            self.metrics.count_routed(answers, decisions)
        if self.log_writer is not None:
            from ..decision_log.records import decision_rows

            self.log_writer.record(decision_rows(router, scored.probabilities, decisions, subjects, descriptions, ids,
                                                 audits, source, self.store_text), router)
        return answers

    # -- versions ------------------------------------------------------------------------------------------------

    def current_target(self) -> str | None:
        return None if self.model_path is None else os.path.realpath(self.model_path)

    async def reload_if_moved(self) -> bool:
        """Load the version the `model` link now names, if it moved; True when the router changed. A version that
        fails to load is logged and skipped (the current one keeps routing) until the link moves again."""
        from ..atomic import touch_lease

        target = self.current_target()
        if target is None:
            return False
        if target == str(self.router.model_dir) or target == self.failed_target:
            await run_in_threadpool(touch_lease, self.model_path, Path(self.router.model_dir).name)
            return False
        try:
            router = await run_in_threadpool(self.open_router, target)
        except Exception as error:  # noqa: BLE001  (a broken version: keep routing with the one that works)
            self.failed_target = target
            logger.error("model %s moved to %s, which does not load (%s); still routing with %s", self.model_path,
                         target, error, self.router.model_dir.name)
            return False
        previous, self.router, self.failed_target = self.router, router, None
        await run_in_threadpool(touch_lease, self.model_path, Path(router.model_dir).name)
        if self.metrics:
            self.metrics.describe_model(router, router.fingerprint)
        logger.info("now routing with %s (was %s)", router.model_dir.name, previous.model_dir.name)
        return True

    async def watch_model(self, interval: float) -> None:
        """Poll the `model` link every ``interval`` seconds (the lifespan's background task)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reload_if_moved()
            except Exception:  # noqa: BLE001  (the watcher must outlive any one failure)
                logger.exception("checking %s for a new version failed", self.model_path)


def context(request: Request) -> ServiceContext:
    """The dependency every endpoint takes."""
    return request.app.state.context
