"""Pure text folding shared by keyword, choice and place matching."""
from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)


def fold(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form: 'Ayúda!' -> 'ayuda'."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NON_WORD.sub(" ", stripped).replace("_", " ").strip()


def words(text: str) -> list[str]:
    """The folded words of a text, in order."""
    return fold(text).split()


def raw_words(text: str) -> list[str]:
    """The original whitespace-separated words (for keeping free text as typed)."""
    return text.split()
