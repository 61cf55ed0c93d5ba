"""Tokenisation: how a ticket's two fields become one model input, shared by training and the router.

`ticket_pairs` (pure Python) cleans, bounds and pairs the fields; training tokenises its output with the Hugging Face
tokenizer (`encode_tickets`, `tokenize_dataset`), the router with the same tokenizer.json through the `tokenizers`
library (ticket_router/encoding.py). ``datasets`` is imported only by `tokenize_dataset`, so the router's slim install
can use this module.
"""

from __future__ import annotations

from .preprocessing import clean_text

# Characters kept per field for each token of max_length. A truncated text *pair* makes the tokenizer build every
# overflowing piece, a cost that grows with the square of the text (tokenizers issue #2035: 0.18 s for one
# 20,000-character pair here, 0.003 s at 2,000), while only the first max_length tokens are ever used. At 8 characters
# a token (English ticket text averages 4-5) a 20,000-character pair costs what a 2,000-character one does at
# max_length 128 (tests/test_router_encoding.py); on the real benchmark's 38,269 training tickets the ids change for
# 2 (measured; 1,991 at 6 characters a token), and tickets under the cap encode exactly as without it.
CHARS_PER_TOKEN = 8


def bound_text(text: str, max_chars: int) -> str:
    """``text`` cut to at most ``max_chars`` characters, at the last space when there is one in the second half."""
    if len(text) <= max_chars:
        return text
    cut = text.rfind(" ", 0, max_chars + 1)
    return text[: cut if cut >= max_chars // 2 else max_chars]


def ticket_pairs(subjects, descriptions, max_length: int, clean: bool = True) -> tuple[list[str], list[str | None]]:
    """(first texts, second texts or None) for a tokenizer: each field cleaned and cut to
    ``CHARS_PER_TOKEN * max_length`` characters, so the cost of a ticket is bounded whatever its length.

    Subject and description go in as a text pair; a ticket with only one of the two is a single text (second
    None), so it does not matter which field an export put it in. ``clean=False``: the texts are already
    `clean_text`'s output (cleaning is idempotent, so this only saves time).
    """
    max_chars = CHARS_PER_TOKEN * max_length
    firsts, seconds = [], []
    for subject, description in zip(subjects, descriptions, strict=True):
        if clean:
            subject, description = clean_text(subject), clean_text(description)
        subject, description = bound_text(subject, max_chars), bound_text(description, max_chars)
        if subject and description:
            firsts.append(subject)
            seconds.append(description)
        else:
            firsts.append(subject or description)
            seconds.append(None)
    return firsts, seconds


def encode_tickets(tokenizer, subjects, descriptions, max_length: int, truncation: bool = True, **kwargs):
    """Tokenise tickets with a Hugging Face tokenizer, the way training does (`ticket_pairs`, then truncation to
    ``max_length`` tokens); ``truncation=False`` keeps the rest (to measure lengths)."""
    kwargs = {"truncation": True, "max_length": max_length, **kwargs} if truncation else kwargs
    firsts, seconds = ticket_pairs(subjects, descriptions, max_length)
    if all(second is None for second in seconds):
        return tokenizer(firsts, **kwargs)
    if any(second is None for second in seconds):
        # A tokenizer call takes pairs for all rows or none: encode the two kinds apart and interleave.
        pair_rows = [i for i, second in enumerate(seconds) if second is not None]
        single_rows = [i for i, second in enumerate(seconds) if second is None]
        pairs = tokenizer([firsts[i] for i in pair_rows], [seconds[i] for i in pair_rows],
                          **kwargs)
        singles = tokenizer([firsts[i] for i in single_rows], **kwargs)
        merged = {key: [None] * len(firsts) for key in pairs}
        for rows, encoded in ((pair_rows, pairs), (single_rows, singles)):
            for key in merged:
                for position, row in enumerate(rows):
                    merged[key][row] = encoded[key][position]
        return merged
    return tokenizer(firsts, seconds, **kwargs)


def tokenize_dataset(dataset, tokenizer, max_length: int = 128, num_proc: int | None = None):
    """``dataset``: a ``datasets.Dataset`` or ``DatasetDict``. Add ``input_ids``/``attention_mask`` (``token_type_ids`` where the encoder uses them), ``labels`` and
    ``length``; drop the text columns. ``length`` lets the Trainer group batches by length."""

    def encode(batch):
        encoded = dict(encode_tickets(tokenizer, batch["subject"], batch["description"], max_length))
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        if "label" in batch:
            # With extra label fields, one row of ids per ticket: the routed field first, then each extra field
            # (-100 where blank, so the loss skips it).
            encoded["labels"] = (batch["label"] if "extra_labels" not in batch else
                                 [[label, *(i if i >= 0 else -100 for i in extra)]
                                  for label, extra in zip(batch["label"], batch["extra_labels"])])
        return encoded

    import datasets

    def columns_of(ds):
        return ds.column_names if isinstance(ds, datasets.Dataset) else next(iter(ds.values())).column_names

    return dataset.map(
        encode,
        batched=True,
        remove_columns=columns_of(dataset),
        num_proc=num_proc,
        desc="Tokenizing",
    )
