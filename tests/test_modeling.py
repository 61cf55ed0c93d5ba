import os
import subprocess
import sys

import pytest
import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification

from custom_trainer import TicketClassifier, TicketClassifierConfig
from custom_trainer.losses import focal_loss

LABELS = {0: "Email", 1: "Network", 2: "Printing"}


@pytest.mark.parametrize("encoder", ["tiny_bert", "tiny_distilbert"])
def test_head_is_the_seeds_and_forward_returns_logits_and_loss(encoder, request):
    model = TicketClassifier.from_encoder(str(request.getfixturevalue(encoder)), LABELS, class_weights=[1.0, 2.0, 0.5])
    head = model.head
    assert [type(layer) for layer in head] == [nn.Dropout, nn.Linear, nn.GELU, nn.Dropout, nn.Linear]
    assert head[0].p == head[3].p == 0.3
    assert (head[1].in_features, head[1].out_features) == (32, 256)
    assert (head[4].in_features, head[4].out_features) == (256, 3)
    assert model.config.id2label == LABELS and model.config.label2id == {"Email": 0, "Network": 1, "Printing": 2}

    model.eval()
    input_ids = torch.tensor([[2, 40, 41, 3, 0], [2, 42, 43, 44, 3]])
    mask = (input_ids != 0).long()
    labels = torch.tensor([1, 2])
    out = model(input_ids=input_ids, attention_mask=mask, labels=labels)
    assert out.logits.shape == (2, 3)
    expected = focal_loss(out.logits, labels, torch.tensor([1.0, 2.0, 0.5]), 2.0)
    assert torch.allclose(out.loss, expected)
    assert model(input_ids=input_ids, attention_mask=mask).loss is None


def test_encoder_weights_are_the_pretrained_ones(tiny_bert):
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(tiny_bert)
    model = TicketClassifier.from_encoder(str(tiny_bert), LABELS)
    for name, tensor in encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[name], tensor), name


@pytest.mark.parametrize("encoder", ["tiny_bert", "tiny_distilbert"])
def test_frozen_lower_layers_get_no_gradient_and_the_rest_does(encoder, request):
    model = TicketClassifier.from_encoder(str(request.getfixturevalue(encoder)), LABELS)
    layers = model.encoder_layers()
    model.freeze_lower_layers(1)
    input_ids = torch.tensor([[2, 40, 41, 3, 0], [2, 42, 43, 44, 3]])
    model(input_ids=input_ids, attention_mask=(input_ids != 0).long(), labels=torch.tensor([1, 2])).loss.backward()
    frozen = [*model.encoder.embeddings.parameters(), *layers[0].parameters()]
    assert frozen and all(p.grad is None and not p.requires_grad for p in frozen)
    trained = [*layers[1].parameters(), *model.head.parameters()]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)


def test_frozen_layers_out_of_range_name_the_count(tiny_bert):
    model = TicketClassifier.from_encoder(str(tiny_bert), LABELS)
    count = len(model.encoder_layers())
    with pytest.raises(ValueError, match=f"between 0 and {count - 1} .*got {count}"):
        model.freeze_lower_layers(count)
    model.freeze_lower_layers(0)
    assert all(p.requires_grad for p in model.parameters() if p is not getattr(model, "wide_bias", None))


def test_calibration_temperature_divides_the_logits(tiny_bert):
    model = TicketClassifier.from_encoder(str(tiny_bert), LABELS).eval()
    ids = torch.tensor([[2, 40, 41, 3]])
    base = model(input_ids=ids).logits
    model.config.calibration_temperature = 2.0
    assert torch.allclose(model(input_ids=ids).logits, base / 2.0)


def test_saved_model_loads_through_auto_classes(tiny_bert, tmp_path):
    model = TicketClassifier.from_encoder(str(tiny_bert), LABELS).eval()
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "modeling.py").is_file() and (tmp_path / "m" / "losses.py").is_file()
    assert isinstance(AutoConfig.from_pretrained(tmp_path / "m"), TicketClassifierConfig)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "m").eval()
    assert isinstance(loaded, TicketClassifier)
    ids = torch.tensor([[2, 40, 41, 3]])
    assert torch.allclose(loaded(input_ids=ids).logits, model(input_ids=ids).logits)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"head_hidden_size": 0}, "head_hidden_size must be a positive integer, got 0"),
        ({"classifier_dropout": 1.5}, r"classifier_dropout must be in \[0, 1\), got 1.5"),
        ({"focal_gamma": -1}, "focal_gamma must be >= 0, got -1"),
        ({"calibration_temperature": 0}, "calibration_temperature must be > 0, got 0"),
        ({"class_weights": [1.0]}, r"class_weights has 1 values for 2 labels"),
        ({"encoder_config": {"hidden_size": 3}}, "encoder_config needs a 'model_type'"),
        ({"pooling": "max"}, r"pooling must be one of \('cls', 'mean'\), got 'max'"),
    ],
)
def test_config_validation_names_the_bad_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TicketClassifierConfig(**kwargs)


def test_segment_ids_reach_a_bert_encoder(tiny_bert, tiny_distilbert):
    ids = torch.tensor([[2, 40, 41, 3, 42, 43, 3]])
    first, second = torch.zeros_like(ids), torch.tensor([[0, 0, 0, 0, 1, 1, 1]])
    bert = TicketClassifier.from_encoder(str(tiny_bert), LABELS).eval()
    assert not torch.allclose(bert(input_ids=ids, token_type_ids=first).logits,
                              bert(input_ids=ids, token_type_ids=second).logits)
    distil = TicketClassifier.from_encoder(str(tiny_distilbert), LABELS).eval()  # takes none: ignored, no error
    assert torch.allclose(distil(input_ids=ids, token_type_ids=first).logits,
                          distil(input_ids=ids, token_type_ids=second).logits)


def test_mean_pooling_ignores_padding_and_cls_reads_the_first_token(tiny_bert):
    from ticket_router.torch_model import pool

    hidden = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert torch.equal(pool(hidden, mask, "cls"), hidden[:, 0])
    assert torch.allclose(pool(hidden, mask, "mean"), torch.stack([hidden[0, :2].mean(0), hidden[1].mean(0)]))

    model = TicketClassifier.from_encoder(str(tiny_bert), LABELS, pooling="mean").eval()
    ids = torch.tensor([[2, 40, 41, 3]])
    padded = torch.tensor([[2, 40, 41, 3, 0, 0]])
    alone = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    with_padding = model(input_ids=padded, attention_mask=(padded != 0).long()).logits
    assert torch.allclose(alone, with_padding, atol=1e-5)
    cls_model = TicketClassifier.from_encoder(str(tiny_bert), LABELS, pooling="cls").eval()
    cls_model.load_state_dict(model.state_dict())
    assert not torch.allclose(cls_model(input_ids=ids).logits, model(input_ids=ids).logits)


def test_pooling_survives_save_and_load(tiny_bert, tmp_path):
    model = TicketClassifier.from_encoder(str(tiny_bert), LABELS, pooling="mean")
    model.save_pretrained(tmp_path / "m")
    assert AutoModelForSequenceClassification.from_pretrained(tmp_path / "m").config.pooling == "mean"


def test_the_head_layers_are_where_the_contract_says(tiny_bert):
    from ticket_router.contract import HEAD_HIDDEN_LINEAR, HEAD_OUTPUT_LINEAR

    model = TicketClassifier.from_encoder(str(tiny_bert), LABELS, head_hidden_size=24)
    weights = model.state_dict()
    assert weights[f"{HEAD_HIDDEN_LINEAR}.weight"].shape == (24, model.encoder.config.hidden_size)
    assert weights[f"{HEAD_OUTPUT_LINEAR}.weight"].shape == (len(LABELS), 24)


def test_an_export_loads_with_its_own_code_where_custom_trainer_is_never_imported(tiny_bert, tmp_path):
    """The saved modeling.py imports only ticket_router's contract: a process that never imports the training
    package loads the folder with trust_remote_code and gets the same logits."""
    model = TicketClassifier.from_encoder(str(tiny_bert), LABELS, pooling="mean").eval()
    model.save_pretrained(tmp_path / "m")
    ids = torch.tensor([[2, 40, 41, 3, 42]])
    expected = model(input_ids=ids).logits
    script = (
        "import sys, torch\n"
        "from transformers import AutoModelForSequenceClassification\n"
        f"m = AutoModelForSequenceClassification.from_pretrained({str(tmp_path / 'm')!r}, trust_remote_code=True).eval()\n"
        "assert 'custom_trainer' not in sys.modules, 'custom_trainer was imported'\n"
        "print(m(input_ids=torch.tensor([[2, 40, 41, 3, 42]])).logits.tolist())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env={**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")})
    assert done.returncode == 0, done.stderr[-2000:]
    assert torch.allclose(torch.tensor(eval(done.stdout.strip().splitlines()[-1])), expected, atol=1e-5)


def test_the_wide_part_draws_no_random_numbers(tiny_bert):
    """With the wide part on (the default) the head starts from the same weights and training draws the same random
    numbers as without it: its table is zeros until the regression is written into it."""
    states = []
    for buckets in (0, 512):
        torch.manual_seed(11)
        model = TicketClassifier.from_encoder(str(tiny_bert), {0: "a", 1: "b", 2: "c"}, wide_buckets=buckets)
        states.append(({k: v.clone() for k, v in model.head.state_dict().items()}, torch.rand(3)))
    (head_without, next_without), (head_with, next_with) = states
    assert all(torch.equal(head_without[k], head_with[k]) for k in head_without)
    assert torch.equal(next_without, next_with)
    assert not model.wide.weight.any() and not model.wide.weight.requires_grad
