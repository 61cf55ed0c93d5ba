"""benchmarks/screen_frozen_vectors.py: how a long ticket is cut, and the heads compared on fixed vectors."""

import numpy as np
import pytest

from benchmarks import screen_frozen_vectors as screen


def test_two_ends_keeps_the_first_and_last_tokens_of_a_long_ticket():
    ids = list(range(100))
    cut = screen.two_ends(ids, read=20, tail=5)
    assert len(cut) == 18  # room for the two special tokens
    assert cut == list(range(13)) + list(range(95, 100))


def test_two_ends_leaves_a_ticket_that_fits_whole_and_cuts_one_token_more():
    assert screen.two_ends(list(range(18)), read=20, tail=5) == list(range(18))
    assert screen.two_ends(list(range(19)), read=20, tail=5) == list(range(13)) + list(range(14, 19))


def test_vectors_come_back_in_input_order(tiny_bert):
    from transformers import AutoModel, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(tiny_bert), AutoModel.from_pretrained(tiny_bert).eval()
    texts = ["the vpn drops every hour while the laptop is on the office wifi and the hotel wifi " * 3,  # cut
             "printer jammed", "password reset for the payroll system please",
             "new starter needs a laptop", "outlook crashes when opening shared calendars from the team site"]
    together = screen.vectors(model, tokenizer, texts, read=32, tail=8, batch_size=2)
    alone = np.concatenate([screen.vectors(model, tokenizer, [t], read=32, tail=8) for t in texts])
    np.testing.assert_allclose(together, alone, atol=2e-2)  # bf16 autocast: padding changes the last bits
    gaps = np.abs(alone[:, None] - alone[None]).max(-1)
    assert gaps[~np.eye(len(texts), dtype=bool)].min() > 0.1  # distinct rows: a row out of place would show
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_compare_heads_scores_each_head_on_the_test_vectors():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 4  # three well-separated classes: every head finds them
    labels = ["bug", "feature", "question"]
    raw = {split: np.concatenate([centres[k] + rng.normal(size=(n, 16)) for k in range(3)]).astype(np.float32)
           for split, n in (("train", 20), ("test", 10))}
    train_labels = [labels[k] for k in range(3) for _ in range(20)]
    test_labels = [labels[k] for k in range(3) for _ in range(10)]
    rows = screen.compare_heads(None, None, "toy", None, train_labels, test_labels, 128, raw=raw)
    assert len(rows) == 3  # the project's heads: the mean of their three seeds, one row each
    assert {r["head"] for r in rows} == {"logistic_regression", "project_head", "project_head_normalised"}
    assert all(r["macro_f1"] > 0.9 for r in rows)
    # A test set whose labels are shuffled against its vectors is scored against those labels (no free pass).
    shuffled = [test_labels[i] for i in rng.permutation(len(test_labels))]
    rows = screen.compare_heads(None, None, "toy", None, train_labels, shuffled, 128, raw=raw)
    assert all(r["macro_f1"] < 0.8 for r in rows)


def test_compare_heads_names_a_test_label_train_never_had():
    raw = {split: np.eye(4, dtype=np.float32) for split in ("train", "test")}
    with pytest.raises(ValueError, match=r"toy: test labels \['spam'\]"):
        screen.compare_heads(None, None, "toy", None, ["a", "a", "b", "b"], ["a", "b", "spam", "a"], 128, raw=raw)
