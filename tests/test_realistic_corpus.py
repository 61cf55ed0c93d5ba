"""The `realistic` corpus: deterministic, complete, split by problem, and on the right side of every boundary rule."""

import re
from collections import Counter

import pandas as pd
import pytest

from conftest import REPO
from ticket_data import build_dataset, leakage
from ticket_data.realistic_corpus import generate_realistic_tickets
from ticket_data.realistic_inventory import PROBLEMS
from ticket_data.seed_corpus import CATEGORY_NAMES
from ticket_data.splits import group_heldout_split
from ticket_data.taxonomy import load_taxonomy, render_markdown


@pytest.fixture(scope="module")
def corpus() -> pd.DataFrame:
    return pd.DataFrame(generate_realistic_tickets(seed=42, per_category=250))


def test_deterministic_by_seed():
    assert generate_realistic_tickets(seed=5, per_category=30) == generate_realistic_tickets(seed=5, per_category=30)
    assert generate_realistic_tickets(seed=5, per_category=30) != generate_realistic_tickets(seed=6, per_category=30)


def test_covers_every_category_and_problem(corpus):
    assert sorted(corpus["category"].unique()) == CATEGORY_NAMES
    assert set(Counter(corpus["category"]).values()) == {250}
    assert corpus["problem"].nunique() == sum(len(problems) for problems in PROBLEMS.values())


def test_varied_like_real_tickets(corpus):
    lengths = corpus["description"].str.split().str.len()
    assert lengths.min() <= 6 and lengths.max() >= 40
    assert corpus["description"].nunique() > 0.95 * len(corpus)
    assert (corpus["subject"] == "").mean() > 0.02  # some tickets come without a subject
    assert corpus["description"].str.contains("@").mean() > 0.05  # addresses to mask
    assert corpus["description"].str.contains(r"INC\d{6}|#\d{6}").any()
    assert (corpus["description"] == corpus["description"].str.lower()).mean() > 0.1
    assert not corpus["description"].str.contains(r"\{\w+\}").any()  # every slot filled
    starts = [(s, d) for s, d in zip(corpus["subject"], corpus["description"]) if s and not d.startswith(s)]
    assert len(starts) > 0.6 * len(corpus)  # subjects are mostly not just the first words


def test_split_is_disjoint_by_problem_and_stratified(corpus):
    splits = group_heldout_split(corpus, "problem", heldout_fraction=0.1, seed=42)
    problems = {name: set(part["problem"]) for name, part in splits.items()}
    assert not problems["train"] & problems["test"]
    assert not problems["train"] & problems["validation"]
    assert not problems["validation"] & problems["test"]
    for part in splits.values():
        assert sorted(part["category"].unique()) == CATEGORY_NAMES


def test_builder_config(dataset_cache):
    data = build_dataset("realistic", cache_dir=dataset_cache, per_category=60)
    assert data["train"].features["label"].names == CATEGORY_NAMES
    assert sum(len(split) for split in data.values()) == 720
    assert leakage(data)["overall"] < 0.02


RULES = [(boundary["rule"], check) for boundary in load_taxonomy()["boundaries"] for check in boundary["checks"]]


@pytest.mark.parametrize("rule, check", RULES, ids=[f"{c['category']}:{c['pattern'][:30]}" for _, c in RULES])
def test_every_boundary_rule_has_examples_on_the_right_side(corpus, rule, check):
    text = (corpus["subject"] + " " + corpus["description"]).str.lower()
    matches = corpus[text.str.contains(check["pattern"], regex=True)]
    on_side = (matches["category"] == check["category"]).sum()
    assert on_side >= 10, f"{rule}: only {on_side} {check['category']} tickets match {check['pattern']!r}"
    assert on_side / len(matches) > 0.5, f"{rule}: most tickets matching {check['pattern']!r} are elsewhere: " \
        f"{Counter(matches['category']).most_common(3)}"


def test_routing_guide_covers_all_categories_and_is_in_the_readme():
    taxonomy = load_taxonomy()
    assert sorted(taxonomy["categories"]) == CATEGORY_NAMES
    assert render_markdown(taxonomy) in (REPO / "README.md").read_text()


def test_handwritten_dev_set_is_not_generated_text(corpus):
    dev = pd.read_csv(REPO / "benchmarks" / "data" / "handwritten_dev.csv", keep_default_na=False)
    assert set(Counter(dev["category"]).values()) == {12} and len(dev) == 144
    generated = set(corpus["description"].str.lower())
    assert not any(d.lower() in generated for d in dev["description"])
