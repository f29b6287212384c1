"""Service reports: one filter, counts by place, service and answer, and weeks, for the console and the API.

Each edge parses its own input (the console forgives a bad filter and says so; the API refuses it
with a 400), then both ask the same questions here.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from gateway.models import Report

DELIVERED = ("yes", "no", "partly")  # "did the service come?"


@dataclass(frozen=True)
class ReportFilter:
    """Which reports: place, service, answer, and a time range [start, end) (or [start, end] if `end_inclusive`)."""

    place: str | None = None
    service: str | None = None
    delivered: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    end_inclusive: bool = False  # an exact end time (the API's `to=...T08:00:00Z`) includes that moment

    def conditions(self) -> list[Any]:
        """The filter as SQL conditions on Report."""
        out: list[Any] = []
        if self.place:
            out.append(Report.place == self.place)
        if self.service:
            out.append(Report.service == self.service)
        if self.delivered:
            out.append(Report.delivered == self.delivered)
        if self.start:
            out.append(Report.created_at >= self.start)
        if self.end:
            out.append(Report.created_at <= self.end if self.end_inclusive else Report.created_at < self.end)
        return out

    def apply(self, query: Select[Any]) -> Select[Any]:
        """`query` narrowed to the matching reports."""
        return query.where(*self.conditions())


def day_range(start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """Whole days as [start, end): a bare end date includes that whole day."""
    return (datetime.combine(start, datetime.min.time()) if start else None,
            datetime.combine(end, datetime.min.time()) + timedelta(days=1) if end else None)


@dataclass
class Counts:
    """Reports counted every way the console and the API show them; keys are the stored values (None too)."""

    total: int = 0
    by_place: Counter[Any] = field(default_factory=Counter)
    by_service: Counter[Any] = field(default_factory=Counter)
    by_delivered: Counter[Any] = field(default_factory=Counter)
    by_place_and_service: Counter[tuple[Any, Any]] = field(default_factory=Counter)


def counts(session: Session, f: ReportFilter) -> Counts:
    """The matching reports counted by place, service, answer, and place and service together."""
    out = Counts()
    for place, service, delivered, n in session.execute(
            f.apply(select(Report.place, Report.service, Report.delivered, func.count()))
            .group_by(Report.place, Report.service, Report.delivered)):
        out.total += n
        out.by_place[place] += n
        out.by_service[service] += n
        out.by_delivered[delivered] += n
        out.by_place_and_service[(place, service)] += n
    return out


@dataclass
class WeekCount:
    """The reports of one ISO week (Monday to Sunday, UTC), by answer."""

    monday: date
    counts: Counter[str]

    @property
    def label(self) -> str:
        year, week, _day = self.monday.isocalendar()
        return f"{year}-W{week:02d}"

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def weekly(session: Session, f: ReportFilter) -> list[WeekCount]:
    """The matching reports per ISO week, oldest first; weeks without a report are left out."""
    day = func.date(Report.created_at)
    weeks: dict[date, Counter[str]] = {}
    for value, delivered, n in session.execute(
            f.apply(select(day, Report.delivered, func.count())).group_by(day, Report.delivered)):
        d = date.fromisoformat(value) if isinstance(value, str) else value  # SQLite answers with text
        if isinstance(d, datetime):
            d = d.date()
        monday = d - timedelta(days=d.weekday())
        weeks.setdefault(monday, Counter())[delivered or "unknown"] += n
    return [WeekCount(monday, c) for monday, c in sorted(weeks.items())]
