"""The tickets an export trained on or that chose anything (its train and validation splits), as the export keeps
them: sorted 64-bit prefixes of each ticket's text hash (`contract.SEEN_TICKETS_FILE`, written by train.py, listed in
the manifest). Such a ticket may not certify a rule nor judge a model: `calibrate` (from a file or from the decision
log), `promote` and the monitor leave them out and count them. numpy only.

A 64-bit prefix is as good as the whole hash here: among a million tickets the chance that any unseen ticket shares
a prefix with a seen one is about 1e-7.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .contract import SEEN_TICKETS_FILE, hash_prefix64, ticket_text_sha256


def prefixes(subjects, descriptions) -> np.ndarray:
    """The sorted, unique uint64 prefixes of cleaned tickets' text hashes (what train.py stores)."""
    values = {hash_prefix64(ticket_text_sha256(s, d)) for s, d in zip(subjects, descriptions)}
    return np.array(sorted(values), dtype=np.uint64)


def write(path: str | Path, subjects, descriptions) -> int:
    seen = prefixes(subjects, descriptions)
    with open(path, "wb") as handle:
        np.save(handle, seen, allow_pickle=False)
    return len(seen)


def load(model_dir: str | Path) -> np.ndarray | None:
    """The export's seen tickets; None for an export trained before they were kept."""
    path = Path(model_dir) / SEEN_TICKETS_FILE
    if not path.is_file():
        return None
    return np.load(path, allow_pickle=False).astype(np.uint64)


def seen_mask(seen: np.ndarray | None, text_sha256s) -> np.ndarray:
    """Which tickets (by `contract.ticket_text_sha256`) the export trained on or chose with; all False without
    a list."""
    hashes = list(text_sha256s)
    if seen is None or len(seen) == 0 or not hashes:
        return np.zeros(len(hashes), dtype=bool)
    values = np.array([hash_prefix64(h) for h in hashes], dtype=np.uint64)
    at = np.clip(np.searchsorted(seen, values), 0, len(seen) - 1)
    return seen[at] == values
