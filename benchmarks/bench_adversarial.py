"""A bounded adversarial run against `ticket-classifier serve` on loopback: every request must get 2xx or 4xx.

    python benchmarks/bench_adversarial.py --model outputs/realistic/model [--rounds 5] [--onnx]

Each round sends the same attacks once, in order: maximum batches of maximum-size tickets, bodies over the limit
(announced by Content-Length and sent in full, or streamed without it), 150 MB announced, deeply nested and
huge-number JSON, invalid UTF-8, wrong types, unknown fields, empty tickets, oversized batches and fields, text
full of control characters and formula prefixes, and well-formed tickets. It stops by itself after --rounds rounds,
prints the status counts per attack, and fails (exit 1) on any 5xx, any dropped connection, or a server that is no
longer the process it started as; the server's peak memory (VmHWM) is reported.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.bench_service import free_port, peak_rss_mb  # noqa: E402


def exchange(port: int, head: bytes, body: bytes = b"", chunked: bool = False, timeout: float = 300) -> int:
    """Send one HTTP request over a fresh connection; the status code, or -1 when the connection dropped."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(head)
            if chunked:
                for start in range(0, len(body), 1 << 20):
                    piece = body[start : start + (1 << 20)]
                    sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sock.sendall(b"0\r\n\r\n")
            else:
                for start in range(0, len(body), 1 << 20):
                    sock.sendall(body[start : start + (1 << 20)])
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before the whole body went out: a limit doing its job
        answer = b""
        try:
            while b"\r\n" not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except ConnectionResetError:
            pass
    try:
        return int(answer.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return -1


def post(port: int, body: bytes, content_length: int | None = None, chunked: bool = False) -> int:
    headers = [b"POST /predict HTTP/1.1", b"Host: 127.0.0.1", b"Content-Type: application/json", b"Connection: close"]
    if chunked:
        headers.append(b"Transfer-Encoding: chunked")
    else:
        headers.append(b"Content-Length: %d" % (len(body) if content_length is None else content_length))
    head = b"\r\n".join(headers) + b"\r\n\r\n"
    return exchange(port, head, b"" if content_length is not None else body, chunked)


def attacks(max_batch: int, max_chars: int) -> dict:
    words = " ".join(f"word{i % 997}" for i in range(max_chars // 7 + 1))[:max_chars]
    big_batch = json.dumps({"tickets": [{"subject": words, "description": words}] * max_batch}).encode()
    escaped = json.dumps({"tickets": [{"subject": "\u00e9" * max_chars, "description": "\u00e9" * max_chars}]
                          * max_batch}).encode()  # 6 bytes a character on the wire
    return {
        "maximum batch of maximum tickets": lambda port: post(port, big_batch),
        "maximum batch, every character escaped": lambda port: post(port, escaped),
        "body over the limit, in full": lambda port: post(port, escaped + b" " * (len(escaped) // 2)),
        "body over the limit, chunked": lambda port: post(port, escaped + b" " * (len(escaped) // 2), chunked=True),
        "150 MB announced, none sent": lambda port: post(port, b"", content_length=150 * 1024 * 1024),
        "nested JSON": lambda port: post(port, b"[" * 50_000 + b"]" * 50_000),
        "huge integer": lambda port: post(port, b'{"subject": ' + b"9" * 50_000 + b"}"),
        "invalid UTF-8": lambda port: post(port, b'{"subject": "\xff\xfe\xfd"}'),
        "wrong types": lambda port: post(port, b'{"subject": ["a"], "description": {"b": 1}}'),
        "unknown field": lambda port: post(port, b'{"subject": "vpn", "priority": "P1"}'),
        "empty ticket": lambda port: post(port, b'{"subject": " ", "description": ""}'),
        "batch over max_batch": lambda port: post(port, json.dumps({"tickets": [{"subject": "x"}] * (max_batch + 1)}).encode()),
        "field over max_chars": lambda port: post(port, json.dumps({"subject": "x" * (max_chars + 1)}).encode()),
        "control characters and formulas": lambda port: post(port, json.dumps(
            {"subject": "=HYPERLINK(\"x\")\x00\x07\u202e", "description": "@SUM(A1)\r\n\t" * 500}).encode()),
        "well-formed ticket": lambda port: post(port, b'{"subject": "VPN drops", "description": "every hour"}'),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(REPO / "outputs" / "realistic" / "model"))
    parser.add_argument("--onnx", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max_batch", type=int, default=256)
    parser.add_argument("--max_chars", type=int, default=20_000)
    args = parser.parse_args(argv)

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "ticket_router.cli", "serve", "--model", args.model, "--port",
                               str(port), "--max_batch", str(args.max_batch), "--max_chars", str(args.max_chars),
                               *(["--onnx"] if args.onnx else [])],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while exchange(port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", timeout=2) != 200 \
                if _listening(port) else True:
            if server.poll() is not None or time.time() > deadline:
                sys.exit("the server did not start")
            time.sleep(0.3)
        started = time.time()
        results = defaultdict(Counter)
        plan = attacks(args.max_batch, args.max_chars)
        for _ in range(args.rounds):
            for name, attack in plan.items():
                results[name][attack(port)] += 1
        alive = server.poll() is None
        health = exchange(port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n") if alive else -1
        peak = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(f"\n{args.rounds} rounds of {len(plan)} requests in {time.time() - started:.0f} s "
          f"({'ONNX' if args.onnx else 'PyTorch'}, max_batch {args.max_batch}, max_chars {args.max_chars})")
    print("| request | statuses |\n| --- | --- |")
    for name, statuses in results.items():
        print(f"| {name} | {dict(sorted(statuses.items()))} |")
    bad = sum(count for statuses in results.values() for status, count in statuses.items() if status >= 500 or status < 0)
    print(f"\n5xx or dropped: {bad}; server still the same process: {alive}; /health after: {health}; "
          f"server peak memory {peak:.0f} MB")
    print(json.dumps({"statuses": {k: dict(v) for k, v in results.items()}, "bad": bad, "alive": alive,
                      "health_after": health, "server_peak_mb": peak}))
    return 0 if bad == 0 and alive and health == 200 else 1


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


if __name__ == "__main__":
    sys.exit(main())
