"""The ticket corpora as a `datasets` builder, used directly (datasets >= 4 loads no scripts).

Configs:
- ``seed``: the notebook's corpus and its split, row for row (about two thirds of the held-out texts
  also occur in train, so its scores say little about new tickets);
- ``heldout_templates``: the same tickets, split so that no template is in two splits;
- ``realistic``: varied tickets from a hand-written problem inventory (`realistic_corpus`), split so that no
  source problem is in two splits.
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass

import datasets
import pandas as pd

from . import realistic_corpus, realistic_inventory, seed_corpus, splits

FEATURES = datasets.Features(
    {
        "subject": datasets.Value("string"),
        "description": datasets.Value("string"),
        "label": datasets.ClassLabel(names=seed_corpus.CATEGORY_NAMES),
    }
)


@dataclass
class TicketCorpusConfig(datasets.BuilderConfig):
    """Options of a corpus; any option that differs from its default changes the cache folder."""

    seed: int = 42
    per_category: int = 400
    heldout_fraction: float = 0.1
    # Share of the corpus moved from train to a `calibration` split (by group where the corpus is split by group);
    # 0 keeps the corpus's own three splits (the seed's row for row). train.py sets it from `calibration_size`.
    calibration_fraction: float = 0.0


class TicketCorpus(datasets.GeneratorBasedBuilder):
    BUILDER_CONFIG_CLASS = TicketCorpusConfig
    BUILDER_CONFIGS = [
        TicketCorpusConfig(name="seed", description="The seed notebook's corpus and 80/10/10 stratified split."),
        TicketCorpusConfig(
            name="heldout_templates", description="The seed's tickets, split so that no template is shared."
        ),
        TicketCorpusConfig(
            name="realistic",
            per_category=250,
            description="Varied realistic tickets from a hand-written problem inventory, split by problem.",
        ),
    ]
    DEFAULT_CONFIG_NAME = "seed"
    VERSION = datasets.Version("1.0.0")

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(description=self.config.description, features=FEATURES)

    def _split_generators(self, dl_manager):
        frames = corpus_splits(self.config)
        split_names = {"train": datasets.Split.TRAIN, "validation": datasets.Split.VALIDATION, "test": datasets.Split.TEST,
                       "calibration": datasets.NamedSplit("calibration")}
        return [
            datasets.SplitGenerator(name=split_names[name], gen_kwargs={"frame": frames[name]})
            for name in (*splits.SPLITS, "calibration") if name in frames
        ]

    def _generate_examples(self, frame: pd.DataFrame):
        for index, row in enumerate(frame.itertuples(index=False)):
            yield index, {"subject": row.subject, "description": row.description, "label": row.category}


# The column each corpus holds its held-out splits out by (None: by row): tickets of one group are not independent.
GROUPED_BY = {"seed": None, "heldout_templates": "template", "realistic": "problem"}


def corpus_splits(config: TicketCorpusConfig) -> dict[str, pd.DataFrame]:
    """The splits of a config as frames with ``subject``, ``description``, ``category`` (and ``calibration`` when
    ``calibration_fraction`` > 0)."""
    frames, group = _three_splits(config)
    if config.calibration_fraction > 0:
        frames = splits.carve_calibration(frames, config.calibration_fraction, config.seed, group)
    return frames


def _three_splits(config: TicketCorpusConfig) -> tuple[dict[str, pd.DataFrame], str | None]:
    """train/validation/test of a config, and the column its held-out splits are grouped by (None: by row)."""
    if config.name == "seed":
        frame = pd.DataFrame(seed_corpus.generate_seed_tickets(config.seed, config.per_category))
        return splits.seed_split(frame.drop(columns="template"), seed=config.seed), GROUPED_BY[config.name]
    if config.name == "heldout_templates":
        frame = pd.DataFrame(seed_corpus.generate_seed_tickets(config.seed, config.per_category))
        group = GROUPED_BY[config.name]
        return splits.group_heldout_split(frame, group, heldout_fraction=config.heldout_fraction, seed=config.seed), group
    if config.name == "realistic":
        frame = pd.DataFrame(realistic_corpus.generate_realistic_tickets(config.seed, config.per_category))
        group = GROUPED_BY[config.name]
        return splits.group_heldout_split(frame, group, heldout_fraction=config.heldout_fraction, seed=config.seed), group
    raise ValueError(f"unknown corpus config {config.name!r}; expected one of {corpus_names()}")


def corpus_names() -> list[str]:
    return [config.name for config in TicketCorpus.BUILDER_CONFIGS]


def _code_fingerprint() -> str:
    """Hash of the code that generates the corpora: a changed generator never reuses an old cache."""
    digest = hashlib.sha256()
    for module in (seed_corpus, splits, realistic_corpus, realistic_inventory):
        digest.update(inspect.getsource(module).encode())
    digest.update(inspect.getsource(corpus_splits).encode())
    digest.update(inspect.getsource(_three_splits).encode())
    return digest.hexdigest()[:16]


def build_dataset(name: str = "seed", cache_dir: str | None = None, **options) -> datasets.DatasetDict:
    """Build (or read from cache) one of the synthetic corpora: splits train/validation/test.

    ``options`` are fields of `TicketCorpusConfig` (``seed``, ``per_category``, ``heldout_fraction``,
    ``calibration_fraction``).
    """
    if name not in corpus_names():
        raise ValueError(f"unknown corpus {name!r}; expected one of {corpus_names()}")
    unknown = set(options) - {"seed", "per_category", "heldout_fraction", "calibration_fraction"}
    if unknown:
        raise ValueError(f"unknown option(s) for corpus {name!r}: {sorted(unknown)}")
    builder = TicketCorpus(config_name=name, cache_dir=cache_dir, hash=_code_fingerprint(), **options)
    builder.download_and_prepare()
    return builder.as_dataset()
