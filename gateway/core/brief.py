"""Pure: the figures of a one-page brief: delivery rates against due dates, officials' answers, quotes, a fingerprint.

Plain values in, plain values out; gateway/evidence/figures.py reads the database into them.
"""
from __future__ import annotations

import hashlib
import json
import re
import statistics
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass, is_dataclass
from datetime import date, datetime, timedelta
from typing import Any

MONTHS_SHOWN = 6  # the delivery chart: the brief's month and the five before it
MIN_CASES_FOR_RATE = 3  # an official's response rate is shown only over at least this many cases sent to them
MIN_REPORTS_FOR_QUOTES = 3  # words are quoted only from a place, service and month with at least this many reports
MAX_QUOTES = 3
MAX_QUOTE = 140  # characters, after scrubbing
MIN_QUOTE = 12  # shorter than this after scrubbing says nothing
FINGERPRINT_CHARS = 12

# Outcomes of one due date. "unchecked": promised, but no check has closed on it (none was made,
# or its answers are still coming in).
DELIVERED, PARTLY, NOT_DELIVERED, NO_ANSWER, UNCHECKED = "delivered", "partly", "not_delivered", "no_answer", \
    "unchecked"
OUTCOMES = (DELIVERED, PARTLY, NOT_DELIVERED, NO_ANSWER, UNCHECKED)

_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")  # ASCII digits: re's \d takes any script's


class BadInput(ValueError):
    """A place, month or language the brief cannot be made for; the message says what to give instead."""


def parse_month(text: str) -> date:
    """'2026-11' -> the first day of that month (years 1900 to 9998: 9999-12 has no month after it for
    the date type); anything else is BadInput."""
    m = _MONTH.fullmatch((text or "").strip())
    if not m or not 1 <= int(m.group(2)) <= 12 or not 1900 <= int(m.group(1)) <= 9998:
        raise BadInput(f"month {text[:20]!r} is not a month like 2026-11 (year-month)")
    return date(int(m.group(1)), int(m.group(2)), 1)


def next_month(first: date) -> date:
    """The first day of the month after `first`'s."""
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def months_up_to(first: date, count: int = MONTHS_SHOWN) -> list[date]:
    """The first days of `count` months ending with `first`'s, oldest first."""
    out = [first]
    while len(out) < count:
        prev = out[0] - timedelta(days=1)
        out.insert(0, prev.replace(day=1))
    return out


def due_dates(starts_on: date, every_days: int | None, ends_on: date | None, start: date, end: date) -> list[date]:
    """A schedule's due dates in [start, end): its first date, then every `every_days` days until `ends_on`."""
    if every_days is None or every_days <= 0:
        return [starts_on] if start <= starts_on < end and (ends_on is None or starts_on <= ends_on) else []
    last = end - timedelta(days=1) if ends_on is None else min(ends_on, end - timedelta(days=1))
    if last < starts_on:
        return []
    skip = max(0, -(-(start - starts_on).days // every_days))  # the first step on or after `start`
    out, day = [], starts_on + timedelta(days=skip * every_days)
    while day <= last:
        out.append(day)
        day += timedelta(days=every_days)
    return out


# --------------------------------------------------------------------------- delivery


@dataclass(frozen=True)
class DueDate:
    """One promised date of one service and what the delivery check found (an OUTCOMES value)."""

    service: str
    due_on: date
    outcome: str
    asked: int = 0  # supporters asked (the check's sample)
    answers: int = 0  # of them, how many answered


@dataclass(frozen=True)
class MonthTally:
    """One service in one month: due dates and what came of each. The parts add up to `due`."""

    month: str  # YYYY-MM
    due: int
    delivered: int
    partly: int
    not_delivered: int
    no_answer: int
    unchecked: int

    @property
    def rate(self) -> float | None:
        """Delivered due dates over all due dates (None: nothing was due)."""
        return self.delivered / self.due if self.due else None


@dataclass(frozen=True)
class ServiceRecord:
    service: str
    months: tuple[MonthTally, ...]
    due: int
    delivered: int

    @property
    def rate(self) -> float | None:
        return self.delivered / self.due if self.due else None


def outcome_of(check_outcome: str | None, closed: bool) -> str:
    """A due date's outcome from its delivery check (None: no check)."""
    if not closed or check_outcome not in (DELIVERED, PARTLY, NOT_DELIVERED, NO_ANSWER):
        return UNCHECKED
    return check_outcome


def tally(due: Iterable[DueDate], months: list[date]) -> list[ServiceRecord]:
    """Each service's due dates counted month by month; the denominator of every rate is the due dates."""
    keys = [m.strftime("%Y-%m") for m in months]
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for d in due:
        key = d.due_on.strftime("%Y-%m")
        if key not in keys:
            continue
        per_month = counts.setdefault(d.service, {k: dict.fromkeys(OUTCOMES, 0) for k in keys})
        per_month[key][d.outcome if d.outcome in OUTCOMES else UNCHECKED] += 1
    out = []
    for service in sorted(counts):
        tallies = tuple(MonthTally(k, sum(c.values()), c[DELIVERED], c[PARTLY], c[NOT_DELIVERED], c[NO_ANSWER],
                                   c[UNCHECKED]) for k, c in counts[service].items())
        out.append(ServiceRecord(service, tallies, sum(t.due for t in tallies), sum(t.delivered for t in tallies)))
    return out


# --------------------------------------------------------------------------- cases and officials


@dataclass(frozen=True)
class Asked:
    """An official a case was sent to, and when (never a reporter)."""

    name: str
    role: str
    on: date


@dataclass(frozen=True)
class CaseLine:
    ref: str
    service: str
    status: str
    state: str  # open, overdue, resolved (closed counts as resolved only when it was resolved)
    opened_on: date
    days: int  # from opening to resolution, or to the brief's day
    reports: int
    asked: tuple[Asked, ...]
    promised_for: date | None = None


def case_state(status: str, overdue: bool) -> str:
    """open, overdue or resolved: the three piles the brief shows."""
    if status in ("resolved", "closed"):
        return "resolved"
    return "overdue" if overdue else "open"


def days_between(start: datetime, end: datetime) -> int:
    """Whole days from one moment to a later one (never negative)."""
    return max(0, (end.date() - start.date()).days)


@dataclass(frozen=True)
class Event:
    """A case event as the response figures need it."""

    case_id: int
    official_id: int | None
    kind: str
    at: datetime
    by_official: bool  # the actor was the official (their own SMS), not an organizer


ANSWERS = ("acknowledged", "promised", "resolved")


@dataclass(frozen=True)
class OfficialLine:
    name: str
    role: str
    cases: int  # cases sent to them
    answered: int  # of those, how many they answered (ACK, PROMISE or DONE by SMS)
    median_hours: float | None  # sent -> their first answer, over the answered ones

    @property
    def enough(self) -> bool:
        """Only over MIN_CASES_FOR_RATE cases or more is a rate fair to print."""
        return self.cases >= MIN_CASES_FOR_RATE

    @property
    def rate(self) -> float | None:
        return self.answered / self.cases if self.cases and self.enough else None


def responses(events: Iterable[Event], who: dict[int, tuple[str, str]]) -> list[OfficialLine]:
    """Each official's cases sent, cases answered by their own SMS, and median hours to the first answer.

    `who` maps an official's id to (name, role); events are sorted here. A case counts once per
    official however often it was resent to them.
    """
    sent: dict[tuple[int, int], datetime] = {}
    first_answer: dict[tuple[int, int], datetime] = {}
    for e in sorted(events, key=lambda e: (e.at, e.case_id)):
        if e.official_id is None or e.official_id not in who:
            continue
        key = (e.official_id, e.case_id)
        if e.kind in ("sent", "resent"):
            sent.setdefault(key, e.at)
        elif e.kind in ANSWERS and e.by_official and key in sent and key not in first_answer:
            first_answer[key] = e.at
    out = []
    for oid, (name, role) in who.items():
        keys = [k for k in sent if k[0] == oid]
        if not keys:
            continue
        hours = [max(0.0, (first_answer[k] - sent[k]).total_seconds() / 3600) for k in keys if k in first_answer]
        out.append(OfficialLine(name, role, len(keys), len(hours),
                                round(statistics.median(hours), 1) if hours else None))
    return sorted(out, key=lambda o: (-o.cases, o.name))


# --------------------------------------------------------------------------- quotes


# Any run of characters with a digit in it: phone numbers however spaced, dates, case and report references.
_NUMBERISH = re.compile(r"\+?\w*\d(?:[\d\s\-./()]*\d)?\w*")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
REDACTED = "…"


def fold(text: str) -> str:
    """Lower case without accents: how names are compared."""
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))


def name_words(names: Iterable[str | None]) -> frozenset[str]:
    """Every word of every known name (3 letters or more), folded: 'Chikondi Banda' -> chikondi, banda."""
    return frozenset(fold(w) for n in names if n for w in _WORD.findall(n) if len(w) >= 3)


def scrub(text: str, names: frozenset[str]) -> str:
    """The text without any digit, e-mail address or word of a known name; each cut shows as '…'."""
    text = _EMAIL.sub(REDACTED, text)
    text = _NUMBERISH.sub(REDACTED, text)
    text = _WORD.sub(lambda m: REDACTED if fold(m.group(0)) in names else m.group(0), text)
    text = re.sub(r"(?:…\s*)+…", REDACTED, re.sub(r"\s+", " ", text)).strip()
    if len(text) > MAX_QUOTE:
        text = text[:MAX_QUOTE].rsplit(" ", 1)[0] + " " + REDACTED
    return text


@dataclass(frozen=True)
class Said:
    """A report's words and what they can be quoted with."""

    service: str
    details: str | None
    on: date
    pool: int  # reports of this place, service and month: a quote never stands out from fewer than the minimum


@dataclass(frozen=True)
class Quote:
    service: str
    text: str
    month: str


def quotes(said: Iterable[Said], names: frozenset[str], limit: int = MAX_QUOTES) -> list[Quote]:
    """A few scrubbed quotes, longest first then by text (never by who or when), one per distinct text."""
    seen: set[str] = set()
    picked = []
    for s in said:
        if not s.details or s.pool < MIN_REPORTS_FOR_QUOTES:
            continue
        text = scrub(s.details, names)
        letters = len(_WORD.findall(text.replace(REDACTED, "")))
        if len(text) < MIN_QUOTE or letters < 3 or fold(text) in seen:
            continue
        seen.add(fold(text))
        picked.append(Quote(s.service, text, s.on.strftime("%Y-%m")))
    picked.sort(key=lambda q: (-len(q.text), q.text))
    return picked[:limit]


# --------------------------------------------------------------------------- fingerprint


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 6)
    return value


def canonical(figures: Any) -> str:
    """The figures as canonical JSON: sorted keys, no spaces, dates as ISO text."""
    return json.dumps(_plain(figures), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(figures: Any) -> str:
    """A short citation mark: the first FINGERPRINT_CHARS of the SHA-256 of the canonical JSON, in groups of 4."""
    digest = hashlib.sha256(canonical(figures).encode()).hexdigest()[:FINGERPRINT_CHARS]
    return "-".join(digest[i:i + 4] for i in range(0, len(digest), 4))
