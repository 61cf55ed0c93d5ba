"""The routing rule and its guarantee in words: the lines `train.py` prints and the model card's "Routing" section,
written at training and again by `ticket-classifier calibrate` (so the card always says what the rule was certified
on). Plain strings from the ``routing_guarantee`` dict of an export's config.json; no dependencies."""

from __future__ import annotations

SCORE_WORDS = {"probability": "top calibrated probability",
               "margin": "top calibrated probability minus the runner-up's"}


def guarantee_line(guarantee: dict) -> str:
    """One sentence: the promise, or why there is none."""
    size = guarantee.get("calibration_size", 0)
    if not size:
        return f"nothing auto-routed: certified on {guarantee.get('certified_on') or 'nothing'}"
    queues = guarantee.get("queue_max_misrouting") or {}
    own = "".join(f", {name} <= {target:.1%}" for name, target in queues.items())
    return (f"misrouting <= {guarantee['max_misrouting']:.0%} of auto-routed tickets{own}, with probability >= "
            f"{1 - guarantee['delta']:.0%} (Learn-then-Test on {size} calibration tickets that chose nothing)")


def frontier_lines(guarantee: dict) -> list[str]:
    """The menu: what each target would certify on these calibration tickets (not the stored rule)."""
    rows = guarantee.get("frontier") or []
    if not rows:
        return []
    parts = []
    for row in rows:
        part = f"{row['max_misrouting']:.0%}: {row['coverage']:.1%}"
        if row["coverage"] == 0 and row.get("calibration_tickets_needed"):
            part += f" (needs ~{row['calibration_tickets_needed']:,} calibration tickets)"
        parts.append(part)
    lines = ["what each misrouting target would auto-route (certified on the same calibration tickets; a menu, not "
             "the stored rule): " + ", ".join(parts)]
    for family in guarantee.get("families", []):
        if family["threshold"] is None and family.get("calibration_tickets_needed"):
            lines.append(f"{family['family']} (target {family['max_misrouting']:.1%}) certifies nothing on "
                         f"{guarantee['calibration_size']} calibration tickets; about "
                         f"{family['calibration_tickets_needed']:,} would be needed at this model's error rate")
    return lines


def menu_line(rows: list[dict], held_back: int) -> str:
    """The menu read on the held-back part (`calibrate --menu_share`): what each target would auto-route."""
    if not rows:
        return f"menu: no held-back ticket to read it on ({held_back} held back)"
    return (f"menu on {held_back} held-back tickets, which certify nothing (pick a target here, then certify with the "
            "same --menu_share): " + ", ".join(f"{row['max_misrouting']:.0%}: {row['coverage']:.1%}" for row in rows))


def _needed(row: dict) -> str:
    needed = row.get("calibration_tickets_needed")
    return f"~{needed:,}" if not row["coverage"] and needed else ""


def routing_card(guarantee: dict, score: str, thresholds: dict, temperature: float, test: dict | None = None) -> str:
    """The "Routing" section of the model card (without its heading)."""
    rows = "\n".join(f"| {label} | {'never' if t is None else f'{t:.4f}'} | "
                     f"{(guarantee.get('queue_max_misrouting') or {}).get(label, guarantee['max_misrouting']):.1%} |"
                     for label, t in thresholds.items())
    frontier = "\n".join(f"| {row['max_misrouting']:.0%} | {row['coverage']:.1%} | {_needed(row)} |"
                         for row in guarantee.get("frontier") or [])
    test_line = ""
    if test is not None:
        test_line = (f"\nTest: {test['coverage']:.1%} auto-routed, {test['misrouting']:.2%} of them misrouted (the "
                     f"previous rule, lowest threshold meeting the target on validation, no guarantee: "
                     f"{test['previous_rule']['coverage']:.1%} / {test['previous_rule']['misrouting']:.2%}).")
    menu = ""
    if frontier:
        menu = f"""

What each target would auto-route, certified the same way on the same calibration tickets. A menu to choose a target
from, not the stored rule: each row holds at its own delta; re-certify the chosen target with `ticket-classifier
calibrate` on fresh labelled tickets for a clean guarantee.

| max misrouting | auto-routed (calibration tickets) | calibration tickets needed |
| --- | --- | --- |
{frontier}"""
    return f"""A ticket is auto-routed when its {score} score ({SCORE_WORDS.get(score, score)}) reaches the threshold of
its predicted label; otherwise it goes to a person. **Guarantee**: {guarantee_line(guarantee)}.
Certified on {guarantee.get('certified_on') or 'nothing'}. Method: {guarantee.get('method', '')}.
{guarantee.get('assumes', '')} It says nothing about tickets unlike these: check live tickets, with the queues people
finally assigned, with `ticket-classifier monitor --label_column ...`.{test_line}
Temperature {temperature:.3f} (fitted on validation).

| predicted label | threshold | target |
| --- | --- | --- |
{rows}{menu}"""
