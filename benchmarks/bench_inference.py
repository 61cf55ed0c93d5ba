"""Routing speed: the seed's predict loop against the CLI's batched PyTorch path and ONNX Runtime int8.

    python benchmarks/bench_inference.py --model outputs/cpu/model

In one run on the same machine and model: tickets per second for
  (a) the seed's way: one ticket at a time, padded to 256 tokens, torch.no_grad;
  (b) the CLI's path (`ticket_router.Router`, PyTorch backend): batches of 64, sorted by length, dynamic padding, inference_mode;
  (c) ONNX Runtime on the int8-quantised export (`ticket-classifier export-onnx --quantize int8`), same batching;
and single-ticket latency (p50/p95) for each. Prints the ratios to (a).

The int8 graph's agreement with the fp32 model depends on the CPU's integer kernels (VNNI or not: see
custom_trainer/onnx_export.py), so the CPU's flags are printed beside it, and agreement is also measured on the
training run's own test tickets (``--agreement_tickets``, default the run's reports/predictions.csv), once with the
exported quantisation (7-bit weights) and once with full-range 8-bit weights, the export before issue 30.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def seed_way(loaded, subjects, descriptions):
    """The notebook's predict(): tokenise one ticket, pad to 256, run the model, softmax. ``loaded``: (model,
    tokenizer) from custom_trainer.export.load_exported_model."""
    from ticket_data.preprocessing import clean_text

    model, tokenizer = loaded
    out = []
    with torch.no_grad():
        for subject, description in zip(subjects, descriptions):
            encoded = tokenizer(clean_text(subject), clean_text(description), truncation=True, max_length=256,
                                padding="max_length", return_tensors="pt")
            out.append(torch.softmax(model(**encoded).logits, dim=-1)[0].numpy())
    return np.stack(out)


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def latencies(function, subjects, descriptions, n):
    times = []
    for i in range(n):
        _, seconds = timed(function, [subjects[i]], [descriptions[i]])
        times.append(seconds * 1000)
    times.sort()
    return {"p50_ms": statistics.median(times), "p95_ms": times[int(0.95 * (len(times) - 1))]}


INT8_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu_description() -> dict:
    """The processor's name and the flags that decide which int8 kernels ONNX Runtime runs."""
    from custom_trainer.precision import cpu_flags

    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    model = next((line.partition(":")[2].strip() for line in text.splitlines() if line.startswith("model name")),
                 platform.processor() or platform.machine())
    flags = cpu_flags()
    return {"model": model, "int8_flags": [f for f in INT8_FLAGS if f in flags],
            "vnni": any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))}


def int8_agreement(model, tickets_file: Path, batch_size: int) -> dict:
    """fp32 PyTorch against the int8 graph, with 7-bit (the export's) and 8-bit weights, on a file of tickets with
    ``subject`` and ``description`` columns (the run's reports/predictions.csv: its test split)."""
    import pandas as pd
    import tempfile

    from custom_trainer.onnx_export import export_onnx
    from ticket_router.router import Router

    frame = pd.read_csv(tickets_file, keep_default_na=False)
    subjects, descriptions = frame["subject"].astype(str).tolist(), frame["description"].astype(str).tolist()
    reference = Router(model).predict_proba(subjects, descriptions, batch_size=batch_size).astype(np.float64)
    results = {"tickets_file": str(tickets_file), "tickets": len(frame)}
    for name, reduce_range in (("int8_7bit_weights", True), ("int8_8bit_weights", False)):
        with tempfile.TemporaryDirectory() as folder:
            export_onnx(model, folder, quantize="int8", reduce_range=reduce_range)
            router = Router(model, backend="onnx", onnx_dir=folder)
            started = time.perf_counter()
            probs = router.predict_proba(subjects, descriptions, batch_size=batch_size)
            seconds = time.perf_counter() - started
        results[name] = {"agreement": float((reference.argmax(-1) == probs.argmax(-1)).mean()),
                         "max_prob_diff": float(np.abs(reference - probs).max()),
                         "tickets_per_s": len(frame) / seconds}
    return results


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "outputs" / "cpu" / "model"))
    parser.add_argument("--tickets", type=int, default=2000, help="tickets for the batched paths")
    parser.add_argument("--seed_tickets", type=int, default=300, help="tickets for the (slow) seed loop")
    parser.add_argument("--latency_samples", type=int, default=100)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--agreement_tickets", default=None,
                        help="tickets (subject, description) for the int8 agreement (default: <model>/../reports/"
                             "predictions.csv, the run's test split); 'none' to skip")
    args = parser.parse_args(argv)
    cpu = cpu_description()
    print(f"CPU: {cpu['model']}; int8-relevant flags: {' '.join(cpu['int8_flags']) or 'none'} "
          f"(VNNI: {'yes' if cpu['vnni'] else 'no'})", flush=True)

    from custom_trainer.export import load_exported_model
    from custom_trainer.onnx_export import export_onnx
    from ticket_router.router import Router
    from ticket_data import build_dataset

    data = build_dataset("heldout_templates")
    rows = [data[s][i] for s in ("train", "validation", "test") for i in range(len(data[s]))]
    rows = (rows * (args.tickets // len(rows) + 1))[: args.tickets]
    subjects, descriptions = [r["subject"] for r in rows], [r["description"] for r in rows]

    torch_router = Router(args.model)
    seed_model = load_exported_model(args.model)
    export_onnx(args.model, quantize="int8")
    onnx_router = Router(args.model, backend="onnx")
    n_seed = min(args.seed_tickets, len(rows))

    # Warm-up, so one-off allocation and thread start-up are not timed.
    seed_way(seed_model, subjects[:5], descriptions[:5])
    torch_router.predict_proba(subjects[:64], descriptions[:64])
    onnx_router.predict_proba(subjects[:64], descriptions[:64])

    seed_probs, seed_s = timed(seed_way, seed_model, subjects[:n_seed], descriptions[:n_seed])
    torch_probs, torch_s = timed(lambda s, d: torch_router.predict_proba(s, d, batch_size=args.batch_size), subjects, descriptions)
    onnx_probs, onnx_s = timed(lambda s, d: onnx_router.predict_proba(s, d, batch_size=args.batch_size), subjects, descriptions)

    throughput = {"a_seed": n_seed / seed_s, "b_torch_batched": len(rows) / torch_s, "c_onnx_int8": len(rows) / onnx_s}
    latency = {
        "a_seed": latencies(lambda s, d: seed_way(seed_model, s, d), subjects, descriptions, args.latency_samples),
        "b_torch_batched": latencies(torch_router.predict_proba, subjects, descriptions, args.latency_samples),
        "c_onnx_int8": latencies(onnx_router.predict_proba, subjects, descriptions, args.latency_samples),
    }
    agreement_torch = float((seed_probs.argmax(-1) == torch_probs[:n_seed].argmax(-1)).mean())
    agreement_onnx = float((torch_probs.argmax(-1) == onnx_probs.argmax(-1)).mean())
    max_diff_onnx = float(np.abs(torch_probs - onnx_probs).max())

    print(f"\nmodel {args.model}; {len(rows)} tickets ({n_seed} for the seed loop); torch threads "
          f"{torch.get_num_threads()}; {platform.machine()}\n")
    print("| path | tickets/s | ratio to (a) | p50 latency (ms) | p95 latency (ms) |\n| --- | --- | --- | --- | --- |")
    for name, label in (("a_seed", "(a) seed: one at a time, padded to 256"),
                        ("b_torch_batched", "(b) CLI: batched PyTorch, dynamic padding"),
                        ("c_onnx_int8", "(c) ONNX Runtime int8, batched")):
        print(f"| {label} | {throughput[name]:.1f} | {throughput[name] / throughput['a_seed']:.1f}x | "
              f"{latency[name]['p50_ms']:.1f} | {latency[name]['p95_ms']:.1f} |")
    print(f"\nargmax agreement: seed loop vs (b) {agreement_torch:.4f}; (b) vs (c) {agreement_onnx:.4f}; "
          f"max |p(b) - p(c)| {max_diff_onnx:.4f}")
    result = {"throughput": throughput, "latency": latency, "agreement_seed_vs_torch": agreement_torch,
              "agreement_torch_vs_onnx_int8": agreement_onnx, "max_prob_diff_onnx_int8": max_diff_onnx,
              "tickets": len(rows), "seed_tickets": n_seed}
    tickets_file = (Path(args.model).parent / "reports" / "predictions.csv" if args.agreement_tickets is None
                    else None if args.agreement_tickets == "none" else Path(args.agreement_tickets))
    if tickets_file is not None and tickets_file.is_file():
        agreement = int8_agreement(args.model, tickets_file, args.batch_size)
        print(f"\nint8 vs fp32 PyTorch on {agreement['tickets']} tickets of {tickets_file}:")
        for name in ("int8_7bit_weights", "int8_8bit_weights"):
            row = agreement[name]
            print(f"  {name} ({'the export' if name == 'int8_7bit_weights' else 'before issue 30'}): argmax "
                  f"agreement {row['agreement']:.4f}, max |p diff| {row['max_prob_diff']:.4f}, "
                  f"{row['tickets_per_s']:.0f} tickets/s")
        result["agreement_on_run_tickets"] = agreement
    elif tickets_file is not None:
        print(f"\n(no {tickets_file}: int8 agreement on the run's test tickets skipped)")
    result["cpu"] = cpu
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
