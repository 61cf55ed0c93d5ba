"""The HTTP service against a real uvicorn on loopback: answers, and a 4xx for every kind of bad request."""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi, uvicorn) is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_run):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "custom_trainer.cli", "serve", "--model", str(tiny_run[0] / "model"),
         "--port", str(port), "--max_batch", "8", "--max_chars", "500"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited: {process.stdout.read()[-2000:]}")
        try:
            urllib.request.urlopen(base + "/health", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("server did not start in 120 s")
    yield base
    process.terminate()
    process.wait(timeout=30)


def call(base, path, body=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_health_and_info(server, tiny_run):
    assert call(server, "/health") == (200, {"status": "ok"})
    status, info = call(server, "/info")
    assert status == 200 and len(info["labels"]) == 12
    assert info["threshold"] == pytest.approx(tiny_run[1]["routing"]["threshold"])


def test_one_ticket_and_a_batch(server):
    status, one = call(server, "/predict", {"subject": "Printer paper jam", "description": "Urgent: Printer paper jam"})
    assert status == 200 and len(one["top3"]) == 3 and one["route"] in ("auto", "triage")
    assert one["label"] == one["top3"][0]["label"] and one["score"] == one["top3"][0]["score"]
    status, batch = call(server, "/predict", {"tickets": [{"subject": "VPN"}, {"description": "wifi is down"}]})
    assert status == 200 and len(batch["predictions"]) == 2


@pytest.mark.parametrize(
    "raw, body, status, message",
    [
        (b"{not json", None, 400, "malformed JSON"),
        (b"\xff\xfe", None, 400, "malformed JSON"),
        (None, [1, 2], 422, "expected a JSON object"),
        (None, {"subject": 12}, 422, "subject: Input should be a valid string"),
        (None, {"subject": "x", "priority": "high"}, 422, "priority: Extra inputs are not permitted"),
        (None, {}, 422, "no text"),
        (None, {"tickets": []}, 422, "tickets: List should have at least 1 item"),
        (None, {"tickets": "nope"}, 422, "tickets: Input should be a valid list"),
        (None, {"tickets": [{"subject": "a"}] * 9}, 413, "batch of 9 tickets; at most 8"),
        (None, {"subject": "a" * 501}, 413, "subject: String should have at most 500 characters"),
        (None, {"tickets": [{"description": "b" * 501}]}, 413, "tickets.0.description: String should have at most 500"),
    ],
)
def test_bad_requests_get_a_clear_4xx_and_the_server_keeps_serving(server, raw, body, status, message):
    code, answer = call(server, "/predict", body, raw)
    assert code == status
    assert message in json.dumps(answer["detail"])
    assert call(server, "/health")[0] == 200
