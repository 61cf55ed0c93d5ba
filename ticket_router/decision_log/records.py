"""A routed ticket as a decision-log row: the desk's id (or one made up), the hash of its cleaned text, the text itself
unless the log keeps hashes only, and what the model, the rule and the audit sample did with it."""

from __future__ import annotations

import uuid
from datetime import datetime

import numpy as np

from ..contract import TICKET_ID_LENGTH as ID_LENGTH, ticket_text_sha256
from .store import dumps, utcnow

SOURCES = ("predict", "page", "file", "cli")


def new_ticket_id() -> str:
    """An id for a ticket sent without one (returned with its answer, so the desk can send its final queue back)."""
    return f"tc-{uuid.uuid4().hex}"


def check_ticket_id(value) -> str:
    """A desk's ticket id: a non-empty string of at most `ID_LENGTH` characters."""
    if not isinstance(value, str) or not value.strip() or len(value) > ID_LENGTH:
        raise ValueError(f"a ticket id is a non-empty string of at most {ID_LENGTH} characters, got {str(value)[:40]!r}")
    return value.strip()


def decision_rows(router, probabilities: np.ndarray, decisions: list[dict], subjects, descriptions, ticket_ids,
                  audits, source: str, store_text: bool = True, when: datetime | None = None) -> list[dict]:
    """One row per ticket (`schema.decisions`). ``decisions``: the router's decisions (`Router.decisions`: what the
    rule said); ``audits``: which of them the audit sample sent to a person instead; ``subjects``/``descriptions``:
    the texts as received (the hash is of their cleaned form, as training and the export's seen tickets hash them)."""
    from ticket_data.preprocessing import clean_text

    when = when or utcnow()
    labels = router.labels
    rows = []
    for row, decision, subject, description, ticket_id, audit in zip(
            probabilities, decisions, subjects, descriptions, ticket_ids, audits):
        top = int(np.argmax(row))
        members = decision.get("prediction_set")
        rows.append({
            "ticket_id": ticket_id, "decided_at": when, "source": source,
            "model_version": router.model_dir.name, "model_fingerprint": router.fingerprint,
            "predicted": labels[top], "score": float(row[top]),
            "routing_score": float(decision["routing_score"]),
            "rule_route": decision["route"], "route": "triage" if audit else decision["route"], "audit": bool(audit),
            "probabilities": dumps({label: round(float(p), 6) for label, p in zip(labels, row)}),
            "prediction_set": None if members is None else dumps([m["label"] for m in members]),
            "text_sha256": ticket_text_sha256(clean_text(subject), clean_text(description)),
            "subject": subject if store_text else None, "description": description if store_text else None,
        })
    return rows
