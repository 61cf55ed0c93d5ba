"""Text preprocessing shared by training and prediction.

The same rules exist twice, on purpose: as pure Python functions (for reports, CSV output and the data
layer) and as a `tokenizers` normalizer installed in the model's tokenizer, so that the exported model
applies them by itself inside ``pipeline("text-classification")``. A test checks that both give the same
token ids.
"""

from __future__ import annotations

import json
import re
from typing import Any

# A pragmatic address pattern; Python's `re` and the tokenizer's Oniguruma engine read it the same way.
# The look-behind lets a match start only where a run of address characters starts: without it, a long run
# with no "@" is rescanned from every position (quadratic; a 200 kB word took minutes). Addresses glued together
# ("a@x.com-b@y.com") are one match: otherwise the second could only be found by a second pass.
_ADDRESS = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.\w+"
EMAIL_PATTERN = rf"(?<![\w.+-]){_ADDRESS}(?:[\w.+-]*@[\w-]+(?:\.[\w-]+)*\.\w+)*"
EMAIL_PLACEHOLDER = "[EMAIL]"

# Artefacts of ticket-system exports, addresses and whitespace, in order. Each rule is a (pattern, replacement) pair
# that Python's `re` and the tokenizer's Oniguruma engine apply identically; replacements that could join two
# pieces into a new match (a tag, an entity, a run) put spaces around what they leave, so the rules are
# idempotent: cleaning a cleaned text changes nothing, hence training (cleaned, then tokenised) and the exported
# tokenizer on raw text give the same ids.
EMAIL_RULE = (EMAIL_PATTERN, EMAIL_PLACEHOLDER)
TEXT_RULES: tuple[tuple[str, str], ...] = (
    # Zero-width and direction marks hide inside words (a pasted "pass\u200bword"): dropped, joining the word.
    ("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]", ""),
    # Excel's escaped control characters in .xlsx/.csv exports: _x000D_ (CR), _x000A_ (LF), _x0009_ (tab)...
    ("_x[0-9A-Fa-f]{4}_", " "),
    # Control characters (tab, LF and CR are whitespace and collapsed below).
    ("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", " "),
    # HTML entities: the common ones become their character, any other one (&lt; and &gt; too) a space.
    ("&(?:nbsp|#160|#xa0|#xA0);", " "),
    ("&amp;", " & "),
    ("&quot;", ' " '),
    ("&(?:apos|#39|#x27);", " ' "),
    ("&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,30});", " "),
    # Addresses are masked before tags go, so "<ann@corp.example.com>" leaves "[EMAIL]", not nothing.
    EMAIL_RULE,
    # HTML tags of bodies exported as HTML (<p>, <br/>, </div>, <!-- -->), then every other angle bracket: a
    # bracket left behind could pair with another once the text between them shrinks (a nested "<b<p>>", a run
    # removed below), and the rules would not be idempotent.
    ("</?[A-Za-z!][^<>]{0,200}>", " "),
    ("[<>]", " "),
    # Runs of four or more of one punctuation character ("-----Original Message-----", "!!!!!!", "=========="):
    # a token each in a WordPiece vocabulary, so they eat the length budget.
    ("([^\\w\\s])\\1{3,}", " "),
    ("\\s+", " "),
)
_COMPILED = tuple((re.compile(pattern), replacement) for pattern, replacement in TEXT_RULES)
_WHITESPACE = re.compile(r"\s+")


def clean_text(text: Any) -> str:
    """Export artefacts removed, e-mail addresses masked, whitespace collapsed (``TEXT_RULES``, in order);
    None becomes "" and anything else its ``str``."""
    if text is None:
        return ""
    if not isinstance(text, str):
        text = "" if isinstance(text, float) and text != text else str(text)  # NaN from pandas means no text
    for pattern, replacement in _COMPILED:
        text = pattern.sub(replacement, text)
    return text.strip()


def clean_label(label: Any) -> str:
    """A label as written, with surrounding and repeated whitespace removed ("Network " is "Network")."""
    if label is None or (isinstance(label, float) and label != label):
        return ""
    return _WHITESPACE.sub(" ", str(label)).strip()


def combine(subject: Any, description: Any) -> tuple[str, str]:
    """The (text, text_pair) the tokenizer sees for one ticket."""
    return clean_text(subject), clean_text(description)


def ticket_tokenizer(tokenizer):
    """A copy of a fast tokenizer with the preprocessing rules in front of its own normalizer.

    The copy is a generic `PreTrainedTokenizerFast`: transformers 5 rebuilds a model-specific tokenizer class
    (BertTokenizer...) from its own settings on load and would drop the rules; the generic class loads
    tokenizer.json as saved, so an exported model masks addresses by itself. Idempotent.
    """
    from tokenizers import Tokenizer, normalizers
    from transformers import PreTrainedTokenizerFast

    if has_normalizer(tokenizer):
        return tokenizer
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    # An added token matched on normalized text makes `tokenizers` panic ("AddedVocabulary bad split") once rules
    # stand in front of the model's normalizer (all-mpnet-base-v2's "<unk>" and any em dash, huggingface/tokenizers
    # #1452): every added token is matched on the text as written instead.
    for token in state.get("added_tokens", []):
        token["normalized"] = False
    backend = Tokenizer.from_str(json.dumps(state))
    backend.no_truncation()  # truncation and padding are asked for per call
    backend.no_padding()
    rules = [text_normalizer()]
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


def text_normalizer():
    """``TEXT_RULES`` as a `tokenizers` normalizer: `clean_text` inside the tokenizer."""
    from tokenizers import Regex, normalizers

    rules = [normalizers.Replace(Regex(pattern), replacement) for pattern, replacement in TEXT_RULES]
    return normalizers.Sequence([*rules, normalizers.Strip()])


def has_normalizer(tokenizer) -> bool:
    """Whether `ticket_tokenizer` already made on this tokenizer (its state names the placeholder)."""
    normalizer = tokenizer.backend_tokenizer.normalizer
    return normalizer is not None and EMAIL_PLACEHOLDER in str(normalizer.__getstate__())
