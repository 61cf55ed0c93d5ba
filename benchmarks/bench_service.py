"""The service under load, on loopback: /health while a maximum batch is scored, then a bounded load run.

    python benchmarks/bench_service.py --model outputs/realistic/model [--onnx] [--requests 1000]

Starts `ticket-classifier serve` (default limits: max_batch 256, max_chars 20,000), then
  1. sends one maximum batch (256 tickets, each field 20,000 characters) and polls /health every 20 ms while it is
     scored: the largest /health latency (target <= 100 ms);
  2. for 8 and 32 concurrent clients (keep-alive connections), sends a fixed number of one-ticket requests and stops:
     requests/s, p50/p95 latency, status counts (target at 8 clients >= 3x the 54 requests/s measured before
     micro-batching);
and reports the server's peak memory (VmHWM). Nothing is timed in the tests; the figures go to benchmarks/RESULTS.md.

`--port PORT` runs only the load (2.) against a server already listening on loopback there, such as an older
release's, for a before/after on one machine (RESULTS.md, "service before micro-batching").
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def post(connection: http.client.HTTPConnection, body: dict) -> tuple[int, float]:
    data = json.dumps(body).encode()
    started = time.perf_counter()
    connection.request("POST", "/predict", body=data, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    return response.status, time.perf_counter() - started


def health_during_max_batch(port: int, max_batch: int, max_chars: int) -> dict:
    words = " ".join(f"word{i % 997}" for i in range(max_chars // 7 + 1))[:max_chars]
    batch = {"tickets": [{"subject": words, "description": words}] * max_batch}
    result = {}

    def send():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        result["status"], result["seconds"] = post(connection, batch)

    thread = threading.Thread(target=send)
    thread.start()
    latencies = []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while thread.is_alive():
        started = time.perf_counter()
        connection.request("GET", "/health")
        connection.getresponse().read()
        latencies.append(time.perf_counter() - started)
        time.sleep(0.02)
    thread.join()
    return {"batch_status": result["status"], "batch_seconds": result["seconds"], "health_polls": len(latencies),
            "health_max_ms": 1000 * max(latencies), "health_p50_ms": 1000 * statistics.median(latencies)}


def load(port: int, clients: int, requests: int, tickets: list[dict]) -> dict:
    per_client = requests // clients
    statuses, latencies, lock = Counter(), [], threading.Lock()

    def client(seed: int):
        rng = random.Random(seed)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for _ in range(per_client):
            status, seconds = post(connection, rng.choice(tickets))
            with lock:
                statuses[status] += 1
                latencies.append(seconds)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"clients": clients, "requests": len(latencies), "requests_per_second": len(latencies) / elapsed,
            "p50_ms": 1000 * latencies[len(latencies) // 2], "p95_ms": 1000 * latencies[int(0.95 * len(latencies))],
            "statuses": dict(statuses)}


def print_load(runs: list[dict]) -> None:
    print("| clients | requests | requests/s | p50 ms | p95 ms | statuses |\n| --- | --- | --- | --- | --- | --- |")
    for run in runs:
        print(f"| {run['clients']} | {run['requests']} | {run['requests_per_second']:.1f} | {run['p50_ms']:.1f} | "
              f"{run['p95_ms']:.1f} | {run['statuses']} |")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "outputs" / "realistic" / "model"))
    parser.add_argument("--onnx", action="store_true", help="serve the ONNX export (make it with export-onnx first)")
    parser.add_argument("--requests", type=int, default=1000, help="one-ticket requests per load run")
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--serve_args", nargs="*", default=[], help="more `ticket-classifier serve` flags, e.g. "
                        "--serve_args=--batch_wait_ms=10")
    parser.add_argument("--port", type=int, default=None,
                        help="load a server already listening on 127.0.0.1:PORT instead of starting one (load only)")
    args = parser.parse_args(argv)

    from ticket_data import build_dataset

    data = build_dataset("realistic")["test"]
    tickets = [{"subject": data[i]["subject"], "description": data[i]["description"]} for i in range(len(data))]
    if args.port is not None:
        runs = [load(args.port, clients, args.requests, tickets) for clients in args.clients]
        print_load(runs)
        return {"load": runs, "port": args.port}
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "ticket_router.cli", "serve", "--model", args.model,
                               "--port", str(port), *(["--onnx"] if args.onnx else []), *args.serve_args],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while True:
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/health")
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    sys.exit("the server did not start")
                time.sleep(0.2)
        warm = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for ticket in tickets[:20]:
            post(warm, ticket)
        health = health_during_max_batch(port, 256, 20_000)
        runs = [load(port, clients, args.requests, tickets) for clients in args.clients]
        peak = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(f"\nmodel {args.model} ({'ONNX' if args.onnx else 'PyTorch'}); server peak memory {peak:.0f} MB")
    print(f"maximum batch (256 x 2 x 20,000 characters): {health['batch_status']} in {health['batch_seconds']:.2f} s; "
          f"/health during it: max {health['health_max_ms']:.1f} ms, p50 {health['health_p50_ms']:.1f} ms "
          f"({health['health_polls']} polls)")
    print_load(runs)
    result = {"health_during_max_batch": health, "load": runs, "server_peak_mb": peak, "onnx": args.onnx}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
