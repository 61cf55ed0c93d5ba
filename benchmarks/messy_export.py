"""Write a service-desk export as real tools produce it, to try the data layer on (not a benchmark of quality).

    python benchmarks/messy_export.py outputs/messy_export.csv
    python train.py --train_file outputs/messy_export.csv --text_columns "Short description" Description \
        --label_column "Assignment group" --output_dir outputs/messy

Built from the `realistic` corpus: its 12 categories split into 38 assignment groups with a long tail (the largest
holds ~10%, eight hold 1-4 tickets), semicolon-delimited with its own column names, Excel's _x000D_ line breaks,
HTML bodies, signatures, a few rows without text or group, and repeated tickets. Deterministic (seed 0).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GROUPS_PER_CATEGORY = (4, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2)  # 30 groups over the 12 categories


def messy_export(seed: int = 0) -> pd.DataFrame:
    from ticket_data import build_dataset

    corpus = build_dataset("realistic")
    frame = pd.concat([corpus[split].to_pandas() for split in ("train", "validation", "test")], ignore_index=True)
    names = corpus["train"].features["label"].names
    rng = np.random.default_rng(seed)
    rows = []
    for category, n_groups in zip(range(len(names)), GROUPS_PER_CATEGORY):
        tickets = frame[frame["label"] == category].sample(frac=1, random_state=seed)
        # Group sizes fall off exponentially: the first group of a category takes most tickets, the last a few.
        shares = 0.5 ** (np.arange(n_groups) * (3 if category % 3 == 0 else 1.5))
        sizes = np.maximum(1, (shares / shares.sum() * len(tickets) * (0.9 if category % 2 else 0.5)).astype(int))
        if category < 8:  # and a rarely used group: the long tail every real export has
            sizes = np.append(sizes, rng.integers(1, 5))
        start = 0
        for level, size in enumerate(sizes, start=1):
            for _, ticket in tickets.iloc[start:start + size].iterrows():
                rows.append({"Short description": ticket["subject"], "Description": ticket["description"],
                             "Assignment group": f"{names[category]} - L{level}"})
            start += size
    export = pd.DataFrame(rows).sample(frac=1, random_state=seed).reset_index(drop=True)
    n = len(export)
    pick = rng.choice(n, size=n // 10, replace=False)
    for i, row in enumerate(pick):  # what exports carry: Excel breaks, HTML bodies, signatures
        kind = i % 3
        text = export.at[row, "Description"]
        if kind == 0:
            export.at[row, "Description"] = text.replace(". ", "._x000D_\n", 1) + "_x000D_\n_x000D_\nThanks"
        elif kind == 1:
            export.at[row, "Description"] = f"<p>{text}</p><br/><p>Kind&nbsp;regards,<br/>J&ouml;rg</p>"
        else:
            export.at[row, "Description"] = f"{text}\n\n-----Original Message-----\nFrom: it-desk@corp.example.com"
    export.insert(0, "Number", [f"INC{100000 + i}" for i in range(n)])
    holes = rng.choice(n, size=6, replace=False)
    export.loc[holes[:4], ["Short description", "Description"]] = ""
    export.loc[holes[4:], "Assignment group"] = ""
    repeats = export.iloc[rng.choice(n, size=n // 50, replace=False)].copy()
    repeats["Number"] = [f"INC{200000 + i}" for i in range(len(repeats))]
    return pd.concat([export, repeats], ignore_index=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", help="the CSV to write")
    args = parser.parse_args(argv)
    export = messy_export()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    export.to_csv(args.output, sep=";", index=False)
    counts = export["Assignment group"].value_counts()
    print(f"{len(export)} tickets, {len(counts)} assignment groups (largest {counts.iloc[0]}, "
          f"{int((counts < 10).sum())} with fewer than 10) -> {args.output}")


if __name__ == "__main__":
    main()
