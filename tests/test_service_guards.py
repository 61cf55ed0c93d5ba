"""The service's guards (ticket_router/service/guards.py, bodies.py): keys before anything else, scopes, the login
cookie, Host, Origin and Referer, CSRF tokens on the page's forms, JSON only where JSON is expected, bodies bounded
at one ticket where one ticket is taken, and a non-loopback bind refused without keys."""

import base64
import re

import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi, uvicorn) is not installed")
from fastapi.testclient import TestClient  # noqa: E402

from ticket_router.service import keys as keys_module  # noqa: E402
from ticket_router.service.keys import KeyStore, create_key, revoke_key  # noqa: E402

TICKET = {"subject": "VPN drops", "description": "every hour since the update"}


@pytest.fixture(scope="module")
def router(tiny_onnx):
    from ticket_router.router import Router

    return Router(tiny_onnx, backend="onnx")


@pytest.fixture
def keyed(router, tmp_path):
    """A service with keys: the client (no credentials of its own) and the tokens by scope."""
    from ticket_router.service import create_app

    path = tmp_path / "keys.json"
    tokens = {"all": create_key(path, "desk")[1], "metrics": create_key(path, "scraper", ["metrics"])[1],
              "route": create_key(path, "router", ["route"])[1]}
    app = create_app(router, max_batch=16, max_chars=500, batch_wait_ms=0, keys=KeyStore(path),
                     allowed_hosts=["testserver", "desk.example"])
    with TestClient(app) as client:
        client.tokens, client.keys_path = tokens, path
        yield client


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def csrf(client, headers=None) -> str:
    page = client.get("/", headers=headers or {})
    assert page.status_code == 200, page.text
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def test_health_is_open_and_everything_else_needs_a_key(keyed):
    assert keyed.get("/health").status_code == 200
    for method, path in (("GET", "/info"), ("POST", "/predict"), ("GET", "/metrics"), ("POST", "/explain"),
                         ("POST", "/similar"), ("POST", "/"), ("POST", "/route-file"), ("GET", "/nowhere")):
        response = keyed.request(method, path, json=TICKET)
        assert response.status_code == 401, (path, response.status_code)
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert keyed.post("/predict", json=TICKET, headers=bearer("tck_" + "0" * 12 + "_" + "A" * 43)).status_code == 401
    answer = keyed.post("/predict", json=TICKET, headers=bearer(keyed.tokens["all"]))
    assert answer.status_code == 200 and answer.json()["label"]


def test_http_basic_with_the_token_as_password(keyed):
    credentials = base64.b64encode(f"anyone:{keyed.tokens['all']}".encode()).decode()
    assert keyed.post("/predict", json=TICKET, headers={"Authorization": f"Basic {credentials}"}).status_code == 200
    wrong = base64.b64encode(b"anyone:nope").decode()
    assert keyed.post("/predict", json=TICKET, headers={"Authorization": f"Basic {wrong}"}).status_code == 401


def test_scopes_a_scraper_cannot_route_and_a_router_cannot_scrape(keyed):
    scraper, router_only = bearer(keyed.tokens["metrics"]), bearer(keyed.tokens["route"])
    assert keyed.post("/predict", json=TICKET, headers=scraper).status_code == 403
    assert keyed.get("/metrics", headers=scraper).status_code == 200
    assert keyed.get("/metrics", headers=router_only).status_code == 403
    assert keyed.post("/predict", json=TICKET, headers=router_only).status_code == 200


@pytest.mark.parametrize("headers, body", [
    ({"Origin": "https://evil.example"}, None),
    ({"Host": "evil.example"}, None),
    ({"Content-Type": "text/plain"}, b"{}"),
    ({"Content-Length": "999999999999", "Content-Type": "application/json"}, None),
])
def test_without_credentials_the_answer_is_401_before_any_other_guard(keyed, headers, body):
    response = keyed.post("/predict", content=body if body is not None else b'{"subject": "x"}', headers=headers)
    assert response.status_code == 401
    page = keyed.post("/", data={"subject": "x"}, headers=headers if "Content-Length" not in headers else {})
    assert page.status_code == 401


def test_a_revoked_key_is_refused_by_the_running_service(keyed, monkeypatch):
    monkeypatch.setattr(keys_module, "RELOAD_EVERY_S", 0.0)
    token = keyed.tokens["route"]
    assert keyed.post("/predict", json=TICKET, headers=bearer(token)).status_code == 200
    revoke_key(keyed.keys_path, "router")
    assert keyed.post("/predict", json=TICKET, headers=bearer(token)).status_code == 401


def test_the_page_signs_in_with_a_key_into_an_httponly_samesite_cookie(keyed):
    signed_out = keyed.get("/", headers={"Accept": "text/html"})
    assert signed_out.status_code == 401 and 'id="login-form"' in signed_out.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', signed_out.text).group(1)
    wrong = keyed.post("/login", data={"key": "nope", "csrf_token": token})
    assert wrong.status_code == 401 and "not valid" in wrong.text
    scraper = keyed.post("/login", data={"key": keyed.tokens["metrics"], "csrf_token": token})
    assert scraper.status_code == 403 and "lacks the &#x27;route&#x27; scope" in scraper.text
    cross_site = keyed.post("/login", data={"key": keyed.tokens["all"], "csrf_token": token},
                            headers={"Origin": "https://evil.example"})
    assert cross_site.status_code == 403
    signed_in = keyed.post("/login", data={"key": keyed.tokens["all"], "csrf_token": token}, follow_redirects=False)
    assert signed_in.status_code == 303
    cookie = signed_in.headers["set-cookie"]
    assert cookie.startswith("tck_key=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    home = keyed.get("/")  # the client sends the cookie back, as a browser would
    assert home.status_code == 200 and 'id="ticket-form"' in home.text
    routed = keyed.post("/", data={**TICKET, "csrf_token": token})
    assert routed.status_code == 200 and 'id="decision"' in routed.text


def test_form_posts_from_another_site_are_refused(keyed):
    key = bearer(keyed.tokens["all"])
    token = csrf(keyed, key)
    for foreign in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Referer": "https://evil.example/page"}, {"Origin": "http://testserver:9999"}):
        for path in ("/", "/route-file"):
            response = keyed.post(path, data={**TICKET, "csrf_token": token}, headers={**key, **foreign})
            assert response.status_code == 403, (path, foreign)
    same_site = keyed.post("/", data={**TICKET, "csrf_token": token},
                           headers={**key, "Origin": "http://testserver", "Referer": "http://testserver/"})
    assert same_site.status_code == 200


def test_a_form_post_without_its_csrf_token_is_refused(keyed):
    key = bearer(keyed.tokens["all"])
    token = csrf(keyed, key)
    assert keyed.post("/", data=TICKET, headers=key).status_code == 403
    assert keyed.post("/", data={**TICKET, "csrf_token": token + "x"}, headers=key).status_code == 403
    refused = keyed.post("/route-file", files={"file": ("t.csv", "subject,description\na,b\n", "text/csv")},
                         headers=key)
    assert refused.status_code == 403 and "CSRF" in refused.text
    assert keyed.post("/", data={**TICKET, "csrf_token": token}, headers=key).status_code == 200


def test_json_endpoints_take_json_only(keyed):
    key = bearer(keyed.tokens["all"])
    for path in ("/predict", "/explain", "/similar"):
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
            response = keyed.post(path, content=b'{"subject": "vpn"}', headers={**key, "Content-Type": content_type})
            assert response.status_code == 415, (path, content_type)
        assert keyed.post(path, content=b'{"subject": "vpn"}', headers=key).status_code == 415  # none declared
        ok = keyed.post(path, content=b'{"subject": "vpn"}',
                        headers={**key, "Content-Type": "application/json; charset=utf-8"})
        assert ok.status_code == 200, path


def test_other_host_headers_get_400_and_health_answers_any(keyed):
    key = bearer(keyed.tokens["all"])
    assert keyed.get("/info", headers={**key, "Host": "evil.example"}).status_code == 400
    assert keyed.get("/info", headers={**key, "Host": "desk.example:8443"}).status_code == 200
    assert keyed.get("/health", headers={"Host": "10.1.2.3:8000"}).status_code == 200


def test_one_ticket_endpoints_bound_their_body_at_one_ticket(keyed):
    """max_chars 500: one ticket's body is at most 1 x (2 x 500 x 6 + 256) + 1024 bytes, far below the batch bound."""
    key = {**bearer(keyed.tokens["all"]), "Content-Type": "application/json"}
    padded = b'{"subject": "vpn"' + b" " * 8000 + b"}"  # valid JSON, one ticket, over one ticket's bound
    for path in ("/explain", "/similar"):
        response = keyed.post(path, content=padded, headers=key)
        assert response.status_code == 413 and "at most 7280" in response.text, path
    assert keyed.post("/predict", content=padded, headers=key).status_code == 200


def test_no_keys_means_loopback_only_unless_insecure():
    from ticket_router.cli import main
    from ticket_router.service.app import check_exposure

    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_exposure(host, None, False)
    with pytest.raises(ValueError, match="--host 0.0.0.0 without --keys"):
        check_exposure("0.0.0.0", None, False)
    check_exposure("0.0.0.0", None, True)
    check_exposure("0.0.0.0", "keys.json", False)
    # The command refuses before it loads a model (the folder does not even exist).
    assert main(["serve", "--model", "/nonexistent", "--host", "0.0.0.0"]) == 2


def test_default_allowed_hosts_are_the_bind_address_and_loopback():
    from ticket_router.service.guards import default_allowed_hosts, host_name

    assert default_allowed_hosts("127.0.0.1") == ["127.0.0.1", "localhost", "::1"]
    assert "10.0.0.5" in default_allowed_hosts("10.0.0.5")
    assert host_name("[::1]:8000") == "::1" and host_name("Desk.Example:80") == "desk.example"
