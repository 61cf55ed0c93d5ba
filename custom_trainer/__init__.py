"""Fine-tuning: the ticket classifier model, focal loss, the Trainer subclass, metrics, export and reports.

Importing the package registers the model with the Auto classes, so an exported folder loads with
``AutoModelForSequenceClassification`` / ``pipeline`` without ``trust_remote_code``.
"""

from transformers import AutoConfig, AutoModelForSequenceClassification

from .losses import class_weights, focal_loss
from .modeling import TicketClassifier, TicketClassifierConfig

AutoConfig.register(TicketClassifierConfig.model_type, TicketClassifierConfig, exist_ok=True)
AutoModelForSequenceClassification.register(TicketClassifierConfig, TicketClassifier, exist_ok=True)
# Saved models carry their code and an auto_map, for processes that never import this package.
TicketClassifierConfig.register_for_auto_class()
TicketClassifier.register_for_auto_class("AutoModelForSequenceClassification")

__all__ = ["TicketClassifier", "TicketClassifierConfig", "class_weights", "focal_loss"]
