"""The HTTP service (`ticket-classifier serve`, the `serve` extra): the triage page, JSON scoring endpoints, file
routing, API keys, Prometheus metrics. ticket_router/service/app.py lists its modules, one per concern.

Nothing is imported here: `keys` (key files, the `keys` command) works without FastAPI, and `ticket-classifier
--help` stays instant. `create_app` and `serve` are reached through this package for convenience.
"""


def __getattr__(name):
    if name in ("create_app", "serve"):
        from . import app

        return getattr(app, name)
    raise AttributeError(name)
