"""Routing with an exported ticket classifier: the router (PyTorch or ONNX Runtime backend), the auto-route rule and
its certification, the HTTP service, the monitor and the `ticket-classifier` CLI. It never imports the training side
(`custom_trainer`, which exports models and their ONNX graphs); what both share is in `ticket_router.contract`.

    from ticket_router import Router
    Router("outputs/realistic/model", backend="onnx").route(["VPN drops"], ["every hour since the update"])

`pip install ticket-classifier` (no extras) is enough to route with an ONNX export: numpy, pandas, tokenizers and
ONNX Runtime, no torch and no transformers. Names load on first use, so importing the package costs nothing.
"""

from importlib import import_module

_EXPORTS = {"Router": "router", "RoutingRule": "rule", "verify_export": "manifest"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ticket_router' has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
