"""The console's local time: times are typed and shown in the default country's zone, with UTC beside.

English pages keep the unambiguous ISO form (2026-03-14 08:30); other languages get their own date
format from Babel (14 mar 2026, 8:30).
(Not `time.py`: a submodule of gateway.web.console would replace the package's own `time` import.)
"""
from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_skeleton
from flask_babel import gettext

from gateway import services
from gateway.web.console import i18n


def console_zone() -> tuple[str, str]:
    """(time zone, label) that console times are typed and shown in: the default country's gazetteer's."""
    country = services().settings.default_country
    for g in services().flows.gazetteers.values():
        if g.country == country:
            lang = i18n.current()
            # The country in the page's language (Babel's CLDR names); English keeps the gazetteer's name.
            name = g.name.replace("_", " ").title() if lang == "en" else Locale.parse(lang).territories.get(
                g.country, g.name)
            return g.timezone, gettext("%(country)s time (%(zone)s)", country=name, zone=g.timezone)
    return "UTC", "UTC"


def zone() -> str:
    """The console's time zone name."""
    return console_zone()[0]


def _clock(dt: datetime) -> str:
    """An aware time as the page's language writes a date and time."""
    lang = i18n.current()
    if lang == "en":
        return f"{dt:%Y-%m-%d %H:%M}"
    return f"{format_date(dt, 'medium', locale=lang)}, {format_skeleton('Hm', dt, locale=lang)}"


def local(dt: datetime | None) -> str:
    """A naive-UTC time in the console's time zone, with UTC."""
    if dt is None:
        return ""
    name = zone()
    shown = dt.replace(tzinfo=UTC).astimezone(ZoneInfo(name))
    if name == "UTC":
        return f"{_clock(shown)} UTC"
    return f"{_clock(shown)} ({name}; {dt:%H:%M} UTC)"


def local_day(day: date | None) -> str:
    """A calendar day as the page's language writes it (ISO in English)."""
    if day is None:
        return ""
    lang = i18n.current()
    return day.isoformat() if lang == "en" else format_date(day, "medium", locale=lang)


def local_month(day: date | None) -> str:
    """A month and year as the page's language names them ('November 2026', 'noviembre de 2026')."""
    if day is None:
        return ""
    lang = i18n.current()
    return f"{day:%B %Y}" if lang == "en" else format_skeleton("yMMMM", day, locale=lang)


def local_input(dt: datetime) -> str:
    """A naive-UTC time as a datetime-local input's value in the console's time zone."""
    return f"{dt.replace(tzinfo=UTC).astimezone(ZoneInfo(zone())):%Y-%m-%dT%H:%M}"


def to_utc(raw: str) -> datetime:
    """A typed time (ISO, a space allowed) as naive UTC; without an offset, console time. ValueError if unreadable."""
    typed = datetime.fromisoformat(raw.replace(" ", "T"))
    if typed.tzinfo is None:
        typed = typed.replace(tzinfo=ZoneInfo(zone()))
    return typed.astimezone(UTC).replace(tzinfo=None)
