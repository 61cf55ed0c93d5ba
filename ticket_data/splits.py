"""Split rules: the seed's stratified random split, a split held out by source group, and leakage."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

SPLITS = ("train", "validation", "test")


def seed_split(frame: pd.DataFrame, label_column: str = "category", seed: int = 42) -> dict[str, pd.DataFrame]:
    """The notebook's split: shuffle, then 80/20 and 50/50 stratified ``train_test_split`` calls."""
    shuffled = frame.sample(frac=1, random_state=seed).reset_index(drop=True)
    train, rest = train_test_split(shuffled, test_size=0.2, random_state=seed, stratify=shuffled[label_column])
    validation, test = train_test_split(rest, test_size=0.5, random_state=seed, stratify=rest[label_column])
    return {"train": train, "validation": validation, "test": test}


def group_heldout_split(
    frame: pd.DataFrame,
    group_column: str,
    label_column: str = "category",
    heldout_fraction: float = 0.1,
    seed: int = 42,
) -> dict[str, pd.DataFrame]:
    """Split so that no group (a template, a source problem) is in more than one split.

    Stratified by label: within every label, ``heldout_fraction`` of its groups (at least one) go to
    validation and as many to test, so every label is in every split. A label needs 3 groups or more.
    """
    rng = np.random.RandomState(seed)
    assignment: dict[tuple[str, str], str] = {}
    for label in sorted(frame[label_column].unique()):
        groups = sorted(frame.loc[frame[label_column] == label, group_column].unique())
        if len(groups) < 3:
            raise ValueError(
                f"label {label!r} has {len(groups)} distinct {group_column!r} value(s); a split held out by "
                f"{group_column!r} needs at least 3 per label"
            )
        order = rng.permutation(len(groups))
        n_held = max(1, int(round(heldout_fraction * len(groups))))
        n_held = min(n_held, (len(groups) - 1) // 2)
        for rank, index in enumerate(order):
            split = "validation" if rank < n_held else "test" if rank < 2 * n_held else "train"
            assignment[(label, groups[index])] = split
    keys = list(zip(frame[label_column], frame[group_column]))
    split_of_row = pd.Series([assignment[key] for key in keys], index=frame.index)
    shuffled_order = frame.sample(frac=1, random_state=seed).index
    return {
        split: frame.loc[shuffled_order[split_of_row.loc[shuffled_order].to_numpy() == split]].reset_index(drop=True)
        for split in SPLITS
    }


def carve_calibration(frames: dict[str, pd.DataFrame], fraction: float, seed: int = 42,
                      group_column: str | None = None, label_column: str = "category",
                      text_columns: Sequence[str] = ("subject", "description")) -> dict[str, pd.DataFrame]:
    """Move ``fraction`` of the corpus (in rows, or in groups of ``group_column`` per label) from train to a
    ``calibration`` split, then drop calibration rows whose text is in another split or repeats: the split that
    certifies the routing rule (ticket_router/certification.py) and does nothing else."""
    train = frames["train"]
    total = sum(len(frame) for frame in frames.values())
    rng = np.random.RandomState(seed + 1)
    if group_column is None:
        keep = train[label_column].nunique()  # train keeps at least a row per label
        chosen = train.index[rng.permutation(len(train))[: min(int(np.ceil(fraction * total)), len(train) - keep)]]
    else:
        chosen = []
        for label in sorted(train[label_column].unique()):
            mine = train[train[label_column] == label]
            groups = sorted(mine[group_column].unique())
            every = sum(frame.loc[frame[label_column] == label, group_column].nunique() for frame in frames.values())
            n_groups = min(max(1, int(round(fraction * every))), len(groups) - 1)
            picked = [groups[i] for i in rng.permutation(len(groups))[:n_groups]]
            chosen.extend(mine.index[mine[group_column].isin(picked)])
    calibration = train.loc[chosen]
    result = {**frames, "train": train.drop(index=chosen).reset_index(drop=True)}
    keys = lambda frame: frame[list(text_columns)].apply(tuple, axis=1)  # noqa: E731
    seen = set().union(*(set(keys(frame)) for name, frame in result.items()))
    calibration_keys = keys(calibration)
    keep = ~calibration_keys.isin(seen) & ~calibration_keys.duplicated()
    result["calibration"] = calibration[keep.to_numpy()].reset_index(drop=True)
    return result


def leakage(splits, text_columns: Sequence[str] = ("subject", "description")) -> dict[str, float]:
    """Share of validation and test texts that occur verbatim in train (a DatasetDict or dict of frames)."""

    def texts(split) -> list[tuple]:
        columns = [split[column] for column in text_columns]
        return list(zip(*columns))

    train_texts = set(texts(splits["train"]))
    report = {}
    held_total = held_leaked = 0
    for name in ("validation", "test"):
        if name not in splits:
            continue
        rows = texts(splits[name])
        leaked = sum(row in train_texts for row in rows)
        report[name] = leaked / len(rows) if rows else 0.0
        held_total += len(rows)
        held_leaked += leaked
    report["overall"] = held_leaked / held_total if held_total else 0.0
    return report
