"""The data layer: synthetic ticket corpora, your own ticket exports, preprocessing and tokenisation."""

from .builder import TicketCorpus, TicketCorpusConfig, build_dataset, corpus_names
from .loading import load_tickets
from .preprocessing import EMAIL_PLACEHOLDER, clean_text, combine, ticket_tokenizer
from .splits import leakage
from .tokenization import tokenize_dataset

__all__ = [
    "EMAIL_PLACEHOLDER",
    "TicketCorpus",
    "TicketCorpusConfig",
    "build_dataset",
    "clean_text",
    "combine",
    "corpus_names",
    "ticket_tokenizer",
    "leakage",
    "load_tickets",
    "tokenize_dataset",
]
