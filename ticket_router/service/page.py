"""The triage page: GET / (the forms), POST / (one ticket: decision and why, prediction set, words that decided,
similar tickets) and, with keys, POST /login (the key into an HttpOnly, SameSite=Strict cookie).

A ticket is scored once per page view: the ticket and its occlusion variants go through the micro-batcher as one job,
which also returns the ticket's sentence vector when the export has a similar-ticket index. Every form post carries
the CSRF token (ticket_router/service/guards.py); the HTML is ticket_router/service/html.py.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from ..contract import TICKET_ID_LENGTH
from ..explain import explanation
from . import html
from .context import ServiceContext, context
from .guards import KEY_COOKIE, check_csrf, cookie_header, csrf_token, set_csrf_cookie

router = APIRouter()
FORM_FIELDS = 8


async def read_form(request: Request, service: ServiceContext):
    """The form, bounded (413) before it is read; at most one file."""
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit() or int(declared) > service.max_body:
        raise HTTPException(413, detail=f"a form of at most {service.max_body} bytes, with its Content-Length")
    return await request.form(max_files=1, max_fields=FORM_FIELDS, max_part_size=service.max_body)


def page(request: Request, render, status_code: int = 200) -> HTMLResponse:
    """``render(csrf_token)`` as an HTML answer that keeps (or gives) the browser its CSRF cookie."""
    token, new = csrf_token(request)
    response = HTMLResponse(render(token), status_code=status_code)
    if new:
        set_csrf_cookie(response, token, request)
    return response


def home(request: Request, service: ServiceContext, error: str = "", subject: str = "", description: str = "",
         status_code: int = 200) -> HTMLResponse:
    labels, rule = service.router.labels, service.router.rule.describe()
    return page(request, lambda token: html.home(labels, rule, token, error, subject, description), status_code)


class PageRefused(Exception):
    """A page post refused (CSRF): answered as an HTML page that says why (ticket_router/service/app.py)."""

    def __init__(self, status_code: int, message: str):
        super().__init__(message)
        self.status_code, self.message = status_code, message


async def checked_form(request: Request, service: ServiceContext):
    """The form of a page post, after its CSRF token is checked (a 403 page otherwise)."""
    form = await read_form(request, service)
    try:
        check_csrf(request, form)
    except HTTPException as refused:
        raise PageRefused(refused.status_code, refused.detail) from None
    return form


@router.get("/", response_class=HTMLResponse)
async def triage_page(request: Request, service: ServiceContext = Depends(context)):
    return home(request, service)


@router.post("/", response_class=HTMLResponse)
async def triage_ticket(request: Request, service: ServiceContext = Depends(context)):
    form = await checked_form(request, service)
    subject, description = str(form.get("subject") or ""), str(form.get("description") or "")
    ticket_id = str(form.get("ticket_id") or "").strip() or None
    max_chars = service.max_chars
    error = ("give a subject or a description" if not (subject.strip() or description.strip()) else
             f"a field holds more than {max_chars} characters" if max(len(subject), len(description)) > max_chars
             else f"a ticket id holds at most {TICKET_ID_LENGTH} characters" if len(ticket_id or "") > TICKET_ID_LENGTH
             else "")
    if error:
        return home(request, service, error, subject[:max_chars], description[:max_chars], status_code=422)
    with_index = service.router.has_similar_index
    scored, units = await service.score_with_variants(subject, description, vectors=with_index)
    router = scored.router  # the version that scored this ticket decides it and explains it
    answer = service.decide(scored.rows(slice(0, 1)), [subject], [description], [ticket_id], "page")[0]
    if answer.get("audit"):
        # A person decides this one without the model's answer (a suggestion anchors the answer).
        return page(request, lambda token: html.audit_result(subject, description, answer["id"], token))
    predicted = router.labels.index(answer["label"])
    threshold = router.rule.label_thresholds[predicted]
    reason = html.why(answer, threshold, predicted in router.rule.triage_ids)
    similar = ((await run_in_threadpool(router.similar_from_vectors, scored.vectors, 5))[0]
               if with_index and scored.vectors is not None else None)
    words = explanation(scored.probabilities, units, router.labels)
    return page(request, lambda token: html.result(subject, description, answer, reason, words, similar,
                                                   router.set_alpha, router.rule.describe(), token))


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request):
    return page(request, html.login)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, service: ServiceContext = Depends(context)):
    """Check the key and keep it in an HttpOnly, SameSite=Strict cookie; then the triage page."""
    form = await checked_form(request, service)
    if service.keys is None:
        return RedirectResponse("/", status_code=303)
    token = str(form.get("key") or "").strip()
    key = service.keys.verify(token)
    if key is None:
        return page(request, lambda csrf: html.login(csrf, "that key is not valid (or was revoked)"), 401)
    if "route" not in key.scopes:
        return page(request, lambda csrf: html.login(csrf, f"this key ({key.name}) lacks the 'route' scope"), 403)
    response = RedirectResponse("/", status_code=303)
    response.headers.append("set-cookie", cookie_header(KEY_COOKIE, token, request.url.scheme == "https"))
    return response
