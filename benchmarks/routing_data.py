"""Fixed subsamples of the real benchmark for the routing-guarantee figures (benchmarks/RESULTS.md, issue 31).

    python benchmarks/routing_data.py          # writes outputs/routing/data/*.csv and prints them

From ../shared/data/it_service_tickets (never copied into the repository), deterministic (seed 3):
- its_8k_s3.csv:   8,000 tickets of train.csv, stratified by label;
- its_2k_s3.csv:   2,000 tickets of train.csv, stratified by label (a small desk's export);
- its_desk_4k.csv: 4,000 other tickets of train.csv, none with a text in its_8k_s3.csv: a desk's held-back labelled
                   tickets for `ticket-classifier calibrate`;
- its_test_3k.csv: 3,000 tickets of test.csv, drawn at random.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "it_service_tickets"
DATA_DIR = REPO / "outputs" / "routing" / "data"
TEXT, LABEL, SEED = "Document", "Topic_group", 3


def write_subsamples(out: Path = DATA_DIR) -> dict[str, Path]:
    from sklearn.model_selection import train_test_split

    if not (REAL / "train.csv").is_file():
        raise SystemExit(f"routing_data: real benchmark data not found in {REAL}")
    train, test = pd.read_csv(REAL / "train.csv"), pd.read_csv(REAL / "test.csv")
    out.mkdir(parents=True, exist_ok=True)
    its_8k, rest = train_test_split(train, train_size=8000, random_state=SEED, stratify=train[LABEL])
    its_2k, _ = train_test_split(train, train_size=2000, random_state=SEED, stratify=train[LABEL])
    rest = rest[~rest[TEXT].str.casefold().isin(set(its_8k[TEXT].str.casefold()))]
    files = {"its_8k_s3": its_8k, "its_2k_s3": its_2k, "its_desk_4k": rest.sample(n=4000, random_state=SEED),
             "its_test_3k": test.sample(n=3000, random_state=SEED)}
    paths = {}
    for name, frame in files.items():
        paths[name] = out / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    return paths


if __name__ == "__main__":
    for name, path in write_subsamples().items():
        print(f"{name}: {path}")
