"""benchmarks/bench_selection.py: judging a choice on redrawn test sets (paired bootstrap of the test tickets)."""

import numpy as np

from benchmarks.bench_selection import below_on_redrawn_tests


def one_hot(predicted, num_labels=3):
    return np.eye(num_labels)[predicted]


LABELS = np.array([0, 1, 2] * 100)


def test_the_head_alone_itself_is_never_below_and_does_not_vary():
    head = one_hot((LABELS + (np.arange(300) % 4 == 0)) % 3)  # a head right on 3 tickets of 4
    assert below_on_redrawn_tests(head, head, LABELS, resamples=50) == (0.0, 0.0)


def test_a_clearly_worse_choice_is_below_on_every_redrawn_test_set():
    head = one_hot(LABELS)
    worse = one_hot((LABELS + (np.arange(300) % 3 == 0)) % 3)  # wrong on a third of the tickets
    below, spread = below_on_redrawn_tests(worse, head, LABELS, resamples=50)
    assert below == 1.0 and spread > 0


def test_a_choice_a_few_tickets_apart_is_below_on_some_redrawn_test_sets_only():
    head = one_hot((LABELS + (np.arange(300) % 4 == 0)) % 3)
    near = head.copy()
    near[[0, 4, 8]] = one_hot(LABELS[[0, 4, 8]])  # three tickets better ...
    near[[1, 2, 3]] = one_hot((LABELS[[1, 2, 3]] + 1) % 3)  # ... and three worse: the same accuracy on this test set
    below, _ = below_on_redrawn_tests(near, head, LABELS, resamples=200)
    assert 0.05 < below < 0.95
