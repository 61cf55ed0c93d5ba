"""`TicketClassifier`: any `AutoModel` encoder with the seed's classification head on pooled tokens.

This file and `losses.py` are saved with every exported model (`register_for_auto_class`): the folder loads with
``trust_remote_code=True`` in any process where the `ticket-classifier` package is installed (the slim install is
enough beside torch and transformers), because the rules this model shares with the routing runtime (pooling, the
wide part's hash and forward, score names) come from it: ticket_router/contract.py and ticket_router/torch_model.py.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from ticket_router.contract import MODEL_TYPE, POOLINGS, ROUTING_SCORES
from ticket_router.torch_model import head_and_tail, pool, pool_windows, wide_logits

from .losses import focal_loss


class TicketClassifierConfig(PretrainedConfig):
    model_type = MODEL_TYPE

    def __init__(
        self,
        encoder_config: dict | PretrainedConfig | None = None,
        head_hidden_size: int = 256,
        classifier_dropout: float = 0.3,
        focal_gamma: float = 2.0,
        class_weights: list[float] | None = None,
        calibration_temperature: float = 1.0,
        auto_route_threshold: float | None = None,
        max_input_length: int = 128,
        pooling: str = "cls",
        triage_labels: list[str] | None = None,
        routing_score: str = "probability",
        auto_route_thresholds: dict | None = None,
        routing_guarantee: dict | None = None,
        routing_profile: dict | None = None,
        prediction_sets: dict | None = None,
        wide_buckets: int = 0,
        wide_scale: float = 0.0,
        extra_fields: list[dict] | None = None,
        chunk_length: int = 0,
        head_tail_length: int = 0,
        tail_length: int = 0,
        **kwargs,
    ):
        if isinstance(encoder_config, PretrainedConfig):
            encoder_config = encoder_config.to_dict()
        self.encoder_config = encoder_config
        self.head_hidden_size = head_hidden_size
        self.classifier_dropout = classifier_dropout
        self.focal_gamma = focal_gamma
        self.class_weights = class_weights
        self.calibration_temperature = calibration_temperature
        self.auto_route_threshold = auto_route_threshold
        self.max_input_length = max_input_length
        self.pooling = pooling
        # Labels never auto-routed whatever the confidence (the merged bucket of rare queues is not a real queue).
        self.triage_labels = list(triage_labels or [])
        # The certified routing rule (custom_trainer/confidence.RoutingRule): a score, a threshold per label (None:
        # never auto-routed), the guarantee it carries (target, delta, calibration size) and the validation profile
        # `ticket-classifier monitor` compares live tickets with. Without thresholds, auto_route_threshold applies.
        self.routing_score = routing_score
        self.auto_route_thresholds = auto_route_thresholds
        self.routing_guarantee = routing_guarantee
        self.routing_profile = routing_profile
        # Conformal prediction sets (ticket_router/prediction_sets.py): method, alpha, q, calibration size.
        self.prediction_sets = prediction_sets
        # The wide part: a linear model over token uni- and bigrams (TF-IDF weighted) whose logits, times
        # wide_scale, add to the head's. 0 buckets: no wide part; wide_scale 0: present but not used (training).
        self.wide_buckets = wide_buckets
        self.wide_scale = wide_scale
        # More fields predicted from the same sentence vector, one head each (train.py extra_label_columns): for each,
        # {"name", "labels", "class_weights", "loss_weight", "calibration_temperature", "wide_scale",
        # "prediction_sets"}; the routed field (``id2label``, the rule, the sets above) stays the first.
        self.extra_fields = [dict(field) for field in (extra_fields or [])]
        # Long tickets: read in windows of chunk_length tokens, pooled together (contract.CHUNK_KEY); 0: one window.
        self.chunk_length = chunk_length
        # Or by its two ends: one pass over its first head_tail_length - tail_length tokens and its last tail_length
        # (contract.HEAD_TAIL_KEY); 0: off.
        self.head_tail_length = head_tail_length
        self.tail_length = tail_length
        super().__init__(**kwargs)
        self._validate()

    def _validate(self) -> None:
        if self.encoder_config is not None and "model_type" not in self.encoder_config:
            raise ValueError(f"encoder_config needs a 'model_type', got keys {sorted(self.encoder_config)}")
        if not (isinstance(self.head_hidden_size, int) and self.head_hidden_size > 0):
            raise ValueError(f"head_hidden_size must be a positive integer, got {self.head_hidden_size!r}")
        if not 0.0 <= self.classifier_dropout < 1.0:
            raise ValueError(f"classifier_dropout must be in [0, 1), got {self.classifier_dropout!r}")
        if self.focal_gamma < 0:
            raise ValueError(f"focal_gamma must be >= 0, got {self.focal_gamma!r}")
        if not self.calibration_temperature > 0:
            raise ValueError(f"calibration_temperature must be > 0, got {self.calibration_temperature!r}")
        if self.class_weights is not None and len(self.class_weights) != self.num_labels:
            raise ValueError(
                f"class_weights has {len(self.class_weights)} values for {self.num_labels} labels: {self.class_weights}"
            )
        if self.head_tail_length and (self.chunk_length or not 0 < self.tail_length < self.head_tail_length):
            raise ValueError(f"head_tail_length {self.head_tail_length} needs 0 < tail_length < head_tail_length "
                             f"(got tail_length {self.tail_length}) and no chunk_length (got {self.chunk_length})")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.auto_route_threshold is not None and not 0.0 <= self.auto_route_threshold <= 1.0:
            raise ValueError(f"auto_route_threshold must be in [0, 1], got {self.auto_route_threshold!r}")
        if self.routing_score not in ROUTING_SCORES:
            raise ValueError(f"routing_score must be one of {ROUTING_SCORES}, got {self.routing_score!r}")
        if self.auto_route_thresholds is not None:
            if not isinstance(self.auto_route_thresholds, dict):
                raise ValueError(f"auto_route_thresholds must map labels to thresholds, got {self.auto_route_thresholds!r}")
            unknown = sorted(set(self.auto_route_thresholds) - set(self.id2label.values()))
            if unknown:
                raise ValueError(f"auto_route_thresholds: label(s) {unknown} are not among {sorted(self.id2label.values())}")
            bad = {k: v for k, v in self.auto_route_thresholds.items()
                   if v is not None and not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0)}
            if bad:
                raise ValueError(f"auto_route_thresholds must be in [0, 1] or null, got {bad}")
        if not (isinstance(self.wide_buckets, int) and self.wide_buckets >= 0):
            raise ValueError(f"wide_buckets must be an integer >= 0, got {self.wide_buckets!r}")
        if self.wide_scale < 0 or (self.wide_scale and not self.wide_buckets):
            raise ValueError(f"wide_scale must be >= 0 and needs wide_buckets > 0, got {self.wide_scale!r}")
        unknown = sorted(set(self.triage_labels) - set(self.id2label.values()))
        if unknown:
            raise ValueError(f"triage_labels {unknown} are not among the labels {list(self.id2label.values())}")
        names = [field.get("name") for field in self.extra_fields]
        if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"extra_fields need distinct, non-empty names, got {names}")
        for field in self.extra_fields:
            if not (isinstance(field.get("labels"), list) and len(field["labels"]) >= 2):
                raise ValueError(f"extra field {field['name']!r} needs a list of at least 2 labels")
            weights = field.get("class_weights")
            if weights is not None and len(weights) != len(field["labels"]):
                raise ValueError(f"extra field {field['name']!r}: {len(weights)} class weights for "
                                 f"{len(field['labels'])} labels")
            if not field.get("calibration_temperature", 1.0) > 0:
                raise ValueError(f"extra field {field['name']!r}: calibration_temperature must be > 0")

    @property
    def triage_ids(self) -> list[int]:
        return sorted(i for i, label in self.id2label.items() if label in set(self.triage_labels))

    def build_encoder_config(self) -> PretrainedConfig:
        settings = dict(self.encoder_config)
        return AutoConfig.for_model(settings.pop("model_type"), **settings)


@dataclass
class TicketClassifierOutput(SequenceClassifierOutput):
    """The routed field's ``logits`` (what `pipeline` reads) and, with extra fields, their calibrated logits side
    by side in ``field_logits`` (batch, sum of the fields' label counts; config.extra_fields' order: split it with
    `split_field_logits`). One tensor, not a tuple: `pipeline` slices every output tensor per ticket."""

    field_logits: torch.Tensor | None = None


def split_field_logits(field_logits, sizes: list[int]) -> list:
    """Each extra field's logits from `TicketClassifierOutput.field_logits` (a tensor or an array)."""
    bounds = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    return [field_logits[..., bounds[i]:bounds[i + 1]] for i in range(len(sizes))]


def make_head(hidden: int, head_hidden: int, labels: int, dropout: float) -> nn.Sequential:
    """Dropout, Linear(hidden, head_hidden), GELU, Dropout, Linear(head_hidden, labels): the seed's head."""
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, head_hidden), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(head_hidden, labels))


def set_attention_dropout(model, probability: float) -> int:
    """Set the dropout on the encoder's attention probabilities (BERT's attention_probs_dropout_prob, DistilBERT's
    attention_dropout) of a built model and of its config; returns how many modules changed. At 0, scaled dot-product
    attention runs its fused kernel instead of materialising the (batch, heads, length, length) probabilities to
    draw a mask over them."""
    changed = 0
    for name, module in model.encoder.named_modules():
        if isinstance(module, nn.Dropout) and "attention" in name and ".output." not in name and \
                not name.endswith("output.dropout"):
            module.p = probability
            changed += 1
    config = model.encoder.config
    for key in ("attention_probs_dropout_prob", "attention_dropout"):
        if hasattr(config, key):
            setattr(config, key, probability)
    if isinstance(getattr(model.config, "encoder_config", None), dict):
        for key in ("attention_probs_dropout_prob", "attention_dropout"):
            if key in model.config.encoder_config:
                model.config.encoder_config[key] = probability
    return changed


class WideTable(nn.Module):
    """The wide part's weights, one row of label scores per token feature (``wide.weight`` in the export), zeros
    until custom_trainer/wide.py writes the fitted regression into them. A plain module, not an ``nn.Embedding``:
    `_init_weights` draws random values for embeddings, which would shift every random number drawn after it."""

    def __init__(self, features: int, num_labels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(features, num_labels), requires_grad=False)


class TicketClassifier(PreTrainedModel):
    """Encoder -> pooled tokens (``config.pooling``: first token or mean) -> Dropout, Linear(hidden, 256), GELU,
    Dropout, Linear(256, num_labels).

    ``logits`` are divided by ``config.calibration_temperature`` (fitted after training), so softmax scores, also those of
    ``pipeline("text-classification")``, are calibrated. With ``labels`` it also returns the class-weighted
    focal loss.
    """

    config_class = TicketClassifierConfig
    base_model_prefix = "ticket_classifier"

    def __init__(self, config: TicketClassifierConfig):
        super().__init__(config)
        encoder_config = config.build_encoder_config()
        self.encoder = AutoModel.from_config(encoder_config)
        hidden = encoder_config.hidden_size if hasattr(encoder_config, "hidden_size") else encoder_config.dim
        self.head = make_head(hidden, config.head_hidden_size, config.num_labels, config.classifier_dropout)
        self.wide = None
        if config.wide_buckets:
            features = encoder_config.vocab_size + config.wide_buckets
            # Fitted by logistic regression after fine-tuning (custom_trainer/wide.py), never by the optimizer; zeros
            # until then, and no random draw: the head and training see the same random numbers with or without it.
            self.wide = WideTable(features, config.num_labels)
            self.wide_bias = nn.Parameter(torch.zeros(config.num_labels), requires_grad=False)
            self.register_buffer("wide_idf", torch.ones(features))
        # Extra fields. Built with the random generator forked: nn.Linear draws its default weights when it is made,
        # before post_init re-draws every weight in order, so without the fork a model with extra fields would give
        # the routed head other random numbers than a one-field model does (tests/test_fields.py).
        with torch.random.fork_rng(devices=[]):
            self.head_fields = nn.ModuleList([
                make_head(hidden, config.head_hidden_size, len(field["labels"]), config.classifier_dropout)
                for field in config.extra_fields])
        self.wide_fields = nn.ModuleList()
        self.wide_fields_bias = nn.ParameterList()
        if config.wide_buckets:
            for field in config.extra_fields:
                self.wide_fields.append(WideTable(features, len(field["labels"])))
                self.wide_fields_bias.append(nn.Parameter(torch.zeros(len(field["labels"])), requires_grad=False))
        # Decorated forwards hide their arguments from __code__; the signature keeps them.
        self._encoder_takes_token_types = "token_type_ids" in inspect.signature(self.encoder.forward).parameters
        self._init_std = getattr(encoder_config, "initializer_range", 0.02)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        std = self._init_std  # read once in __init__: post_init calls this for every module
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    @classmethod
    def from_encoder(cls, encoder_path: str, id2label: dict[int, str], **config_kwargs) -> "TicketClassifier":
        """A new classifier around pretrained encoder weights (a local folder or a hub name)."""
        encoder = AutoModel.from_pretrained(encoder_path)
        config = TicketClassifierConfig(
            encoder_config=encoder.config,
            id2label=dict(id2label),
            label2id={label: index for index, label in id2label.items()},
            **config_kwargs,
        )
        model = cls(config)
        model.encoder.load_state_dict(encoder.state_dict())
        return model

    def encoder_layers(self) -> nn.ModuleList:
        """The encoder's stack of transformer layers, bottom first (BERT's ``encoder.layer``, DistilBERT's
        ``transformer.layer``, ...): the one ModuleList as long as the config's layer count."""
        count = getattr(self.encoder.config, "num_hidden_layers", None) or getattr(self.encoder.config, "n_layers", None)
        stacks = [m for m in self.encoder.modules() if isinstance(m, nn.ModuleList) and len(m) == count]
        if len(stacks) != 1:
            raise ValueError(f"cannot find the transformer layers of {type(self.encoder).__name__} "
                             f"({len(stacks)} ModuleLists of length {count})")
        return stacks[0]

    def freeze_lower_layers(self, count: int) -> None:
        """Keep the embeddings and the bottom ``count`` transformer layers as pretrained. Nothing below the first
        trainable layer needs a gradient, so the backward pass stops there: a layer's backward costs about twice
        its forward, and each frozen layer removes it (and its AdamW update)."""
        layers = self.encoder_layers()
        if not 0 <= count < len(layers):
            raise ValueError(f"frozen_layers must be between 0 and {len(layers) - 1} (the encoder has {len(layers)} "
                             f"layers), got {count}")
        if count == 0:
            return
        for module in (self.encoder.embeddings, *layers[:count]):
            module.requires_grad_(False)

    def wide_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The wide part alone (ticket_router/torch_model.wide_logits, the one definition)."""
        return wide_logits(input_ids, attention_mask, self.config.encoder_config["vocab_size"],
                           self.config.wide_buckets, self.wide.weight, self.wide_bias, self.wide_idf)

    def sentence_vectors(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                         token_type_ids: torch.Tensor | None = None, windows: bool = False) -> torch.Tensor:
        """The pooled encoder output the head reads (also what similar-ticket search compares). With
        ``chunk_length``, a ticket longer than it is read in windows; ``windows=True`` reads every ticket so (the
        same vectors for a short one: the ONNX export traces this path, whatever its sample's length)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        chunk = self.config.chunk_length
        if chunk and (windows or input_ids.shape[1] > chunk):  # a long ticket: windows of chunk tokens, pooled
            return pool_windows(self._encode, input_ids, attention_mask, token_type_ids, chunk, self.config.pooling)
        if self.config.head_tail_length:  # a long ticket: its two ends in one pass (a short one unchanged)
            input_ids, attention_mask, token_type_ids = head_and_tail(
                [input_ids, attention_mask, token_type_ids], attention_mask, self.config.head_tail_length,
                self.config.tail_length)
        return pool(self._encode(input_ids, attention_mask, token_type_ids), attention_mask, self.config.pooling)

    def _encode(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        """The encoder's token vectors."""
        encoder_inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None and self._encoder_takes_token_types:
            encoder_inputs["token_type_ids"] = token_type_ids
        return self.encoder(**encoder_inputs).last_hidden_state

    def logits_from(self, pooled: torch.Tensor, input_ids: torch.Tensor,
                    attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Calibrated logits from the sentence vectors: head, wide part, temperature."""
        logits = self.head(pooled)
        if self.wide is not None and self.config.wide_scale:
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            logits = logits + self.config.wide_scale * self.wide_logits(input_ids, attention_mask)
        return logits / self.config.calibration_temperature

    def wide_fields_logits(self, index: int, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Extra field ``index``'s wide part alone (same features as the routed field's)."""
        return wide_logits(input_ids, attention_mask, self.config.encoder_config["vocab_size"],
                           self.config.wide_buckets, self.wide_fields[index].weight, self.wide_fields_bias[index],
                           self.wide_idf)

    def field_logits_from(self, pooled: torch.Tensor, input_ids: torch.Tensor,
                          attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """Each extra field's calibrated logits: its head, its wide part, its temperature."""
        outputs = []
        for index, (head, field) in enumerate(zip(self.head_fields, self.config.extra_fields)):
            logits = head(pooled)
            scale = field.get("wide_scale") or 0.0
            if scale and len(self.wide_fields):
                if attention_mask is None:
                    attention_mask = torch.ones_like(input_ids)
                logits = logits + scale * self.wide_fields_logits(index, input_ids, attention_mask)
            outputs.append(logits / field.get("calibration_temperature", 1.0))
        return tuple(outputs)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> TicketClassifierOutput:
        pooled = self.sentence_vectors(input_ids, attention_mask, token_type_ids)
        logits = self.logits_from(pooled, input_ids, attention_mask)
        fields = self.field_logits_from(pooled, input_ids, attention_mask) if len(self.head_fields) else None
        loss = None
        if labels is not None:  # the project's one loss computation; the Trainer passes num_items_in_batch
            alpha = None if self.config.class_weights is None else torch.tensor(self.config.class_weights)
            if labels.dim() == 1:
                loss = focal_loss(logits, labels, alpha=alpha, gamma=self.config.focal_gamma,
                                  num_items_in_batch=kwargs.get("num_items_in_batch"))
            else:  # one column per field, the routed one first; each field averaged over its labelled rows
                loss = focal_loss(logits, labels[:, 0], alpha=alpha, gamma=self.config.focal_gamma)
                for index, field in enumerate(self.config.extra_fields):
                    weights = field.get("class_weights")
                    loss = loss + field.get("loss_weight", 1.0) * focal_loss(
                        fields[index], labels[:, index + 1], gamma=self.config.focal_gamma,
                        alpha=None if weights is None else torch.tensor(weights))
        return TicketClassifierOutput(loss=loss, logits=logits,
                                      field_logits=torch.cat(fields, dim=-1) if fields else None)
