"""Conformal prediction sets on a run's own held-out splits: coverage and set size on test, per alpha.

    python benchmarks/prediction_sets.py outputs/it_service_tickets     # the real benchmark's full run

Reads <run>/reports/scores.npz (the calibrated probabilities train.py writes for validation, calibration and test),
calibrates q on the calibration split (which chose nothing) and measures the sets on test: empirical coverage (the
acceptance window is [1 - alpha - 0.01, 1 - alpha + 0.03]) and mean / median / largest set size. No model is loaded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv=None) -> list[dict]:
    from ticket_router.prediction_sets import calibrate_sets, prediction_sets, set_stats

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a training run's output folder (with reports/scores.npz)")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.1, 0.05])
    args = parser.parse_args(argv)
    scores = np.load(Path(args.run) / "reports" / "scores.npz")
    if "calibration_probabilities" not in scores:
        sys.exit(f"{args.run}: no calibration split in scores.npz (trained with calibration_size 0)")
    rows = []
    for alpha in args.alphas:
        stored = calibrate_sets(scores["calibration_probabilities"], scores["calibration_labels"], alpha)
        members = prediction_sets(scores["test_probabilities"], float("inf") if stored["quantile"] is None
                                  else stored["quantile"])
        stats = set_stats(members, scores["test_labels"])
        within = 1 - alpha - 0.01 <= stats["coverage"] <= 1 - alpha + 0.03
        rows.append({"alpha": alpha, **stored, "test_tickets": int(len(scores["test_labels"])), **stats,
                     "within_window": within,
                     "top1_accuracy": float((scores["test_probabilities"].argmax(1) == scores["test_labels"]).mean())})
    print(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
