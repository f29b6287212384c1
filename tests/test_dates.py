"""core/dates.py: dates as people text them, the next one on or after today."""
from __future__ import annotations

from datetime import date

import pytest

from gateway.core.dates import parse_date

TODAY = date(2026, 11, 29)


@pytest.mark.parametrize("text, expected", [
    ("12/3", date(2027, 3, 12)),             # day/month, already past this year: next year
    ("30/11", date(2026, 11, 30)),
    ("29/11", date(2026, 11, 29)),           # today counts
    ("28/11", date(2027, 11, 28)),
    ("12.12", date(2026, 12, 12)),
    ("5-1-2027", date(2027, 1, 5)),
    ("12 March", date(2027, 3, 12)),
    ("12 mar", date(2027, 3, 12)),
    ("12 marzo", date(2027, 3, 12)),
    ("12 de marzo", date(2027, 3, 12)),
    ("3 Dec", date(2026, 12, 3)),
    ("December 3", date(2026, 12, 3)),
    ("3 Disembala", date(2026, 12, 3)),
    ("1 enero 2028", date(2028, 1, 1)),
    ("29/2", date(2028, 2, 29)),             # the next 29 February
])
def test_dates_people_write(text: str, expected: date) -> None:
    assert parse_date(text, TODAY) == expected


@pytest.mark.parametrize("text", ["", "tomorrow", "31/2", "12/13", "12", "ma 12", "12 ju", "32 March", "12 March x"])
def test_not_dates(text: str) -> None:
    assert parse_date(text, TODAY) is None
