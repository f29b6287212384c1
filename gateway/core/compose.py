"""Pure: what a broadcast will cost and when it may go out (merge fields, segments, quiet hours)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from gateway.core.segments import count_segments, gsm7_replace

MERGE_FIELDS = ("name", "place")


def render(text: str, name: str | None, place: str | None) -> str:
    """Fill {name} and {place}; a missing value leaves no gap ('Hello {name},' -> 'Hello,')."""
    out = text.replace("{name}", name or "").replace("{place}", place or "")
    out = re.sub(r" +([,.!?])", r"\1", re.sub(r" {2,}", " ", out))
    return re.sub(r"^[\s,;:]+", "", out).strip()


@dataclass(frozen=True)
class TextPreview:
    """One language's text as the costliest recipient would get it."""

    language: str
    recipients: int
    encoding: str
    segments: int
    characters: int
    ucs2_chars: tuple[str, ...]
    suggestion: str | None  # a GSM-7 version, when it saves segments or leaves UCS-2 (basic phones prefer GSM-7)
    suggestion_segments: int | None


def preview_text(language: str, text: str, recipients: int, longest_name: str,
                 longest_place: str) -> TextPreview:
    """Segments counted after merge fields, with the longest name and place in the audience."""
    worst = render(text, longest_name or "", longest_place or "")
    info = count_segments(worst)
    replaced, changes = gsm7_replace(text)
    suggestion, suggestion_segments = None, None
    if changes:
        better = count_segments(render(replaced, longest_name, longest_place))
        if better.segments < info.segments or (better.encoding == "GSM-7" != info.encoding):
            suggestion, suggestion_segments = replaced, better.segments
    return TextPreview(language, recipients, info.encoding, info.segments, info.characters,
                       info.ucs2_chars, suggestion, suggestion_segments)


def parse_prices(value: str | None) -> dict[str, float]:
    """'MW=0.08,HN=0.07,*=0.05' -> {'MW': 0.08, 'HN': 0.07, '*': 0.05}: price per segment by country."""
    prices: dict[str, float] = {}
    for part in (value or "").split(","):
        if part.strip():
            country, _, price = part.partition("=")
            prices[country.strip().upper()] = float(price)
    return prices


def parse_rates(value: str | None) -> dict[str, float]:
    """'+15005550006=1,MG123=30' -> {'+15005550006': 1.0, 'MG123': 30.0}."""
    rates: dict[str, float] = {}
    for part in (value or "").split(","):
        if part.strip():
            sender, _, rate = part.partition("=")
            rates[sender.strip()] = float(rate)
    return rates


def estimate_cost(segments_by_country: dict[str | None, int], prices: dict[str, float]) -> float:
    """Total price for the given segments per destination country."""
    default = prices.get("*", 0.0)
    return round(sum(n * prices.get(c or "*", default) for c, n in segments_by_country.items()), 4)


def parse_quiet_hours(value: str | None) -> tuple[time, time] | None:
    """'21:00-07:00' -> (21:00, 07:00); '' or 'off' -> None."""
    if not value or value.strip().lower() in ("off", "none", "0"):
        return None
    start, _, end = value.partition("-")
    return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())


def quiet_until(now_utc: datetime, timezone: str, quiet: tuple[time, time] | None) -> datetime | None:
    """If it is quiet hours where the recipient lives, the naive-UTC time they end; else None."""
    if quiet is None:
        return None
    zone = ZoneInfo(timezone)
    local = now_utc.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone)
    start, end = quiet
    t = local.time()
    inside = (start <= t or t < end) if start > end else (start <= t < end)
    if not inside:
        return None
    day = local.date() + timedelta(days=1) if start > end and t >= start else local.date()
    ends = datetime.combine(day, end, tzinfo=zone)
    return ends.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
