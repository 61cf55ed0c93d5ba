"""Training speed: the seed's input pipeline against the project's, the time to target, and the arithmetic floor.

    python benchmarks/bench_training.py

On the same encoder (the embedded all-MiniLM-L6-v2), machine, and number of optimizer steps:
  (a) the seed's pipeline: tokenise inside __getitem__, pad every ticket to 256 tokens, shuffled batches of 32;
  (b) the project's before issue 18: pre-tokenised, dynamic padding, batches grouped by length
      (TicketTrainer, batch 32), fp32;
  (c) the project's default: as (b) with cpu_precision auto (bf16 autocast where the CPU has AMX or AVX512_BF16,
      fp32 elsewhere: on an AVX2 machine (b) and (c) are the same configuration);
  (c0) the default before issue 39: (c) with glibc's default of returning freed memory to the OS ((c) keeps it,
      custom_trainer/cpu_memory.py); (c1) (c) with dropout masks drawn from random 16-bit slices instead of
      bernoulli_ (custom_trainer/dropout.py, off by default: it cost validation macro-F1), (c2) (c0) with them;
  (d) as (c) with the word embeddings frozen; (e) as (c) with the embeddings and the bottom --frozen_layers layers
      frozen (both options off by default: they cost quality on real tickets, benchmarks/RESULTS.md).
To measure an AVX2 machine's arithmetic on an AVX-512 one, run it with ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 (then cpu_precision auto picks fp32).
Each runs in its own process so that peak memory is its own. Then the default job (configs/cpu.yaml) is run once
to time how long it takes to reach validation macro-F1 >= 0.99, and the FLOPs per training token of the encoder
are set against the machine's measured matrix-multiply rate in each pipeline's precision (the floor).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


# Tickets to train on: the seed corpus (short, ~18 tokens), or a training config's data (--config), e.g. the real
# benchmark's tickets (~48 tokens), where larger matrices change what precision buys.
DATA_CONFIG = None


def _model_and_data():
    from custom_trainer import TicketClassifier, class_weights
    from custom_trainer.encoders import embedded_encoder_path
    from ticket_data import build_dataset

    if DATA_CONFIG is None:
        data = build_dataset("seed")
    else:
        from custom_trainer.arguments import parse_args
        from train import load_data

        data_args, _, training_args, _ = parse_args(["--config", DATA_CONFIG, "--output_dir", "/tmp/unused"])
        data, _ = load_data(data_args, training_args.seed)
    names = data["train"].features["label"].names
    weights = class_weights(data["train"]["label"], len(names))
    model = TicketClassifier.from_encoder(str(embedded_encoder_path()), dict(enumerate(names)),
                                          class_weights=weights.tolist())
    return model, data, weights


def run_seed_pipeline(steps: int) -> dict:
    """The notebook's loop: Dataset tokenising in __getitem__ with padding='max_length' (256)."""
    from torch.utils.data import DataLoader, Dataset
    from transformers import AutoTokenizer

    from custom_trainer.encoders import embedded_encoder_path
    from custom_trainer.losses import focal_loss
    from ticket_data.preprocessing import clean_text

    torch.manual_seed(42)
    model, data, weights = _model_and_data()
    tokenizer = AutoTokenizer.from_pretrained(embedded_encoder_path())
    train = data["train"]

    class TicketDataset(Dataset):
        def __len__(self):
            return len(train)

        def __getitem__(self, i):
            row = train[i]
            text = f"[SUBJECT] {clean_text(row['subject']).lower()} [SEP] [DESCRIPTION] {clean_text(row['description']).lower()}"
            enc = tokenizer(text, truncation=True, max_length=256, padding="max_length", return_tensors="pt")
            return {"input_ids": enc["input_ids"].squeeze(), "attention_mask": enc["attention_mask"].squeeze(),
                    "labels": torch.tensor(row["label"])}

    loader = DataLoader(TicketDataset(), batch_size=32, shuffle=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-4, total_steps=steps)
    model.train()
    examples = tokens = real_tokens = 0
    started = time.perf_counter()
    for step, batch in enumerate(loader):
        if step == steps:
            break
        optimizer.zero_grad()
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = focal_loss(logits, batch["labels"], weights, 2.0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        examples += len(batch["labels"])
        tokens += batch["input_ids"].numel()
        real_tokens += int(batch["attention_mask"].sum())
    seconds = time.perf_counter() - started
    return {"steps": steps, "seconds": seconds, "examples": examples, "tokens_processed": tokens,
            "real_tokens": real_tokens}


# The project's training configurations compared: the default before issue 18 (fp32 everywhere) and today's
# (cpu_precision auto: bf16 autocast where the CPU multiplies bf16 natively, custom_trainer/precision.py).
CONFIGURATIONS = {
    "before": {"cpu_precision": "fp32", "keep_freed_memory": False},
    "default": {},
    "before_39": {"keep_freed_memory": False},  # the default before issue 39
    "cheap_masks": {"cheap_dropout_masks": True},  # the default with issue 39's cheap masks (off by default)
    "masks_only": {"cheap_dropout_masks": True, "keep_freed_memory": False},
    "frozen": {},  # the default, with the word embeddings frozen (model option freeze_word_embeddings)
    "frozen_layers": {},  # the default, with the embeddings and the bottom FROZEN_LAYERS layers frozen (frozen_layers)
}
DEFAULT_FROZEN_LAYERS = 2
FROZEN_LAYERS = DEFAULT_FROZEN_LAYERS


def run_project_pipeline(steps: int, configuration: str = "default") -> dict:
    """The project's path: tokenize_dataset + DataCollatorWithPadding + group_by_length, TicketTrainer."""
    import tempfile

    from transformers import AutoTokenizer, DataCollatorWithPadding, TrainerCallback

    from custom_trainer.arguments import TicketTrainingArguments
    from custom_trainer.encoders import embedded_encoder_path
    from custom_trainer.trainer import TicketTrainer
    from ticket_data import ticket_tokenizer, tokenize_dataset

    torch.manual_seed(42)
    model, data, weights = _model_and_data()
    if configuration == "frozen":
        model.encoder.get_input_embeddings().weight.requires_grad_(False)
    if configuration == "frozen_layers":
        model.freeze_lower_layers(FROZEN_LAYERS)
    tokenizer = ticket_tokenizer(AutoTokenizer.from_pretrained(embedded_encoder_path()))
    started_tokenizing = time.perf_counter()
    train = tokenize_dataset(data["train"], tokenizer, max_length=128)
    tokenize_seconds = time.perf_counter() - started_tokenizing
    collator = DataCollatorWithPadding(tokenizer)

    batches = []

    def counting_collator(features):
        batch = collator(features)
        batches.append((len(features), batch["input_ids"].numel(), int(batch["attention_mask"].sum())))
        return batch

    with tempfile.TemporaryDirectory() as output_dir:
        args = TicketTrainingArguments(output_dir=output_dir, max_steps=steps, learning_rate=1e-4,
                                       per_device_train_batch_size=32, eval_strategy="no", save_strategy="no",
                                       load_best_model_at_end=False, disable_tqdm=True, logging_steps=1000,
                                       use_cpu=True, **CONFIGURATIONS[configuration])
        class StepClock(TrainerCallback):
            """When each optimizer step ended (perf_counter)."""

            def __init__(self):
                self.ends: list[float] = []

            def on_step_end(self, *args, **kwargs):
                self.ends.append(time.perf_counter())

        clock = StepClock()
        trainer = TicketTrainer(model=model, args=args, train_dataset=train, data_collator=counting_collator,
                                callbacks=[clock])
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
    # The Trainer's loader collates one batch ahead of the model; count only the batches that were trained on.
    trained = batches[:steps]
    counts = {"examples": sum(b[0] for b in trained), "tokens_processed": sum(b[1] for b in trained),
              "real_tokens": sum(b[2] for b in trained), "batches_collated": len(batches),
              # After the first step: without the Trainer's start and the first step's one-time work (oneDNN
              # kernels made for the first shapes, memory first touched), what every later step of a long run costs.
              "after_first_step_seconds": clock.ends[-1] - clock.ends[0] if len(clock.ends) > 1 else float("nan"),
              "after_first_step_real_tokens": sum(b[2] for b in trained[1:])}
    precision = "bf16" if args.bf16 else "fp32"
    return {"steps": steps, "seconds": seconds, "tokenize_seconds": tokenize_seconds, "precision": precision,
            "optim": str(args.optim), **counts}


def matmul_rate(size: int = 2048, repeats: int = 10, dtype: torch.dtype = torch.float32, rounds: int = 5) -> float:
    """Measured matrix-multiply FLOP/s in `dtype` with torch's threads on this machine: the best of ``rounds``
    rounds of ``repeats`` products (a floor is what the machine can do; on a shared 2-core VM one round measured
    426 to 677 bf16 GFLOP/s within an hour, which made the share of the floor swing with it)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = max(best, 2 * size**3 * repeats / (time.perf_counter() - started))
    return best


def flops_per_training_token(model, mean_tokens: float, frozen_layers: int = 0) -> float:
    """Matmul FLOPs a training token needs: forward 2 x the parameters it touches (embedding look-ups excluded) plus
    attention's score and mixing products (2 x 2 x sequence x hidden a layer); backward 2x that for each trained
    layer (weight and input gradients). With ``frozen_layers`` (embeddings frozen too) the frozen layers have no
    backward, and the lowest trained layer needs no input gradient."""
    config = model.encoder.config
    layers = model.encoder_layers()
    per_layer = sum(p.numel() for p in layers[0].parameters())
    rest = sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n) - per_layer * len(layers)
    attention = 2 * 2 * mean_tokens * config.hidden_size
    trained = len(layers) - frozen_layers
    forward = 2 * per_layer * len(layers) + attention * len(layers)
    weight_grads = 2 * per_layer * trained
    input_grads = 2 * per_layer * (trained - (1 if frozen_layers else 0)) + attention * 2 * trained
    return forward + weight_grads + input_grads + 6 * rest


def time_to_target(target: float = 0.99) -> dict:
    """Run the default job (configs/cpu.yaml) and read when validation macro-F1 first reached the target."""
    from custom_trainer.arguments import parse_args
    from train import main

    started = time.perf_counter()
    data_args, model_args, training_args, _ = parse_args(
        ["--output_dir", str(REPO / "outputs" / "bench_time_to_target"), "--disable_tqdm", "true"])
    metrics = main(data_args, model_args, training_args)
    reached = next((e["seconds"] for e in metrics["evaluations"] if e["macro_f1"] >= target), None)
    return {"seconds_to_target": reached, "total_seconds": time.perf_counter() - started,
            "evaluations": metrics["evaluations"], "test_macro_f1": metrics["test"]["macro_f1"]}


def child(kind: str, steps: int) -> None:
    result = run_seed_pipeline(steps) if kind == "seed" else run_project_pipeline(steps, kind)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


PIPELINES = {
    "seed": "(a) seed: tokenise in __getitem__, pad to 256, fp32",
    "before": "(b) project before issue 18: pre-tokenised, dynamic padding, grouped by length, fp32",
    "default": "(c) project default: as (b), cpu_precision auto, freed memory kept",
    "before_39": "(c0) the default before issue 39: as (c), freed memory returned to the OS",
    "cheap_masks": "(c1) as (c) with cheap dropout masks (cheap_dropout_masks, off by default)",
    "masks_only": "(c2) as (c0) with cheap dropout masks",
    "frozen": "(d) as (c), word embeddings frozen (--freeze_word_embeddings true)",
    "frozen_layers": "(e) as (c), embeddings and the bottom layers frozen (--frozen_layers)",
}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps for each pipeline")
    parser.add_argument("--skip_time_to_target", action="store_true")
    parser.add_argument("--from_metrics", help="read the time to target from a default job's reports/metrics.json "
                        "instead of running the job again")
    parser.add_argument("--config", help="train on this training config's tickets instead of the seed corpus "
                        "(e.g. configs/it_service_tickets.yaml)")
    parser.add_argument("--skip_seed", action="store_true", help="leave out pipeline (a)")
    parser.add_argument("--pipelines", nargs="+", choices=list(PIPELINES), default=None,
                        help="run only these pipelines (default: all; 'default' and 'before' always run)")
    parser.add_argument("--frozen_layers", type=int, default=DEFAULT_FROZEN_LAYERS, help="bottom layers pipeline (e) freezes")
    parser.add_argument("--child", choices=list(PIPELINES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    global DATA_CONFIG, FROZEN_LAYERS
    DATA_CONFIG, FROZEN_LAYERS = args.config, args.frozen_layers
    if args.child:
        child(args.child, args.steps)
        return {}

    from custom_trainer.precision import cpu_flags, native_bf16

    flags = sorted(f for f in cpu_flags() if f.startswith(("avx512", "amx")) or f == "avx2")
    # What the kernels may use can be less than the processor has: ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2
    # and MKL_ENABLE_INSTRUCTIONS=AVX2 together make an AVX-512 machine compute like an AVX2 one.
    caps = {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS") if k in os.environ}
    print(f"CPU: {' '.join(flags) or 'flags unknown'}; torch kernels: {torch.backends.cpu.get_cpu_capability()}"
          f"{'; caps ' + ' '.join(f'{k}={v}' for k, v in caps.items()) if caps else ''}; bf16 in hardware: "
          f"{'yes' if native_bf16() else 'no'}")
    results = {"cpu_flags": flags, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "isa_caps": caps}
    kinds = [kind for kind in PIPELINES if not (args.skip_seed and kind == "seed")
             and (args.pipelines is None or kind in args.pipelines or kind in ("default", "before"))]
    print(f"tickets: {args.config or 'the seed corpus'}")
    for kind in kinds:
        run = subprocess.run([sys.executable, __file__, "--child", kind, "--steps", str(args.steps),
                              "--frozen_layers", str(args.frozen_layers),
                              *(["--config", args.config] if args.config else [])],
                             capture_output=True, text=True, cwd=REPO)
        line = [l for l in run.stdout.splitlines() if l.startswith("RESULT ")]
        if run.returncode != 0 or not line:
            sys.exit(f"{kind} pipeline failed:\n{run.stderr[-3000:]}")
        results[kind] = json.loads(line[0][7:])
        r = results[kind]
        r["examples_per_s"] = r["examples"] / r["seconds"]
        r["tokens_per_s"] = r["tokens_processed"] / r["seconds"]
        r["real_tokens_per_s"] = r["real_tokens"] / r["seconds"]

    # The floor: FLOPs a training token needs, at the matmul rate this machine measures in the pipeline's precision.
    model, _, _ = _model_and_data()
    ours = results["default"]
    mean_tokens = ours["real_tokens"] / ours["examples"]
    flops = flops_per_training_token(model, mean_tokens)
    # bf16 is measured only where a pipeline ran in it: emulated bf16 (AVX2) multiplies at ~0.3 GFLOP/s.
    used = {r.get("precision", "fp32") for r in results.values() if isinstance(r, dict) and "real_tokens" in r}
    rates = {p: matmul_rate(dtype=torch.bfloat16 if p == "bf16" else torch.float32) for p in sorted(used)}
    for r in results.values():
        if isinstance(r, dict) and "real_tokens" in r:
            precision = r.get("precision", "fp32")
            own = flops_per_training_token(model, mean_tokens, args.frozen_layers if r is results.get("frozen_layers") else 0)
            r["flops_per_token"] = own
            r["floor_tokens_per_s"] = rates[precision] / own
            r["floor_share"] = r["real_tokens_per_s"] / r["floor_tokens_per_s"]
            if r.get("after_first_step_seconds"):
                r["after_first_step_real_tokens_per_s"] = r["after_first_step_real_tokens"] / r["after_first_step_seconds"]
                r["after_first_step_floor_share"] = r["after_first_step_real_tokens_per_s"] / r["floor_tokens_per_s"]

    nan = float("nan")
    print(f"\n{args.steps} optimizer steps of batch 32 each, same encoder and machine "
          f"(torch threads {torch.get_num_threads()})\n")
    print("| pipeline | precision | examples/s | tokens/s (incl. padding) | real tokens/s | padding share | "
          "share of the floor | after the first step: real tokens/s, share | peak RSS (MB) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for kind in kinds:
        name, r = PIPELINES[kind], results[kind]
        padding = 1 - r["real_tokens"] / r["tokens_processed"]
        print(f"| {name} | {r.get('precision', 'fp32')} | {r['examples_per_s']:.1f} | {r['tokens_per_s']:.0f} | "
              f"{r['real_tokens_per_s']:.0f} | {padding:.1%} | {r['floor_share']:.0%} | "
              f"{r.get('after_first_step_real_tokens_per_s', nan):.0f}, {r.get('after_first_step_floor_share', nan):.0%} | "
              f"{r['peak_rss_mb']:.0f} |")
    before = results["before"]
    def over(kind: str, base: dict) -> float:
        return results[kind]["real_tokens_per_s"] / base["real_tokens_per_s"] if kind in results else nan

    ratio = ours["examples_per_s"] / results["seed"]["examples_per_s"] if "seed" in results else nan
    speedup = over("default", before)
    frozen, frozen_layers = over("frozen", before), over("frozen_layers", before)
    memory = 1 / over("before_39", ours) if "before_39" in results else nan
    masks = over("cheap_masks", ours)
    print(f"\nthroughput (c)/(a): {ratio:.1f}x (target >= 8x); (c)/(b): {speedup:.2f}x real tokens/s (target >= 1.5x); "
          f"(c)/(c0): {memory:.2f}x (kept memory, issue 39), (c1)/(c): {masks:.2f}x (cheap dropout masks); (d)/(b): {frozen:.2f}x; (e)/(b): {frozen_layers:.2f}x "
          f"({args.frozen_layers} layers); pre-tokenising took {ours['tokenize_seconds']:.1f} s")
    measured = ", ".join(f"{p} {rate / 1e9:.1f} GFLOP/s (at most {rate / flops:.0f} tokens/s)" for p, rate in rates.items())
    frozen_flops = flops_per_training_token(model, mean_tokens, args.frozen_layers)
    print(f"\narithmetic floor: {flops / 1e6:.1f} MFLOP per training token (mean {mean_tokens:.1f} tokens a ticket; "
          f"{frozen_flops / 1e6:.1f} with {args.frozen_layers} frozen layers); "
          f"measured matmul rate {measured}; (b) reaches {before['floor_share']:.0%} of its floor, (c) "
          f"{ours['floor_share']:.0%} of its floor (goals: >= 60% in bf16, >= 75% in fp32)")
    results.update({"ratio": ratio, "speedup_over_before": speedup, "cheap_masks_speedup": masks,
                    "kept_memory_speedup": memory,
                    "frozen_speedup_over_before": frozen,
                    "frozen_layers_speedup_over_before": frozen_layers, "frozen_layers": args.frozen_layers, "flops_per_token": flops,
                    "matmul_flops_per_s": rates})

    if args.from_metrics:
        saved = json.loads(Path(args.from_metrics).read_text())
        reached = next((e["seconds"] for e in saved["evaluations"] if e["macro_f1"] >= 0.99), None)
        target = {"seconds_to_target": reached, "total_seconds": saved["train_runtime_s"],
                  "evaluations": saved["evaluations"], "test_macro_f1": saved["test"]["macro_f1"]}
        results["time_to_target"] = target
        print(f"\ndefault job ({args.from_metrics}): validation macro-F1 >= 0.99 after {reached} s since the job "
              f"started; whole job {target['total_seconds']:.0f} s; evaluations: {target['evaluations']}")
    elif not args.skip_time_to_target:
        target = time_to_target()
        results["time_to_target"] = target
        reached = "never" if target["seconds_to_target"] is None else f"after {target['seconds_to_target']:.0f} s"
        print(f"\ndefault job (configs/cpu.yaml): validation macro-F1 >= 0.99 {reached} (training clock); "
              f"whole job {target['total_seconds']:.0f} s; evaluations (epoch, macro-F1, s): {target['evaluations']}")
    print(json.dumps(results, default=str))
    return results


if __name__ == "__main__":
    main()
