"""The `realistic` corpus: tickets the way people write them, from the hand-written problem inventory.

Every ticket comes from one problem of `realistic_inventory.PROBLEMS` and varies everything around it: subject
wording (not just the first words of the description), greetings, context, error codes, asset tags, ticket
numbers, e-mail addresses, signatures, typos, casing and length (a few words to a paragraph). Deterministic
for a given seed.
"""

from __future__ import annotations

import random
import re

from .realistic_inventory import PROBLEMS, SLOTS

GREETINGS = ["Hi,", "Hello,", "Hi team,", "Hello IT,", "Good morning,", "Dear service desk,", "Hey,", "Hi there,",
             "Hi all,", "Good afternoon,", "Helpdesk,"]
CONTEXT = [
    "Since {days},", "After the update last night,", "Working from home today and", "Not sure this is the right queue, but",
    "Quick one:", "Started {days} ago:", "As of this morning", "Since I came back from leave", "On the {site},",
    "Since the new laptop was set up,", "FYI", "Not sure what changed but", "Sorry to bother you again,",
]
IMPACT = [
    "This is blocking my work.", "I have a client deadline today.", "The whole team is affected.", "Please help asap.",
    "Not urgent.", "Tried restarting, didn't help.", "I already rebooted twice.", "Can someone look at this today?",
    "It worked fine last week.", "Colleagues have the same problem.", "Happy to do a screen share.",
    "I'm in meetings until 2pm but reachable on Teams.", "Low priority, just annoying.", "This is the second time this month.",
]
EXTRAS = [
    "Asset tag: {tag}.", "Ref INC{ticket}.", "Error: {error}.", "My extension is {ext}.", "Machine: {laptop}.",
    "Location: {site}.", "Screenshot attached.", "Hostname {host}.", "Related to ticket #{ticket}.",
    "Contact me at {email}.", "Please reply to {email}.",
]
CLOSINGS = ["Thanks", "Thanks in advance,", "Regards,", "Cheers", "Kind regards,", "Thank you!", "Many thanks,", "thx"]
FIRST = ["Anna", "James", "Priya", "Tom", "Maria", "Chen", "Fatima", "Lukas", "Sofia", "David", "Aisha", "Mark",
         "Olga", "Raj", "Emma", "Kenji", "Laura", "Omar", "Nina", "Peter"]
LAST = ["Smith", "Kowalski", "Patel", "Nguyen", "Garcia", "Muller", "O'Brien", "Rossi", "Khan", "Jensen", "Silva",
        "Brown", "Novak", "Ahmed", "Wilson"]
DOMAINS = ["acme-corp.com", "contoso.co.uk", "example.org", "northwind.de", "globex.io"]
ROLES = ["Finance Analyst", "Sales Manager", "HR Business Partner", "Software Engineer", "Project Coordinator",
         "Customer Support", "Marketing Lead", "Operations", "Legal Counsel", "Data Analyst"]
SUBJECT_PREFIXES = ["URGENT: ", "RE: ", "FW: ", "Issue - ", "[{site}] ", "Help: ", "Request: ", "Problem: ", "Question: "]


def _fill(text: str, rng: random.Random, person: dict, chosen: dict) -> str:
    """Fill ``{slot}`` markers; a slot keeps its value across the subject and description of one ticket."""

    def value(match: re.Match) -> str:
        slot = match.group(1)
        if slot in SLOTS:
            if slot not in chosen:
                chosen[slot] = rng.choice(SLOTS[slot])
            return chosen[slot]
        if slot == "tag":
            return f"{rng.choice(['LT', 'PC', 'AST', 'MON'])}-{rng.randint(10000, 99999)}"
        if slot == "ticket":
            return str(rng.randint(100000, 999999))
        if slot == "ext":
            return str(rng.randint(2000, 7999))
        if slot == "host":
            return f"{rng.choice(['WS', 'LT', 'DESK'])}{rng.randint(1000, 9999)}"
        if slot == "email":
            return person["email"]
        raise KeyError(f"unknown slot {{{slot}}} in {text!r}")

    return re.sub(r"\{(\w+)\}", value, text)


def _typo(text: str, rng: random.Random) -> str:
    """Swap two neighbouring letters of one longer word (the commonest typing slip)."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) > 4 and w.isalpha()]
    if not candidates:
        return text
    i = rng.choice(candidates)
    word = words[i]
    j = rng.randrange(1, len(word) - 2)
    words[i] = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
    return " ".join(words)


def _sentence(part: str) -> str:
    """End a sentence-like part with punctuation, as people mostly do (greetings and sign-offs keep theirs)."""
    if part[-1] in ".!?,:" or "|" in part or part in CLOSINGS or len(part.split()) < 3:
        return part
    return part + "."


def _person(rng: random.Random) -> dict:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    handle = rng.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}{last[0]}"]).lower().replace("'", "")
    return {"name": f"{first} {last}", "first": first, "email": f"{handle}@{rng.choice(DOMAINS)}", "role": rng.choice(ROLES)}


def compose_ticket(subjects: list[str], details: list[str], rng: random.Random) -> tuple[str, str]:
    """One ticket (subject, description) about a problem."""
    person = _person(rng)
    detail = original = rng.choice(details)
    style = rng.random()
    # Subject: one of the problem's subject lines, sometimes the opening of the detail, rarely empty.
    roll = rng.random()
    if roll < 0.07:
        subject = ""
    elif roll < 0.2:
        subject = " ".join(detail.split()[: rng.randint(3, 7)])
    else:
        subject = rng.choice(subjects)
    if subject and rng.random() < 0.15:
        subject = rng.choice(SUBJECT_PREFIXES) + subject

    if style < 0.25:  # terse: the detail alone, maybe with one extra
        parts = [detail]
        if rng.random() < 0.3:
            parts.append(rng.choice(EXTRAS))
    else:
        parts = []
        if rng.random() < 0.6:
            parts.append(rng.choice(GREETINGS))
        if rng.random() < 0.45:
            context = rng.choice(CONTEXT)
            detail = detail[0].lower() + detail[1:] if not detail[:2].isupper() else detail
            parts.append(f"{context} {detail}")
        else:
            parts.append(detail)
        if style > 0.7:  # long: a second description of the same problem
            others = [d for d in details if d != original]
            if others:
                other = rng.choice(others)
                parts.append("Also, " + other[0].lower() + other[1:])
        if rng.random() < 0.5:
            parts.append(rng.choice(IMPACT))
        parts.extend(rng.sample(EXTRAS, rng.choice([0, 0, 1, 1, 2])))
        if rng.random() < 0.55:
            parts.append(rng.choice(CLOSINGS))
            roll = rng.random()
            if roll < 0.4:
                parts.append(person["first"])
            elif roll < 0.7:
                parts.append(f"{person['name']} | {person['role']} | {person['email']}")
    description = " ".join(_sentence(part) for part in parts if part)
    chosen: dict = {}
    subject, description = _fill(subject, rng, person, chosen), _fill(description, rng, person, chosen)

    if rng.random() < 0.2:
        description = _typo(description, rng)
    if rng.random() < 0.1:
        subject = _typo(subject, rng)
    casing = rng.random()
    if casing < 0.15:
        subject, description = subject.lower(), description.lower()
    elif casing < 0.18:
        subject = subject.upper()
    return subject.strip(), description.strip()


def split_variants(text: str) -> list[str]:
    return [part.strip() for part in text.split(" | ") if part.strip()]


def generate_realistic_tickets(seed: int = 42, per_category: int = 250) -> list[dict[str, str]]:
    """``per_category`` tickets for each category, spread evenly over its problems; each row names its problem."""
    rng = random.Random(seed)
    rows = []
    for category, problems in PROBLEMS.items():
        for k in range(per_category):
            index = k % len(problems)
            subjects, details = (split_variants(text) for text in problems[index])
            subject, description = compose_ticket(subjects, details, rng)
            rows.append({"subject": subject, "description": description, "category": category,
                         "problem": f"{category}/{index}"})
    return rows
