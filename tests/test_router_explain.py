"""The words that decided (ticket_router/explain.py): occlusion finds the word the score depends on, covers every
word, and stays within its bound of forward passes."""

import numpy as np

from ticket_router.explain import MAX_PASSES, explain_ticket, occlusion_units


class KeywordRouter:
    """A stand-in router: 'Network' is likely exactly when the ticket says vpn."""

    labels = ["Email", "Network"]

    def __init__(self):
        self.calls = []

    def predict_proba(self, subjects, descriptions, batch_size=64):
        self.calls.append(len(subjects))
        network = np.array([0.9 if "vpn" in f"{s} {d}".lower().split() else 0.3 for s, d in zip(subjects, descriptions)])
        return np.stack([1 - network, network], axis=1)


def test_the_deciding_word_comes_first_with_its_effect():
    router = KeywordRouter()
    result = explain_ticket(router, "VPN down", "it drops every hour since monday")
    assert result["label"] == "Network" and result["score"] == 0.9
    assert result["words"][0] == {"text": "VPN", "field": "subject", "effect": 0.6}
    assert all(word["effect"] == 0 for word in result["words"][1:])
    assert result["forward_passes"] == 1 + 8 and router.calls == [9]  # one batch: the ticket and 8 variants


def test_long_tickets_are_occluded_in_runs_within_the_bound():
    description = " ".join(f"w{i}" for i in range(300)) + " vpn"
    units = occlusion_units("subject here", description)
    assert len(units) <= MAX_PASSES
    covered = sorted(p for u in units for p in u["positions"].get("description", []))
    assert covered == list(range(301))  # every word is in exactly one run
    router = KeywordRouter()
    result = explain_ticket(router, "subject here", description)
    assert result["forward_passes"] <= MAX_PASSES + 1 and "vpn" in result["words"][0]["text"]
    assert result["words_per_pass"] == 5


def test_a_real_export_explains_alike_on_both_backends(tiny_onnx):
    from ticket_router.router import Router

    torch_result = explain_ticket(Router(tiny_onnx), "printer jam", "paper stuck in tray two", top=10)
    onnx_result = explain_ticket(Router(tiny_onnx, backend="onnx"), "printer jam", "paper stuck in tray two", top=10)
    assert torch_result["label"] == onnx_result["label"] and torch_result["forward_passes"] == 8
    effects = {w["text"]: w["effect"] for w in torch_result["words"]}
    assert len(effects) == 7 and {w["text"] for w in onnx_result["words"]} == set(effects)
    for word in onnx_result["words"]:
        assert abs(word["effect"] - effects[word["text"]]) < 1e-3
