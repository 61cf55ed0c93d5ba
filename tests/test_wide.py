"""The wide part: a logistic regression over token uni/bigrams, fitted in NumPy, computed by the model's forward."""

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, DataCollatorWithPadding

from custom_trainer import TicketClassifier
from custom_trainer.wide import feature_counts, fit_wide, wide_logits
from ticket_data import ticket_tokenizer, tokenize_dataset


@pytest.fixture(scope="module")
def fitted(tiny_bert, seed_dataset):
    names = seed_dataset["train"].features["label"].names
    torch.manual_seed(0)
    model = TicketClassifier.from_encoder(str(tiny_bert), dict(enumerate(names)), wide_buckets=512)
    tokenizer = ticket_tokenizer(AutoTokenizer.from_pretrained(tiny_bert))
    data = tokenize_dataset(seed_dataset["train"].select(range(600)), tokenizer, max_length=64)
    result = fit_wide(model, data["input_ids"], data["labels"])
    return model, data, tokenizer, result


def test_bigrams_hash_after_the_vocabulary():
    counts = feature_counts([[5, 7, 5, 7]], vocab_size=10, buckets=4)
    row = dict(zip(counts.indices.tolist(), counts.data.tolist()))
    first, second = 10 + (5 * 1_000_003 + 7) % 4, 10 + (7 * 1_000_003 + 5) % 4
    expected = {5: 2.0, 7: 2.0}
    for bucket in (first, first, second):
        expected[bucket] = expected.get(bucket, 0.0) + 1.0
    assert row == expected


def test_forward_pass_equals_the_fitted_regression(fitted):
    model, data, tokenizer, result = fitted
    assert result["train_accuracy"] > 0.9  # templated tickets: a bag of n-grams fits them
    rows = [data[i] for i in (0, 5, 77, 300)]  # different lengths: padding inside the batch
    batch = DataCollatorWithPadding(tokenizer)([{k: r[k] for k in ("input_ids", "attention_mask")} for r in rows])
    with torch.no_grad():
        torch_logits = model.wide_logits(batch["input_ids"], batch["attention_mask"]).double().numpy()
    numpy_logits = wide_logits(model, [r["input_ids"] for r in rows])
    np.testing.assert_allclose(torch_logits, numpy_logits, atol=1e-4, rtol=1e-4)


def test_wide_scale_changes_the_logits_only_when_set(fitted):
    model, data, tokenizer, _ = fitted
    model.eval()
    batch = DataCollatorWithPadding(tokenizer)([{k: data[i][k] for k in ("input_ids", "attention_mask")} for i in (1, 2)])
    with torch.no_grad():
        head_only = model(**batch).logits
        model.config.wide_scale = 0.5
        combined = model(**batch).logits
        model.config.wide_scale = 0.0
        expected = head_only + 0.5 * model.wide_logits(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(combined, expected)
    assert not model.wide.weight.requires_grad and not model.wide_bias.requires_grad
