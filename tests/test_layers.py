"""The layers depend one way: ticket_data <- ticket_router (the runtime) <- custom_trainer (training side)."""

import ast
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def imported_packages(folder: Path) -> dict[str, set[str]]:
    """The top-level packages each module of ``folder`` imports (absolute imports; relative ones stay inside)."""
    found = {}
    for path in sorted(folder.rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(REPO))] = names
    return found


def test_the_runtime_never_imports_the_training_side():
    offenders = {path: names for path, names in imported_packages(REPO / "ticket_router").items()
                 if "custom_trainer" in names or "train" in names}
    assert offenders == {}


def test_the_data_layer_imports_neither_runtime_nor_training():
    offenders = {path: names & {"ticket_router", "custom_trainer"}
                 for path, names in imported_packages(REPO / "ticket_data").items()
                 if names & {"ticket_router", "custom_trainer"}}
    assert offenders == {}


def test_the_contract_imports_nothing_at_load_time():
    code = ("import sys; before = set(sys.modules); import ticket_router.contract; "
            "print(sorted(m.split('.')[0] for m in set(sys.modules) - before if not m.startswith('ticket_router')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_training_commands_are_registered_as_entry_points():
    from importlib.metadata import entry_points

    from ticket_router.contract import COMMANDS_GROUP, MODEL_CLASSES_GROUP

    commands = {entry.name: entry.value for entry in entry_points(group=COMMANDS_GROUP)}
    assert commands == {"evaluate": "custom_trainer.commands:evaluate_main",
                        "export-onnx": "custom_trainer.commands:export_onnx_main",
                        "audit": "custom_trainer.commands:audit_main"}
    assert [entry.value for entry in entry_points(group=MODEL_CLASSES_GROUP)] == ["custom_trainer:TicketClassifier"]
