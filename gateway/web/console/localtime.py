"""The console's local time: times are typed and shown in the default country's zone, with UTC beside.

(Not `time.py`: a submodule of gateway.web.console would replace the package's own `time` import.)
"""
from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from gateway import services


def console_zone() -> tuple[str, str]:
    """(time zone, label) that console times are typed and shown in: the default country's gazetteer's."""
    country = services().settings.default_country
    for g in services().flows.gazetteers.values():
        if g.country == country:
            return g.timezone, f"{g.name.replace('_', ' ').title()} time ({g.timezone})"
    return "UTC", "UTC"


def zone() -> str:
    """The console's time zone name."""
    return console_zone()[0]


def local(dt: datetime | None) -> str:
    """A naive-UTC time as 'YYYY-MM-DD HH:MM' in the console's time zone, with UTC."""
    if dt is None:
        return ""
    name = zone()
    shown = dt.replace(tzinfo=UTC).astimezone(ZoneInfo(name))
    if name == "UTC":
        return f"{shown:%Y-%m-%d %H:%M} UTC"
    return f"{shown:%Y-%m-%d %H:%M} ({name}; {dt:%H:%M} UTC)"


def local_input(dt: datetime) -> str:
    """A naive-UTC time as a datetime-local input's value in the console's time zone."""
    return f"{dt.replace(tzinfo=UTC).astimezone(ZoneInfo(zone())):%Y-%m-%dT%H:%M}"


def to_utc(raw: str) -> datetime:
    """A typed time (ISO, a space allowed) as naive UTC; without an offset, console time. ValueError if unreadable."""
    typed = datetime.fromisoformat(raw.replace(" ", "T"))
    if typed.tzinfo is None:
        typed = typed.replace(tzinfo=ZoneInfo(zone()))
    return typed.astimezone(UTC).replace(tzinfo=None)
