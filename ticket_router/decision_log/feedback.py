"""Final queues back: the queue a person chose for each ticket, matched to the log by the desk's ticket id.

From the service (`POST /feedback`, scope ``feedback``) or from the ticketing system's export of closed tickets
(`ticket-classifier feedback --decision_log URL --input closed.csv --id_column ID --label_column QUEUE`).

Which queue: the **first queue a person chose**, not where the ticket ended after escalations. A ticket that was
triaged to Network and later escalated to Security was routed right if the desk's triage would have sent it to
Network; counting Security would call every escalation a misrouting. Most systems keep it: ServiceNow's first
assignment group (the ``assignment_group`` of the first "Assigned" entry of the ticket's audit history, or a
``u_first_assignment_group`` field many desks add), Jira's first value of the team field in the issue's changelog,
Zendesk's first group in the ticket audits. ``--closing_column`` keeps where the ticket ended as well, for reading.

Importing is idempotent: a queue equal to the stored one changes nothing, so the same file twice changes nothing;
a different queue replaces the stored one and is counted as changed. Ids the log does not hold are counted (tickets
routed before the log, or by another router) and queues the model does not know are kept and counted.
"""

from __future__ import annotations

import json

from .store import utcnow

CHUNK = 500  # ids per query


def clean_items(items) -> tuple[list[tuple[str, str, str | None]], dict]:
    """(id, queue, closing queue) per ticket, blank ids and queues left out and counted; an id given twice keeps its
    first queue (the first a person chose) and is counted."""
    from ticket_data.preprocessing import clean_label

    seen, kept = set(), []
    skipped = {"blank_id": 0, "blank_queue": 0, "repeated_id": 0}
    for ticket_id, queue, closing in items:
        ticket_id = "" if ticket_id is None else str(ticket_id).strip()
        queue = clean_label(queue)
        if not ticket_id:
            skipped["blank_id"] += 1
        elif not queue:
            skipped["blank_queue"] += 1
        elif ticket_id in seen:
            skipped["repeated_id"] += 1
        else:
            seen.add(ticket_id)
            kept.append((ticket_id, queue, clean_label(closing) or None))
    return kept, skipped


def apply_feedback(log, items, source: str, known_queues=None) -> dict:
    """Store final queues; returns the counts: received, matched, unknown (ids), changed, unchanged, newly set,
    skipped (blank, repeated) and queues the model does not know (``known_queues``: the labels of the export in
    use; None: the queues of the log's newest decision)."""
    from sqlalchemy import and_, bindparam, or_, select, update

    from .schema import decisions

    kept, skipped = clean_items(items)
    stored: dict[str, set] = {}
    with log.engine.connect() as connection:
        for start in range(0, len(kept), CHUNK):
            ids = [ticket_id for ticket_id, _, _ in kept[start:start + CHUNK]]
            for ticket_id, final in connection.execute(
                    select(decisions.c.ticket_id, decisions.c.final_queue).where(decisions.c.ticket_id.in_(ids))):
                stored.setdefault(ticket_id, set()).add(final)
        if known_queues is None:
            newest = connection.execute(select(decisions.c.probabilities).order_by(decisions.c.id.desc())
                                        .limit(1)).scalar()
            known_queues = list(json.loads(newest)) if newest else []
    changes, counts = [], {"received": len(kept), "matched": 0, "unknown_ids": 0, "newly_set": 0, "changed": 0,
                           "unchanged": 0}
    unknown_queues: dict[str, int] = {}
    for ticket_id, queue, closing in kept:
        if ticket_id not in stored:
            counts["unknown_ids"] += 1
            continue
        counts["matched"] += 1
        if known_queues and queue not in known_queues:
            unknown_queues[queue] = unknown_queues.get(queue, 0) + 1
        before = stored[ticket_id]
        if before == {queue}:
            counts["unchanged"] += 1
            continue
        counts["newly_set" if before == {None} else "changed"] += 1
        changes.append({"b_id": ticket_id, "b_queue": queue, "b_closing": closing})
    if changes:
        now = utcnow()
        statement = (update(decisions)
                     .where(and_(decisions.c.ticket_id == bindparam("b_id"),
                                 or_(decisions.c.final_queue.is_(None), decisions.c.final_queue != bindparam("b_queue"))))
                     .values(final_queue=bindparam("b_queue"), closing_queue=bindparam("b_closing"), final_at=now,
                             final_source=source))
        with log.engine.begin() as connection:
            for start in range(0, len(changes), CHUNK):
                connection.execute(statement, changes[start:start + CHUNK])
    return {**counts, "skipped": skipped, "unknown_queues": dict(sorted(unknown_queues.items()))}


def feedback_line(counts: dict) -> str:
    skipped = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts["skipped"].items() if v) or "none"
    line = (f"{counts['received']} final queues: {counts['matched']} matched ({counts['newly_set']} set, "
            f"{counts['changed']} changed, {counts['unchanged']} unchanged), {counts['unknown_ids']} ids not in the log; "
            f"skipped: {skipped}")
    if counts["unknown_queues"]:
        line += f"; queues the model does not know (kept): {counts['unknown_queues']}"
    return line
