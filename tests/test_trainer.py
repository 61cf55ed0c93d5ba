import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import AutoTokenizer, DataCollatorWithPadding

from custom_trainer import TicketClassifier
from custom_trainer.arguments import TicketTrainingArguments
from custom_trainer.trainer import TicketTrainer, NonFiniteLossError
from ticket_data import ticket_tokenizer, tokenize_dataset

LABELS = {i: name for i, name in enumerate(["Email", "Network", "Printing", "Security"])}


def tiny_dataset(tokenizer, n):
    words = ["outlook not syncing", "vpn disconnects randomly", "printer showing offline", "phishing email clicked now"]
    rows = {
        "subject": [words[i % 4] for i in range(n)],
        "description": [" ".join([words[(i * 7) % 4]] * (1 + i % 5)) for i in range(n)],  # varied lengths
        "label": [i % 4 if i % 3 else 0 for i in range(n)],  # imbalanced
    }
    return tokenize_dataset(Dataset.from_dict(rows), tokenizer, max_length=64)


def one_update(encoder, tmp_path, n, batch, accumulation, weights):
    torch.manual_seed(0)
    model = TicketClassifier.from_encoder(str(encoder), LABELS, classifier_dropout=0.0, focal_gamma=2.0,
                                          class_weights=weights.tolist())
    model.encoder.config.hidden_dropout_prob = 0.0
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    before = {k: v.clone() for k, v in model.named_parameters()}
    tokenizer = ticket_tokenizer(AutoTokenizer.from_pretrained(encoder))
    args = TicketTrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=batch, gradient_accumulation_steps=accumulation,
        max_steps=1, learning_rate=1.0, optim="sgd", one_cycle=False, lr_scheduler_type="constant",
        train_sampling_strategy="sequential", eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
        max_grad_norm=0.0, weight_decay=0.0, use_cpu=True, disable_tqdm=True, cpu_precision="fp32",
    )
    trainer = TicketTrainer(
        model=model, args=args, train_dataset=tiny_dataset(tokenizer, n),
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    trainer.train()
    return {k: (v.detach() - before[k]) for k, v in model.named_parameters()}


@pytest.mark.parametrize("n, batch_accumulation", [(32, (16, 2)), (24, (16, 2))])
def test_gradient_accumulation_gives_the_same_update(tiny_bert, tmp_path, n, batch_accumulation):
    """1 x n and micro-batches with accumulation give one identical SGD step; n=24 makes micro-batches of 16 and 8,
    where averaging per micro-batch would weight the 8 twice as much."""
    weights = torch.tensor([0.5, 1.0, 1.5, 1.0])
    whole = one_update(tiny_bert, tmp_path / "a", n, n, 1, weights)
    split = one_update(tiny_bert, tmp_path / "b", n, *batch_accumulation, weights)
    norm = sum(d.abs().sum() for d in whole.values())
    assert norm > 0
    for name in whole:
        torch.testing.assert_close(split[name], whole[name], atol=2e-6, rtol=1e-4, msg=name)


def test_one_cycle_schedule_is_torchs_onecycle(tiny_bert, tmp_path):
    model = TicketClassifier.from_encoder(str(tiny_bert), LABELS)
    args = TicketTrainingArguments(output_dir=str(tmp_path), learning_rate=1e-3, use_cpu=True, eval_strategy="no",
                                   save_strategy="no", load_best_model_at_end=False)
    trainer = TicketTrainer(model=model, args=args)
    trainer.create_optimizer_and_scheduler(num_training_steps=100)
    assert isinstance(trainer.lr_scheduler, torch.optim.lr_scheduler.OneCycleLR)
    lrs = []
    for _ in range(100):
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    assert int(np.argmax(lrs)) == pytest.approx(30, abs=1)
    assert max(lrs) == pytest.approx(1e-3)
    assert lrs[0] == pytest.approx(1e-3 / 25)


def test_evaluation_keeps_dataset_order(tiny_bert, tmp_path):
    tokenizer = ticket_tokenizer(AutoTokenizer.from_pretrained(tiny_bert))
    data = tiny_dataset(tokenizer, 40)
    model = TicketClassifier.from_encoder(str(tiny_bert), LABELS).eval()
    args = TicketTrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=8, use_cpu=True, disable_tqdm=True,
                                   eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
                                   cpu_precision="fp32")
    trainer = TicketTrainer(model=model, args=args, data_collator=DataCollatorWithPadding(tokenizer))
    output = trainer.predict(data)
    assert output.label_ids.tolist() == data["labels"]
    with torch.no_grad():
        inputs = {k: torch.tensor([data[0][k]]) for k in ("input_ids", "attention_mask", "token_type_ids")}
        first = model(**inputs).logits.numpy()
    np.testing.assert_allclose(output.predictions[0], first[0], atol=1e-5)


def test_non_finite_loss_stops_training_naming_step_and_batch(tiny_bert, tmp_path):
    tokenizer = ticket_tokenizer(AutoTokenizer.from_pretrained(tiny_bert))
    model = TicketClassifier.from_encoder(str(tiny_bert), LABELS)
    with torch.no_grad():
        model.head[4].bias.fill_(float("nan"))
    args = TicketTrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4,
                                   eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
                                   use_cpu=True, disable_tqdm=True)
    trainer = TicketTrainer(model=model, args=args, train_dataset=tiny_dataset(tokenizer, 8),
                               data_collator=DataCollatorWithPadding(tokenizer))
    with pytest.raises(NonFiniteLossError, match=r"non-finite training loss \(nan\) at step 1, .*batch labels \["):
        trainer.train()


def test_head_gets_its_own_learning_rate_and_one_cycle_peak(tiny_bert, tmp_path):
    model = TicketClassifier.from_encoder(str(tiny_bert), LABELS)
    tokenizer = ticket_tokenizer(AutoTokenizer.from_pretrained(tiny_bert))
    args = TicketTrainingArguments(output_dir=str(tmp_path), learning_rate=1e-4, head_learning_rate=3e-3, max_steps=2,
                                   eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
                                   use_cpu=True, disable_tqdm=True)
    trainer = TicketTrainer(model=model, args=args, train_dataset=tiny_dataset(tokenizer, 16),
                               data_collator=DataCollatorWithPadding(tokenizer))
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    head = {id(p) for p in model.head.parameters()}
    peaks = {}
    for group in trainer.optimizer.param_groups:
        peak = group["max_lr"]  # OneCycleLR keeps each group's peak here
        kinds = {id(p) in head for p in group["params"]}
        assert len(kinds) == 1  # a group is all head or all encoder
        peaks.setdefault(kinds.pop(), set()).add(peak)
    assert peaks == {True: {3e-3}, False: {1e-4}}
    assert sum(len(g["params"]) for g in trainer.optimizer.param_groups) == len(list(model.parameters()))
    with pytest.raises(ValueError, match="head_learning_rate must be > 0, got -1"):
        TicketTrainingArguments(output_dir=str(tmp_path), head_learning_rate=-1)
