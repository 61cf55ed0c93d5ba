import numpy as np
import pandas as pd
import pytest

from ticket_data import build_dataset, leakage
from ticket_data.splits import group_heldout_split


def test_seed_split_leaks_about_two_thirds(seed_dataset):
    report = leakage(seed_dataset)
    assert 0.6 < report["validation"] < 0.72
    assert 0.6 < report["test"] < 0.72


def test_heldout_templates_has_zero_leakage_and_every_category(dataset_cache):
    heldout = build_dataset("heldout_templates", cache_dir=dataset_cache)
    assert leakage(heldout) == {"validation": 0.0, "test": 0.0, "overall": 0.0}
    for split in ("train", "validation", "test"):
        counts = np.bincount(heldout[split]["label"], minlength=12)
        assert (counts > 0).all(), split
    assert sum(len(s) for s in heldout.values()) == 4800


def test_heldout_templates_shares_no_template_text():
    from ticket_data.seed_corpus import generate_seed_tickets

    frame = pd.DataFrame(generate_seed_tickets(per_category=60))
    splits = group_heldout_split(frame, "template")
    templates = {name: set(part["template"]) for name, part in splits.items()}
    assert not templates["train"] & templates["validation"]
    assert not templates["train"] & templates["test"]
    assert not templates["validation"] & templates["test"]


def test_group_split_needs_three_groups_per_label():
    frame = pd.DataFrame({"category": ["a"] * 4, "problem": ["x", "x", "y", "y"], "subject": "s", "description": "d"})
    with pytest.raises(ValueError, match="label 'a' has 2 distinct 'problem'"):
        group_heldout_split(frame, "problem")


def test_leakage_counts_verbatim_repeats():
    splits = {
        "train": {"subject": ["a", "b"], "description": ["1", "2"]},
        "validation": {"subject": ["a", "c"], "description": ["1", "3"]},
        "test": {"subject": ["b", "b"], "description": ["2", "9"]},
    }
    assert leakage(splits) == {"validation": 0.5, "test": 0.5, "overall": 0.5}
