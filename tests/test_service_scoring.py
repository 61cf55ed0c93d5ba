"""Scoring paths of the service (ticket_router/service/scoring.py, page.py, files.py): every one goes through the
micro-batcher (503 when its queue is full), the page scores a ticket once, and /explain stays within one job of
max_batch texts for any ticket at any max_batch (the 500 of a 30-word ticket at max_batch 16)."""

import re
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticket_router.explain import MAX_PASSES, occlusion_inputs, occlusion_units

pytest.importorskip("fastapi", reason="the serve extra (fastapi, uvicorn) is not installed")
from fastapi.testclient import TestClient  # noqa: E402

THIRTY_WORDS = {"subject": "VPN keeps dropping", "description": " ".join(f"word{i}" for i in range(27))}


@given(subject_words=st.integers(0, 200), description_words=st.integers(0, 400), budget=st.integers(1, 80))
@settings(max_examples=300, deadline=None)
def test_occlusion_never_exceeds_its_budget_and_covers_every_word_once(subject_words, description_words, budget):
    subject = " ".join(f"s{i}" for i in range(subject_words))
    description = " ".join(f"d{i}" for i in range(description_words))
    units = occlusion_units(subject, description, budget)
    assert len(units) <= budget
    for field, count in (("subject", subject_words), ("description", description_words)):
        covered = sorted(p for unit in units for p in unit["positions"].get(field, []))
        assert covered == list(range(count))
    subjects, _, _ = occlusion_inputs(subject, description, budget)
    assert len(subjects) <= budget + 1


def test_the_default_budget_is_65_forward_passes_for_a_long_ticket():
    """Before, 65 variants (66 passes) were possible: 130 words, split 1 + 129 over the fields."""
    subjects, _, units = occlusion_inputs("one", " ".join(f"w{i}" for i in range(129)))
    assert len(units) <= MAX_PASSES and len(subjects) <= MAX_PASSES + 1


@pytest.fixture(scope="module")
def router(tiny_onnx):
    from ticket_router.router import Router

    return Router(tiny_onnx, backend="onnx")


@pytest.mark.parametrize("max_batch", [2, 16, 65, 66])
@pytest.mark.parametrize("ticket", [THIRTY_WORDS, {"subject": "vpn " * 3, "description": "drops " * 200},
                                    {"description": "only a description of five"}])
def test_explain_answers_within_one_job_at_every_max_batch(router, max_batch, ticket):
    from ticket_router.service import create_app

    with TestClient(create_app(router, max_batch=max_batch, max_chars=2000, batch_wait_ms=0)) as client:
        response = client.post("/explain", json=ticket)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["forward_passes"] <= min(max_batch, MAX_PASSES + 1) and result["words"]


class CountingRouter:
    """The real router, counting its scoring calls; with ``gate`` set, each call first waits for it."""

    def __init__(self, router):
        self.router, self.calls, self.gate, self.entered = router, [], None, threading.Event()

    def __getattr__(self, name):
        return getattr(self.router, name)

    def _counted(self, scoring, subjects, descriptions, **kwargs):
        self.calls.append((len(subjects), kwargs.get("vectors", False)))
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(30)
        return scoring(subjects, descriptions, **kwargs)

    def predict_proba(self, subjects, descriptions, **kwargs):
        return self._counted(self.router.predict_proba, subjects, descriptions, **kwargs)

    def score(self, subjects, descriptions, **kwargs):  # the service's scoring path
        return self._counted(self.router.score, subjects, descriptions, **kwargs)


def page_token(client) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text).group(1)


def test_the_page_scores_a_ticket_once_with_its_variants_and_vector(router):
    from ticket_router.service import create_app

    counting = CountingRouter(router)
    with TestClient(create_app(counting, max_batch=32, max_chars=500, batch_wait_ms=0)) as client:
        html = client.post("/", data={**THIRTY_WORDS, "csrf_token": page_token(client)}).text
    assert 'id="decision"' in html and 'id="similar"' in html
    assert counting.calls == [(1 + 30, True)]  # one job: the ticket, its 30 one-word variants, and its vector


def test_every_scoring_path_answers_503_when_the_queue_is_full(router):
    from ticket_router.service import create_app

    counting = CountingRouter(router)
    counting.gate = threading.Event()
    app = create_app(counting, max_batch=4, max_queue=4, max_chars=500, batch_wait_ms=0)
    four = {"tickets": [{"subject": "printer jam"}] * 4}
    with TestClient(app) as client:
        token = page_token(client)
        batcher = app.state.context.batcher
        results = []
        first = threading.Thread(target=lambda: results.append(client.post("/predict", json=four).status_code))
        first.start()
        assert counting.entered.wait(10)  # the first request is being scored (held at the gate)
        second = threading.Thread(target=lambda: results.append(client.post("/predict", json=four).status_code))
        second.start()
        deadline = time.time() + 10
        while batcher.queued < 4 and time.time() < deadline:
            time.sleep(0.01)
        assert batcher.queued == 4  # the queue is full
        csv = ("t.csv", "subject,description\nvpn,drops\n", "text/csv")
        refused = {
            "/predict": client.post("/predict", json={"subject": "vpn"}),
            "/explain": client.post("/explain", json={"subject": "vpn drops"}),
            "/similar": client.post("/similar", json={"subject": "vpn drops"}),
            "/": client.post("/", data={"subject": "vpn drops", "csrf_token": token}),
            "/route-file": client.post("/route-file", files={"file": csv}, data={"csrf_token": token}),
        }
        counting.gate.set()
        first.join(30)
        second.join(30)
    for path, response in refused.items():
        assert response.status_code == 503 and response.headers["retry-after"] == "1", path
    assert results == [200, 200]
