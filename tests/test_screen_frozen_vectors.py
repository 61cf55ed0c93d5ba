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


def _fake_run(tmp_path, test_head, test_wide, labels, scale, test_macro_f1):
    import json

    (tmp_path / "reports").mkdir(parents=True)
    np.savez(tmp_path / "reports" / "combination_inputs.npz", test_head_logits=test_head, test_wide_logits=test_wide,
             test_labels=np.array(labels))
    (tmp_path / "reports" / "metrics.json").write_text(json.dumps(
        {"test": {"macro_f1": test_macro_f1}, "combination": {"wide_scale": scale, "bias_shift": [0.0, 0.0]}}))
    return tmp_path


def test_replay_mix_reproduces_the_runs_final_model_and_refits_the_head(tmp_path):
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 8)) * 4
    raw = {split: np.concatenate([centres[k] + rng.normal(size=(n, 8)) for k in range(2)]).astype(np.float32)
           for split, n in (("train", 20), ("test", 10))}
    labels = [0] * 10 + [1] * 10
    head = np.where(np.arange(20)[:, None] < 12, [[1.0, 0.0]], [[0.0, 1.0]])  # wrong on tickets 10 and 11 alone
    wide = np.zeros((20, 2))
    wide[10:12] = [0.0, 3.0]  # the wide part puts them right
    final = f1_score(labels, (head + 0.5 * wide).argmax(-1), average="macro")
    run = _fake_run(tmp_path / "run", head, wide, labels, 0.5, final)
    rows = {r["head"]: r for r in screen.replay_mix(run, raw, ["a"] * 20 + ["b"] * 20, ["a"] * 10 + ["b"] * 10)}
    assert rows["own_final"]["macro_f1"] == final == 1.0 and rows["own_head"]["macro_f1"] < 0.95
    assert rows["refitted_head"]["macro_f1"] > 0.9 and set(rows) == {"own_head", "own_final", "refitted_head",
                                                                     "refitted_final"}
    # A run whose recorded figure the replay cannot reproduce is refused, not tabulated.
    run = _fake_run(tmp_path / "other", head, wide, labels, 0.5, 0.5)
    with pytest.raises(ValueError, match="replayed mix"):
        screen.replay_mix(run, raw, ["a"] * 20 + ["b"] * 20, ["a"] * 10 + ["b"] * 10)
