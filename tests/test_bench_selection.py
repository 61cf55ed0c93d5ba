"""benchmarks/bench_selection.py: what a run's test tickets alone can say about a choice (`test_noise`)."""

import numpy as np

from benchmarks.bench_selection import test_noise as what_the_test_can_say

LABELS = np.array([0, 1, 2] * 100)
RIGHT_3_IN_4 = (LABELS + (np.arange(300) % 4 == 0)) % 3  # a head right on 3 tickets of 4


def one_hot(predicted, num_labels=3):
    return np.eye(num_labels)[predicted]


def test_a_choice_that_predicts_as_the_head_is_never_below_by_chance_and_does_not_move():
    head = one_hot(RIGHT_3_IN_4)
    assert what_the_test_can_say(head, head, LABELS, resamples=50) == (0.0, 0.0)


def test_a_choice_that_differs_on_many_tickets_is_called_below_by_chance_on_some_test_sets():
    head = one_hot(RIGHT_3_IN_4)
    other = one_hot(np.where(np.arange(300) % 2 == 0, LABELS, (LABELS + 1) % 3))  # a different half wrong
    by_chance, spread = what_the_test_can_say(other, head, LABELS, resamples=200)
    assert 0.2 < by_chance < 0.9 and spread > 0.02  # swapping half the tickets' two answers moves it both ways


def test_the_null_does_not_depend_on_which_model_is_better():
    head = one_hot(LABELS)  # always right
    worse = one_hot(RIGHT_3_IN_4)
    better_first, _ = what_the_test_can_say(head, worse, LABELS, resamples=200)
    worse_first, _ = what_the_test_can_say(worse, head, LABELS, resamples=200)
    # Under the sign-flip null the two are exchangeable: the same false-alarm rate either way round (within noise).
    assert abs(better_first - worse_first) < 0.15 and 0 < worse_first < 1
