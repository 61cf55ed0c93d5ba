"""Why a threshold fitted on validation does or does not transfer to test on a split held out by template.

    python train.py --dataset heldout_templates --output_dir outputs/heldout
    python benchmarks/heldout_routing.py outputs/heldout/model

Every ticket of a seed template shares its subject (the template) and gets nearly the same score, so validation and
test each behave like 12 data points (one unseen template per category). This prints, for both splits, each
template's true and predicted category and its mean calibrated score, most confident first; then the misrouting
that the stored threshold gives on test, and the lowest misrouting that ANY threshold could give on test at a few
coverages (an oracle, computed from test labels, for diagnosis only: nothing is fitted on it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def split_scores(router, split):
    frame = split.to_pandas()
    names = split.features["label"].names
    probabilities = router.predict_proba(frame["subject"], frame["description"])
    frame["true"] = [names[i] for i in frame["label"]]
    frame["predicted"] = [router.labels[i] for i in probabilities.argmax(-1)]
    frame["score"] = probabilities.max(-1)
    frame["correct"] = frame["true"] == frame["predicted"]
    return frame


def lowest_misrouting(score: np.ndarray, correct: np.ndarray, coverage: float) -> float:
    """The misrouting among the ``coverage`` share of tickets with the highest scores (any threshold's best)."""
    from custom_trainer.confidence import coverage_curve

    _, accuracy = coverage_curve(score, correct)
    return float(1.0 - accuracy[max(1, int(round(coverage * len(score)))) - 1])


def main(argv=None) -> dict:
    from ticket_router.rule import routed_stats
    from ticket_router.router import Router
    from ticket_data import build_dataset

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a model exported by train.py --dataset heldout_templates")
    args = parser.parse_args(argv)
    router = Router(args.model)
    data = build_dataset("heldout_templates")
    frames = {name: split_scores(router, data[name]) for name in ("validation", "test")}
    for name, frame in frames.items():
        table = frame.groupby(["subject", "true", "predicted"]).agg(tickets=("score", "size"), score=("score", "mean"))
        table = table.reset_index().sort_values("score", ascending=False)
        print(f"\n{name}: one row per template (and prediction), most confident first")
        print(table.to_string(index=False, float_format=lambda value: f"{value:.3f}"))
    test = frames["test"]
    threshold = router.config.get("auto_route_threshold") or 0.0
    stats = routed_stats(test["correct"].to_numpy(), test["score"].to_numpy() >= threshold)
    print(f"\nstored threshold {threshold:.4f}: test coverage {stats['coverage']:.1%}, "
          f"misrouted {stats['misrouting']:.1%} of {stats['auto_routed']} auto-routed")
    oracle = {
        coverage: lowest_misrouting(test["score"].to_numpy(), test["correct"].to_numpy(), coverage)
        for coverage in (0.05, 0.10, 0.20, 0.30, 0.50)
    }
    print("lowest misrouting any threshold gives on test (oracle): "
          + ", ".join(f"{rate:.1%} at {coverage:.0%} coverage" for coverage, rate in oracle.items()))
    return {"test": stats, "oracle": oracle}


if __name__ == "__main__":
    main()
