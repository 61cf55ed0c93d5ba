"""Exact similar-ticket search over a 50,000-ticket index: one query, and a batch of 256, on this machine's cores.

    python benchmarks/bench_similar.py [--tickets 50000] [--dimensions 384]

The index is written and loaded as an export's is (ticket_router/similar.py: unit vectors stored in float16, held in
float32 for the matrix product); the vectors are random (search time does not depend on their values). Reported:
median and 95th percentile over repeated queries, after one warm-up. Target: one query <= 20 ms on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(function, repeats: int) -> dict:
    function()  # warm-up
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return {"median_ms": round(1000 * float(np.median(seconds)), 2), "p95_ms": round(1000 * float(np.percentile(seconds, 95)), 2)}


def main(argv=None) -> dict:
    from ticket_router.similar import SimilarIndex, write_index

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=50_000)
    parser.add_argument("--dimensions", type=int, default=384)  # all-MiniLM-L6-v2
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "similar_index.npz"
        write_index(path, rng.normal(size=(args.tickets, args.dimensions)), rng.integers(0, 12, args.tickets),
                    np.arange(args.tickets))
        size_mb = path.stat().st_size / 1e6
        started = time.perf_counter()
        index = SimilarIndex(path)
        load_ms = 1000 * (time.perf_counter() - started)
    one = rng.normal(size=(1, args.dimensions))
    batch = rng.normal(size=(256, args.dimensions))
    result = {"tickets": args.tickets, "dimensions": args.dimensions, "cores": len(os.sched_getaffinity(0)),
              "index_file_mb": round(size_mb, 1), "load_ms": round(load_ms, 1),
              "one_query_k5": timed(lambda: index.search(one, 5), 200),
              "batch_256_k5": timed(lambda: index.search(batch, 5), 20)}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
