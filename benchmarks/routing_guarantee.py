"""How well certification spends its calibration tickets: the stored method, the one before it, and an oracle.

    python benchmarks/routing_guarantee.py --run outputs/it_service_tickets [--run outputs/its_8k ...]

Reads each run's reports/scores.npz (calibrated probabilities of validation, calibration and test, written by train.py)
and reports/metrics.json (triage labels, delta). For each target in 1, 2, 3, 5 and 10% misrouting:
  pre-registered: ticket_router/certification.py, as train.py certifies (sequence pre-registered on validation,
                  certified on calibration): what it auto-routes on test, and the misrouting there;
  hedged:         the same with both scores' sequences run at delta / 2 each, the better kept (`hedge_scores`);
  72 sequences:   the method before it (benchmarks/risk_control.py: 2 scores x label groups x 4 start points,
                  Bonferroni), run on the same calibration tickets;
  oracle:         the largest share of test tickets one top-probability threshold routes with test misrouting <= the
                  target, chosen *with the test labels* (for comparison only: no method can know it).
Nothing is trained or scored again: the figures take seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGETS = (0.01, 0.02, 0.03, 0.05, 0.10)


def oracle_coverage(probabilities: np.ndarray, labels: np.ndarray, target: float, triage_ids=()) -> float:
    """The largest share of tickets a single top-probability threshold routes with misrouting <= target on them."""
    from custom_trainer.confidence import choose_threshold

    predicted = probabilities.argmax(-1)
    eligible = ~np.isin(predicted, list(triage_ids))
    confidence = probabilities.max(-1)
    threshold = choose_threshold(confidence[eligible], (predicted == labels)[eligible], target)
    return float((eligible & (confidence >= threshold)).mean())


def compare(run: Path) -> dict:
    from benchmarks.risk_control import certify_routing
    from ticket_router.certification import certify, grid_counts
    from ticket_router.rule import RoutingRule

    scores = np.load(run / "reports" / "scores.npz")
    metrics = json.loads((run / "reports" / "metrics.json").read_text())
    if "calibration_probabilities" not in scores:
        raise SystemExit(f"{run}: no calibration split in reports/scores.npz (trained with calibration_size 0)")
    names = list(json.loads((run / "model" / "config.json").read_text())["id2label"].values())
    triage = metrics["routing"]["triage_labels"]
    delta = metrics["routing"]["delta"]
    val = scores["validation_probabilities"], scores["validation_labels"]
    cal = scores["calibration_probabilities"], scores["calibration_labels"]
    test = scores["test_probabilities"], scores["test_labels"]
    counts = grid_counts(*val)
    rows = []
    for target in TARGETS:
        new = certify(*cal, counts, names, target, delta, triage)
        new_rule = RoutingRule(tuple(new["thresholds"][n] for n in names), new["score"], tuple(triage))
        hedged = certify(*cal, counts, names, target, delta, triage, hedge_scores=True)
        hedged_rule = RoutingRule(tuple(hedged["thresholds"][n] for n in names), hedged["score"], tuple(triage))
        old = certify_routing(*cal, target, delta, triage)
        thresholds = old.thresholds_for(np.arange(len(names)))
        old_rule = RoutingRule(tuple(None if np.isinf(t) else float(t) for t in thresholds), old.score, tuple(triage))
        needed = [f["calibration_tickets_needed"] for f in new["families"] if f["calibration_tickets_needed"]]
        rows.append({
            "target": target,
            "pre_registered": {**new_rule.stats(*test), "calibration_coverage": new["coverage"],
                               "rule": new_rule.describe(), "start": new["families"][0]["start"] if new["families"]
                               else None, "calibration_tickets_needed": max(needed) if needed else None},
            "hedged": {**hedged_rule.stats(*test), "rule": hedged_rule.describe()},
            "seventy_two_sequences": {**old_rule.stats(*test), "calibration_coverage": old.coverage,
                                      "rule": old_rule.describe(), "sequences": old.tests},
            "oracle_test_coverage": oracle_coverage(*test, target, triage),
        })
    return {"run": str(run), "validation": len(val[1]), "calibration": len(cal[1]), "test": len(test[1]),
            "test_accuracy": float((test[0].argmax(-1) == test[1]).mean()), "delta": delta, "rows": rows}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, help="a train.py output folder (repeatable)")
    args = parser.parse_args(argv)
    results = [compare(Path(run)) for run in args.run]
    for result in results:
        print(f"\n{result['run']}: {result['validation']} validation, {result['calibration']} calibration, "
              f"{result['test']} test tickets; test accuracy {result['test_accuracy']:.4f}; delta {result['delta']}")
        print("| target | pre-registered: test auto-routed | misrouted | / oracle | hedged: auto-routed | misrouted | "
              "72 sequences: auto-routed | misrouted | oracle (test labels) |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for row in result["rows"]:
            new, old, oracle = row["pre_registered"], row["seventy_two_sequences"], row["oracle_test_coverage"]
            hedged = row["hedged"]
            share = f"{new['coverage'] / oracle:.2f}" if oracle else "-"
            print(f"| {row['target']:.0%} | {new['coverage']:.1%} | {new['misrouting']:.2%} | {share} | "
                  f"{hedged['coverage']:.1%} | {hedged['misrouting']:.2%} | {old['coverage']:.1%} | "
                  f"{old['misrouting']:.2%} | {oracle:.1%} |")
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
