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

`--compare_guards ROUNDS` measures what keys and metrics cost: the load (2.) against a server with neither
(`--no_metrics`, no keys) and one with both (`--keys`, every request with its bearer token, /metrics on), started
one after the other, alternating for ROUNDS rounds; the median requests/s of each and the cost in percent (goal:
under 5%). On two cores the client and the server share the CPU and rounds differ by more than the cost itself, so
it also times the guards and metrics alone, in process: GET /info (no scoring) through the app with neither and with
both, the fastest of several interleaved repeats, in microseconds per request.
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


def post(connection: http.client.HTTPConnection, body: dict, headers: dict | None = None) -> tuple[int, float]:
    data = json.dumps(body).encode()
    started = time.perf_counter()
    connection.request("POST", "/predict", body=data, headers={"Content-Type": "application/json", **(headers or {})})
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


def load(port: int, clients: int, requests: int, tickets: list[dict], headers: dict | None = None) -> dict:
    per_client = requests // clients
    statuses, latencies, lock = Counter(), [], threading.Lock()

    def client(seed: int):
        rng = random.Random(seed)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for _ in range(per_client):
            status, seconds = post(connection, rng.choice(tickets), headers)
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


def start_server(model: str, onnx: bool, extra: list[str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "ticket_router.cli", "serve", "--model", model,
                               "--port", str(port), *(["--onnx"] if onnx else []), *extra],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while True:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/health")
            return server, port
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                server.kill()
                sys.exit("the server did not start")
            time.sleep(0.2)


def asgi_microseconds(app, requests: int, headers: list) -> float:
    """Microseconds per GET /info through ``app`` (ASGI, in process: no network, no client, no scoring)."""
    import asyncio

    scope = {"type": "http", "method": "GET", "path": "/info", "raw_path": b"/info", "query_string": b"",
             "scheme": "http", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000), "root_path": "",
             "http_version": "1.1", "asgi": {"version": "3.0"},
             "headers": [(b"host", b"127.0.0.1:8000"), (b"accept", b"*/*"), (b"user-agent", b"bench"), *headers]}

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def run() -> float:
        statuses = Counter()

        async def send(message):
            if message["type"] == "http.response.start":
                statuses[message["status"]] += 1

        async with app.router.lifespan_context(app):
            started = time.perf_counter()
            for _ in range(requests):
                await app(dict(scope), receive, send)
            elapsed = time.perf_counter() - started
        assert statuses == {200: requests}, statuses
        return 1e6 * elapsed / requests

    return asyncio.run(run())


def guards_in_process(model: str, onnx: bool, token: str, keys_file: str, repeats: int = 7,
                      requests: int = 5000) -> dict:
    from ticket_router.router import Router
    from ticket_router.service import create_app
    from ticket_router.service.keys import KeyStore

    router = Router(model, backend="onnx" if onnx else "torch")
    times = {"neither": [], "keys and metrics": []}
    for _ in range(repeats):
        plain = create_app(router, with_metrics=False, allowed_hosts=None)
        guarded = create_app(router, keys=KeyStore(keys_file), allowed_hosts=["127.0.0.1", "localhost", "::1"])
        times["neither"].append(asgi_microseconds(plain, requests, []))
        times["keys and metrics"].append(asgi_microseconds(guarded, requests, [(b"authorization",
                                                                                f"Bearer {token}".encode())]))
    fastest = {name: min(values) for name, values in times.items()}
    return {"microseconds_per_request": fastest, "added_microseconds": fastest["keys and metrics"] - fastest["neither"]}


def compare_guards(args, tickets: list[dict]) -> dict:
    """Requests/s without keys and metrics, and with both, alternating rounds (module docstring)."""
    import tempfile

    from ticket_router.service.keys import create_key

    with tempfile.TemporaryDirectory() as folder:
        keys_file = str(Path(folder) / "keys.json")
        _, token = create_key(keys_file, "bench")
        setups = {"neither": (["--no_metrics"], None),
                  "keys and metrics": (["--keys", keys_file], {"Authorization": f"Bearer {token}"})}
        rates = {name: {clients: [] for clients in args.clients} for name in setups}
        for _ in range(args.compare_guards):
            for name, (flags, headers) in setups.items():
                server, port = start_server(args.model, args.onnx, [*flags, *args.serve_args])
                try:
                    warm = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    for ticket in tickets[:20]:
                        assert post(warm, ticket, headers)[0] == 200
                    for clients in args.clients:
                        run = load(port, clients, args.requests, tickets, headers)
                        assert run["statuses"] == {200: run["requests"]}, run["statuses"]
                        rates[name][clients].append(run["requests_per_second"])
                finally:
                    server.terminate()
                    server.wait(timeout=60)
        alone = guards_in_process(args.model, args.onnx, token, keys_file)
    print("| clients | neither: requests/s (median, runs) | keys and metrics | cost |\n| --- | --- | --- | --- |")
    summary = {}
    for clients in args.clients:
        plain, guarded = (statistics.median(rates[name][clients]) for name in setups)
        summary[clients] = {"neither": rates["neither"][clients], "keys_and_metrics": rates["keys and metrics"][clients],
                            "cost_percent": 100 * (plain - guarded) / plain}
        print(f"| {clients} | {plain:.1f} ({', '.join(f'{r:.0f}' for r in rates['neither'][clients])}) | "
              f"{guarded:.1f} ({', '.join(f'{r:.0f}' for r in rates['keys and metrics'][clients])}) | "
              f"{summary[clients]['cost_percent']:+.1f}% |")
    per_request = alone["microseconds_per_request"]
    print(f"in process, GET /info (fastest of 7): neither {per_request['neither']:.1f} us, keys and metrics "
          f"{per_request['keys and metrics']:.1f} us: {alone['added_microseconds']:+.1f} us a request")
    for clients in args.clients:
        budget = 1e6 / statistics.median(rates["neither"][clients])
        print(f"  = {100 * alone['added_microseconds'] / budget:+.2f}% of the {budget:.0f} us each request takes at "
              f"{clients} clients")
    return {"compare_guards": summary, "in_process": alone}


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
    parser.add_argument("--compare_guards", type=int, default=0, metavar="ROUNDS",
                        help="requests/s without keys and metrics against with both, alternating ROUNDS rounds")
    args = parser.parse_args(argv)

    from ticket_data import build_dataset

    data = build_dataset("realistic")["test"]
    tickets = [{"subject": data[i]["subject"], "description": data[i]["description"]} for i in range(len(data))]
    if args.port is not None:
        runs = [load(args.port, clients, args.requests, tickets) for clients in args.clients]
        print_load(runs)
        return {"load": runs, "port": args.port}
    if args.compare_guards:
        return compare_guards(args, tickets)
    server, port = start_server(args.model, args.onnx, args.serve_args)
    try:
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
