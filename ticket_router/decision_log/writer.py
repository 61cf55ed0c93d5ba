"""The service's log writer: decisions are handed over in memory and written by one thread, in batches, off the event
loop; a routing answer never waits for the database.

- Batched: up to ``batch`` rows a transaction, written every ``interval`` seconds (default 1 s), so a ticket is in the
  log about a second after its answer, well inside the promised 5 s, while the database is up.
- Bounded: at most ``max_pending`` rows wait in memory. A database that is slow or down makes them wait and be
  retried (backing off up to ``max_backoff`` seconds); beyond the bound new rows are dropped and counted, never
  silently: `status()` (the service's /health and /metrics) says how many wait, how many were written and dropped,
  how many writes failed and the last error.
- On shutdown (`close`) what waits is written, for up to the given time.
"""

from __future__ import annotations

import collections
import logging
import threading
import time

from .store import short

logger = logging.getLogger(__name__)


class LogWriter:
    def __init__(self, log, max_pending: int = 100_000, batch: int = 1000, interval: float = 1.0,
                 max_backoff: float = 4.0):
        self.log, self.max_pending, self.batch, self.interval, self.max_backoff = (
            log, max_pending, batch, interval, max_backoff)
        self._rows: collections.deque = collections.deque()
        self._versions: dict[str, dict] = {}  # records of the versions the rows come from, written before them
        self._written_versions: set[str] = set()
        self._changed = threading.Condition()
        self._flushing = threading.Lock()  # one flush at a time: the thread, `close`, or a caller that needs the rows
        self._closed = False
        self.written = self.dropped = self.failed_writes = 0
        self.last_error: str | None = None
        self.last_write_at: float | None = None
        self._oldest_at: float | None = None
        self._thread = threading.Thread(target=self._run, name="decision-log-writer", daemon=True)
        self._thread.start()

    def record(self, rows: list[dict], router=None) -> int:
        """Queue rows for writing (``router``: the version that made them, recorded once); returns how many were
        dropped because the buffer is full (also counted)."""
        if router is not None and router.fingerprint not in self._written_versions and \
                router.fingerprint not in self._versions:
            from .store import version_record

            self._versions[router.fingerprint] = version_record(router)
        with self._changed:
            room = max(self.max_pending - len(self._rows), 0)
            kept = rows[:room]
            if kept and not self._rows:
                self._oldest_at = time.monotonic()
            self._rows.extend(kept)
            dropped = len(rows) - len(kept)
            if dropped:
                self.dropped += dropped
                logger.error("decision log: %d decisions dropped, %d wait to be written (last error: %s)", dropped,
                             len(self._rows), self.last_error)
            if len(self._rows) >= self.batch:
                self._changed.notify_all()
        return dropped

    @property
    def pending(self) -> int:
        return len(self._rows)

    def status(self) -> dict:
        oldest = self._oldest_at
        return {"pending": self.pending, "written": self.written, "dropped": self.dropped,
                "failed_writes": self.failed_writes, "last_error": self.last_error,
                "oldest_pending_seconds": round(time.monotonic() - oldest, 1) if oldest and self._rows else 0.0,
                "healthy": self.last_error is None and self.dropped == 0}

    def _take(self) -> list[dict]:
        with self._changed:
            return [self._rows[i] for i in range(min(self.batch, len(self._rows)))]

    def _done(self, count: int) -> None:
        with self._changed:
            for _ in range(count):
                self._rows.popleft()
            self._oldest_at = time.monotonic() if self._rows else None

    def flush(self) -> bool:
        """Write what waits now (the caller's thread); False when the database refused."""
        with self._flushing:
            return self._flush()

    def _flush(self) -> bool:
        while True:
            rows = self._take()
            pending_versions = list(self._versions.values())
            if not rows and not pending_versions:
                return True
            try:
                self.log.write(rows, pending_versions)
                for record in pending_versions:
                    self._written_versions.add(record["fingerprint"])
                    self._versions.pop(record["fingerprint"], None)
            except Exception as error:  # noqa: BLE001  (any database failure: keep the rows, count, retry later)
                self.failed_writes += 1
                self.last_error = short(error)
                logger.warning("decision log: writing %d decisions failed (%s); retrying", len(rows), self.last_error)
                return False
            self._done(len(rows))
            self.written += len(rows)
            self.last_error = None
            self.last_write_at = time.time()

    def _run(self) -> None:
        backoff = self.interval
        while True:
            with self._changed:
                if not self._closed:
                    self._changed.wait(backoff)
                closed = self._closed
            ok = self.flush()
            backoff = self.interval if ok else min(max(backoff * 2, self.interval), self.max_backoff)
            if closed:
                return

    def close(self, timeout: float = 30.0) -> None:
        """Stop; write what waits, trying until ``timeout`` seconds have passed."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        while self._rows and time.monotonic() < deadline:
            if not self.flush():
                time.sleep(0.5)
        if self._rows:
            logger.error("decision log: %d decisions could not be written before shutdown (last error: %s)",
                         len(self._rows), self.last_error)
