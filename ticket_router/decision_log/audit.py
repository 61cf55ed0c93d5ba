"""The audit sample (`serve --audit_rate R`): a seeded random share of the tickets the rule would auto-route goes to a
person instead, flagged in the log and shown without the model's suggestion.

Why: the final queue of an auto-routed ticket is usually the model's own answer (nobody re-reads a ticket that
arrived in the right-looking queue), so it cannot say whether the model was right. Only a queue a person chose
without being shown the model's answer (a suggestion anchors the answer) measures misrouting; the audit sample
gives such a queue for a random share of the auto-routed tickets, which is what re-certification and the monitor
need (docs/routing.md, "Learning from the desk").

The draw is a hash of the seed and the ticket's id: the same ticket is audited or not however often it is sent,
and every replica of the service draws alike.
"""

from __future__ import annotations

import hashlib

# What an audit ticket's answer carries instead of the model's suggestion.
HIDDEN = {"label": None, "score": None, "routing_score": None, "top3": [], "prediction_set": []}
HIDDEN_FIELDS = {}  # the extra fields' suggestions are hidden too: a person decides the ticket unprompted


class AuditSample:
    def __init__(self, rate: float, seed: int = 0):
        if not 0 <= rate < 1:
            raise ValueError(f"--audit_rate must be a share in [0, 1), got {rate}")
        self.rate, self.seed = float(rate), int(seed)

    def chosen(self, ticket_id: str) -> bool:
        """Whether this ticket, were the rule to auto-route it, goes to a person instead."""
        if self.rate <= 0:
            return False
        digest = hashlib.sha256(f"{self.seed}:{ticket_id}".encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.rate


def draw(decisions: list[dict], ticket_ids: list[str], sample: AuditSample | None) -> list[bool]:
    """Which tickets are audited: those the rule auto-routes that the sample chooses."""
    return [sample is not None and decision["route"] == "auto" and sample.chosen(ticket_id)
            for decision, ticket_id in zip(decisions, ticket_ids)]


def answers(decisions: list[dict], ticket_ids: list[str], audits: list[bool], sample: AuditSample | None) -> list[dict]:
    """The answers as sent: each with its ``id`` (and, with a sample, ``audit``); an audit ticket goes to triage with
    the model's suggestion hidden."""
    sent = []
    for decision, ticket_id, audited in zip(decisions, ticket_ids, audits):
        answer = {"id": ticket_id, **decision}
        if sample is not None:
            answer["audit"] = audited
        if audited:
            answer.update(HIDDEN, route="triage")
            if "fields" in answer:
                answer["fields"] = dict(HIDDEN_FIELDS)
        sent.append(answer)
    return sent
