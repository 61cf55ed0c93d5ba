"""The data layer: synthetic ticket corpora, your own ticket exports, preprocessing and tokenisation.

Names load on first use (PEP 562), so the router's slim install can import ``ticket_data.preprocessing`` and
``ticket_data.tokenization`` without ``datasets``, pandas or scikit-learn.
"""

from importlib import import_module

_EXPORTS = {
    "EMAIL_PLACEHOLDER": "preprocessing",
    "TicketCorpus": "builder",
    "TicketCorpusConfig": "builder",
    "build_dataset": "builder",
    "clean_text": "preprocessing",
    "combine": "preprocessing",
    "corpus_names": "builder",
    "ticket_tokenizer": "preprocessing",
    "leakage": "splits",
    "load_tickets": "loading",
    "tokenize_dataset": "tokenization",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ticket_data' has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
