"""Tickets to model inputs with the export's own tokenizer.json, through the `tokenizers` library (no transformers).

The same text preparation as training (`ticket_data.tokenization.ticket_pairs`: cleaned, bounded, subject and
description as a pair) and the same truncation (longest first, to the export's ``max_input_length``), so the ids are
the ones the model was trained on; tests/test_router_encoding.py checks them against the Hugging Face tokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ticket_data.tokenization import ticket_pairs

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# Tickets per `encode_batch` call. tokenizers builds every overflowing piece of a truncated pair, and frees them all,
# holding the GIL, when a call's encodings are dropped: 100-117 ms for 256 tickets at the service's 20,000-character
# limit, a pause for every other thread (the service's /health). 32 at a time bounds the pause at ~17 ms; on 5,000
# short tickets encoding takes 0.155 s instead of 0.140 s (measured, session 8).
ENCODE_PIECE = 32


class TicketEncoder:
    """Encodes tickets to unpadded ids, and pads chosen rows into one batch of int64 arrays."""

    def __init__(self, model_dir: str | Path, max_length: int):
        from tokenizers import Tokenizer

        model_dir = Path(model_dir)
        path = model_dir / "tokenizer.json"
        if not path.is_file():
            raise ValueError(f"{model_dir}: no tokenizer.json (the router needs a fast tokenizer's file)")
        self.tokenizer = Tokenizer.from_file(str(path))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length, strategy="longest_first")
        self.max_length = max_length
        self.pad_id = self._pad_id(model_dir)

    def _pad_id(self, model_dir: Path) -> int:
        settings = model_dir / "tokenizer_config.json"
        token = None
        if settings.is_file():
            token = json.loads(settings.read_text(encoding="utf-8")).get("pad_token")
            token = token.get("content") if isinstance(token, dict) else token
        pad_id = self.tokenizer.token_to_id(token) if token else None
        if pad_id is None:
            for candidate in ("[PAD]", "<pad>"):
                pad_id = self.tokenizer.token_to_id(candidate)
                if pad_id is not None:
                    break
        return 0 if pad_id is None else int(pad_id)

    def encode(self, subjects, descriptions, cleaned: bool = False) -> list[tuple[list[int], list[int]]]:
        """(ids, token type ids) per ticket, in input order; ``cleaned``: the texts went through `clean_text`."""
        firsts, seconds = ticket_pairs(subjects, descriptions, self.max_length, clean=not cleaned)
        inputs = [first if second is None else (first, second) for first, second in zip(firsts, seconds)]
        encoded = []
        for start in range(0, len(inputs), ENCODE_PIECE):
            pieces = self.tokenizer.encode_batch(inputs[start : start + ENCODE_PIECE])
            encoded += [(encoding.ids, encoding.type_ids) for encoding in pieces]
        return encoded

    def pad(self, encoded: list[tuple[list[int], list[int]]]) -> dict[str, np.ndarray]:
        """One batch, padded on the right to its longest ticket."""
        width = max(len(ids) for ids, _ in encoded)
        input_ids = np.full((len(encoded), width), self.pad_id, dtype=np.int64)
        token_types = np.zeros((len(encoded), width), dtype=np.int64)
        mask = np.zeros((len(encoded), width), dtype=np.int64)
        for row, (ids, types) in enumerate(encoded):
            input_ids[row, : len(ids)] = ids
            token_types[row, : len(types)] = types
            mask[row, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": token_types}
