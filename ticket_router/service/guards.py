"""The service's guards, in the order a request meets them: its key, its Host, its Origin; then, per endpoint, its
Content-Type (ticket_router/service/bodies.py) and, for the page's forms, the CSRF token.

1. **Key** (only with ``serve --keys``). Every endpoint but ``/health`` and the login form needs a key: a bearer
   token (``Authorization: Bearer TOKEN``), HTTP Basic with the token as password (any user name), or the page's
   HttpOnly, SameSite=Strict cookie set by the login form. No key or a wrong one: 401 with ``WWW-Authenticate``
   (a browser asking for the page gets the login form with it). A key without the endpoint's scope: 403. This
   comes first, so a request without credentials learns nothing else (never a 400, 403 or 413).
2. **Host**: a request whose ``Host`` is not in ``allowed_hosts`` gets 400 (DNS rebinding: a foreign site whose
   name resolves to this machine would otherwise be same-origin with the service in the victim's browser).
   ``/health`` tells nothing and answers any Host: probes call it by address.
3. **Origin**: a request that may change something (any method but GET, HEAD, OPTIONS) whose ``Origin`` (or, when
   absent, ``Referer``) names another site gets 403. Browsers send Origin on every cross-site POST; clients such as
   curl send neither, and pass.
4. **CSRF token** (the page's forms): a double-submit token, random per browser, in a SameSite=Strict cookie and in
   a hidden form field; a post whose field does not match its cookie gets 403.

Pure ASGI (no BaseHTTPMiddleware): the guards cost a few microseconds a request (benchmarks/bench_service.py).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from . import html
from .keys import KeyStore

# Answered without a key and whatever the Host (load balancers and liveness probes reach it by address).
OPEN_PATHS = ("/health",)
LOGIN_PATH = "/login"
SCOPE_OF_PATH = {"/metrics": "metrics", "/feedback": "feedback"}  # every other path needs "route"
KEY_COOKIE = "tck_key"
CSRF_COOKIE = "tck_csrf"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def default_allowed_hosts(bind: str) -> list[str]:
    """The bind address and the loopback names; for a wildcard bind (0.0.0.0, ::) also this machine's names and
    addresses, the Hosts its clients are likely to use (give --allowed_hosts for a name behind a proxy or DNS)."""
    bind = bind.strip("[]").lower()
    hosts = [bind, *LOOPBACK_NAMES]
    if bind in ("0.0.0.0", "::", ""):
        import socket

        names = [socket.gethostname(), socket.getfqdn()]
        try:
            names += [info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)]
        except OSError:
            pass
        hosts += [name.lower() for name in names if name]
    return list(dict.fromkeys(hosts))


def host_name(value: str) -> str:
    """The host of a Host header or URL netloc, without port or IPv6 brackets, lowercased."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.index("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def cookies_of(headers: dict) -> dict[str, str]:
    found = {}
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            found[name] = value
    return found


def token_of(headers: dict) -> str | None:
    """The token a request carries: bearer, HTTP Basic password, or the login cookie."""
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(credentials.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return None
    return cookies_of(headers).get(KEY_COOKIE)


def cookie_header(name: str, value: str, secure: bool, max_age: int | None = None) -> str:
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


class Guards:
    """ASGI middleware: key, then Host, then Origin (module docstring)."""

    def __init__(self, app, keys: KeyStore | None = None, allowed_hosts: list[str] | None = None):
        self.app, self.keys = app, keys
        self.allowed_hosts = None if allowed_hosts is None or "*" in allowed_hosts else {
            host_name(host) for host in allowed_hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        path, method = scope["path"], scope["method"]
        if self.keys is not None and path not in OPEN_PATHS and path != LOGIN_PATH:
            key = self.keys.verify(token_of(headers))
            if key is None:
                return await self.unauthorized(scope, headers, send)
            needed = SCOPE_OF_PATH.get(path, "route")
            if needed not in key.scopes:
                return await answer(send, 403, {"detail": f"this key ({key.name}) lacks the {needed!r} scope"})
            scope.setdefault("state", {})["key"] = key
        if (self.allowed_hosts is not None and path not in OPEN_PATHS
                and host_name(headers.get("host", "")) not in self.allowed_hosts):
            return await answer(send, 400, {"detail": f"Host {headers.get('host', '')!r} is not served here "
                                                      "(serve --allowed_hosts)"})
        if method not in SAFE_METHODS:
            source = headers.get("origin") or headers.get("referer")
            if source is not None and not same_site(source, headers.get("host", "")):
                return await answer(send, 403, {"detail": "a request from another site (Origin or Referer) is "
                                                          "refused"})
        return await self.app(scope, receive, send)

    async def unauthorized(self, scope, headers, send):
        challenge = [(b"www-authenticate", b'Bearer realm="ticket-classifier", charset="UTF-8"')]
        if scope["method"] == "GET" and "text/html" in headers.get("accept", ""):
            token = cookies_of(headers).get(CSRF_COOKIE) or secrets.token_urlsafe(24)
            secure = scope.get("scheme") == "https"
            page = html.login(token).encode("utf-8")
            return await respond(send, 401, page, "text/html; charset=utf-8",
                                 [*challenge, (b"set-cookie", cookie_header(CSRF_COOKIE, token, secure).encode())])
        detail = "this service needs an API key: Authorization: Bearer TOKEN (ticket-classifier keys create)"
        return await answer(send, 401, {"detail": detail}, challenge)


def same_site(source: str, host: str) -> bool:
    """Whether an Origin or Referer names the host the request was sent to (scheme and port included in the
    comparison of netlocs; "null" never matches)."""
    if source == "null":
        return False
    netloc = urlsplit(source).netloc.lower()
    return bool(netloc) and netloc == host.strip().lower()


async def respond(send, status: int, body: bytes, content_type: str, headers=()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


async def answer(send, status: int, content: dict, headers=()) -> None:
    await respond(send, status, json.dumps(content).encode("utf-8"), "application/json", headers)


def csrf_token(request: Request) -> tuple[str, bool]:
    """The browser's CSRF token, and whether it is new (then the response must set its cookie)."""
    existing = request.cookies.get(CSRF_COOKIE)
    return (existing, False) if existing else (secrets.token_urlsafe(24), True)


def set_csrf_cookie(response, token: str, request: Request) -> None:
    response.headers.append("set-cookie", cookie_header(CSRF_COOKIE, token, request.url.scheme == "https"))


def check_csrf(request: Request, form) -> None:
    """403 unless the form's token matches the browser's cookie."""
    sent, expected = str(form.get(CSRF_FIELD) or ""), request.cookies.get(CSRF_COOKIE) or ""
    if not (sent and expected and hmac.compare_digest(sent.encode(), expected.encode())):
        raise HTTPException(403, detail="the form's CSRF token is missing or stale: load the page again")
