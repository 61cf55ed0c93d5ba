"""The log's tickets as the commands read them (pandas frames): the ones a person decided, the ones a version routed.

A person decided a ticket's queue when the ticket went to triage: the rule sent it there, or the audit sample did
(an auto-routable ticket shown to a person without the model's suggestion). Only those tickets' final queues say
whether the model was right; an auto-routed ticket's final queue is usually the model's own answer.
"""

from __future__ import annotations

import pandas as pd

COLUMNS = ("id", "ticket_id", "decided_at", "source", "model_version", "model_fingerprint", "predicted", "routing_score",
           "rule_route", "route", "audit", "text_sha256", "subject", "description", "final_queue", "closing_queue",
           "look_id", "probabilities")


def read_frame(log, where=None, columns=COLUMNS) -> pd.DataFrame:
    from sqlalchemy import select

    from .schema import decisions

    query = select(*[decisions.c[name] for name in columns]).order_by(decisions.c.id)
    if where is not None:
        query = query.where(where)
    with log.engine.connect() as connection:
        rows = connection.execute(query).fetchall()
    return pd.DataFrame(rows, columns=list(columns))


def person_decided(log) -> pd.DataFrame:
    """Tickets that went to triage and have their final queue back."""
    from sqlalchemy import and_

    from .schema import decisions

    return read_frame(log, and_(decisions.c.route == "triage", decisions.c.final_queue.is_not(None)))


def routed_by(log, fingerprint: str) -> pd.DataFrame:
    """Every ticket the export with this fingerprint routed."""
    from .schema import decisions

    return read_frame(log, decisions.c.model_fingerprint == fingerprint)


def has_text(frame: pd.DataFrame):
    """Rows whose text the log kept (a log that keeps hashes only cannot be re-scored)."""
    return frame["subject"].notna() | frame["description"].notna()
