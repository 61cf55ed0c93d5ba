"""`build_dataset("seed")` must hold the very rows of the notebook's train_df/val_df/test_df."""

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from conftest import SEED_NOTEBOOK
from ticket_data import build_dataset
from ticket_data.seed_corpus import CATEGORY_NAMES, PREFIXES, SUFFIXES, TEMPLATES


def notebook_procedure() -> dict[str, pd.DataFrame]:
    """The notebook's cell 2, transcribed: global numpy seeding, then the same calls in the same order."""
    np.random.seed(42)

    def generate_ticket(category, template):
        return {
            "subject": template[:60],
            "description": f"{np.random.choice(PREFIXES)}{template}{np.random.choice(SUFFIXES)}",
            "category": category,
        }

    data = [generate_ticket(cat, np.random.choice(temps)) for cat, temps in TEMPLATES.items() for _ in range(400)]
    df = pd.DataFrame(data).sample(frac=1, random_state=42).reset_index(drop=True)
    train_df, temp_df = train_test_split(df, test_size=0.2, random_state=42, stratify=df["category"])
    val_df, test_df = train_test_split(temp_df, test_size=0.5, random_state=42, stratify=temp_df["category"])
    return {"train": train_df, "validation": val_df, "test": test_df}


def notebook_cell() -> dict[str, pd.DataFrame]:
    """Run the notebook's own data cell, read from ../shared/seed, in a fresh namespace."""
    text = SEED_NOTEBOOK.read_text()
    cell = re.search(r"## 2\. Generate Training Data.*?In \[None\]:\n(.*?)\n## 3\.", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(cell, str(SEED_NOTEBOOK), "exec"), namespace)
    return {"train": namespace["train_df"], "validation": namespace["val_df"], "test": namespace["test_df"]}


def as_rows(split) -> list[tuple[str, str, str]]:
    names = split.features["label"].names
    return [(r["subject"], r["description"], names[r["label"]]) for r in split]


def frame_rows(frame: pd.DataFrame) -> list[tuple[str, str, str]]:
    return list(frame[["subject", "description", "category"]].itertuples(index=False, name=None))


def test_seed_matches_notebook_procedure_row_for_row(seed_dataset):
    expected = notebook_procedure()
    for split, frame in expected.items():
        assert as_rows(seed_dataset[split]) == frame_rows(frame), split


@pytest.mark.skipif(not SEED_NOTEBOOK.exists(), reason=f"seed notebook not found at {SEED_NOTEBOOK}")
def test_seed_matches_the_notebooks_own_cell(seed_dataset):
    expected = notebook_cell()
    for split, frame in expected.items():
        assert as_rows(seed_dataset[split]) == frame_rows(frame), split


def test_seed_sizes_and_per_category_counts(seed_dataset):
    sizes = {split: len(seed_dataset[split]) for split in seed_dataset}
    assert sizes == {"train": 3840, "validation": 480, "test": 480}
    expected_per_class = {"train": 320, "validation": 40, "test": 40}
    for split, per_class in expected_per_class.items():
        counts = np.bincount(seed_dataset[split]["label"], minlength=12)
        assert counts.tolist() == [per_class] * 12, split


def test_labels_are_the_twelve_sorted_category_names(seed_dataset):
    names = seed_dataset["train"].features["label"].names
    assert names == sorted(TEMPLATES) == CATEGORY_NAMES
    assert len(names) == 12


def test_options_change_the_corpus_and_never_serve_a_stale_cache(dataset_cache):
    small = build_dataset("seed", cache_dir=dataset_cache, per_category=20)
    larger = build_dataset("seed", cache_dir=dataset_cache, per_category=30)
    assert sum(len(s) for s in small.values()) == 240
    assert sum(len(s) for s in larger.values()) == 360
    reseeded = build_dataset("seed", cache_dir=dataset_cache, per_category=20, seed=7)
    assert as_rows(reseeded["train"]) != as_rows(small["train"])


def test_a_changed_generator_is_regenerated(dataset_cache, monkeypatch):
    from ticket_data import builder, seed_corpus

    before = build_dataset("seed", cache_dir=dataset_cache, per_category=10)
    original = seed_corpus.generate_seed_tickets

    def changed_generator(seed, per_category):
        rows = original(seed, per_category)
        for row in rows:
            row["description"] = row["description"].upper()
        return rows

    monkeypatch.setattr(seed_corpus, "generate_seed_tickets", changed_generator)
    # A changed generator changes its source, hence the fingerprint that names the cache folder.
    monkeypatch.setattr(builder, "_code_fingerprint", lambda: "changed-generator")
    after = build_dataset("seed", cache_dir=dataset_cache, per_category=10)
    assert after["train"][0]["description"] == before["train"][0]["description"].upper()


def test_code_fingerprint_follows_the_generator_source(monkeypatch):
    import inspect

    from ticket_data import builder

    original = builder._code_fingerprint()
    real_getsource = inspect.getsource
    monkeypatch.setattr(inspect, "getsource", lambda obj: real_getsource(obj) + "# edited\n")
    assert builder._code_fingerprint() != original


def test_unknown_corpus_and_option_are_clear_errors(dataset_cache):
    with pytest.raises(ValueError, match="unknown corpus 'nope'"):
        build_dataset("nope", cache_dir=dataset_cache)
    with pytest.raises(ValueError, match="per_catgory"):
        build_dataset("seed", cache_dir=dataset_cache, per_catgory=3)
