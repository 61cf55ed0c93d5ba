"""The words that decided: occlusion over the words of one ticket.

Each word (or, in a long ticket, each run of neighbouring words) is removed in turn and the ticket scored again; a
word's effect is how much the predicted queue's probability falls without it (negative: the queue is surer without
it). Works the same on both backends, since it only needs probabilities: the cost is bounded by ``max_passes``
forward passes for the variants plus one for the ticket itself, scored as one batch.
"""

from __future__ import annotations

import math

import numpy as np

MAX_PASSES = 64  # variants scored per ticket; longer tickets are occluded in runs of neighbouring words
TOP_WORDS = 5


def occlusion_units(subject: str, description: str, max_passes: int = MAX_PASSES) -> list[dict]:
    """The words of both fields, grouped into at most ``max_passes`` runs of neighbouring words.

    A run stays within one field: each field's words are cut into runs of ``size`` words, the smallest size whose
    runs, counted over both fields, fit the budget (a field's last run may be shorter, so the count is taken per
    field, not over the ticket as a whole). A budget of one pass for two fields that both hold words is the one case
    no field-local run fits: the whole ticket is then one run. ``positions`` maps each field to its word indices."""
    if not (isinstance(max_passes, int) and max_passes >= 1):
        raise ValueError(f"max_passes must be an integer >= 1, got {max_passes!r}")
    fields = [(name, text.split()) for name, text in (("subject", subject), ("description", description))]
    fields = [(name, words) for name, words in fields if words]
    if not fields:
        return []
    if len(fields) > max_passes:
        return [{"field": "+".join(name for name, _ in fields),
                 "positions": {name: list(range(len(words))) for name, words in fields},
                 "text": " ".join(" ".join(words) for _, words in fields)}]
    size = max(1, math.ceil(sum(len(words) for _, words in fields) / max_passes))
    while sum(math.ceil(len(words) / size) for _, words in fields) > max_passes:
        size += 1  # ends at the longest field's length at the latest: one run per field
    return [{"field": name, "positions": {name: list(range(start, min(start + size, len(words))))},
             "text": " ".join(words[start:start + size])}
            for name, words in fields for start in range(0, len(words), size)]


def _without(text: str, positions: list[int]) -> str:
    drop = set(positions)
    return " ".join(w for i, w in enumerate(text.split()) if i not in drop)


def occlusion_inputs(subject: str, description: str, max_passes: int = MAX_PASSES):
    """The texts to score, the ticket first and then each variant with one unit removed (at most ``max_passes``
    variants, so at most ``max_passes + 1`` texts), and the units."""
    subject, description = subject or "", description or ""
    units = occlusion_units(subject, description, max_passes)
    subjects = [subject] + [_without(subject, u["positions"].get("subject", ())) for u in units]
    descriptions = [description] + [_without(description, u["positions"].get("description", ())) for u in units]
    return subjects, descriptions, units


def explanation(probabilities: np.ndarray, units: list[dict], labels: list[str], top: int = TOP_WORDS) -> dict:
    """The predicted queue, its probability, and the ``top`` units whose removal lowers it most, from the
    probabilities of `occlusion_inputs`' texts."""
    predicted = int(probabilities[0].argmax())
    effects = probabilities[0, predicted] - probabilities[1:, predicted]
    order = np.argsort(-effects, kind="stable")[:top]
    return {
        "label": labels[predicted], "score": round(float(probabilities[0, predicted]), 6),
        "words": [{"text": units[i]["text"], "field": units[i]["field"], "effect": round(float(effects[i]), 6)}
                  for i in order],
        "forward_passes": len(probabilities), "words_per_pass": max((sum(map(len, u["positions"].values())) for u in units), default=0),
    }


def explain_ticket(router, subject: str, description: str, top: int = TOP_WORDS, max_passes: int = MAX_PASSES) -> dict:
    """`explanation` of one ticket, scored by ``router`` in one batch; ``forward_passes`` says what it cost."""
    subjects, descriptions, units = occlusion_inputs(subject, description, max_passes)
    probabilities = router.predict_proba(subjects, descriptions, batch_size=len(subjects))
    return explanation(probabilities, units, router.labels, top)
