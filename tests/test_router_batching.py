"""The micro-batcher (ticket_router/batching.py): requests scored together, in order, bounded, drained on close."""

import threading
import time

import numpy as np
import pytest

from ticket_router.batching import MicroBatcher, QueueFull


def echo_scores(subjects, descriptions):
    """One row per ticket holding its subject as a number: each request must get its own rows back."""
    return np.array([[float(s)] for s in subjects])


def test_concurrent_requests_share_a_batch_and_get_their_own_rows():
    calls = []
    batcher = MicroBatcher(lambda s, d: calls.append(len(s)) or echo_scores(s, d), max_batch=64, max_wait=0.2)
    futures = [batcher.submit([str(10 * i + j) for j in range(3)], [""] * 3) for i in range(5)]
    results = [f.result(timeout=5) for f in futures]
    batcher.close()
    for i, rows in enumerate(results):
        assert rows[:, 0].tolist() == [10 * i + j for j in range(3)]
    assert calls == [15]  # all five requests in one scoring call


def test_a_batch_never_exceeds_max_batch():
    calls = []
    batcher = MicroBatcher(lambda s, d: calls.append(len(s)) or echo_scores(s, d), max_batch=8, max_wait=0.1)
    futures = [batcher.submit(["1"] * 5, [""] * 5) for _ in range(4)]
    [f.result(timeout=5) for f in futures]
    batcher.close()
    assert max(calls) <= 8 and sum(calls) == 20


def test_a_full_queue_refuses_at_once_and_frees_up_after():
    release = threading.Event()

    def blocked(subjects, descriptions):
        release.wait(5)
        return echo_scores(subjects, descriptions)

    batcher = MicroBatcher(blocked, max_batch=4, max_wait=0.0, max_queue=8)
    first = batcher.submit(["1"] * 4, [""] * 4)
    time.sleep(0.1)  # the scoring thread has taken the first request and is blocked in it
    queued = [batcher.submit(["2"] * 4, [""] * 4), batcher.submit(["3"] * 4, [""] * 4)]
    started = time.perf_counter()
    with pytest.raises(QueueFull, match="8 tickets are waiting to be scored"):
        batcher.submit(["4"], [""])
    assert time.perf_counter() - started < 0.05
    release.set()
    assert first.result(timeout=5)[:, 0].tolist() == [1] * 4
    assert [f.result(timeout=5)[0, 0] for f in queued] == [2, 3]
    assert batcher.submit(["5"], [""]).result(timeout=5)[0, 0] == 5
    batcher.close()


def test_close_scores_what_is_queued_then_refuses():
    batcher = MicroBatcher(lambda s, d: (time.sleep(0.05), echo_scores(s, d))[1], max_batch=2, max_wait=0.0)
    futures = [batcher.submit([str(i)], [""]) for i in range(6)]
    batcher.close(timeout=5)
    assert [f.result(timeout=0)[0, 0] for f in futures] == list(range(6))
    with pytest.raises(QueueFull, match="shutting down"):
        batcher.submit(["1"], [""])


def test_a_scoring_error_reaches_the_requests_and_the_thread_lives_on():
    def flaky(subjects, descriptions):
        if "boom" in subjects:
            raise RuntimeError("model failed")
        return echo_scores(subjects, descriptions)

    batcher = MicroBatcher(flaky, max_batch=4, max_wait=0.0)
    with pytest.raises(RuntimeError, match="model failed"):
        batcher.submit(["boom"], [""]).result(timeout=5)
    assert batcher.submit(["7"], [""]).result(timeout=5)[0, 0] == 7
    batcher.close()


def test_request_size_and_settings_are_checked():
    with pytest.raises(ValueError, match="max_batch <= max_queue"):
        MicroBatcher(echo_scores, max_batch=16, max_queue=8)
    batcher = MicroBatcher(echo_scores, max_batch=2)
    with pytest.raises(ValueError, match="1 to 2 tickets, got 3"):
        batcher.submit(["1", "2", "3"], ["", "", ""])
    batcher.close()
