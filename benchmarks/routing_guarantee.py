"""The routing rule with a guarantee against the previous rule, on an exported model's validation and test splits.

    python benchmarks/routing_guarantee.py --config configs/realistic.yaml --model outputs/realistic/model --handwritten
    python benchmarks/routing_guarantee.py --config configs/it_service_tickets.yaml --model outputs/it_service_tickets/model

Both rules are fitted on the validation split's calibrated probabilities, as `train.py` fits them:
  previous rule: the lowest top-probability threshold whose validation misrouting is <= the target (no guarantee);
  certified rule: custom_trainer/risk_control.py (misrouting <= target with probability >= 1 - delta).
The splits are rebuilt from the config with the model's seed (same fingerprint as training, checked). Then both
rules are applied to test (and the hand-written development set with --handwritten, never used to fit anything).
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


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="the training config the model was trained with")
    parser.add_argument("--model", required=True, help="the exported model folder")
    parser.add_argument("--seed", type=int, default=None, help="the training seed (default: the config's)")
    parser.add_argument("--handwritten", action="store_true", help="also score benchmarks/data/handwritten_dev.csv")
    args = parser.parse_args(argv)

    from custom_trainer.arguments import parse_args
    from custom_trainer.calibration import fit_rules
    from ticket_router.router import Router
    from train import data_fingerprint, load_data

    data_args, model_args, training_args, _ = parse_args(["--config", args.config, "--output_dir", "/tmp/unused",
                                                          *(["--seed", str(args.seed)] if args.seed is not None else [])])
    raw, _ = load_data(data_args, training_args.seed)
    router = Router(args.model)
    manifest = json.loads((Path(args.model) / "manifest.json").read_text())
    if manifest.get("data_fingerprint") != data_fingerprint(raw):
        sys.exit(f"{args.config} with seed {training_args.seed} does not rebuild the splits {args.model} was trained "
                 "on (data fingerprints differ); pass --seed")
    names = raw["train"].features["label"].names
    if names != router.labels:
        sys.exit(f"labels differ: data {names}, model {router.labels}")
    alpha, delta = model_args.max_misrouting, model_args.routing_delta
    triage = router.rule.triage_ids

    scored = {}
    for split in ("validation", "test"):
        started = time.time()
        scored[split] = (router.predict_proba(raw[split]["subject"], raw[split]["description"], progress=True),
                         np.array(raw[split]["label"]))
        print(f"{split}: {len(raw[split])} tickets scored in {time.time() - started:.0f} s", file=sys.stderr)
    if args.handwritten:
        dev = pd.read_csv(REPO / "benchmarks" / "data" / "handwritten_dev.csv", keep_default_na=False)
        index = {label: i for i, label in enumerate(router.labels)}
        unknown = sorted(set(dev["category"]) - set(index))
        if unknown:
            sys.exit(f"--handwritten: categories {unknown} are not among the model's labels {router.labels}")
        scored["hand-written"] = (router.predict_proba(dev["subject"], dev["description"]),
                                  dev["category"].map(index).to_numpy())

    val_probabilities, val_labels = scored["validation"]
    previous, certified, _ = fit_rules(val_probabilities, val_labels, alpha, delta, triage)
    naive = previous.label_thresholds[0]

    print(f"\n{args.model} ({args.config}); target misrouting <= {alpha:.0%}, delta {delta}, "
          f"{len(val_labels)} validation tickets")
    print(f"previous rule: top probability >= {naive:.4f}; certified rule: {certified.describe()}\n")
    print("| split | tickets | previous rule: auto-routed | misrouted among them | certified rule: auto-routed | "
          "misrouted among them |")
    print("| --- | --- | --- | --- | --- | --- |")
    results = {"previous_threshold": naive, "certified": certified.describe(), "splits": {}}
    for split, (probabilities, labels) in scored.items():
        old, new = previous.stats(probabilities, labels), certified.stats(probabilities, labels)
        for figures in (old, new):
            figures["misrouted"] = round(figures["misrouting"] * figures["auto_routed"])
        results["splits"][split] = {"previous": old, "certified": new}
        print(f"| {split} | {len(labels)} | {old['coverage']:.1%} | {old['misrouting']:.2%} ({old['misrouted']}/"
              f"{old['auto_routed']}) | {new['coverage']:.1%} | {new['misrouting']:.2%} ({new['misrouted']}/"
              f"{new['auto_routed']}) |")
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
