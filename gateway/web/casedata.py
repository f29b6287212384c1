"""What the console's and the API's case and official pages read: filters, a case's parts, officials' records.

Read-only. A case's reports come without their reporters (ref, delivered, date, details only), and
the only messages shown are those to and from officials' own numbers: never a reporter's.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from gateway.core import ladder
from gateway.models import (
    Case,
    CaseEvent,
    CaseReport,
    Message,
    Official,
    Report,
    utcnow,
)

OVERDUE = "overdue"
STATUSES = ladder.STATUSES


def overdue_clause(now: datetime) -> Any:
    """Cases marked overdue, or waiting for an answer past their deadline (the timer has not run yet)."""
    return or_(Case.status == ladder.OVERDUE,
               and_(Case.status.in_(sorted(ladder.WAITING)), Case.deadline_at.is_not(None), Case.deadline_at < now))


def is_overdue(case: Case, now: datetime) -> bool:
    """The same test as overdue_clause, for one case in hand."""
    return case.status == ladder.OVERDUE or (
        case.status in ladder.WAITING and case.deadline_at is not None and case.deadline_at < now)


@dataclass
class CaseFilter:
    """The filters of the Cases listing; None means any."""

    status: str | None = None
    place: str | None = None
    service: str | None = None
    official_id: int | None = None

    def apply(self, query: Select[Any], now: datetime | None = None) -> Select[Any]:
        if self.status == OVERDUE:
            query = query.where(overdue_clause(now or utcnow()))
        elif self.status:
            query = query.where(Case.status == self.status)
        if self.place:
            query = query.where(Case.place == self.place)
        if self.service:
            query = query.where(Case.service == self.service)
        if self.official_id is not None:
            query = query.where(Case.official_id == self.official_id)
        return query


def ordered(query: Select[Any]) -> Select[Any]:
    """Cases newest first (by when they opened, then by id)."""
    return query.order_by(Case.opened_at.desc(), Case.id.desc())


def count_overdue(session: Session, now: datetime | None = None) -> int:
    """How many cases are overdue (the dashboard's tile)."""
    return session.scalar(select(func.count()).select_from(Case).where(overdue_clause(now or utcnow()))) or 0


def officials_by_id(session: Session, ids: set[int | None]) -> dict[int, Official]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {o.id: o for o in session.scalars(select(Official).where(Official.id.in_(wanted)))}


@dataclass(frozen=True)
class CaseReportView:
    """A report as a case shows it: no contact, no name, no number, no anonymity flag."""

    id: int
    ref: str
    delivered: str | None
    date: str
    details: str | None
    verification: str | None = None  # what other supporters said when asked (gateway/evidence/checks.py)


def case_reports(session: Session, case: Case) -> list[CaseReportView]:
    """The case's reports, by day then by reference (the order must not tell who came first)."""
    rows = session.execute(
        select(Report.id, Report.ref, Report.delivered, Report.created_at, Report.details, Report.verification)
        .join(CaseReport, CaseReport.report_id == Report.id).where(CaseReport.case_id == case.id)
        .order_by(func.date(Report.created_at), Report.ref)).all()
    return [CaseReportView(r.id, r.ref, r.delivered, r.created_at.date().isoformat(), r.details, r.verification)
            for r in rows]


def timeline(session: Session, case: Case) -> list[CaseEvent]:
    """The case's events, oldest first."""
    return list(session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)
                                .order_by(CaseEvent.at, CaseEvent.id)))


def official_messages(session: Session, case: Case, events: list[CaseEvent]) -> list[tuple[Message, Official]]:
    """Texts to and from the case's officials about this case: those its events name, and those that
    carry its reference. Only officials' own numbers: a reporter's text never shows here."""
    official_ids = {e.official_id for e in events} | {case.official_id}
    officials = officials_by_id(session, official_ids)
    if not officials:
        return []
    by_contact = {o.contact_id: o for o in officials.values()}
    linked = {e.message_id for e in events if e.message_id is not None}
    about = Message.body.icontains(case.ref, autoescape=True)
    condition = or_(Message.id.in_(linked), about) if linked else about
    rows = session.scalars(select(Message).where(Message.contact_id.in_(list(by_contact)), condition,
                                                 Message.created_at >= case.opened_at)
                           .order_by(Message.created_at, Message.id).limit(200))
    return [(m, by_contact[m.contact_id]) for m in rows if m.contact_id in by_contact]


# --------------------------------------------------------------------------- officials' records


@dataclass
class OfficialRecord:
    """An official's answers and response times, from the case events."""

    cases: int = 0  # cases sent to them
    ack: int = 0
    promise: int = 0
    done: int = 0
    overdue: int = 0
    hours: list[float] = field(default_factory=list)  # sent -> acknowledged, per case

    @property
    def median_hours(self) -> float | None:
        return round(statistics.median(self.hours), 1) if self.hours else None

    def as_json(self) -> dict[str, Any]:
        return {"cases_sent": self.cases, "acknowledged": self.ack, "promised": self.promise, "done": self.done,
                "overdue": self.overdue, "median_hours_to_acknowledge": self.median_hours}


def records(session: Session, official_ids: list[int]) -> dict[int, OfficialRecord]:
    """Each official's counts of ACK, PROMISE, DONE and overdue, and the median hours from sent to ACK.

    An event counts for the official it names, else for the official the case was last sent to
    (an overdue event names nobody: it is the rung that did not answer).
    """
    out = {i: OfficialRecord() for i in official_ids}
    if not official_ids:
        return out
    touched = select(CaseEvent.case_id).where(CaseEvent.official_id.in_(official_ids)).distinct()
    current: dict[int, int | None] = {}  # case -> the official it was last sent to
    sent: dict[tuple[int, int], datetime] = {}
    acked: set[tuple[int, int]] = set()
    for e in session.scalars(select(CaseEvent).where(CaseEvent.case_id.in_(touched))
                             .order_by(CaseEvent.case_id, CaseEvent.at, CaseEvent.id)):
        if e.kind in (ladder.SENT, "resent") and e.official_id is not None:
            current[e.case_id] = e.official_id
        who = e.official_id if e.official_id is not None else current.get(e.case_id)
        if who not in out:
            continue
        assert who is not None
        r, key = out[who], (who, e.case_id)
        if e.kind in (ladder.SENT, "resent"):
            if key not in sent:
                r.cases += 1
                sent[key] = e.at
        elif e.kind == ladder.ACKNOWLEDGED:
            r.ack += 1
            if key in sent and key not in acked:
                acked.add(key)
                r.hours.append(max(0.0, (e.at - sent[key]).total_seconds() / 3600))
        elif e.kind == ladder.PROMISED:
            r.promise += 1
        elif e.kind == ladder.RESOLVED and e.actor.startswith("official:"):
            r.done += 1
        elif e.kind == ladder.OVERDUE:
            r.overdue += 1
    return out
