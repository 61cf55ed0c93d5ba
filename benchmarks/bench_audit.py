"""The audit on the real benchmark with labels flipped at random: how many flipped rows it finds, how fast.

    python benchmarks/bench_audit.py                               # train.csv (38,269 tickets), 5% flipped
    python benchmarks/bench_audit.py --with_test                   # train.csv + test.csv (47,837): the timing at ~50k
    python benchmarks/bench_audit.py --rows 4000 --clean_copies    # a fixed subsample, and the files to train on

Flips are seeded and written (flips.csv: line, original, flipped); each flipped label is drawn uniformly from the
other queues. Reported: precision and recall of the flagged rows against the flipped ones, precision at the number
flipped (every ticket ranked by its score), and the audit's wall time. With --clean_copies it writes the clean
subsample, its noisy copy and the noisy copy without the flagged rows, for the training comparison in RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "it_service_tickets"


def flip_labels(labels: pd.Series, share: float, seed: int) -> tuple[pd.Series, np.ndarray]:
    """A copy with ``share`` of the labels replaced by another queue, drawn uniformly; the flipped positions."""
    rng = np.random.default_rng(seed)
    queues = sorted(labels.unique())
    flipped = np.sort(rng.choice(len(labels), int(round(share * len(labels))), replace=False))
    noisy = labels.copy()
    for position in flipped:
        others = [q for q in queues if q != labels.iat[position]]
        noisy.iat[position] = others[rng.integers(len(others))]
    return noisy, flipped


def main(argv=None) -> dict:
    from custom_trainer.audit import audit_file

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--flip", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", type=int, default=None, help="a fixed subsample of this many tickets (seeded)")
    parser.add_argument("--with_test", action="store_true", help="audit train.csv and test.csv together")
    parser.add_argument("--clean_copies", action="store_true")
    parser.add_argument("--output_dir", default="outputs/audit_bench")
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not (data / "train.csv").is_file():
        sys.exit(f"{data}/train.csv not found: the real benchmark is not on this machine")
    frame = pd.read_csv(data / "train.csv", keep_default_na=False)
    if args.with_test:
        frame = pd.concat([frame, pd.read_csv(data / "test.csv", keep_default_na=False)], ignore_index=True)
    if args.rows:
        frame = frame.sample(n=args.rows, random_state=args.seed).reset_index(drop=True)
    out = Path(args.output_dir) / f"{len(frame)}_flip{args.flip:g}_seed{args.seed}"
    out.mkdir(parents=True, exist_ok=True)
    noisy = frame.copy()
    noisy["Topic_group"], flipped = flip_labels(frame["Topic_group"], args.flip, args.seed)
    noisy.to_csv(out / "noisy.csv", index=False)

    started = time.perf_counter()
    report, flagged, audited = audit_file(out / "noisy.csv", ["Document"], "Topic_group", seed=args.seed)
    seconds = time.perf_counter() - started
    if len(audited) != len(noisy):
        sys.exit(f"{report['rows']}: rows were skipped; flipped rows cannot be matched to lines")
    lines = audited["line"].to_numpy()[flipped]  # the file's line of each flipped row (a text may span lines)
    pd.DataFrame({"line": lines, "original": frame["Topic_group"].iloc[flipped].to_numpy(),
                  "flipped": noisy["Topic_group"].iloc[flipped].to_numpy()}).to_csv(out / "flips.csv", index=False)
    truth = set(lines.tolist())
    found = set(flagged["line"].astype(int))
    ranked = audited["line"].to_numpy()[np.argsort(-audited["audit_score"].to_numpy(), kind="stable")]
    at_n = set(ranked[:len(truth)].tolist())
    result = {
        "tickets": len(frame), "flipped": len(truth), "flagged": len(found),
        "precision": len(found & truth) / max(len(found), 1), "recall": len(found & truth) / max(len(truth), 1),
        "precision_at_flipped": len(at_n & truth) / max(len(truth), 1),
        "seconds": round(seconds, 1), "out_of_fold_accuracy": report["out_of_fold"]["accuracy"],
        "suggested_merges": report["suggested_merges"],
        "near_duplicates": {k: report["near_duplicates"][k] for k in ("groups", "tickets", "conflicting_groups")},
        "certification_reach": [{k: row[k] for k in ("max_misrouting", "coverage")}
                                for row in report["certification_reach"]],
    }
    if args.clean_copies:
        frame.to_csv(out / "clean.csv", index=False)
        noisy[~audited["line"].isin(found).to_numpy()].to_csv(out / "noisy_without_flagged.csv", index=False)
        result["files"] = {name: str(out / f"{name}.csv") for name in ("clean", "noisy", "noisy_without_flagged")}
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "audit.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
