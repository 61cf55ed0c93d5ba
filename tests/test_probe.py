"""Linear probe, then fine-tune: the head trained alone on the frozen encoder's vectors."""

import torch
from transformers import AutoTokenizer, DataCollatorWithPadding

from custom_trainer import TicketClassifier
from ticket_router.torch_model import pool
from custom_trainer.probe import probe_head, sentence_vectors
from ticket_data import ticket_tokenizer, tokenize_dataset


def setup(encoder, seed_dataset, n=240):
    names = seed_dataset["train"].features["label"].names
    torch.manual_seed(0)
    model = TicketClassifier.from_encoder(str(encoder), dict(enumerate(names)), pooling="mean")
    tokenizer = ticket_tokenizer(AutoTokenizer.from_pretrained(encoder))
    data = tokenize_dataset(seed_dataset["train"].select(range(n)), tokenizer, max_length=64)
    return model, data, DataCollatorWithPadding(tokenizer)


def test_vectors_come_back_in_dataset_order(tiny_bert, seed_dataset):
    model, data, collator = setup(tiny_bert, seed_dataset, n=40)
    vectors, labels = sentence_vectors(model, data, collator, batch_size=8)  # batches are sorted by length inside
    assert labels.tolist() == data["labels"]
    with torch.no_grad():
        batch = collator([{k: data[i][k] for k in ("input_ids", "attention_mask", "token_type_ids")} for i in (5, 17)])
        hidden = model.encoder(**batch).last_hidden_state
        expected = pool(hidden, batch["attention_mask"], "mean")
    torch.testing.assert_close(vectors[[5, 17]], expected, atol=1e-5, rtol=1e-4)


def test_probe_trains_the_head_only(tiny_bert, seed_dataset):
    model, data, collator = setup(tiny_bert, seed_dataset)
    encoder_before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    vectors, labels = sentence_vectors(model, data, collator)
    model.eval()
    with torch.no_grad():
        before = float((model.head(vectors).argmax(-1) == labels).float().mean())
    model.train()
    result = probe_head(model, data, collator, epochs=30, learning_rate=3e-3, seed=0)
    assert result["train_accuracy"] > before + 0.2  # from a random head (~1/12) to a fitted one
    assert result["steps"] == 30 * 4  # 240 vectors in batches of 64
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, encoder_before[key]), key
    assert model.training  # handed back in the mode it came in


def test_bf16_vectors_are_fp32_and_close_to_full_precision(tiny_bert, seed_dataset):
    model, data, collator = setup(tiny_bert, seed_dataset, n=40)
    full, _ = sentence_vectors(model, data, collator)
    mixed, labels = sentence_vectors(model, data, collator, bf16=True)
    assert mixed.dtype == torch.float32 and labels.tolist() == data["labels"]
    assert not torch.equal(mixed, full)  # bf16 really ran
    torch.testing.assert_close(mixed, full, atol=0.05, rtol=0.05)
