"""Property-based tests: preprocessing never crashes and always masks; load_tickets gives a dataset or a ValueError."""

import csv
import io
import json
import re

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ticket_data import load_tickets
from ticket_data.preprocessing import EMAIL_PLACEHOLDER, clean_text

local_part = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,15}", fullmatch=True)
domain = st.from_regex(r"[A-Za-z0-9]{1,10}(\.[A-Za-z0-9-]{1,8}){0,2}\.[A-Za-z]{2,6}", fullmatch=True)
emails = st.builds(lambda a, b: f"{a}@{b}", local_part, domain)
any_text = st.text(st.characters(codec=None, exclude_categories=("Cs",)), max_size=300)
separators = st.sampled_from([" ", "\n", "\t", " (", "<", ": ", ", ", "\r\n", " \x0b"])


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_clean_text_never_crashes_and_is_idempotent(text):
    cleaned = clean_text(text)
    assert isinstance(cleaned, str)
    assert clean_text(cleaned) == cleaned
    assert not re.search(r"\s\s", cleaned) and cleaned == cleaned.strip()


@settings(max_examples=300, deadline=None)
@given(any_text, separators, emails, separators, any_text)
def test_addresses_are_always_masked(before, left, email, right, after):
    cleaned = clean_text(before + left + email + right + after)
    assert email not in cleaned
    assert EMAIL_PLACEHOLDER in cleaned


def test_megabyte_texts_are_fine():
    text = ("word " * 200_000) + "mail ann@corp.example.com " + ("x" * 500_000)
    cleaned = clean_text(text)
    assert EMAIL_PLACEHOLDER in cleaned and "ann@" not in cleaned


cells = st.one_of(st.just(""), st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40))
column_names = st.lists(st.sampled_from(["subject", "description", "category", "title", "body", "x"]),
                        min_size=1, max_size=4, unique=True)
words = st.text(st.characters(codec="utf-8", categories=("L", "N")), min_size=3, max_size=12)


@st.composite
def well_formed_files(draw):
    """Columns subject, description, category (in any order, with others) and enough tickets of 3 labels for every
    split: files the loader must accept, whatever their encoding, BOM and quoting. Without them an arbitrary file
    almost never reaches the success branch."""
    columns = draw(st.permutations(["subject", "description", "category", *draw(st.sets(st.sampled_from(["x", "body"])))]))
    rows = []
    for label in ("Email", "Network", "Printing"):
        for _ in range(draw(st.integers(12, 16))):
            subject = f"ticket {len(rows)} " + " ".join(draw(st.lists(words, min_size=1, max_size=4)))  # no duplicates
            row = {"subject": subject, "category": label,
                   "description": " ".join(draw(st.lists(words, min_size=0, max_size=6))), "x": draw(cells),
                   "body": draw(cells)}
            rows.append([row[name] for name in columns])
    return columns, draw(st.permutations(rows))


arbitrary_files = st.tuples(column_names, st.lists(st.lists(cells, min_size=4, max_size=4), min_size=0, max_size=30))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    file=st.one_of(arbitrary_files, well_formed_files()),
    fmt=st.sampled_from(["csv", "jsonl"]),
    bom=st.booleans(),
    encoding=st.sampled_from(["utf-8", "latin-1", "utf-16"]),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]),
)
def test_load_tickets_gives_a_dataset_or_a_clear_error(tmp_path, file, fmt, bom, encoding, quoting):
    columns, rows = file
    path = tmp_path / f"fuzz.{fmt}"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, quoting=quoting)
        writer.writerow(columns)
        writer.writerows(row[: len(columns)] for row in rows)
        text = buffer.getvalue()
    else:
        text = "".join(json.dumps(dict(zip(columns, row)), ensure_ascii=False) + "\n" for row in rows)
    data = text.encode(encoding, errors="replace")
    if bom and encoding == "utf-8":
        data = b"\xef\xbb\xbf" + data
    path.write_bytes(data)
    # The loader reads CSV in UTF-8 (BOM or not) or UTF-16 (Excel's "Unicode text", with its BOM) and JSON Lines in
    # UTF-8, as the format says; it refuses anything else by name. Such a file is not well formed, whatever its rows.
    readable = encoding == "utf-8" or text.isascii() or (encoding == "utf-16" and fmt == "csv")
    well_formed = {"subject", "description", "category"} <= set(columns) and len(rows) >= 36 and readable
    try:
        dataset = load_tickets(path)
    except ValueError as error:
        assert not well_formed, f"a well-formed file was refused: {error}"
        assert "fuzz." in str(error)  # names the file
        event("refused with a clear error")
        return
    event("loaded: well formed" if well_formed else "loaded: arbitrary")
    assert set(dataset) == {"train", "validation", "test"}
    names = dataset["train"].features["label"].names
    assert names == sorted(names)
    for split in dataset.values():
        assert all(s or d for s, d in zip(split["subject"], split["description"]))
    if well_formed:
        assert set(names) == {"Email", "Network", "Printing"}
        assert sum(len(split) for split in dataset.values()) == len(rows)  # every ticket kept, none invented
