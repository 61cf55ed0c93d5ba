"""The decision log: every ticket the router decides, recorded with the export that decided it, and the final queue a
person chose once the desk sends it back (`feedback`). From it the router re-certifies its rule on the desk's own
tickets (`calibrate --decision_log`), watches its promise (`monitor --decision_log`), exports the desk's labels for a
retrain (`export-labelled`) and promotes a better model only when it proves better on the same tickets (`promote`).

    store.py     the log behind a URL (SQLite file or PostgreSQL), its schema migrated on first use
    schema.py    the tables (SQLAlchemy Core); migrations/ the versioned schema (alembic)
    records.py   a decision as a row: ids, hashes, the text or only its hash
    writer.py    the service's writer: batched, off the event loop, bounded, retried, counted
    feedback.py  final queues back (POST /feedback, `ticket-classifier feedback`)
    audit.py     the audit sample: a seeded share of auto-routable tickets sent to a person
    tickets.py   the tickets a person decided, as the commands read them

Needs SQLAlchemy and alembic (`pip install 'ticket-classifier[log]'`; PostgreSQL also `[postgresql]`). Nothing is
logged unless asked (`--decision_log`).
"""
