"""Choosing how the export combines head, wide part and a prior correction on validation (custom_trainer/combine.py)."""

import numpy as np
import pytest

from custom_trainer.combine import (PRIOR_STRENGTHS, choose_combination, combined_logits, export_weights, log_prior,
                                    scores)

RNG_SEED = 0


def long_tail(n=3000, frequencies=(0.7, 0.2, 0.1), seed=RNG_SEED):
    rng = np.random.default_rng(seed)
    labels = rng.choice(len(frequencies), size=n, p=frequencies)
    return rng, labels


def test_log_prior_is_finite_for_a_label_without_tickets():
    prior = log_prior([0, 0, 0, 1], num_labels=3)
    assert np.all(np.isfinite(prior)) and prior[0] > prior[1] > prior[2]
    assert np.exp(prior).sum() == pytest.approx(1.0)


def test_a_head_that_overpredicts_rare_queues_is_pulled_back_for_accuracy():
    # Class weights in the loss push the head towards rare labels: a bias in favour of them, as here.
    rng, labels = long_tail()
    head = 1.2 * np.eye(3)[labels] + rng.normal(size=(len(labels), 3)) + np.array([0.0, 0.8, 1.2])
    prior = log_prior(labels, 3)
    choice = choose_combination(head, None, labels, prior, target="accuracy")
    assert choice["prior_strength"] < 0 and choice["wide_weight"] == 0.0
    assert choice["validation"]["accuracy"] > choice["head_alone_validation"]["accuracy"] + 0.02


def test_a_head_that_ignores_rare_queues_is_pushed_towards_them_for_macro_f1():
    rng, labels = long_tail()
    head = 1.2 * np.eye(3)[labels] + rng.normal(size=(len(labels), 3)) + np.array([1.5, 0.0, 0.0])
    prior = log_prior(labels, 3)
    choice = choose_combination(head, None, labels, prior, target="macro_f1")
    assert choice["prior_strength"] > 0
    assert choice["validation"]["macro_f1"] > choice["head_alone_validation"]["macro_f1"] + 0.02


def test_the_wide_part_counts_when_it_knows_something_and_not_when_it_is_noise():
    rng, labels = long_tail()
    head = 1.0 * np.eye(3)[labels] + rng.normal(size=(len(labels), 3))
    prior = log_prior(labels, 3)
    informative = 1.0 * np.eye(3)[labels] + rng.normal(size=(len(labels), 3))  # errs on other tickets
    assert choose_combination(head, informative, labels, prior, target="macro_f1")["wide_weight"] > 0
    noise = rng.normal(size=(len(labels), 3))
    assert choose_combination(head, noise, labels, prior, target="macro_f1")["wide_weight"] <= 0.1


def test_both_is_at_least_the_baseline_when_the_wide_part_is_the_baseline():
    """The promise on validation: the grid holds (nearly) the wide part alone, so with a wide part as good as the
    baseline the choice is not below it in accuracy or macro-F1, even when the head is worse on both."""
    rng, labels = long_tail(seed=3)
    wide = 1.5 * np.eye(3)[labels] + rng.normal(size=(len(labels), 3))
    head = 0.8 * np.eye(3)[labels] + rng.normal(size=(len(labels), 3)) + np.array([0.0, 0.5, 0.9])
    baseline = scores(labels, wide.argmax(-1), 3)
    assert scores(labels, head.argmax(-1), 3)["accuracy"] < baseline["accuracy"]
    choice = choose_combination(head, wide, labels, log_prior(labels, 3), target="both", baseline=baseline)
    assert choice["wide_weight"] > 0.5
    assert choice["validation"]["accuracy"] >= baseline["accuracy"]
    assert choice["validation"]["macro_f1"] >= baseline["macro_f1"]
    assert choice["baseline_validation"] == baseline


def test_a_tie_keeps_the_simplest_model():
    labels = np.array([0, 1, 2] * 50)
    head = 5.0 * np.eye(3)[labels]  # already perfect: nothing can do better
    choice = choose_combination(head, np.zeros_like(head), labels, log_prior(labels, 3), target="both",
                                baseline={"accuracy": 0.5, "macro_f1": 0.5})
    assert (choice["wide_weight"], choice["prior_strength"]) == (0.0, 0.0)
    assert len(choice["grid"]) > len(PRIOR_STRENGTHS)


def test_export_weights_rank_tickets_as_the_chosen_mix():
    rng, labels = long_tail(n=200)
    head, wide = rng.normal(size=(200, 3)), rng.normal(size=(200, 3))
    prior = log_prior(labels, 3)
    for wide_weight, strength in ((0.0, 0.5), (0.4, -0.75), (0.95, 1.0)):
        scale, shift = export_weights(wide_weight, strength, prior)
        exported = head + shift + scale * wide
        np.testing.assert_allclose(exported * (1 - wide_weight),
                                   combined_logits(head, wide, wide_weight, strength, prior), atol=1e-12)


def test_none_and_unknown_targets_are_refused_by_name():
    labels = np.array([0, 1])
    for target in ("none", "f1"):
        with pytest.raises(ValueError, match=f"combine_for.*{target}"):
            choose_combination(np.zeros((2, 2)), None, labels, log_prior(labels, 2), target=target)


def test_train_py_writes_the_chosen_prior_correction_into_the_model(tiny_bert, seed_dataset):
    """`train.combine_parts` on an untrained head and imbalanced tickets: for accuracy it picks a prior correction
    (a positive one: 60 validation tickets may not undo the class weights), and afterwards the model itself computes
    the logits the run reports (the bias shift is in its weights), on every split."""
    from types import SimpleNamespace

    import torch
    from transformers import AutoTokenizer, DataCollatorWithPadding

    from custom_trainer import TicketClassifier
    from ticket_data import ticket_tokenizer, tokenize_dataset
    from train import combine_parts

    names = seed_dataset["train"].features["label"].names
    torch.manual_seed(0)
    model = TicketClassifier.from_encoder(str(tiny_bert), dict(enumerate(names)), wide_buckets=0).eval()
    tokenizer = ticket_tokenizer(AutoTokenizer.from_pretrained(tiny_bert))
    collator = DataCollatorWithPadding(tokenizer)

    def imbalanced(split, size):  # 80% of one queue, the rest spread over the others
        labels = np.asarray(seed_dataset[split]["label"])
        rows = np.concatenate([np.flatnonzero(labels == 0)[: int(0.8 * size)], np.flatnonzero(labels != 0)[: size // 5]])
        return tokenize_dataset(seed_dataset[split].select(rows.tolist()), tokenizer, max_length=32)

    tokenized = {"train": imbalanced("train", 200), "validation": imbalanced("validation", 60),
                 "test": imbalanced("test", 60)}

    def logits_of(split):
        batch = collator([{k: row[k] for k in ("input_ids", "attention_mask")} for row in tokenized[split]])
        with torch.no_grad():
            return model(**batch).logits.double().numpy()

    reported = {split: {"logits": logits_of(split), "labels": np.asarray(tokenized[split]["labels"]),
                      "metrics": {"accuracy": 0.0, "macro_f1": 0.0, "weighted_f1": 0.0}} for split in ("validation", "test")}
    before = model.head[-1].bias.detach().clone()
    choice = combine_parts(SimpleNamespace(model=model), tokenized, reported, SimpleNamespace(label_names=names),
                           SimpleNamespace(combine_for="accuracy", wide_buckets=0),
                           {"validation": {"accuracy": 0.0, "macro_f1": 0.0}}, seed=0)
    assert choice["prior_strength"] > 0 and choice["wide"] is None and model.config.wide_scale == 0.0
    assert choice["validation"]["accuracy"] > choice["head_alone_validation"]["accuracy"]
    assert not torch.equal(model.head[-1].bias, before)
    for split in ("validation", "test"):
        np.testing.assert_allclose(logits_of(split), reported[split]["logits"], atol=1e-4)
        assert reported[split]["metrics"]["accuracy"] == pytest.approx(
            scores(reported[split]["labels"], reported[split]["logits"].argmax(-1), len(names))["accuracy"])


def test_few_validation_tickets_never_undo_the_class_weights():
    """Below MIN_VALIDATION_FOR_NEGATIVE_PRIOR validation tickets no negative prior strength is chosen, however much
    accuracy validation says it buys (the rare queues that pay hold a handful of tickets); with more it may be."""
    from custom_trainer.combine import MIN_VALIDATION_FOR_NEGATIVE_PRIOR, choose

    rng, labels = long_tail(n=3000)
    head = 1.2 * np.eye(3)[labels] + rng.normal(size=(len(labels), 3)) + np.array([0.0, 0.8, 1.2])
    prior = log_prior(labels, 3)
    many = choose(head, None, labels, prior, target="accuracy")
    assert many["prior_strength"] < 0  # the evidence of 3,000 tickets
    few = slice(0, MIN_VALIDATION_FOR_NEGATIVE_PRIOR - 1)
    small = choose(head[few], None, labels[few], prior, target="accuracy")
    assert small["prior_strength"] >= 0 and min(small["prior_strengths_searched"]) >= 0
    assert choose_combination(head[few], None, labels[few], prior, target="accuracy")["prior_strength"] < 0  # the old rule


def test_scores_are_scikit_learns_accuracy_and_macro_f1():
    from sklearn.metrics import accuracy_score, f1_score

    rng = np.random.default_rng(RNG_SEED)
    for _ in range(200):
        n, labels_count = int(rng.integers(1, 60)), int(rng.integers(2, 9))
        truth, predicted = rng.integers(0, labels_count, n), rng.integers(0, labels_count, n)
        figures = scores(truth, predicted, labels_count)
        assert figures["accuracy"] == pytest.approx(accuracy_score(truth, predicted), abs=1e-12)
        assert figures["macro_f1"] == pytest.approx(f1_score(truth, predicted, labels=list(range(labels_count)),
                                                             average="macro", zero_division=0), abs=1e-12)


def two_equal_parts(n, seed):
    """A head and a wide part equally informative with independent noise, three balanced queues: by symmetry the
    best mix on unseen tickets is w = 0.5."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    return (np.eye(3)[labels] + rng.normal(size=(n, 3)), np.eye(3)[labels] + rng.normal(size=(n, 3)), labels)


def test_on_few_tickets_the_bagged_choice_strays_less_and_routes_better():
    from custom_trainer.combine import choose

    head_test, wide_test, labels_test = two_equal_parts(20_000, seed=1000)
    plain_error, bagged_error, plain_accuracy, bagged_accuracy = [], [], [], []
    for seed in range(20):
        head, wide, labels = two_equal_parts(30, seed)
        prior = log_prior(labels, 3)
        choice = choose(head, wide, labels, prior, target="accuracy")
        single = choice["single_choice"]
        assert choice["bagging"]["resamples"] == 50
        for mix, errors, accuracies in ((single, plain_error, plain_accuracy), (choice, bagged_error, bagged_accuracy)):
            errors.append(abs(mix["wide_weight"] - 0.5))
            predicted = combined_logits(head_test, wide_test, mix["wide_weight"], mix["prior_strength"], prior)
            accuracies.append(scores(labels_test, predicted.argmax(-1), 3)["accuracy"])
    assert np.mean(bagged_error) < 0.75 * np.mean(plain_error)
    assert np.mean(bagged_accuracy) > np.mean(plain_accuracy)


def test_with_many_tickets_the_bagged_choice_is_the_plain_one_and_the_record_scores_it():
    from custom_trainer.combine import choose

    head, wide, labels = two_equal_parts(3000, seed=7)
    wide = wide + np.eye(3)[labels]  # the wide part clearly better: the plain choice leans on it
    prior = log_prior(labels, 3)
    choice = choose(head, wide, labels, prior, target="accuracy")
    assert abs(choice["wide_weight"] - choice["single_choice"]["wide_weight"]) <= 0.1
    assert abs(choice["prior_strength"] - choice["single_choice"]["prior_strength"]) <= 0.25
    predicted = combined_logits(head, wide, choice["wide_weight"], choice["prior_strength"], prior).argmax(-1)
    assert choice["validation"] == scores(labels, predicted, 3)  # the figures are the bagged mix's, not the plain one's
    plain = choose(head, wide, labels, prior, target="accuracy", resamples=0)
    assert "bagging" not in plain and plain["wide_weight"] == choice["single_choice"]["wide_weight"]
