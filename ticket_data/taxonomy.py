"""The routing guide (`taxonomy.yaml`): category definitions and boundary rules, and its Markdown rendering."""

from __future__ import annotations

from pathlib import Path

import yaml

TAXONOMY_PATH = Path(__file__).with_name("taxonomy.yaml")


def load_taxonomy(path: str | Path = TAXONOMY_PATH) -> dict:
    return yaml.safe_load(Path(path).read_text())


def render_markdown(taxonomy: dict | None = None) -> str:
    """The guide as the README shows it (a test keeps the two in step)."""
    taxonomy = taxonomy or load_taxonomy()
    lines = ["| category | what it holds | typical tickets |", "| --- | --- | --- |"]
    for name, entry in taxonomy["categories"].items():
        lines.append(f"| {name} | {entry['definition']} | {entry['typical']} |")
    lines += ["", "Boundary rules:", ""]
    lines += [f"- {boundary['rule']}" for boundary in taxonomy["boundaries"]]
    return "\n".join(lines) + "\n"
