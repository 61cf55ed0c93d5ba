"""The decision log's tables (SQLAlchemy Core): one definition for SQLite and PostgreSQL, created and upgraded by the
versioned migrations of ``migrations/`` (alembic), never by hand-written SQL.

``decisions``: one row per routed ticket: the desk's ticket id, when, which export (version and fingerprint), what the
model said (queue, probabilities, routing score, prediction set), what the rule said and where the ticket went (an
audit ticket goes to a person although the rule would auto-route it), the text (or only its hash), and, once the desk
sends it back, the final queue a person chose.

``versions``: each export version that logged a decision: its weights' hash, backend and routing rule, so that a
later certification knows which tickets the rule in force could have auto-routed (ticket_router/recertify.py).

``looks``: every time the log's tickets were used to decide something (a certification, a promotion's comparison), with
the export and what it found; ``decisions.look_id`` marks the tickets a certification look used (repeated looks:
ticket_router/decision_log/certify.py).
"""

from __future__ import annotations

from sqlalchemy import (Boolean, Column, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, Table, Text)

from ..contract import TICKET_ID_LENGTH as ID_LENGTH

metadata = MetaData()
QUEUE_LENGTH = 300

versions = Table(
    "versions", metadata,
    Column("fingerprint", String(64), primary_key=True),  # the manifest's hash: one exact version
    Column("model_version", String(200), nullable=False),
    Column("weights_sha256", String(64), nullable=False),
    Column("backend", String(40), nullable=False),  # torch, or onnx with its quantization
    Column("rule", Text, nullable=False),  # JSON {"score": ..., "thresholds": {queue: threshold or null}}
    Column("registered_at", DateTime(timezone=True), nullable=False),
)

looks = Table(
    "looks", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(20), nullable=False),  # certify, promote
    Column("model_version", String(200)),
    Column("model_fingerprint", String(64)),
    Column("tickets", Integer, nullable=False),
    Column("summary", Text),  # JSON: targets, delta spent, what was certified or compared
)

decisions = Table(
    "decisions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticket_id", String(ID_LENGTH), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("source", String(20), nullable=False),  # predict (the service's JSON), page, file (the page's CSV), cli
    Column("model_version", String(200), nullable=False),
    Column("model_fingerprint", String(64), nullable=False),
    Column("predicted", String(QUEUE_LENGTH), nullable=False),
    Column("score", Float, nullable=False),
    Column("routing_score", Float, nullable=False),
    Column("rule_route", String(10), nullable=False),  # what the certified rule said: auto or triage
    Column("route", String(10), nullable=False),  # where the ticket went (an audit ticket: triage)
    Column("audit", Boolean, nullable=False, default=False),
    Column("probabilities", Text, nullable=False),  # JSON {queue: probability}
    Column("prediction_set", Text),  # JSON [queue, ...], most probable first; null: the export has no sets
    Column("text_sha256", String(64), nullable=False),  # contract.ticket_text_sha256 of the cleaned texts
    Column("subject", Text),  # null when the log keeps hashes only
    Column("description", Text),
    Column("final_queue", String(QUEUE_LENGTH)),  # the first queue a person chose (feedback)
    Column("closing_queue", String(QUEUE_LENGTH)),  # where the ticket ended, when the desk sends that too
    Column("final_at", DateTime(timezone=True)),
    Column("final_source", String(20)),  # api, file
    Column("look_id", Integer, ForeignKey("looks.id")),  # the certification look that used this ticket
    Index("ix_decisions_ticket_id", "ticket_id"),
    Index("ix_decisions_fingerprint", "model_fingerprint"),
    Index("ix_decisions_text_sha256", "text_sha256"),
)
