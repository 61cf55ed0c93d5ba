"""An app factory for tests/test_router_service.py (not a test module): the real service around the tiny model, each
scoring call kept busy with real scoring for SCORING_DELAY_S seconds, so a test can act while a batch is being
scored. The time is spent scoring, not sleeping: a sleep frees the interpreter and the event loop for anything,
and /health answering during a sleep proves nothing about /health during scoring.

    python -m uvicorn --factory --app-dir tests service_app:app --port PORT
"""

import os
import time

from ticket_router.router import Router
from ticket_router.service import create_app


class SlowRouter:
    def __init__(self, router, delay: float):
        self.router, self.delay = router, delay

    def __getattr__(self, name):
        return getattr(self.router, name)

    def _slowly(self, scoring, subjects, descriptions, **kwargs):
        deadline = time.perf_counter() + self.delay
        result = scoring(subjects, descriptions, **kwargs)
        while time.perf_counter() < deadline:  # score the batch again until the delay is spent
            result = scoring(subjects, descriptions, **kwargs)
        return result

    def predict_proba(self, subjects, descriptions, **kwargs):
        return self._slowly(self.router.predict_proba, subjects, descriptions, **kwargs)

    def score(self, subjects, descriptions, **kwargs):  # the service's scoring path
        return self._slowly(self.router.score, subjects, descriptions, **kwargs)


def app():
    env = os.environ
    router = SlowRouter(Router(env["TICKET_MODEL"]), float(env.get("SCORING_DELAY_S", "0")))
    return create_app(router, max_batch=int(env.get("MAX_BATCH", "256")), max_chars=int(env.get("MAX_CHARS", "20000")),
                      max_queue=int(env["MAX_QUEUE"]) if "MAX_QUEUE" in env else None, batch_wait_ms=0)
