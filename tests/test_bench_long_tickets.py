"""benchmarks/bench_long_tickets.py: how the GitHub draws are cut (on a small fake Ticket Tagger file)."""

import pandas as pd
import pytest

from benchmarks import bench_long_tickets


@pytest.fixture
def issues(tmp_path, monkeypatch):
    """A fastText file of 12 issues a label, half of them long (>= 100 characters)."""
    lines = []
    for label in bench_long_tickets.GITHUB_LABELS:
        for i in range(12):
            body = f"{label} issue {i} " + ("with a long body " * 8 if i % 2 else "")
            lines.append(f'__label__{label} "{body}"')
    path = tmp_path / "issues.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setattr(bench_long_tickets, "GITHUB_ISSUES", path)
    return path


def read(files: dict, name: str) -> pd.DataFrame:
    return pd.read_csv(files[name], keep_default_na=False)


def test_draws_are_disjoint_pairs(issues, tmp_path):
    draws = bench_long_tickets.github_draws(3, 2, tmp_path / "data")
    assert list(draws) == ["GH0", "GH1", "GH2"]
    seen = set()
    for files in draws.values():
        train, test = read(files, "train"), read(files, "test")
        assert train["type"].value_counts().to_dict() == {label: 2 for label in bench_long_tickets.GITHUB_LABELS}
        texts = set(train["description"]) | set(test["description"])
        assert len(texts) == 12 and not texts & seen
        seen |= texts


def test_min_chars_keeps_long_issues_and_shares_one_test_set(issues, tmp_path):
    draws = bench_long_tickets.github_draws(2, 2, tmp_path / "data", min_chars=100)
    assert list(draws) == ["GHL0", "GHL1"]
    tests = [set(read(files, "test")["description"]) for files in draws.values()]
    trains = [set(read(files, "train")["description"]) for files in draws.values()]
    assert tests[0] == tests[1] and len(tests[0]) == 6
    assert not trains[0] & trains[1] and not (trains[0] | trains[1]) & tests[0]
    assert all(len(text) >= 100 for text in tests[0] | trains[0] | trains[1])


def test_too_few_long_issues_name_the_label(issues, tmp_path):
    # 6 long issues a label: a shared test set of 2 and 3 training draws of 2 need 8.
    with pytest.raises(SystemExit, match="need 8 issues a label; 'bug' has 6 of at least 100 characters"):
        bench_long_tickets.github_draws(3, 2, tmp_path / "data", min_chars=100)
