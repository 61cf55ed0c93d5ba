"""Ticket files in and out (ticket_router/tables.py)."""

import pandas as pd
import pytest

from ticket_router.tables import NO_TEXT, check_output, escape_formulas, read_input, route_frame, write_table


def test_formula_like_cells_are_escaped_and_other_cells_kept():
    frame = pd.DataFrame({"text": ["=1+1", "+3", "-2", "@SUM(A1)", "\tx", "\rx", "fine", None], "n": range(8)})
    escaped = escape_formulas(frame)
    assert escaped["text"].tolist()[:7] == ["'=1+1", "'+3", "'-2", "'@SUM(A1)", "'\tx", "'\rx", "fine"]
    assert escaped["n"].tolist() == list(range(8)) and frame["text"][0] == "=1+1"  # the input is not changed


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_written_tables_read_back(tmp_path, suffix):
    frame = pd.DataFrame({"subject": ["a", "b"], "route": ["auto", "triage"]})
    write_table(frame, tmp_path / f"out{suffix}")
    back = {".csv": pd.read_csv, ".jsonl": lambda p: pd.read_json(p, lines=True), ".parquet": pd.read_parquet}[suffix](
        tmp_path / f"out{suffix}")
    assert back.to_dict("list") == frame.to_dict("list")


def test_output_and_input_checks_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="unsupported output type '.txt'"):
        check_output(tmp_path / "x.txt")
    with pytest.raises(ValueError, match="is a folder"):
        (tmp_path / "d.csv").mkdir()
        check_output(tmp_path / "d.csv")
    with pytest.raises(ValueError, match="file not found"):
        read_input(tmp_path / "none.csv", ["subject"])
    (tmp_path / "t.csv").write_text("title\nx\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['subject'\]"):
        read_input(tmp_path / "t.csv", ["subject"])


def test_route_frame_keeps_rows_without_text(tiny_onnx):
    from ticket_router.router import Router

    frame = pd.DataFrame({"subject": ["VPN drops", "", "printer"], "description": ["hourly", "", ""], "id": [7, 8, 9]})
    routed = route_frame(Router(tiny_onnx, backend="onnx"), frame, ["subject", "description"])
    assert routed["id"].tolist() == [7, 8, 9]
    assert routed.loc[1, "error"] == NO_TEXT and routed.loc[1, "route"] == "triage"
    assert routed["predicted"].notna().tolist() == [True, False, True]
