"""Routing a file as a user does it, timed as whole processes, against the seed's one-at-a-time loop; and start-up.

    python benchmarks/bench_routing.py --model outputs/realistic/model [--slim_python .venv-slim/bin/python]

In one run on one machine and model:
  (a) the seed's loop, in process: one ticket at a time, padded to 256 tokens (tickets/s);
  (b) `ticket-classifier predict --input 5000.csv --output routed.csv`, PyTorch backend, the whole process timed;
  (c) the same with `--onnx` on the int8 export (made here with `export-onnx --quantize int8`);
  start-up: `ticket-classifier --help` and one ONNX prediction from the shell (median of 5 runs each), with the slim
  install's python when given (the router without torch), else this one.
Targets (issue 13): (b) >= 15x (a), (c) >= 40x (a), --help <= 1 s, one ONNX prediction <= 1.5 s.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def wall(command: list[str], runs: int = 1) -> float:
    """Median wall time of ``command`` (a fresh process each run); fails loudly if it fails."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, cwd=tempfile.gettempdir())
        times.append(time.perf_counter() - started)
        if result.returncode != 0:
            sys.exit(f"failed: {' '.join(command)}\n{result.stderr[-2000:]}")
    return statistics.median(times)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "outputs" / "realistic" / "model"))
    parser.add_argument("--tickets", type=int, default=5000)
    parser.add_argument("--seed_tickets", type=int, default=300, help="tickets for the (slow) seed loop")
    parser.add_argument("--slim_python", default=None, help="python of a venv with only `pip install .`")
    parser.add_argument("--dataset", default="heldout_templates",
                        help="corpus the tickets come from (heldout_templates: the tickets of bench_inference.py and of "
                             "the issue's 10x figure; realistic: longer tickets)")
    args = parser.parse_args(argv)

    import pandas as pd
    import torch

    from benchmarks.bench_inference import seed_way
    from custom_trainer.export import load_exported_model
    from ticket_data import build_dataset
    from custom_trainer.onnx_export import export_onnx

    data = build_dataset(args.dataset)
    rows = [data[s][i] for s in ("train", "validation", "test") for i in range(len(data[s]))]
    rows = (rows * (args.tickets // len(rows) + 1))[: args.tickets]
    work = Path(tempfile.mkdtemp(prefix="bench_routing_"))
    source = work / "tickets.csv"
    pd.DataFrame({"subject": [r["subject"] for r in rows], "description": [r["description"] for r in rows]}).to_csv(
        source, index=False)

    seed_model = load_exported_model(args.model)
    subjects, descriptions = [r["subject"] for r in rows], [r["description"] for r in rows]
    seed_way(seed_model, subjects[:5], descriptions[:5])  # warm-up
    started = time.perf_counter()
    seed_way(seed_model, subjects[: args.seed_tickets], descriptions[: args.seed_tickets])
    seed_rate = args.seed_tickets / (time.perf_counter() - started)
    del seed_model

    export_onnx(args.model, quantize="int8")
    cli = [sys.executable, "-m", "ticket_router.cli"]
    predict = [*cli, "predict", "--model", str(Path(args.model).resolve()), "--input", str(source), "--quiet"]
    torch_s = wall([*predict, "--output", str(work / "torch.csv")])
    onnx_s = wall([*predict, "--onnx", "--output", str(work / "onnx.csv")])
    agreement = float((pd.read_csv(work / "torch.csv")["predicted"] == pd.read_csv(work / "onnx.csv")["predicted"]).mean())

    startup_python = str(Path(args.slim_python).absolute()) if args.slim_python else sys.executable
    help_s = wall([startup_python, "-m", "ticket_router.cli", "--help"], runs=5)
    one_s = wall([startup_python, "-m", "ticket_router.cli", "predict", "--onnx", "--model", str(Path(args.model).resolve()),
                  "--subject", "VPN keeps dropping", "--description", "since the update it disconnects every hour"], runs=5)

    rates = {"a_seed_loop": seed_rate, "b_cli_torch": len(rows) / torch_s, "c_cli_onnx_int8": len(rows) / onnx_s}
    print(f"\nmodel {args.model}; {len(rows)} tickets of {args.dataset}; torch threads {torch.get_num_threads()}; {platform.machine()}\n")
    print("| path | tickets/s | ratio to (a) | target |\n| --- | --- | --- | --- |")
    for key, label, target in (("a_seed_loop", "(a) seed loop, one at a time, padded to 256 (in process)", ""),
                               ("b_cli_torch", "(b) `ticket-classifier predict --input`, PyTorch (whole process)", ">= 15x"),
                               ("c_cli_onnx_int8", "(c) the same with `--onnx`, int8 (whole process)", ">= 40x")):
        print(f"| {label} | {rates[key]:.1f} | {rates[key] / seed_rate:.1f}x | {target} |")
    where = "slim install" if args.slim_python else "this install"
    print(f"\nstart-up ({where}, median of 5): --help {help_s:.2f} s (target <= 1 s); one ONNX prediction "
          f"{one_s:.2f} s (target <= 1.5 s)\nlabels agree, (b) vs (c): {agreement:.4f}")
    result = {"tickets_per_second": rates, "ratios": {k: v / seed_rate for k, v in rates.items()},
              "help_seconds": help_s, "one_onnx_prediction_seconds": one_s, "startup_python": where,
              "agreement_torch_vs_onnx_int8": agreement, "tickets": len(rows), "dataset": args.dataset}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
