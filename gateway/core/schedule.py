"""Pure: promised services and the checks that ask whether they came.

Due dates of a schedule, when a check may ask (the place's local time), who is asked (rotation:
the least recently asked first), how answers tally into an outcome, how a corroboration labels a
case's reports, and the one-SMS summary sent back to a place. No database: the adapter
(gateway/evidence) loads rows, calls these, and writes what they return.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from gateway.core.segments import count_segments, gsm7_replace

YES, NO, PARTLY = "yes", "no", "partly"
ANSWERS = (YES, NO, PARTLY)
# Delivery check outcomes (Check.outcome for kind=delivery).
DELIVERED, NOT_DELIVERED, PARTLY_DELIVERED, NO_ANSWER = "delivered", "not_delivered", "partly", "no_answer"
# Corroboration labels (models.Verification's values).
VERIFIED, CONTESTED, UNVERIFIED = "verified", "contested", "unverified"
MIN_CORROBORATING = 2  # answers a label needs: one neighbour's word alone neither verifies nor contests
# Which supporters follow a service: those tagged with the service itself or with the JOIN interest
# it belongs to (flows/join.yaml: health, farming, water, education, safety).
INTERESTS = {"clinic": "health", "fertilizer": "farming", "water": "water", "school": "education"}


def follows(service: str) -> tuple[str, ...]:
    """The contact tags that mean 'follows this service': the service and its interest."""
    interest = INTERESTS.get(service)
    return (service, interest) if interest and interest != service else (service,)


@dataclass(frozen=True)
class Plan:
    """A schedule's dates: the first due date, every n days (None: once), until an end (None: open)."""

    starts_on: date
    every_days: int | None = None
    ends_on: date | None = None

    def is_due(self, day: date) -> bool:
        """Whether a service is due on this day."""
        if day < self.starts_on or (self.ends_on is not None and day > self.ends_on):
            return False
        if not self.every_days:
            return day == self.starts_on
        return (day - self.starts_on).days % self.every_days == 0

    def due_between(self, first: date, last: date) -> list[date]:
        """Every due date from `first` to `last`, both included."""
        if not self.every_days:
            return [self.starts_on] if first <= self.starts_on <= last and self.is_due(self.starts_on) else []
        start = max(first, self.starts_on)
        behind = (start - self.starts_on).days % self.every_days
        day = start + timedelta(days=(self.every_days - behind) % self.every_days)
        end = min(last, self.ends_on) if self.ends_on else last
        out = []
        while day <= end:
            out.append(day)
            day += timedelta(days=self.every_days)
        return out


def ask_after(day: date, check_at: time, timezone: str) -> datetime:
    """The naive-UTC moment a check may ask: `check_at` on the due date, in the place's time zone."""
    local = datetime.combine(day, check_at, tzinfo=ZoneInfo(timezone))
    return local.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)


def local_day(now_utc: datetime, timezone: str) -> date:
    """Today's date in the place's calendar."""
    return now_utc.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(timezone)).date()


@dataclass(frozen=True)
class Candidate:
    """A supporter who may be asked, and when they were last asked anything (None: never)."""

    contact_id: int
    last_asked: datetime | None


def pick(candidates: Iterable[Candidate], size: int, exclude: Iterable[int] = ()) -> list[int]:
    """At most `size` contact ids, the least recently asked first (never asked before all others).

    Ties go by id, so the choice is the same whichever database returned the rows. `exclude`:
    those already asked in this check, and (corroboration) the case's own reporters.
    """
    out = set(exclude)
    ordered = sorted((c for c in candidates if c.contact_id not in out),
                     key=lambda c: (c.last_asked is not None, c.last_asked or datetime.min, c.contact_id))
    return [c.contact_id for c in ordered[:max(0, size)]]


@dataclass(frozen=True)
class Tally:
    """The answers a check got."""

    asked: int
    yes: int = 0
    no: int = 0
    partly: int = 0

    @property
    def answered(self) -> int:
        return self.yes + self.no + self.partly

    @classmethod
    def of(cls, asked: int, answers: Sequence[str | None]) -> Tally:
        """Count answers (None: not answered yet)."""
        return cls(asked, answers.count(YES), answers.count(NO), answers.count(PARTLY))


def delivery_outcome(t: Tally) -> str:
    """A due date's outcome: no_answer with no answers; delivered or not_delivered when that answer
    outnumbers all others together; partly otherwise (partly answers, or people disagree)."""
    if t.answered == 0:
        return NO_ANSWER
    if t.yes > t.no + t.partly:
        return DELIVERED
    if t.no > t.yes + t.partly:
        return NOT_DELIVERED
    return PARTLY_DELIVERED


def verification(t: Tally) -> str:
    """A corroboration's label for the case's reports. `yes` = 'that is right' (the service did not come).

    With at least MIN_CORROBORATING yes-or-no answers, verified when two thirds or more of them say
    yes, contested when two thirds or more say no; otherwise (too few answers, or a split) unverified.
    A 'partly' answer counts for neither side.
    """
    sides = t.yes + t.no
    if sides < MIN_CORROBORATING:
        return UNVERIFIED
    if 3 * t.yes >= 2 * sides:
        return VERIFIED
    if 3 * t.no >= 2 * sides:
        return CONTESTED
    return UNVERIFIED


def fill(text: str, **values: object) -> str:
    """Placeholders filled ({place}, {label} ...) and spaces tidied."""
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    return " ".join(text.split())


def one_segment(text: str) -> bool:
    return count_segments(text).segments == 1


def draft_summary(template: str, *, place: str, label: str, came: int, due: int, month: str,
                  short_template: str | None = None) -> str:
    """The one-SMS summary for a place ('Zomba: the clinic came 9 of 12 due days in March. ...').

    Plain letters where a character would force UCS-2 (basic phones prefer GSM-7); if still longer
    than one segment (a long label or place), the short template, then the label cut, then the
    text cut at a word: the organizer edits the draft anyway, but it starts as one SMS.
    """
    values = {"place": place, "label": label, "came": came, "due": due, "month": month}
    text = _plain(fill(template, **values))
    if one_segment(text) or not short_template:
        return text if one_segment(text) else _cut(text)
    text = _plain(fill(short_template, **values))
    cut = label
    while not one_segment(text) and len(cut) > 8:
        cut = cut[:-4].rstrip()
        text = _plain(fill(short_template, **{**values, "label": cut}))
    return text if one_segment(text) else _cut(text)


def _plain(text: str) -> str:
    """GSM-7 look-alikes for characters that would force UCS-2, when there are any."""
    replaced, changes = gsm7_replace(text)
    return replaced if changes else text


def _cut(text: str) -> str:
    """The longest start of the text, ending at a word, that is one segment."""
    words = text.split(" ")
    while len(words) > 1 and not one_segment(" ".join(words)):
        words.pop()
    out = " ".join(words)
    while not one_segment(out):
        out = out[:-1]
    return out
