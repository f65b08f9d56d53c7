"""Text normalisation shared by parsers and metrics."""

from __future__ import annotations

import re
import string
import unicodedata

# Runs of letters and digits; every other visible character stands alone. The
# underscore stands alone too, as it does in BERT's basic tokenizer.
_TOKEN = re.compile(r"[^\W_]+|\S")


def normalize_text(s: str) -> str:
    """Lowercase, strip accents, split words from punctuation, join with single spaces.

    A reference "Acme Corp." and an uncased WordPiece decode "acme corp ." (or
    "acme corp.") both become "acme corp .".
    """
    decomposed = unicodedata.normalize("NFD", s.lower())
    unaccented = "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
    return " ".join(_TOKEN.findall(unaccented))


_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(s: str) -> str:
    """Super-NaturalInstructions answer normalisation: lowercase, drop ASCII punctuation, squeeze spaces.

    This is the SQuAD answer normalisation without article removal, as Tk-Instruct scores exact match.
    """
    return " ".join(s.lower().translate(_PUNCTUATION).split())

