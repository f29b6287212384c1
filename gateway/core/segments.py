"""Pure: GSM-7/UCS-2 segment counting and GSM-7 lookalike folding."""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# GSM 03.38 basic table: each of these costs one septet.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: sent as ESC + char, so each costs two septets.
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION

GSM7_SINGLE, GSM7_MULTI = 160, 153   # multipart loses 7 septets to the concatenation header
UCS2_SINGLE, UCS2_MULTI = 70, 67      # same header, counted in 16-bit units


@dataclass(frozen=True)
class SegmentInfo:
    """How a text would be encoded and how many SMS segments it costs."""

    encoding: str                 # "GSM-7" or "UCS-2"
    segments: int                 # 0 for empty text
    units: int                    # septets for GSM-7, UTF-16 code units for UCS-2
    characters: int               # len(text)
    ucs2_chars: tuple[str, ...]   # distinct characters forcing UCS-2, first appearance order; () for GSM-7


def is_gsm7(text: str) -> bool:
    """True when every character of text is in the GSM-7 basic or extension table."""
    return all(c in GSM7_ALL for c in text)


def _pack(costs: list[int], single: int, multi: int) -> int:
    """Segments needed when each cost is indivisible (escape pairs, surrogate pairs)."""
    total = sum(costs)
    if total == 0:
        return 0
    if total <= single:
        return 1
    # Greedy packing, because a plain ceil(total / multi) would let a 2-unit character straddle two segments.
    segments, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            segments, used = segments + 1, 0
        used += cost
    return segments


def count_segments(text: str) -> SegmentInfo:
    """Encoding, segment count and unit count of text as an SMS."""
    if is_gsm7(text):
        costs = [2 if c in GSM7_EXTENSION else 1 for c in text]
        return SegmentInfo("GSM-7", _pack(costs, GSM7_SINGLE, GSM7_MULTI), sum(costs), len(text), ())
    # Characters outside the BMP (most emoji) need a UTF-16 surrogate pair.
    costs = [2 if ord(c) > 0xFFFF else 1 for c in text]
    offenders = tuple(dict.fromkeys(c for c in text if c not in GSM7_ALL))
    return SegmentInfo("UCS-2", _pack(costs, UCS2_SINGLE, UCS2_MULTI), sum(costs), len(text), offenders)


# Punctuation that phones and word processors substitute for plain ASCII ("smart" quotes etc.).
_LOOKALIKES = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u2039": "'", "\u203a": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
    "\u2026": "...",
}


def _gsm7_lookalike(char: str) -> str | None:
    """A GSM-7 stand-in for one non-GSM-7 character, or None when there is none."""
    if char in _LOOKALIKES:
        return _LOOKALIKES[char]
    category = unicodedata.category(char)
    if category == "Zs":  # non-breaking, thin, ideographic ... spaces
        return " "
    if category.startswith("L"):
        # á -> a + combining acute; keep the base letters only if they are all GSM-7 (so CJK, Arabic stay put).
        decomposed = unicodedata.normalize("NFKD", char)
        base = "".join(c for c in decomposed if not unicodedata.combining(c))
        if base and is_gsm7(base):
            return base
    return None


def gsm7_replace(text: str) -> tuple[str, list[tuple[str, str]]]:
    """Lookalikes replaced so a text can stay GSM-7: the new text and the (original, replacement) pairs used."""
    out: list[str] = []
    used: dict[str, str] = {}
    for char in text:
        # Characters already in GSM-7 (é, ñ, ü, à, Ç) are never touched.
        replacement = None if char in GSM7_ALL else _gsm7_lookalike(char)
        if replacement is None:
            out.append(char)
        else:
            out.append(replacement)
            used.setdefault(char, replacement)
    return "".join(out), list(used.items())
