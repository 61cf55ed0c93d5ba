"""The triage page's HTML: plain server-rendered pages, no script and no external asset (it runs offline), every
piece of ticket text escaped (it is untrusted).

A person pastes a subject and a description and sees the decision (auto-routed or triage, and why), the prediction
set with its calibrated probabilities, the similar training tickets and the words that decided, highlighted in the
ticket; or uploads a CSV and downloads it routed. With keys, a login form asks for the key first. Every form carries
the CSRF token (ticket_router/service/guards.py). ticket_router/service/page.py wires the forms to the router.
"""

from __future__ import annotations

from html import escape

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#1d2330;line-height:1.4}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}
form{border:1px solid #d5d9e2;border-radius:6px;padding:1rem;margin:1rem 0}
label{display:block;font-weight:600;margin:.5rem 0 .2rem}
input[type=text],textarea{width:100%;box-sizing:border-box;padding:.4rem;font:inherit}
textarea{height:7rem}button{margin-top:.7rem;padding:.4rem 1rem;font:inherit}
table{border-collapse:collapse}td,th{padding:.25rem .6rem;border-bottom:1px solid #e3e6ec;text-align:left}
.auto{color:#0b6b2f;font-weight:700}.triage{color:#9a5b00;font-weight:700}
.bar{display:inline-block;height:.7rem;background:#4b7bd8;vertical-align:middle}
mark{border-radius:3px;padding:0 .1rem}.error{color:#a11;font-weight:600}.muted{color:#5d6576}
"""


def document(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>{STYLE}</style></head>"
            f"<body>{body}</body></html>")


def csrf_field(csrf: str) -> str:
    return f"<input type=\"hidden\" name=\"csrf_token\" value=\"{escape(csrf)}\">"


def forms(csrf: str, subject: str = "", description: str = "", text_columns: str = "subject description") -> str:
    """The ticket form and the CSV upload form, each with the CSRF token."""
    return (
        "<form method=\"post\" action=\"/\" id=\"ticket-form\"><h2>One ticket</h2>" + csrf_field(csrf) +
        "<label for=\"ticket_id\">Ticket id (optional, e.g. INC0012345)</label>"
        "<input type=\"text\" id=\"ticket_id\" name=\"ticket_id\" maxlength=\"200\">"
        f"<label for=\"subject\">Subject</label><input type=\"text\" id=\"subject\" name=\"subject\" value=\"{escape(subject)}\">"
        f"<label for=\"description\">Description</label><textarea id=\"description\" name=\"description\">{escape(description)}</textarea>"
        "<button type=\"submit\" id=\"route-ticket\">Route</button></form>"
        "<form method=\"post\" action=\"/route-file\" enctype=\"multipart/form-data\" id=\"file-form\"><h2>A CSV of tickets</h2>"
        + csrf_field(csrf) +
        "<label for=\"file\">CSV file</label><input type=\"file\" id=\"file\" name=\"file\" accept=\".csv,text/csv\">"
        f"<label for=\"text_columns\">Text columns (space-separated)</label><input type=\"text\" id=\"text_columns\" "
        f"name=\"text_columns\" value=\"{escape(text_columns)}\">"
        "<button type=\"submit\" id=\"route-file\">Route and download</button></form>"
    )


def home(labels: list[str], rule: str, csrf: str, error: str = "", subject: str = "", description: str = "") -> str:
    notice = f"<p class=\"error\" id=\"error\">{escape(error)}</p>" if error else ""
    return document("Ticket triage", (
        "<h1>Ticket triage</h1>"
        f"<p class=\"muted\">{len(labels)} queues; routing rule: {escape(rule)}.</p>{notice}"
        + forms(csrf, subject, description)))


def login(csrf: str, error: str = "") -> str:
    """The form that asks for an API key (`ticket-classifier keys create`); the service keeps it in an HttpOnly,
    SameSite=Strict cookie."""
    notice = f"<p class=\"error\" id=\"error\">{escape(error)}</p>" if error else ""
    return document("Ticket triage: sign in", (
        "<h1>Ticket triage</h1>"
        f"<p>This service needs an API key with the <b>route</b> scope.</p>{notice}"
        "<form method=\"post\" action=\"/login\" id=\"login-form\">" + csrf_field(csrf) +
        "<label for=\"key\">API key</label><input type=\"password\" id=\"key\" name=\"key\" autocomplete=\"off\">"
        "<button type=\"submit\" id=\"sign-in\">Sign in</button></form>"))


def problem(title: str, message: str) -> str:
    """A page that says what was refused and why."""
    return document(title, f"<h1>{escape(title)}</h1><p class=\"error\" id=\"error\">{escape(message)}</p>"
                           "<p><a href=\"/\">Back to the triage page</a></p>")


def why(decision: dict, threshold: float | None, triage: bool) -> str:
    """Why the ticket was auto-routed or sent to a person, in one sentence."""
    score = decision["routing_score"]
    if decision["route"] == "auto":
        return f"its routing score {score:.3f} reaches the certified threshold {threshold:.3f} of {decision['label']}."
    if triage:
        return f"{decision['label']} is a queue whose tickets always go to a person."
    if threshold is None:
        return f"no threshold is certified for {decision['label']}: its tickets go to a person."
    return f"its routing score {score:.3f} is below the certified threshold {threshold:.3f} of {decision['label']}."


def highlighted(text: str, field: str, words: list[dict]) -> str:
    """The text with the words that decided marked, more opaque for a larger effect (escaped)."""
    strength = {}
    for word in words:
        if field in word["field"].split("+") and word["effect"] > 0:
            for token in word["text"].split():
                strength[token] = max(strength.get(token, 0.0), word["effect"])
    top = max(strength.values(), default=0.0)
    pieces = []
    for token in text.split():
        if token in strength and top > 0:
            alpha = 0.2 + 0.8 * strength[token] / top
            pieces.append(f"<mark style=\"background:rgba(255,196,0,{alpha:.2f})\" "
                          f"title=\"-{strength[token]:.1%} without it\">{escape(token)}</mark>")
        else:
            pieces.append(escape(token))
    return " ".join(pieces)


def audit_result(subject: str, description: str, ticket_id: str, csrf: str) -> str:
    """The page for a ticket of the audit sample: to a person, without the model's suggestion."""
    body = (
        "<h1>Ticket triage</h1>"
        f"<p id=\"decision\"><span class=\"triage\" id=\"route\">to triage</span>: ticket {escape(ticket_id)} is in "
        "the audit sample. Choose its queue yourself: the model's suggestion is not shown, so that your choice can "
        "tell whether the model would have been right.</p>"
        f"<p id=\"highlighted\"><b>{escape(subject)}</b><br>{escape(description)}</p>" + forms(csrf))
    return document("Triage: audit sample", body)


def fields_table(fields: dict | None) -> str:
    """The other fields the model predicts (priority, type): each one's answer, score and likely values."""
    if not fields:
        return ""
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td><b>{escape(field['label'])}</b></td><td>{field['score']:.1%}</td><td>"
        + escape(", ".join(member["label"] for member in field.get("prediction_set", field["top3"]))) + "</td></tr>"
        for name, field in fields.items())
    return ("<h2>Other fields</h2><table id=\"fields\"><tr><th>field</th><th>predicted</th><th>probability</th>"
            f"<th>likely values</th></tr>{rows}</table>")


def result(subject: str, description: str, decision: dict, reason: str, explanation: dict,
           similar: list[dict] | None, set_alpha, rule: str, csrf: str) -> str:
    """The page for one routed ticket."""
    route = decision["route"]
    members = decision.get("prediction_set") or decision["top3"]
    heading = (f"Prediction set ({1 - set_alpha:.0%})" if "prediction_set" in decision and isinstance(set_alpha, float)
               else "Prediction set" if "prediction_set" in decision else "Top 3 (this export has no prediction sets)")
    rows = "".join(f"<tr><td>{escape(m['label'])}</td><td>{m['score']:.1%}</td><td><span class=\"bar\" "
                   f"style=\"width:{max(2, int(200 * m['score']))}px\"></span></td></tr>" for m in members)
    words = "".join(f"<li><b>{escape(w['text'])}</b> ({escape(w['field'])}): {w['effect']:+.1%}</li>"
                    for w in explanation["words"])
    if similar is None:
        neighbours = "<p class=\"muted\">This export has no similar-ticket index (train with similar_index).</p>"
    else:
        neighbours = "<table id=\"similar\"><tr><th>training row</th><th>queue</th><th>cosine</th><th>text</th></tr>" + "".join(
            f"<tr><td>{n['row']}</td><td>{escape(n['label'])}</td><td>{n['similarity']:.3f}</td>"
            f"<td>{escape(n.get('text', ''))}</td></tr>" for n in similar) + "</table>"
    body = (
        "<h1>Ticket triage</h1>"
        f"<p class=\"muted\" id=\"ticket-id\">Ticket {escape(decision['id'])}</p>"
        f"<p id=\"decision\">Predicted <b>{escape(decision['label'])}</b> ({decision['score']:.1%}): "
        f"<span class=\"{route}\" id=\"route\">{'auto-routed' if route == 'auto' else 'to triage'}</span>, because "
        f"{escape(reason)}</p>"
        f"<h2>{heading}</h2><table id=\"prediction-set\">{rows}</table>" + fields_table(decision.get("fields")) +
        "<h2>The words that decided</h2>"
        f"<p id=\"highlighted\"><b>{highlighted(subject, 'subject', explanation['words'])}</b><br>"
        f"{highlighted(description, 'description', explanation['words'])}</p>"
        f"<ul id=\"words\">{words}</ul><p class=\"muted\">Drop in the probability of {escape(decision['label'])} "
        f"without each word ({explanation['forward_passes']} forward passes).</p>"
        f"<h2>Similar training tickets</h2>{neighbours}"
        f"<p class=\"muted\">Routing rule: {escape(rule)}.</p>" + forms(csrf, subject, description))
    return document(f"Triage: {decision['label']}", body)
