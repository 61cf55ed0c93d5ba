"""`TicketTrainer`: the `Trainer` for `TicketClassifier`. The loss is the model's own (its forward returns the
class-weighted focal loss of custom_trainer/losses.py when given labels, as transformers' classifiers do); this
class passes it the step's labelled-item count so it is exact under gradient accumulation and DDP, stops on a
non-finite loss, and adds separate head/encoder learning rates and the seed's one-cycle schedule."""

from __future__ import annotations

import math

import time

import torch
from torch.utils.data import SequentialSampler

from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import has_length

from .cpu_memory import freed_memory_kept, keep_freed_memory_for
from .dropout import cheap_dropout_masks


class NonFiniteLossError(RuntimeError):
    pass


class TicketTrainer(Trainer):
    # compute_loss divides by the labelled items of the whole optimizer step (num_items_in_batch), so the
    # Trainer must not divide by the accumulation steps a second time.
    loss_is_scaled_for_ga = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The Trainer counts the labels of all accumulated micro-batches (and of all processes) only for
        # models that take loss kwargs; focal_loss needs that count to be exact under accumulation and DDP.
        self.model_accepts_loss_kwargs = True

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # The model computes its class-weighted focal loss (config.class_weights, config.focal_gamma); with the
        # step's labelled-item count it is exact under gradient accumulation and DDP.
        outputs = model(**inputs, num_items_in_batch=num_items_in_batch)
        loss = outputs.loss
        if num_items_in_batch is not None and self.args.average_tokens_across_devices:
            # num_items_in_batch counts every process's items while DDP averages gradients over processes.
            loss = loss * self.accelerator.num_processes
        if model.training and not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite training loss ({loss.item()}) at step {self.state.global_step + 1}, epoch "
                f"{self.state.epoch:.2f}; batch labels {inputs['labels'].tolist()}, input_ids shape {tuple(inputs['input_ids'].shape)}"
            )
        return (loss, outputs) if return_outputs else loss

    def _cheap_masks(self) -> bool:
        # CPU only: CUDA's dropout kernels draw masks fast already (custom_trainer/dropout.py).
        return self.args.device.type == "cpu" and getattr(self.args, "cheap_dropout_masks", False)

    def train(self, *args, **kwargs):
        keep_freed_memory_for(self.args)  # process-wide from here on (custom_trainer/cpu_memory.py)
        with cheap_dropout_masks(self.model, enabled=self._cheap_masks()):
            return super().train(*args, **kwargs)

    def machine_record(self) -> dict:
        """Where the run trained and what set its speed, for metrics.json and the model card."""
        from .precision import cpu_flags, cpu_name

        on_cpu = self.args.device.type == "cpu"
        if on_cpu:
            device = cpu_name()
            precision = "bf16" if self.args.bf16 else "fp32"
        else:
            device = torch.cuda.get_device_name() if torch.cuda.is_available() else str(self.args.device)
            precision = "fp16" if self.args.fp16 else "bf16" if self.args.bf16 else "fp32"
        flags = sorted(f for f in cpu_flags() if f.startswith(("avx512_bf16", "amx")) or f in ("avx2", "avx512f"))
        return {"device": device, "cpu_flags": flags if on_cpu else [], "threads": torch.get_num_threads(),
                "processes": self.args.world_size, "precision": precision,
                "cheap_dropout_masks": bool(self._cheap_masks()),
                "freed_memory_kept": bool(on_cpu and freed_memory_kept()),
                # The Trainer logs the fine-tuning loop's own clock when train() ends.
                "fine_tuning_s": next((round(entry["train_runtime"], 1) for entry in reversed(self.state.log_history)
                                       if "train_runtime" in entry), None)}

    def use_full_precision(self) -> None:
        """Score in fp32 from now on: mixed precision (bf16 on CPU, fp16 on a T4) is for training speed, while the
        figures, the calibration and the threshold must be those of the exported model, which runs in fp32.

        Accelerate wraps `model.forward` in autocast; unwrapping with keep_fp32_wrapper=False restores it.
        """
        self.accelerator.unwrap_model(self.model, keep_fp32_wrapper=False)

    def _get_eval_sampler(self, eval_dataset):
        # transformers 5 applies train_sampling_strategy="group_by_length" to evaluation as well, which returns
        # predictions shuffled against the dataset; reports and exports need them in the dataset's order.
        if eval_dataset is None or not has_length(eval_dataset):
            return None
        return SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None

    def create_optimizer(self, model=None):
        """The Trainer's AdamW, with the head's parameters in groups of their own at ``head_learning_rate``.

        A freshly initialised head needs far larger steps than the pretrained encoder: at the encoder's 1e-4 its
        output layer barely moves in a few hundred steps, and on many labels the model predicts the prior.
        """
        optimizer = super().create_optimizer(model)
        head_lr = getattr(self.args, "head_learning_rate", None)
        if head_lr is None or getattr(optimizer, "_head_groups", False):
            return optimizer
        heads = [self.model.head, *getattr(self.model, "head_fields", [])]  # every field's head is freshly made
        head = {id(p) for module in heads for p in module.parameters()}
        groups = []
        for group in optimizer.param_groups:
            settings = {key: value for key, value in group.items() if key != "params"}
            for in_head in (False, True):
                params = [p for p in group["params"] if (id(p) in head) == in_head]
                if params:
                    groups.append({**settings, "params": params, **({"lr": head_lr} if in_head else {})})
        optimizer.param_groups.clear()
        for group in groups:
            optimizer.add_param_group(group)
        optimizer._head_groups = True
        return optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        # TrainingArguments has no one-cycle schedule; the seed trains with torch's OneCycleLR
        # (cosine warm-up over the first 30% to the peak lr, cosine annealing to lr / 25e4, momentum cycled).
        if getattr(self.args, "one_cycle", False) and self.lr_scheduler is None:
            optimizer = optimizer if optimizer is not None else self.optimizer
            self.lr_scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer,
                max_lr=[group["lr"] for group in optimizer.param_groups],  # the head's groups peak higher
                total_steps=max(num_training_steps, 1),
                pct_start=self.args.one_cycle_pct_start,
            )
            return self.lr_scheduler
        return super().create_scheduler(num_training_steps, optimizer)


def epoch_history(log_history: list[dict]) -> list[dict]:
    """Training loss and validation metrics per epoch, from the Trainer's log history.

    The log history is saved in every checkpoint, so a resumed run still plots its epochs before the crash.
    """
    epochs, losses = [], []
    for entry in log_history:
        if "loss" in entry and math.isfinite(entry["loss"]):
            losses.append(entry["loss"])
        elif "eval_macro_f1" in entry and entry.get("epoch") is not None:
            train_loss = sum(losses) / len(losses) if losses else float("nan")
            epochs.append({"epoch": entry["epoch"], "train_loss": train_loss, **entry})
            losses = []
    return epochs


class EvaluationClock(TrainerCallback):
    """Wall-clock seconds (since the callback was made) at each validation, for time-to-target figures."""

    def __init__(self):
        self.started = time.perf_counter()
        self.evaluations: list[dict] = []

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics and "eval_macro_f1" in metrics and state.epoch is not None:
            self.evaluations.append({"epoch": state.epoch, "macro_f1": metrics["eval_macro_f1"],
                                     "seconds": round(time.perf_counter() - self.started, 1)})
