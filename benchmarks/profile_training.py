"""Where a training step's time goes: the default pipeline under torch.profiler, per operator family.

    python benchmarks/profile_training.py [--config configs/it_service_tickets.yaml] [--steps 12]

The default pipeline of benchmarks/bench_training.py ((c): pre-tokenised, dynamic padding, batches grouped by
length, TicketTrainer, batch 32, cpu_precision auto: bf16 autocast on a CPU with AVX512_BF16 or AMX), run for
``--warmup`` steps and then ``--steps`` profiled ones. The self CPU time of every operator is summed into families
(matrix products, attention, softmax, layer norm, GELU, dropout, casts and copies, the optimizer, embeddings, other
element-wise work), beside the wall time of the profiled steps: what is not in any operator is Python, the
Trainer's loop, the data loader and collation. Figures (and the machine) go to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

# Operator name fragments -> family; the first match wins (order matters: "addmm" before "add").
FAMILIES = [
    ("attention (SDPA)", ("scaled_dot_product", "_flash_attention", "_efficient_attention")),
    ("matrix products", ("::mm", "addmm", "bmm", "::matmul", "::linear", "baddbmm", "mkldnn_linear", "_mkl")),
    ("softmax", ("softmax",)),
    ("layer norm", ("layer_norm",)),
    ("GELU", ("gelu",)),
    ("dropout masks", ("dropout", "bernoulli", "native_dropout", "random_")),
    ("optimizer (AdamW)", ("_foreach", "adam", "lerp", "addcdiv", "addcmul", "sqrt", "::clamp_", "zero_")),
    ("embeddings", ("embedding",)),
    ("casts and copies", ("::to", "_to_copy", "copy_", "clone", "contiguous", "::cat", "expand", "view", "reshape",
                          "permute", "transpose", "slice", "select", "index", "unsqueeze", "squeeze")),
    ("loss and softmax of the loss", ("log_softmax", "nll", "gather", "pow")),
    ("other element-wise", ("::add", "::mul", "::div", "::sub", "::where", "::masked_fill", "::sum", "::mean",
                            "::ones", "::zeros", "::fill", "::empty", "::ne", "::eq", "::lt", "::gt", "::neg",
                            "::exp", "::rsub", "::tanh", "::abs", "::max", "::min", "::norm")),
]


def family_of(name: str) -> str:
    for family, fragments in FAMILIES:
        if any(fragment in name for fragment in fragments):
            return family
    return "other operators"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="train on this config's tickets (default: the seed corpus)")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--attention_dropout", type=float, default=None,
                        help="set the encoder's attention dropout (default: the encoder's own, 0.1 for MiniLM)")
    parser.add_argument("--configuration", choices=["default", "before_39", "cheap_masks", "masks_only"],
                        default="default", help="bench_training.py's pipeline: the default; before issue 39 (freed "
                        "memory returned to the OS); the default with cheap dropout masks; before issue 39 with them")
    parser.add_argument("--sdpa", choices=["default", "math"], default="default",
                        help="scaled dot-product attention's kernels: PyTorch's choice, or the math one alone")
    args = parser.parse_args(argv)

    import bench_training
    from transformers import AutoTokenizer, DataCollatorWithPadding, TrainerCallback

    from custom_trainer.arguments import TicketTrainingArguments
    from custom_trainer.encoders import embedded_encoder_path
    from custom_trainer.precision import cpu_flags
    from custom_trainer.trainer import TicketTrainer
    from ticket_data import ticket_tokenizer, tokenize_dataset

    bench_training.DATA_CONFIG = args.config
    torch.manual_seed(42)
    model, data, _ = bench_training._model_and_data()
    if args.attention_dropout is not None:
        from custom_trainer.modeling import set_attention_dropout

        set_attention_dropout(model, args.attention_dropout)
    tokenizer = ticket_tokenizer(AutoTokenizer.from_pretrained(embedded_encoder_path()))
    train = tokenize_dataset(data["train"], tokenizer, max_length=128)
    tokens = []
    collator = DataCollatorWithPadding(tokenizer)

    def counting(features):
        batch = collator(features)
        tokens.append(int(batch["attention_mask"].sum()))
        return batch

    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                      schedule=torch.profiler.schedule(wait=0, warmup=args.warmup, active=args.steps,
                                                                       repeat=1))
    clock = {}

    class Step(TrainerCallback):
        def on_step_begin(self, train_args, state, control, **kwargs):
            if state.global_step == args.warmup:
                clock["start"] = time.perf_counter()

        def on_step_end(self, train_args, state, control, **kwargs):
            profiler.step()
            if state.global_step == args.warmup + args.steps:
                clock["end"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as output_dir:
        training = TicketTrainingArguments(output_dir=output_dir, max_steps=args.warmup + args.steps,
                                           learning_rate=1e-4, per_device_train_batch_size=32, eval_strategy="no",
                                           save_strategy="no", load_best_model_at_end=False, disable_tqdm=True,
                                           logging_steps=1000, use_cpu=True, **bench_training.CONFIGURATIONS[args.configuration])
        trainer = TicketTrainer(model=model, args=training, train_dataset=train, data_collator=counting,
                                callbacks=[Step()])
        import contextlib

        from torch.nn.attention import SDPBackend, sdpa_kernel

        kernels = sdpa_kernel([SDPBackend.MATH]) if args.sdpa == "math" else contextlib.nullcontext()
        with profiler, kernels:
            trainer.train()
    wall = clock["end"] - clock["start"]
    families = defaultdict(float)
    total_self = 0.0
    for event in profiler.key_averages():
        if event.key.startswith("ProfilerStep"):
            continue
        self_s = event.self_cpu_time_total / 1e6
        families[family_of(event.key)] += self_s
        total_self += self_s
    threads = torch.get_num_threads()
    # Self times are summed over threads' work as the profiler records it on the calling thread (intra-op threads
    # inside one operator count once): the profiled wall time is the budget.
    outside = max(wall - total_self, 0.0)
    real = sum(tokens[args.warmup:args.warmup + args.steps]) if len(tokens) >= args.warmup + args.steps else float("nan")
    flags = sorted(f for f in cpu_flags() if f.startswith(("avx512", "amx")) or f == "avx2")
    print(f"CPU: {' '.join(flags)}; torch threads {threads}; precision {'bf16' if training.bf16 else 'fp32'}; "
          f"tickets: {args.config or 'the seed corpus'}")
    print(f"{args.steps} profiled steps (after {args.warmup}): {wall:.2f} s wall, {1000 * wall / args.steps:.0f} ms a "
          f"step, {real / wall:.0f} real tokens/s\n")
    print("| family | ms a step | share of the step |\n| --- | --- | --- |")
    rows = sorted(families.items(), key=lambda kv: -kv[1])
    for family, seconds in rows:
        print(f"| {family} | {1000 * seconds / args.steps:.1f} | {seconds / wall:.1%} |")
    print(f"| outside any operator (Python, Trainer loop, data loader, collation) | {1000 * outside / args.steps:.1f} "
          f"| {outside / wall:.1%} |")
    top = sorted(((event.key, event.self_cpu_time_total / 1e6) for event in profiler.key_averages()
                  if not event.key.startswith("ProfilerStep")), key=lambda kv: -kv[1])[:15]
    print("\nslowest operators (self time, ms a step): " + ", ".join(f"{name} {1000 * s / args.steps:.1f}"
                                                                    for name, s in top))
    result = {"wall_seconds": wall, "steps": args.steps, "real_tokens_per_s": real / wall,
              "families_ms_per_step": {k: 1000 * v / args.steps for k, v in rows},
              "outside_ms_per_step": 1000 * outside / args.steps, "cpu_flags": flags}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
