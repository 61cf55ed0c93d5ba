"""benchmarks/screen_frozen_vectors.py: how a long ticket is cut, and the heads compared on fixed vectors."""

import numpy as np

from benchmarks import screen_frozen_vectors as screen


def test_two_ends_keeps_the_first_and_last_tokens_of_a_long_ticket():
    ids = list(range(100))
    cut = screen.two_ends(ids, read=20, tail=5)
    assert len(cut) == 18  # room for the two special tokens
    assert cut == list(range(13)) + list(range(95, 100))


def test_two_ends_leaves_a_short_ticket_whole():
    assert screen.two_ends(list(range(18)), read=20, tail=5) == list(range(18))


def test_compare_heads_scores_each_head_on_the_test_vectors():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 4  # three well-separated classes: every head finds them
    labels = ["bug", "feature", "question"]
    raw = {split: np.concatenate([centres[k] + rng.normal(size=(n, 16)) for k in range(3)]).astype(np.float32)
           for split, n in (("train", 20), ("test", 10))}
    train_labels = [labels[k] for k in range(3) for _ in range(20)]
    test_labels = [labels[k] for k in range(3) for _ in range(10)]
    rows = screen.compare_heads(None, None, "toy", None, train_labels, test_labels, 128, raw=raw)
    assert {r["head"] for r in rows} == {"logistic_regression", "project_head", "project_head_normalised"}
    assert all(r["macro_f1"] > 0.9 for r in rows)
    # A test set whose labels are shuffled against its vectors is scored against those labels (no free pass).
    shuffled = [test_labels[i] for i in rng.permutation(len(test_labels))]
    rows = screen.compare_heads(None, None, "toy", None, train_labels, shuffled, 128, raw=raw)
    assert all(r["macro_f1"] < 0.8 for r in rows)
