"""The one atomic-write helper (ticket_router/atomic.py): the target holds the old or the new content, never half."""

import pytest

from ticket_router.atomic import atomic_path, write_text


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "routed.csv"
    write_text(target, "old\n")
    with pytest.raises(OSError, match="disk full"):
        with atomic_path(target) as staging:
            staging.write_text("half of the new")
            raise OSError("disk full (injected)")
    assert target.read_text() == "old\n"
    write_text(target, "new\n")
    assert target.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["routed.csv"]  # no staging file left beside it


def test_a_folder_is_swapped_in_and_a_failed_one_leaves_the_old(tmp_path):
    target = tmp_path / "model"
    with atomic_path(target, directory=True) as staging:
        (staging / "weights").write_text("v1")
    with pytest.raises(RuntimeError):
        with atomic_path(target, directory=True) as staging:
            (staging / "weights").write_text("v2, half")
            raise RuntimeError("crash (injected)")
    assert (target / "weights").read_text() == "v1"
    with atomic_path(target, directory=True) as staging:
        (staging / "weights").write_text("v2")
    assert (target / "weights").read_text() == "v2"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_parent_folders_are_created(tmp_path):
    write_text(tmp_path / "a" / "b" / "c.json", "{}")
    assert (tmp_path / "a" / "b" / "c.json").read_text() == "{}"
