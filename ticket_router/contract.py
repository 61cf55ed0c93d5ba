"""The contract between the training side (`custom_trainer`) and the routing runtime (`ticket_router`): the keys of an
export's ``config.json`` that routing reads, and the few rules both sides must compute alike. One module with no project
import and no third-party import at load time (numpy only inside the function that counts), so the runtime, the
trainer and the model code saved with every export (``modeling.py``) import the same definitions.

Layers depend one way: ``ticket_data`` <- ``ticket_router`` (read an export, score, decide, serve) <-
``custom_trainer`` (train, calibrate, export, evaluate, ONNX export). Nothing under ``ticket_router/`` imports
``custom_trainer``; what needs the training libraries is registered by the training side as entry points
(``COMMANDS_GROUP``, ``MODEL_CLASSES_GROUP``).
"""

from __future__ import annotations

MODEL_TYPE = "ticket-classifier"

# config.json keys the runtime reads (written by custom_trainer/modeling.TicketClassifierConfig).
TEMPERATURE_KEY = "calibration_temperature"  # logits are divided by it inside the model and the ONNX graph
POOLING_KEY = "pooling"
WIDE_BUCKETS_KEY, WIDE_SCALE_KEY = "wide_buckets", "wide_scale"
ROUTING_SCORE_KEY = "routing_score"  # one of ROUTING_SCORES
THRESHOLDS_KEY = "auto_route_thresholds"  # {label: threshold or null}; null or missing: never auto-routed
LEGACY_THRESHOLD_KEY = "auto_route_threshold"  # exports before per-label thresholds: one top-probability threshold
TRIAGE_LABELS_KEY = "triage_labels"  # labels never auto-routed, by name
GUARANTEE_KEY, PROFILE_KEY = "routing_guarantee", "routing_profile"  # what was certified; what monitor compares with
# Conformal prediction sets (ticket_router/prediction_sets.py): method, alpha, quantile, calibration size; null or
# missing: the export gives no sets.
PREDICTION_SETS_KEY = "prediction_sets"
# More fields the model predicts beside the routed one (queue, priority, type): a list of {"name", "labels",
# "calibration_temperature", "wide_scale", "prediction_sets", ...}, one head each (state-dict names FIELD_HEADS.<i>.);
# the ONNX graph's outputs FIELD_OUTPUT.format(i). Missing or empty: one field.
EXTRA_FIELDS_KEY = "extra_fields"
FIELD_HEADS = "head_fields"
FIELD_OUTPUT = "field_logits_{}"

# What the training side registers (pyproject.toml, entry points): the `ticket-classifier` commands that need the
# training libraries (each a `main(argv) -> int`), and the model classes transformers needs to load an export
# (loading one registers them with the Auto classes).
COMMANDS_GROUP = "ticket_classifier.commands"
MODEL_CLASSES_GROUP = "ticket_classifier.model_classes"

# Long tickets (config key CHUNK_KEY): the encoder reads a ticket of up to max_input_length tokens in windows of
# chunk_length tokens, each encoded alone, and the pooling runs over the tokens of every window (the first window's
# first token for "cls"). 0 or missing: one window of max_input_length tokens (the encoder's own limit).
CHUNK_KEY = "chunk_length"
# Or by its two ends (config keys HEAD_TAIL_KEY, TAIL_KEY): a ticket of up to max_input_length tokens longer than
# head_tail_length is read in one pass of head_tail_length tokens, its first head_tail_length - tail_length tokens
# and its last tail_length (the closing separator included); a shorter ticket is read whole. 0 or missing: off.
HEAD_TAIL_KEY = "head_tail_length"
TAIL_KEY = "tail_length"

# How the head reads the encoder's token vectors. "cls": the first token, as the seed's DistilBERT head. "mean": the
# average of the non-padding tokens, the pooling sentence encoders such as all-MiniLM-L6-v2 were trained with.
POOLINGS = ("cls", "mean")
POOLING_NAMES = {"cls": "first token", "mean": "mean of the token vectors"}

# The head: Dropout, Linear(hidden, head_hidden_size), GELU, Dropout, Linear(head_hidden_size, labels). The state-dict
# names of its two linear layers, which the plain PyTorch forward (ticket_router/torch_model.py) reads.
HEAD_HIDDEN_LINEAR, HEAD_OUTPUT_LINEAR = "head.1", "head.4"

# The scores a routing threshold may apply to: the top calibrated probability, or its margin over the runner-up.
ROUTING_SCORES = ("probability", "margin")

# The wide part's bigram hash: bucket = vocab_size + (first * BIGRAM_PRIME + second) mod wide_buckets. In int64,
# exact in torch, NumPy and ONNX alike (token ids stay far below 2**63 / BIGRAM_PRIME).
BIGRAM_PRIME = 1_000_003


def hashed_bigrams(first, second, vocab_size: int, buckets: int):
    """The feature index of each adjacent token pair (``first``, ``second``: int64 NumPy arrays or torch tensors of
    equal shape), after the ``vocab_size`` unigram features. ``%`` is the floor modulo in both libraries."""
    return vocab_size + (first * BIGRAM_PRIME + second) % buckets


def routed_stats(correct, routed) -> dict:
    """Share auto-routed ("coverage") and the share misrouted among them ("misrouting", 0 when nothing is routed),
    with the counts: the routed statistics every report, metric, benchmark and the certification use."""
    import numpy as np  # here, not at the top: `ticket-classifier --help` reads this module and must answer at once

    correct, routed = np.asarray(correct, dtype=bool), np.asarray(routed, dtype=bool)
    return {
        "coverage": float(routed.mean()) if len(routed) else 0.0,
        "misrouting": float((~correct[routed]).mean()) if routed.any() else 0.0,
        "auto_routed": int(routed.sum()),
        "triaged": int((~routed).sum()),
    }


def format_interval(bounds, percent: bool = False) -> str:
    """A 95% interval as printed in reports, cards and the CLI: ``[0.8268, 0.9074]``, or ``[1.2%, 3.4%]``."""
    if percent:
        return f"[{bounds[0] * 100:.1f}%, {bounds[1] * 100:.1f}%]"
    return f"[{bounds[0]:.4f}, {bounds[1]:.4f}]"


# The tickets an export trained on or that chose anything (train and validation splits), as 64-bit prefixes of
# `ticket_text_sha256`, sorted (numpy uint64, `SEEN_TICKETS_FILE` in the export, listed in its manifest): a ticket
# whose hash is there may not certify a rule or judge a model (ticket_router/recertify.py, the decision log).
SEEN_TICKETS_FILE = "seen_tickets.npy"


def ticket_text_key(subject: str, description: str) -> str:
    """What makes two tickets the same ticket: their cleaned texts (ticket_data.preprocessing.clean_text), joined
    by a newline and case-folded; the key certification de-duplicates on."""
    return f"{subject}\n{description}".casefold()


def ticket_text_sha256(subject: str, description: str) -> str:
    """SHA-256 (hex) of `ticket_text_key` of cleaned texts: how the decision log and the export's seen tickets name a
    ticket without keeping its text."""
    import hashlib

    return hashlib.sha256(ticket_text_key(subject, description).encode("utf-8")).hexdigest()


def hash_prefix64(hex_digest: str) -> int:
    """The first 64 bits of a hex digest, as stored in `SEEN_TICKETS_FILE`."""
    return int(hex_digest[:16], 16)

TICKET_ID_LENGTH = 200  # longest desk ticket id accepted (INC0012345, DESK-123, a UUID: far below)
