import os
from pathlib import Path

import pytest

# Tests never touch a hub; anything that tries fails fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BENCHMARK_DATA = SHARED / "data" / "it_service_tickets"
SEED_NOTEBOOK = SHARED / "seed" / "service_desk_ticket_classification_notebook.md"


@pytest.fixture(scope="session")
def dataset_cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("datasets_cache"))


@pytest.fixture(scope="session")
def seed_dataset(dataset_cache):
    from ticket_data import build_dataset

    return build_dataset("seed", cache_dir=dataset_cache)
