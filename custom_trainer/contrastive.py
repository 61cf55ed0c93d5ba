"""A contrastive sentence-pair stage before the head (the SetFit recipe, Tunstall et al. 2022, "Efficient Few-Shot
Learning Without Prompts"), for exports of a few hundred tickets (issue 38).

SetFit first fine-tunes the encoder so that tickets of one queue get similar sentence vectors and tickets of
different queues dissimilar ones (cosine similarity regressed to 1 or 0 over sampled pairs), then fits a classifier
on the vectors. Here the pairs are every pair of tickets inside a batch (a batch of 32 holds 496 pairs, positives and
negatives weighed alike as SetFit samples them half and half), so one pass over the training tickets costs one
forward and backward pass per ticket, as a fine-tuning epoch does. After the stage the head probe is trained on the
(now contrastively trained) vectors; then, as SetFit does, nothing more when the stage was the rule's, or fine-tuning
with the focal loss when it was set by hand (``fine_tune_after_stage`` decides either way). `stage_plan` decides
whether a run makes the stage when ``contrastive_epochs`` is unset: a small export of balanced labels does.

``pair_loss`` is the pure loss; ``contrastive_stage`` trains the encoder with it; ``stage_step_cost`` times its first
steps, the steady steps after them and one scoring batch, which is how a run decides whether the larger encoder fits
its budget.
"""

from __future__ import annotations

import logging
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from custom_trainer.small_exports import MEASURED, small_and_balanced, stage_steps

logger = logging.getLogger(__name__)


DEFAULT_EPOCHS = 8.0
# A stage's first two steps take 1.3 to 2.0 times a later step's seconds (measured with all-mpnet-base-v2 on 2 cores:
# 7.0, 6.8, then 3.6-4.3 s natively on AMX; 19.5, 18.9, then 12.3-13.7 s under AVX2 arithmetic): `stage_step_cost`
# times them apart from the steady steps after them.
WARMUP_STEPS = 2
STEADY_STEPS = 2


def stage_plan(epochs: float | None, train_labels, fine_tune: bool | None = None, head_probe: bool = True) -> dict:
    """The data report's ``recipe``: how many passes the contrastive stage makes, whether the whole model is
    fine-tuned after it, and why.

    epochs: ``contrastive_epochs`` as set (None = unset: the rule decides; 0 = off); train_labels: the training
    split's label ids; fine_tune: ``fine_tune_after_stage`` as set (None = unset); head_probe: whether the head is
    trained on the frozen vectors (``head_probe_epochs`` > 0). Unset, the stage makes ``DEFAULT_EPOCHS`` passes for
    a small export of balanced labels (`custom_trainer.small_exports.small_and_balanced`), else none; after a stage
    the rule makes, the head is trained on the stage's frozen vectors only (SetFit's recipe: no fine-tuning, which
    needs the head probe); after a stage set by hand, the model is fine-tuned as without one."""
    if epochs is not None:
        plan = {"contrastive_epochs": float(epochs),
                "why": "set by contrastive_epochs" if epochs else "off: contrastive_epochs is 0"}
    else:
        small, sizes = small_and_balanced(train_labels)
        state = "on" if small else "off"
        plan = {"contrastive_epochs": DEFAULT_EPOCHS if small else 0.0,
                "why": f"{state}: {sizes}; {MEASURED}; contrastive_epochs overrides"}
    if not plan["contrastive_epochs"]:
        return {**plan, "fine_tune": True}
    if fine_tune is not None:
        return {**plan, "fine_tune": fine_tune,
                "why": f"{plan['why']}; {'fine-tuned' if fine_tune else 'no fine-tuning'} after it: set by "
                       "fine_tune_after_stage"}
    if not head_probe:  # without the probe, no fine-tuning would leave the head untrained
        return {**plan, "fine_tune": True, "why": f"{plan['why']}; fine-tuned after it: head_probe_epochs is 0"}
    if epochs is not None:
        return {**plan, "fine_tune": True,
                "why": f"{plan['why']}; fine-tuned after it, as without a stage (fine_tune_after_stage overrides)"}
    return {**plan, "fine_tune": False, "why": f"{plan['why']}; {NO_FINE_TUNING}"}


NO_FINE_TUNING = ("after it, the head is trained on the stage's frozen vectors and nothing is fine-tuned (SetFit's "
                  "recipe); fine_tune_after_stage overrides")


def pair_loss(vectors: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """SetFit's cosine-similarity loss over every pair of rows: the squared error of each pair's cosine similarity
    against 1 (same label) or 0 (different labels), positives and negatives averaged apart and weighed alike.

    vectors: (n, d) sentence vectors; labels: (n,) label ids, -100 for a row without a label (skipped).
    A batch without a positive (or a negative) pair contributes only the kind it has; fewer than two labelled rows
    give a zero loss that still depends on ``vectors`` (so backward works)."""
    known = labels >= 0
    vectors, labels = vectors[known], labels[known]
    if len(labels) < 2:
        return vectors.sum() * 0.0
    unit = F.normalize(vectors.float(), dim=-1)
    similarity = unit @ unit.T
    upper = torch.triu(torch.ones_like(similarity, dtype=torch.bool), diagonal=1)
    same = labels[:, None] == labels[None, :]
    positives, negatives = similarity[upper & same], similarity[upper & ~same]
    parts = []
    if len(positives):
        parts.append(((positives - 1.0) ** 2).mean())
    if len(negatives):
        parts.append((negatives ** 2).mean())
    return torch.stack(parts).mean()


def contrastive_stage(model, dataset, collator, epochs: float, learning_rate: float = 5e-5, batch_size: int = 32,
                      seed: int = 0, bf16: bool = False, device: str | torch.device | None = None,
                      step_seconds: list[float] | None = None, progress: bool = False) -> dict:
    """Train ``model``'s encoder with `pair_loss` on the sentence vectors of ``dataset`` (tokenised rows with
    ``labels``; the routed field's labels when a row holds several) for ``epochs`` passes in shuffled batches of
    ``batch_size`` (AdamW, weight decay 0.01, 10% warm-up then linear decay; bf16 autocast on CPU when training uses
    it). The head and the wide part are untouched. Returns what it did: steps, seconds, the loss of the first and
    the last tenth of the steps. On ``device`` (e.g. the GPU the Trainer will use; the model goes back to where it
    was afterwards, where the head probe reads it). ``step_seconds``, if given, gets each step's seconds. ``progress``
    shows a progress bar of the steps with the last step's loss (the stage is a run's longest silent part otherwise:
    minutes with the larger encoder)."""
    from tqdm.auto import tqdm

    started = time.perf_counter()
    was_training = model.training
    home = next(model.parameters()).device
    device = home if device is None else torch.device(device)
    model.to(device)
    columns = [c for c in ("input_ids", "attention_mask", "token_type_ids", "labels") if c in dataset.column_names]
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset.select_columns(columns), batch_size=batch_size, shuffle=True, collate_fn=collator,
                        generator=generator, drop_last=len(dataset) > batch_size)
    total = stage_steps(len(dataset), batch_size, epochs)  # the loader drops a last partial batch, as counted there
    parameters = [p for p in model.encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=0.01)
    warmup = max(1, total // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: (step + 1) / warmup if step < warmup else max(0.0, (total - step) / max(1, total - warmup)))
    model.train()
    losses, step = [], 0
    with tqdm(total=total, desc="contrastive stage", unit="step", disable=not progress) as bar:  # closed on errors too
        while step < total:
            for batch in loader:
                step_started = time.perf_counter()
                batch = {key: value.to(device) for key, value in batch.items()}
                labels = batch["labels"]
                labels = labels if labels.dim() == 1 else labels[:, 0]
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16 and device.type == "cpu"):
                    # token types reach the encoder only where it takes them (TicketClassifier._encode decides)
                    vectors = model.sentence_vectors(batch["input_ids"], batch["attention_mask"],
                                                     batch.get("token_type_ids"))
                loss = pair_loss(vectors, labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(parameters, 1.0)
                optimizer.step()
                schedule.step()
                losses.append(float(loss.detach()))
                if step_seconds is not None:
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    step_seconds.append(time.perf_counter() - step_started)
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
                if step >= total:
                    break
    model.to(home)
    model.train(was_training)
    tenth = max(1, len(losses) // 10)
    result = {"epochs": epochs, "steps": total, "learning_rate": learning_rate, "batch_size": batch_size,
              "first_loss": round(sum(losses[:tenth]) / tenth, 4), "last_loss": round(sum(losses[-tenth:]) / tenth, 4),
              "seconds": round(time.perf_counter() - started, 1)}
    logger.info("contrastive stage: encoder trained on in-batch ticket pairs (%s)", result)
    return result


def stage_step_cost(model, sample, collator, batch_size: int, bf16: bool = False,
                    device: str | torch.device | None = None) -> dict:
    """Seconds of the contrastive stage's steps and of one fp32 scoring forward over ``sample`` (``batch_size``
    tokenised training tickets, with their ``length``) on this machine, as the run would make them (on ``device``):
    ``{"warmup_s", "warmup_steps", "step_s", "forward_s"}``. The first ``WARMUP_STEPS`` steps of a stage are slow
    (kernels, the optimizer's state, freshly mapped memory: 1.3 to 2.0 times a later step's seconds on AMX and on
    AVX2 arithmetic); ``warmup_s`` is their seconds together, ``step_s`` the mean of the ``STEADY_STEPS`` after
    them. The forward is timed after an untimed one and scaled from the padded batch to the sample's mean read length
    (scoring batches are sorted by length). ``model`` is trained by it: pass a throwaway."""
    logger.info("timing %d contrastive steps of %d tickets on a throwaway copy",
                WARMUP_STEPS + STEADY_STEPS, batch_size)
    steps: list[float] = []
    contrastive_stage(model, sample, collator, WARMUP_STEPS + STEADY_STEPS, batch_size=batch_size, bf16=bf16,
                      device=device, step_seconds=steps)
    device = next(model.parameters()).device if device is None else torch.device(device)
    model.to(device).eval()
    columns = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in sample.column_names]
    batch = collator([sample.select_columns(columns)[i] for i in range(len(sample))])
    inputs = {key: value.to(device) for key, value in batch.items()}  # the model drops token types it cannot take
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)  # kernels run async on a GPU
    with torch.no_grad():
        model.sentence_vectors(**inputs)  # warm-up
        synchronize()
        started = time.perf_counter()
        model.sentence_vectors(**inputs)
        synchronize()
    forward_s = time.perf_counter() - started
    # Scoring sorts tickets by length, so its batches carry little padding: a batch of the sample's tickets costs
    # their mean read length, not the longest one's this padded batch was timed at.
    cap = model.config.head_tail_length or None  # read by its two ends: at most head_tail_length tokens a ticket
    read = [min(length, cap) if cap else length for length in sample["length"]]
    steady = steps[WARMUP_STEPS:]
    return {"warmup_s": round(sum(steps[:WARMUP_STEPS]), 3), "warmup_steps": WARMUP_STEPS,
            "step_s": round(sum(steady) / len(steady), 3),
            "forward_s": round(forward_s * (sum(read) / len(read)) / max(read), 3)}
