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
    """The words of both fields, grouped into at most ``max_passes`` runs of neighbouring words of one field."""
    words = [("subject", i, w) for i, w in enumerate(subject.split())]
    words += [("description", i, w) for i, w in enumerate(description.split())]
    size = max(1, math.ceil(len(words) / max_passes))
    units = []
    for field in ("subject", "description"):
        mine = [w for w in words if w[0] == field]
        for start in range(0, len(mine), size):
            run = mine[start:start + size]
            units.append({"field": field, "positions": [i for _, i, _ in run], "text": " ".join(w for _, _, w in run)})
    return units


def _without(text: str, positions: list[int]) -> str:
    drop = set(positions)
    return " ".join(w for i, w in enumerate(text.split()) if i not in drop)


def occlusion_inputs(subject: str, description: str, max_passes: int = MAX_PASSES):
    """The texts to score, the ticket first and then each variant with one unit removed, and the units."""
    subject, description = subject or "", description or ""
    units = occlusion_units(subject, description, max_passes)
    subjects = [subject] + [_without(subject, u["positions"]) if u["field"] == "subject" else subject for u in units]
    descriptions = [description] + [_without(description, u["positions"]) if u["field"] == "description"
                                    else description for u in units]
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
        "forward_passes": len(probabilities), "words_per_pass": max((len(u["positions"]) for u in units), default=0),
    }


def explain_ticket(router, subject: str, description: str, top: int = TOP_WORDS, max_passes: int = MAX_PASSES) -> dict:
    """`explanation` of one ticket, scored by ``router`` in one batch; ``forward_passes`` says what it cost."""
    subjects, descriptions, units = occlusion_inputs(subject, description, max_passes)
    probabilities = router.predict_proba(subjects, descriptions, batch_size=len(subjects))
    return explanation(probabilities, units, router.labels, top)
