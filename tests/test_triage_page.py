"""The triage page at `/` (ticket_router/service/page.py, html.py, files.py): a ticket's decision and why, its
prediction set, similar tickets and words that decided; a CSV routed and downloaded; untrusted text escaped; limits
applied; every form post carries the browser's CSRF token."""

import io
import re

import pandas as pd
import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi, uvicorn) is not installed")
from fastapi.testclient import TestClient  # noqa: E402


@pytest.fixture(scope="module")
def client(tiny_onnx):
    from ticket_router.router import Router
    from ticket_router.service import create_app

    app = create_app(Router(tiny_onnx, backend="onnx"), max_batch=16, max_chars=500, batch_wait_ms=0)
    with TestClient(app) as client:
        yield client


def csrf(client) -> str:
    """The CSRF token of the page's forms (the client keeps the matching cookie)."""
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text).group(1)


def test_the_page_has_both_forms_and_no_external_asset(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert 'id="ticket-form"' in html and 'id="file-form"' in html and 'enctype="multipart/form-data"' in html
    assert "<script" not in html and "http://" not in html and "https://" not in html


def test_a_ticket_gets_its_decision_set_similar_tickets_and_words_with_its_text_escaped(client):
    subject, description = "Printer <script>alert(1)</script> jam", "paper stuck in tray two & nothing prints"
    response = client.post("/", data={"subject": subject, "description": description, "csrf_token": csrf(client)})
    assert response.status_code == 200
    html = response.text
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&amp; nothing" in html
    assert 'id="prediction-set"' in html and 'id="similar"' in html and "<mark " in html
    assert ("auto-routed" in html) or ("to triage" in html)
    assert "because " in html and "forward passes" in html


def test_the_decision_on_the_page_is_the_routers(client, tiny_onnx):
    from ticket_router.router import Router

    decision = Router(tiny_onnx, backend="onnx").route(["VPN drops"], ["every hour since the update"])[0]
    html = client.post("/", data={"subject": "VPN drops", "description": "every hour since the update",
                                  "csrf_token": csrf(client)}).text
    assert f"Predicted <b>{decision['label']}</b> ({decision['score']:.1%})" in html
    for member in decision["prediction_set"]:
        assert f"<td>{member['label']}</td><td>{member['score']:.1%}</td>" in html


def test_a_csv_is_routed_and_downloaded(client, tiny_onnx):
    from ticket_router.router import Router

    tickets = pd.DataFrame({"subject": ["VPN drops", "=cmd|' /C calc'!A0", "printer jam"],
                            "description": ["every hour", "formula-looking text", ""]})
    response = client.post("/route-file", files={"file": ("my tickets.csv", tickets.to_csv(index=False), "text/csv")},
                           data={"text_columns": "subject description", "csrf_token": csrf(client)})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert 'filename="my%20tickets_routed.csv"' in response.headers["content-disposition"]
    routed = pd.read_csv(io.StringIO(response.text))
    expected = Router(tiny_onnx, backend="onnx").route(tickets["subject"].tolist(), tickets["description"].tolist())
    assert routed["predicted"].tolist() == [d["label"] for d in expected]
    assert routed["route"].tolist() == [d["route"] for d in expected] and "prediction_set" in routed
    assert routed["subject"][1].startswith("'=")  # escaped for spreadsheets


def test_bad_input_gets_a_page_that_says_what_is_wrong(client):
    token = csrf(client)
    assert "give a subject or a description" in client.post("/", data={"subject": " ", "csrf_token": token}).text
    assert client.post("/", data={"subject": "x" * 501, "csrf_token": token}).status_code == 422
    too_many = pd.DataFrame({"subject": [f"ticket {i}" for i in range(17)], "description": [""] * 17})
    response = client.post("/route-file", files={"file": ("t.csv", too_many.to_csv(index=False), "text/csv")},
                           data={"csrf_token": token})
    assert response.status_code == 422 and "17 rows; the page routes at most 16" in response.text
    wrong = client.post("/route-file", files={"file": ("t.csv", "title,body\na,b\n", "text/csv")},
                        data={"csrf_token": token})
    assert wrong.status_code == 422 and "t.csv" in wrong.text and "subject" in wrong.text
