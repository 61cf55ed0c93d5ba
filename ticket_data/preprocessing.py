"""Text preprocessing shared by training and prediction.

The same rules exist twice, on purpose: as pure Python functions (for reports, CSV output and the data
layer) and as a `tokenizers` normalizer installed in the model's tokenizer, so that the exported model
applies them by itself inside ``pipeline("text-classification")``. A test checks that both give the same
token ids.
"""

from __future__ import annotations

import re
from typing import Any

# A pragmatic address pattern; Python's `re` and the tokenizer's Oniguruma engine read it the same way.
# The look-behind lets a match start only where a run of address characters starts: without it, a long run
# with no "@" is rescanned from every position (quadratic; a 200 kB word took minutes).
EMAIL_PATTERN = r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.\w+"
EMAIL_PLACEHOLDER = "[EMAIL]"
_EMAIL = re.compile(EMAIL_PATTERN)
_WHITESPACE = re.compile(r"\s+")


def clean_text(text: Any) -> str:
    """Mask e-mail addresses and collapse whitespace; None becomes "" and anything else its ``str``."""
    if text is None:
        return ""
    if not isinstance(text, str):
        text = "" if isinstance(text, float) and text != text else str(text)  # NaN from pandas means no text
    text = _EMAIL.sub(EMAIL_PLACEHOLDER, text)
    return _WHITESPACE.sub(" ", text).strip()


def combine(subject: Any, description: Any) -> tuple[str, str]:
    """The (text, text_pair) the tokenizer sees for one ticket."""
    return clean_text(subject), clean_text(description)


def ticket_tokenizer(tokenizer):
    """A copy of a fast tokenizer with the preprocessing rules in front of its own normalizer.

    The copy is a generic `PreTrainedTokenizerFast`: transformers 5 rebuilds a model-specific tokenizer class
    (BertTokenizer...) from its own settings on load and would drop the rules; the generic class loads
    tokenizer.json as saved, so an exported model masks addresses by itself. Idempotent.
    """
    from tokenizers import Regex, Tokenizer, normalizers
    from transformers import PreTrainedTokenizerFast

    if has_normalizer(tokenizer):
        return tokenizer
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()  # truncation and padding are asked for per call
    backend.no_padding()
    rules = [
        normalizers.Replace(Regex(EMAIL_PATTERN), EMAIL_PLACEHOLDER),
        normalizers.Replace(Regex(r"\s+"), " "),
        normalizers.Strip(),
    ]
    if backend.normalizer is not None:
        rules.append(backend.normalizer)
    backend.normalizer = normalizers.Sequence(rules)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        model_input_names=list(tokenizer.model_input_names),
        model_max_length=tokenizer.model_max_length,
        padding_side=tokenizer.padding_side,
        truncation_side=tokenizer.truncation_side,
        **tokenizer.special_tokens_map,
    )


def has_normalizer(tokenizer) -> bool:
    """Whether `ticket_tokenizer` already made on this tokenizer (its state names the placeholder)."""
    normalizer = tokenizer.backend_tokenizer.normalizer
    return normalizer is not None and EMAIL_PLACEHOLDER in str(normalizer.__getstate__())
