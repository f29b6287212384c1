"""Pure: dates as people text them ("12/3", "12 March", "12 mar", "12 de marzo"), read day first.

A date without a year is the next one on or after today (today in the place's own calendar, which
the caller gives): "12/3" sent on 20 March is 12 March next year.
"""
from __future__ import annotations

import re
from datetime import date

from gateway.core.text import fold

MONTHS: dict[str, int] = {}
for _number, _names in enumerate((
        ("january", "enero", "januwale", "janyuwale"), ("february", "febrero", "febuluwale"),
        ("march", "marzo", "malichi", "machi"), ("april", "abril", "epulo", "epurelo"),
        ("may", "mayo", "meyi", "mei"), ("june", "junio", "juni", "juni"),
        ("july", "julio", "julayi", "julai"), ("august", "agosto", "ogasiti", "ogasti"),
        ("september", "septiembre", "setiembre", "seputembala"), ("october", "octubre", "okutobala"),
        ("november", "noviembre", "novembala"), ("december", "diciembre", "disembala")), start=1):
    for _name in _names:
        MONTHS[_name] = _number

_NUMERIC = re.compile(r"^(\d{1,2})[/.\-](\d{1,2})(?:[/.\-](\d{2}|\d{4}))?$")
_FILLER = {"de", "del", "of", "the", "pa", "la", "el", "on", "by", "for"}


def month_of(word: str) -> int | None:
    """A month from its name or the start of it, in English, Spanish or Chichewa (three letters or more)."""
    w = fold(word).lower().strip(".,")
    if len(w) < 3:
        return None
    if w in MONTHS:
        return MONTHS[w]
    found = {n for name, n in MONTHS.items() if name.startswith(w)}
    return found.pop() if len(found) == 1 else None


def parse_date(text: str, today: date) -> date | None:
    """The date in `text`, or None when it is not one."""
    words = [w for w in re.split(r"[\s,]+", text.strip().lower()) if w and w not in _FILLER]
    if not words:
        return None
    day = month = year = None
    numeric = _NUMERIC.match(words[0]) if len(words) == 1 else None
    if numeric:
        day, month = int(numeric.group(1)), int(numeric.group(2))
        year = _year(numeric.group(3))
    elif len(words) in (2, 3):
        first, second = words[0].rstrip("."), words[1]
        if first.isdigit() and month_of(second):
            day, month = int(first), month_of(second)
        elif month_of(first) and second.rstrip(".").isdigit():
            day, month = int(second.rstrip(".")), month_of(first)
        if len(words) == 3:
            if not words[2].isdigit():
                return None
            year = _year(words[2])
    if day is None or month is None:
        return None
    if year is not None:
        return _make(year, month, day)
    this_year = _make(today.year, month, day)
    if this_year is not None and this_year >= today:
        return this_year
    return _make(today.year + 1, month, day) or _make(today.year + 4 - today.year % 4, month, day)


def _year(text: str | None) -> int | None:
    if not text:
        return None
    value = int(text)
    return 2000 + value if value < 100 else value


def _make(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None
