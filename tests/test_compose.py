"""Pure broadcast composition: merge fields, quiet hours, prices and cost, the GSM-7 suggestion."""
from __future__ import annotations

from datetime import datetime, time

import pytest

from gateway.core.compose import estimate_cost, parse_prices, parse_quiet_hours, preview_text, quiet_until, render

MALAWI = "Africa/Blantyre"  # UTC+2 all year
HONDURAS = "America/Tegucigalpa"  # UTC-6 all year
NIGHT = (time(21, 0), time(7, 0))
LUNCH = (time(12, 0), time(14, 0))


# --------------------------------------------------------------------------- render


@pytest.mark.parametrize(("text", "name", "place", "expected"), [
    ("Hello {name}, meet us in {place}!", "Chikondi", "Zomba", "Hello Chikondi, meet us in Zomba!"),
    ("Hello {name}, meet us in {place}!", None, "Zomba", "Hello, meet us in Zomba!"),
    ("Hello {name}, meet us in {place}!", "", None, "Hello, meet us in!"),
    ("Dear {name}. Vote in {place} today.", None, None, "Dear. Vote in today."),
    ("Hi {name} ! Is {place} ready ?", None, None, "Hi! Is ready?"),
    ("  {name} {place}  Come Friday.  ", None, None, "Come Friday."),
])
def test_render_fills_fields_and_leaves_no_gap(text: str, name: str | None, place: str | None,
                                               expected: str) -> None:
    """A missing name or place leaves neither double spaces nor a space before punctuation."""
    assert render(text, name, place) == expected


def test_render_of_a_leading_name_without_a_name_leaves_no_stray_comma() -> None:
    """'{name}, ...' for a contact without a name does not start with a comma."""
    assert render("{name}, the clinic opens Friday.", None, "Zomba") == "the clinic opens Friday."


# --------------------------------------------------------------------------- quiet hours


@pytest.mark.parametrize(("value", "expected"), [
    ("21:00-07:00", NIGHT),
    (" 21:00 - 07:00 ", NIGHT),
    ("12:00-14:00", LUNCH),
    ("off", None), ("OFF", None), ("none", None), ("0", None), ("", None), (None, None),
])
def test_parse_quiet_hours(value: str | None, expected: tuple[time, time] | None) -> None:
    """'HH:MM-HH:MM' becomes a pair of times; 'off' and empty mean no quiet hours."""
    assert parse_quiet_hours(value) == expected


@pytest.mark.parametrize(("now_utc", "expected"), [
    (datetime(2026, 11, 23, 18, 59, 59), None),                       # 20:59:59 local: not yet
    (datetime(2026, 11, 23, 19, 0), datetime(2026, 11, 24, 5, 0)),    # 21:00 local: starts, ends tomorrow
    (datetime(2026, 11, 23, 20, 30), datetime(2026, 11, 24, 5, 0)),   # 22:30 local
    (datetime(2026, 11, 23, 22, 30), datetime(2026, 11, 24, 5, 0)),   # 00:30 local, already the 24th there
    (datetime(2026, 11, 24, 4, 59), datetime(2026, 11, 24, 5, 0)),    # 06:59 local: ends today
    (datetime(2026, 11, 24, 5, 0), None),                             # 07:00 local: over
    (datetime(2026, 11, 24, 12, 0), None),                            # 14:00 local
])
def test_quiet_until_across_midnight_in_malawi(now_utc: datetime, expected: datetime | None) -> None:
    """21:00-07:00 in UTC+2: the naive-UTC end of the night, or None outside it."""
    assert quiet_until(now_utc, MALAWI, NIGHT) == expected


@pytest.mark.parametrize(("now_utc", "expected"), [
    (datetime(2026, 11, 24, 2, 59), None),                            # 20:59 on the 23rd there
    (datetime(2026, 11, 24, 3, 0), datetime(2026, 11, 24, 13, 0)),    # 21:00 on the 23rd there
    (datetime(2026, 11, 24, 5, 30), datetime(2026, 11, 24, 13, 0)),   # 23:30 on the 23rd there
    (datetime(2026, 11, 24, 6, 0), datetime(2026, 11, 24, 13, 0)),    # 00:00 on the 24th there
    (datetime(2026, 11, 24, 12, 59), datetime(2026, 11, 24, 13, 0)),  # 06:59 there
    (datetime(2026, 11, 24, 13, 0), None),                            # 07:00 there
    (datetime(2026, 11, 23, 20, 30), None),                           # 14:30 there: Malawi's night, not theirs
])
def test_quiet_until_across_midnight_in_honduras(now_utc: datetime, expected: datetime | None) -> None:
    """21:00-07:00 in UTC-6, where the local date lags the UTC date in the evening."""
    assert quiet_until(now_utc, HONDURAS, NIGHT) == expected


@pytest.mark.parametrize(("now_utc", "timezone", "expected"), [
    (datetime(2026, 11, 24, 9, 59), MALAWI, None),                          # 11:59
    (datetime(2026, 11, 24, 10, 0), MALAWI, datetime(2026, 11, 24, 12, 0)),  # 12:00
    (datetime(2026, 11, 24, 11, 59), MALAWI, datetime(2026, 11, 24, 12, 0)),  # 13:59
    (datetime(2026, 11, 24, 12, 0), MALAWI, None),                          # 14:00
    (datetime(2026, 11, 24, 18, 0), HONDURAS, datetime(2026, 11, 24, 20, 0)),  # 12:00 there
    (datetime(2026, 11, 24, 20, 0), HONDURAS, None),                        # 14:00 there
    (datetime(2026, 11, 24, 23, 0), HONDURAS, None),                        # 17:00 there
])
def test_quiet_until_for_a_daytime_window(now_utc: datetime, timezone: str, expected: datetime | None) -> None:
    """12:00-14:00 (start before end): quiet only inside, ending the same local day."""
    assert quiet_until(now_utc, timezone, LUNCH) == expected


def test_quiet_until_with_quiet_hours_off() -> None:
    """No quiet hours: never held."""
    assert quiet_until(datetime(2026, 11, 23, 22, 0), MALAWI, parse_quiet_hours("off")) is None


# --------------------------------------------------------------------------- prices and cost


def test_parse_prices() -> None:
    """'MW=0.08,hn=0.07,*=0.05' -> upper-case countries to floats; blank parts ignored."""
    assert parse_prices("MW=0.08, hn=0.07 ,*=0.05,") == {"MW": 0.08, "HN": 0.07, "*": 0.05}
    assert parse_prices("") == {} and parse_prices(None) == {}


def test_estimate_cost_uses_the_country_price_else_the_default() -> None:
    """Segments priced by country; unknown and missing countries take '*'."""
    prices = {"MW": 0.1, "*": 0.05}
    assert estimate_cost({"MW": 10, "HN": 4, None: 2}, prices) == pytest.approx(1.0 + 0.2 + 0.1)
    assert estimate_cost({"HN": 4}, {"MW": 0.1}) == 0.0  # no '*': unpriced countries cost nothing
    assert estimate_cost({}, prices) == 0.0


# --------------------------------------------------------------------------- preview_text


def test_preview_counts_segments_with_the_longest_name() -> None:
    """A 150-char GSM-7 text with {name} fits one segment alone and takes two with a 30-letter name."""
    text = "Hi {name}, " + "a" * (150 - len("Hi, "))
    assert len(render(text, None, None)) == 150
    alone = preview_text("en", text, 1, "", "")
    assert (alone.encoding, alone.segments, alone.characters) == ("GSM-7", 1, 150)
    long = preview_text("en", text, 3, "x" * 30, "")
    assert (long.encoding, long.segments, long.characters, long.recipients) == ("GSM-7", 2, 181, 3)


@pytest.mark.parametrize("char", ["ą", "😀"])
def test_preview_names_the_character_that_forces_ucs2(char: str) -> None:
    """A character outside GSM-7 with no lookalike makes the text UCS-2 and is named."""
    p = preview_text("ny", f"Tikumane ku {{place}} {char}", 5, "", "Zomba")
    assert (p.encoding, p.segments, p.ucs2_chars) == ("UCS-2", 1, (char,))
    if char == "😀":
        assert p.suggestion is None  # nothing to replace it with
    else:
        assert p.suggestion == "Tikumane ku {place} a"


def test_preview_suggests_gsm7_when_it_saves_segments() -> None:
    """Curly quotes, 'í' and 'á' push ~100 characters to 2 UCS-2 segments; the GSM-7 version takes 1."""
    text = "“Vamos” a la alcaldía de {place} el viernes, {name}. ¡Su voz cuenta más! Responda SI hoy."
    p = preview_text("es", text, 2, "Ana", "Choluteca")
    assert (p.encoding, p.segments) == ("UCS-2", 2)
    assert set(p.ucs2_chars) == {"“", "”", "í", "á"}
    assert p.suggestion == text.replace("“", '"').replace("”", '"').replace("í", "i").replace("á", "a")
    assert p.suggestion_segments == 1


def test_preview_suggests_nothing_when_nothing_can_be_replaced() -> None:
    """A GSM-7 text, and a UCS-2 text whose only offender is an emoji, get no suggestion."""
    plain = preview_text("en", "Meet at {place} boma on Friday, {name}.", 4, "Chikondi", "Zomba")
    assert (plain.encoding, plain.suggestion, plain.suggestion_segments) == ("GSM-7", None, None)
    emoji = preview_text("en", "Meet at {place} boma on Friday ✊🏾", 4, "", "Zomba")
    assert (emoji.encoding, emoji.suggestion, emoji.suggestion_segments) == ("UCS-2", None, None)


def test_preview_suggests_nothing_when_replacing_cannot_remove_ucs2() -> None:
    """Curly quotes next to an emoji: replacing them keeps UCS-2 and the same segments, so no suggestion."""
    p = preview_text("en", "“Meet” at {place} ✊", 1, "", "Zomba")
    assert (p.encoding, p.segments) == ("UCS-2", 1)
    assert p.suggestion is None
