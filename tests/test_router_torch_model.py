"""The plain PyTorch forward (ticket_router/torch_model.py) gives the transformers model's logits, and the PyTorch
backend falls back to transformers for what it does not cover."""

import json

import numpy as np
import pytest
import torch

from custom_trainer import TicketClassifier
from ticket_router import torch_model
from ticket_router.backends import TorchBackend
from ticket_router.torch_model import TicketClassifierForward, unsupported_reason

LABELS = {0: "Network", 1: "Email", 2: "Hardware"}


def random_batch(vocab_size: int, lengths=(9, 4, 1, 7), seed: int = 0) -> dict[str, torch.Tensor]:
    """Right-padded rows of different lengths, the second segment's ids set after the middle."""
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.randint(5, vocab_size, (len(lengths), width), generator=generator)
    mask = torch.zeros_like(ids)
    types = torch.zeros_like(ids)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
        types[row, length // 2 : length] = 1
    return {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": types}


def saved(model: TicketClassifier, folder) -> dict:
    model.save_pretrained(folder)
    return json.loads((folder / "config.json").read_text())


def assert_same_logits(model: TicketClassifier, folder, batch) -> None:
    forward = TicketClassifierForward(folder, saved(model, folder))
    with torch.inference_mode():
        expected = model.eval()(**batch).logits
        np.testing.assert_allclose(forward(**batch).numpy(), expected.numpy(), atol=1e-5, rtol=1e-5)
        unpadded = {name: value[:1, :9] for name, value in batch.items()}  # one full row: the no-mask path
        np.testing.assert_allclose(forward(**unpadded).numpy(), model(**unpadded).logits.numpy(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_bert_logits_match_transformers(tiny_bert, tmp_path, pooling):
    model = TicketClassifier.from_encoder(str(tiny_bert), LABELS, pooling=pooling, calibration_temperature=0.7)
    assert_same_logits(model, tmp_path, random_batch(model.config.encoder_config["vocab_size"]))


def test_distilbert_logits_match_transformers_with_the_wide_part(tiny_distilbert, tmp_path):
    model = TicketClassifier.from_encoder(str(tiny_distilbert), LABELS, pooling="cls", wide_buckets=64,
                                          wide_scale=0.5)
    torch.manual_seed(1)
    with torch.no_grad():
        model.wide.weight.normal_()
        model.wide_bias.normal_()
        model.wide_idf.uniform_(0.5, 3.0)
    assert_same_logits(model, tmp_path, random_batch(model.config.encoder_config["vocab_size"]))


def test_the_trained_export_gives_the_same_logits_both_ways(tiny_onnx):
    backend = TorchBackend(tiny_onnx)
    assert backend.fallback_reason is None
    batch = {name: value.numpy() for name, value in random_batch(40, seed=3).items()}
    with torch.inference_mode():
        expected = backend.model(**{name: torch.from_numpy(value) for name, value in batch.items()}).logits.numpy()
    np.testing.assert_allclose(backend.logits(batch), expected, atol=1e-5, rtol=1e-5)


def test_what_it_does_not_cover_goes_through_transformers(tiny_onnx, monkeypatch):
    config = json.loads((tiny_onnx / "config.json").read_text())
    roberta = {**config, "encoder_config": {**config["encoder_config"], "model_type": "roberta"}}
    assert "encoder type 'roberta'" in unsupported_reason(tiny_onnx, roberta)
    relative = {**config, "encoder_config": {**config["encoder_config"], "position_embedding_type": "relative_key"}}
    assert "position_embedding_type" in unsupported_reason(tiny_onnx, relative)
    with pytest.raises(ValueError, match="does not cover encoder type 'roberta'"):
        TicketClassifierForward(tiny_onnx, roberta)

    monkeypatch.setattr(torch_model, "unsupported_reason", lambda folder, config: "a test's reason")
    backend = TorchBackend(tiny_onnx)
    assert backend.fallback_reason == "a test's reason" and backend._model is not None
    batch = {name: value.numpy() for name, value in random_batch(40, seed=4).items()}
    monkeypatch.undo()
    np.testing.assert_allclose(backend.logits(batch), TorchBackend(tiny_onnx).logits(batch), atol=1e-5, rtol=1e-5)


def test_the_bigram_hash_matches_a_hand_computed_bucket():
    from ticket_router.contract import BIGRAM_PRIME, hashed_bigrams

    first, second = np.array([[7, 30_000]]), np.array([[9, 5]])
    assert hashed_bigrams(first, second, 100, 50).tolist() == [[100 + (7 * BIGRAM_PRIME + 9) % 50,
                                                                 100 + (30_000 * BIGRAM_PRIME + 5) % 50]]
    assert torch.equal(hashed_bigrams(torch.tensor(first), torch.tensor(second), 100, 50),
                       torch.tensor(hashed_bigrams(first, second, 100, 50)))


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_long_tickets_read_by_their_two_ends_give_the_same_logits_everywhere(tiny_bert, tmp_path, pooling):
    """head_tail_length: a ticket longer than the window is read as its first and last tokens, alike in the training
    model, the plain forward and an ONNX graph exported from a short sample; a ticket that fits is read whole."""
    from transformers import BertTokenizerFast

    from custom_trainer.export import export_model
    from custom_trainer.onnx_export import export_onnx
    from ticket_router.backends import OnnxBackend

    model = TicketClassifier.from_encoder(str(tiny_bert), LABELS, pooling=pooling, head_tail_length=8, tail_length=3,
                                          max_input_length=24)
    batch = random_batch(model.config.encoder_config["vocab_size"], lengths=(23, 4, 9, 16, 8), seed=5)
    assert_same_logits(model, tmp_path, batch)
    whole = TicketClassifier.from_encoder(str(tiny_bert), LABELS, pooling=pooling).eval()
    whole.load_state_dict(model.state_dict())
    with torch.inference_mode():
        vectors = model.eval().sentence_vectors(**batch)
        for row, length in enumerate((23, 4, 9, 16, 8)):
            keep = list(range(length)) if length <= 8 else [0, 1, 2, 3, 4, length - 3, length - 2, length - 1]
            cut = {name: value[row : row + 1, keep] for name, value in batch.items()}
            np.testing.assert_allclose(vectors[row : row + 1].numpy(), whole.sentence_vectors(**cut).numpy(),
                                       atol=1e-5)
        assert not torch.allclose(vectors[0], whole.sentence_vectors(**batch)[0], atol=1e-4)  # not the first 24
    folder = export_model(model, BertTokenizerFast.from_pretrained(str(tiny_bert)), tmp_path / "export" / "model",
                          {"data_fingerprint": "test"}, "card").resolve()
    export_onnx(folder)  # traced on a short sample (under 8 tokens): the graph still cuts longer tickets
    numpy_batch = {name: value.numpy() for name, value in batch.items()}
    plain = TicketClassifierForward(folder, json.loads((folder / "config.json").read_text()))
    np.testing.assert_allclose(OnnxBackend(folder).logits(numpy_batch), plain(**batch).numpy(), atol=1e-4, rtol=1e-4)
    short = {name: np.ascontiguousarray(value[:, :6]) for name, value in numpy_batch.items()}  # under the window
    np.testing.assert_allclose(OnnxBackend(folder).logits(short),
                               plain(**{name: torch.from_numpy(value) for name, value in short.items()}).numpy(),
                               atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_long_tickets_read_in_windows_give_the_same_logits_everywhere(tiny_bert, tmp_path, pooling):
    """chunk_length: the training model, the plain forward and an ONNX graph (exported from a short sample) read a
    ticket in windows alike, for tickets of 1 to 3 windows and with a window of padding only in the batch."""
    from custom_trainer.onnx_export import export_onnx
    from ticket_router.backends import OnnxBackend

    model = TicketClassifier.from_encoder(str(tiny_bert), LABELS, pooling=pooling, chunk_length=8,
                                          max_input_length=24)
    batch = random_batch(model.config.encoder_config["vocab_size"], lengths=(23, 4, 9, 16, 8), seed=5)
    assert_same_logits(model, tmp_path, batch)
    with torch.inference_mode():
        windowed = model.eval().sentence_vectors(**batch)
        whole = TicketClassifier.from_encoder(str(tiny_bert), LABELS, pooling=pooling).eval()
        whole.load_state_dict(model.state_dict())
        short = {name: value[1:2, :4] for name, value in batch.items()}  # one window: as if never cut
        np.testing.assert_allclose(model.sentence_vectors(**short).numpy(), whole.sentence_vectors(**short).numpy(),
                                   atol=1e-5)
        if pooling == "mean":  # a long ticket is read otherwise than in one pass
            assert not torch.allclose(windowed[0], whole.sentence_vectors(**batch)[0], atol=1e-4)
    from transformers import BertTokenizerFast

    from custom_trainer.export import export_model

    folder = export_model(model, BertTokenizerFast.from_pretrained(str(tiny_bert)), tmp_path / "export" / "model",
                          {"data_fingerprint": "test"}, "card").resolve()
    export_onnx(folder)  # traced on a short sample: the graph reads in windows whatever the length
    numpy_batch = {name: value.numpy() for name, value in batch.items()}
    plain = TicketClassifierForward(folder, json.loads((folder / "config.json").read_text()))
    np.testing.assert_allclose(OnnxBackend(folder).logits(numpy_batch), plain(**batch).numpy(), atol=1e-4, rtol=1e-4)
