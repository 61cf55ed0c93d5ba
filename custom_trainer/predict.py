"""Batched prediction with an exported model: length-sorted batches, dynamic padding, no autograd."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .calibration import RoutingRule, softmax
from .export import load_exported_model


class TicketRouter:
    """An exported ticket classifier, checked against its manifest, ready to score tickets in batches."""

    def __init__(self, model_dir: str | Path):
        self.model_dir = Path(model_dir)
        self.model, self.tokenizer = load_exported_model(self.model_dir)
        self._set_config(self.model.config)

    def _set_config(self, config) -> None:
        self.config = config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        self.max_length = config.max_input_length
        self.threshold = config.auto_route_threshold
        self.triage_ids = list(getattr(config, "triage_ids", []))  # exports older than triage_labels have none
        self.rule = RoutingRule.from_config(config)  # auto-route or triage (custom_trainer/calibration.py)

    def _logits(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        return self.model(**batch).logits.float().numpy()

    def predict_proba(
        self, subjects: Sequence, descriptions: Sequence, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        """Calibrated class probabilities, one row per ticket, in input order."""
        from ticket_data.tokenization import encode_tickets

        encoded = encode_tickets(self.tokenizer, subjects, descriptions, self.max_length)
        order = np.argsort([len(ids) for ids in encoded["input_ids"]], kind="stable")
        probabilities = np.zeros((len(order), len(self.labels)), dtype=np.float32)
        batches = range(0, len(order), batch_size)
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="Routing", unit="batch")
        with torch.inference_mode():
            for start in batches:
                rows = order[start : start + batch_size]
                features = [{key: encoded[key][i] for key in encoded} for i in rows]
                batch = self.tokenizer.pad(features, return_tensors="pt")
                probabilities[rows] = softmax(self._logits(batch))
        return probabilities
