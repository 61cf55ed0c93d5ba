"""/metrics (ticket_router/service/metrics.py): Prometheus' text format, parsed back with prometheus-client's own
parser, with the counts of the requests this test made."""

import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi, uvicorn) is not installed")
pytest.importorskip("prometheus_client", reason="the serve extra (prometheus-client) is not installed")
from fastapi.testclient import TestClient  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402


@pytest.fixture
def client(tiny_onnx):
    from ticket_router.router import Router
    from ticket_router.service import create_app

    with TestClient(create_app(Router(tiny_onnx, backend="onnx"), max_batch=16, max_chars=500, batch_wait_ms=0)) as c:
        yield c


def samples(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert "# TYPE ticket_classifier_requests_total counter" in response.text
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found, name, **labels):
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_latencies_batches_and_routes_are_counted(client):
    tickets = [{"subject": "VPN drops"}, {"subject": "printer jam", "description": "tray two"}, {"subject": "x"}]
    for _ in range(3):
        assert client.post("/predict", json={"tickets": tickets}).status_code == 200
    assert client.post("/predict", json={"subject": 12}).status_code == 422
    assert client.get("/no-such-path").status_code == 404
    found = samples(client)
    assert value(found, "ticket_classifier_requests_total", endpoint="/predict", method="POST", status="200") == 3
    assert value(found, "ticket_classifier_requests_total", endpoint="/predict", method="POST", status="422") == 1
    assert value(found, "ticket_classifier_requests_total", endpoint="other", method="GET", status="404") == 1
    assert value(found, "ticket_classifier_request_duration_seconds_count", endpoint="/predict", status="200") == 3
    assert value(found, "ticket_classifier_batch_tickets_count") == 3  # one scoring call per request here
    assert value(found, "ticket_classifier_batch_tickets_sum") == 9
    routed = sum(v for (name, _), v in found.items() if name == "ticket_classifier_tickets_routed_total")
    assert routed == 9
    assert value(found, "ticket_classifier_queue_tickets") == 0
    (info,) = [labels for (name, labels) in found if name == "ticket_classifier_model_info"]
    info = dict(info)
    assert info["backend"] == "onnx" and info["queues"] == "12" and len(info["fingerprint"]) == 16


def test_server_errors_are_counted(tiny_onnx):
    from ticket_router.router import Router
    from ticket_router.service import create_app

    class Failing:
        def __init__(self, router):
            self.router = router

        def __getattr__(self, name):
            return getattr(self.router, name)

        def predict_proba(self, *args, **kwargs):
            raise RuntimeError("scoring failed")

        score = predict_proba  # the service's scoring path

    app = create_app(Failing(Router(tiny_onnx, backend="onnx")), max_batch=4, max_chars=100, batch_wait_ms=0)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/predict", json={"subject": "vpn"}).status_code == 500
        found = samples(client)
    assert value(found, "ticket_classifier_errors_total", kind="server") == 1
    assert value(found, "ticket_classifier_requests_total", endpoint="/predict", method="POST", status="500") == 1
