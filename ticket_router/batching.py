"""Dynamic micro-batching: tickets from concurrent requests scored together by one thread, off the event loop.

A request's tickets join a bounded queue; the scoring thread takes whole requests, up to ``max_batch`` tickets,
waiting at most ``max_wait`` seconds for more to arrive once it has some, scores them in one call and hands each
request its rows. When the queue holds ``max_queue`` tickets a new request is refused at once (`QueueFull`: the
service answers 503) instead of waiting behind work it cannot catch up with.

A request may also ask for the tickets' sentence vectors (similar-ticket search, the triage page): a batch holding
such a request is scored with ``score(subjects, descriptions, vectors=True)``, which returns (probabilities,
vectors), and that request gets both; the others in the batch get their probabilities alone. One forward pass gives
both, so every path that scores a ticket, search included, goes through this one queue and its backpressure.

``score`` may also return an object with a ``rows(slice)`` method (the service's `Scored`, which carries the model
version that scored the batch along with its rows): each request then gets ``result.rows(its slice)``.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np


class QueueFull(Exception):
    """The queue cannot take this request now; retry later."""


@dataclass
class _Job:
    subjects: Sequence[str]
    descriptions: Sequence[str]
    vectors: bool = False
    future: Future = field(default_factory=Future)


class MicroBatcher:
    def __init__(self, score: Callable[..., np.ndarray], max_batch: int = 256, max_wait: float = 0.005,
                 max_queue: int = 1024, on_batch: Callable[[int, float], None] | None = None):
        """``on_batch(tickets, seconds)``: called after each scoring call (the service's metrics)."""
        if max_batch < 1 or max_queue < max_batch:
            raise ValueError(f"need 1 <= max_batch <= max_queue, got max_batch={max_batch}, max_queue={max_queue}")
        self.score, self.max_batch, self.max_wait, self.max_queue = score, max_batch, max_wait, max_queue
        self.on_batch = on_batch
        self._jobs: collections.deque[_Job] = collections.deque()
        self._queued = 0  # tickets waiting, not yet taken by the scoring thread
        self._changed = threading.Condition()
        self._closed = False
        self.batches = 0  # scoring calls made (for tests and /info)
        self._thread = threading.Thread(target=self._run, name="ticket-scoring", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        return self._queued

    def submit(self, subjects: Sequence[str], descriptions: Sequence[str], vectors: bool = False) -> Future:
        """A future of the probabilities of these tickets (one row each), or of (probabilities, vectors) when
        ``vectors``; `QueueFull` when there is no room."""
        count = len(subjects)
        if not 1 <= count <= self.max_batch:
            raise ValueError(f"a request holds 1 to {self.max_batch} tickets, got {count}")
        job = _Job(subjects, descriptions, vectors)
        with self._changed:
            if self._closed:
                raise QueueFull("the service is shutting down")
            if self._queued + count > self.max_queue:
                raise QueueFull(f"{self._queued} tickets are waiting to be scored (at most {self.max_queue}); "
                                "retry in a moment")
            self._jobs.append(job)
            self._queued += count
            self._changed.notify_all()
        return job.future

    def _take(self) -> list[_Job] | None:
        with self._changed:
            while not self._jobs and not self._closed:
                self._changed.wait()
            if not self._jobs:
                return None  # closed and drained
            deadline = time.monotonic() + self.max_wait
            while self._queued < self.max_batch and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            taken, count = [], 0
            while self._jobs and count + len(self._jobs[0].subjects) <= self.max_batch:
                job = self._jobs.popleft()
                taken.append(job)
                count += len(job.subjects)
            self._queued -= count
            return taken

    def _run(self) -> None:
        while (jobs := self._take()) is not None:
            jobs = [job for job in jobs if job.future.set_running_or_notify_cancel()]
            if not jobs:
                continue
            subjects = [s for job in jobs for s in job.subjects]
            descriptions = [d for job in jobs for d in job.descriptions]
            with_vectors = any(job.vectors for job in jobs)
            started = time.perf_counter()
            try:
                result = self.score(subjects, descriptions, vectors=True) if with_vectors else self.score(
                    subjects, descriptions)
                probabilities, vectors = result if (with_vectors and not hasattr(result, "rows")) else (result, None)
                self.batches += 1
            except BaseException as error:  # noqa: BLE001  (each waiting request gets the error, the thread lives)
                for job in jobs:
                    job.future.set_exception(error)
                continue
            seconds = time.perf_counter() - started
            start = 0
            for job in jobs:
                rows = slice(start, start + len(job.subjects))
                if hasattr(probabilities, "rows"):
                    job.future.set_result(probabilities.rows(rows))
                else:
                    job.future.set_result((probabilities[rows], vectors[rows]) if job.vectors else probabilities[rows])
                start += len(job.subjects)
            if self.on_batch is not None:
                try:
                    self.on_batch(len(subjects), seconds)
                except Exception:  # noqa: BLE001  (a failing observer must not stop the scoring thread)
                    logging.getLogger(__name__).exception("on_batch failed")

    def close(self, timeout: float | None = None) -> None:
        """Stop taking requests; score what is queued, then stop the thread."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._thread.join(timeout)
