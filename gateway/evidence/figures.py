"""The brief's figures read from the database into plain frozen values (gateway/core/brief.py computes).

Read-only. Nothing here carries a reporter: cases list only officials, quotes are scrubbed words
of reports in a pool of at least MIN_REPORTS_FOR_QUOTES, and silent places are counts.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from gateway.core import brief as core
from gateway.core.brief import BadInput
from gateway.core.places import Gazetteer, match_place
from gateway.models import (
    Case,
    CaseEvent,
    CaseReport,
    Check,
    CheckAsk,
    CheckKind,
    CheckStatus,
    Contact,
    ContactStatus,
    Official,
    Report,
    ServiceSchedule,
    utcnow,
)
from gateway.web.casedata import is_overdue

SIMULATOR = "simulator"  # Report.source of the console simulator's test reports


@dataclass(frozen=True)
class Method:
    """How the figures were gathered: what they rest on, and over which dates."""

    period_from: date  # the delivery chart's first day
    period_to: date  # its last day (the brief's day, or the month's last)
    reports: int  # reports from the place in the month
    reports_from_checks: int  # of them, answers to delivery checks
    checks: int  # delivery checks in the period (one per due date asked about)
    asked: int  # supporters asked, all checks together (the samples)
    answered: int  # of them, how many answered
    verified: int  # the month's reports labelled after corroboration ...
    contested: int
    unverified: int

    @property
    def labelled(self) -> int:
        return self.verified + self.contested + self.unverified

    @property
    def verified_share(self) -> float | None:
        """Verified over all labelled reports (None: none was labelled)."""
        return self.verified / self.labelled if self.labelled else None


@dataclass(frozen=True)
class SilentPlace:
    """A place with supporters who said nothing in the period: no reports, or checks asked and no answer."""

    place: str
    supporters: int  # active, consenting supporters of the place
    reports: int
    checks_asked: int  # delivery checks put to its supporters in the period
    answers: int


@dataclass(frozen=True)
class Reported:
    """The month's reports about one service by their answer to "did it come?" (from any supporter, checks too)."""

    service: str
    yes: int
    no: int
    partly: int
    unknown: int


@dataclass(frozen=True)
class PlaceFigures:
    place: str
    month: str  # YYYY-MM
    as_of: date  # the day the figures stand at: the month's last day, or today within the month
    services: tuple[core.ServiceRecord, ...]
    cases: tuple[core.CaseLine, ...]
    officials: tuple[core.OfficialLine, ...]
    quotes: tuple[core.Quote, ...]
    method: Method
    silent: SilentPlace | None  # this place, when it was silent in the month
    reported: tuple[Reported, ...] = ()

    def count(self, state: str) -> int:
        return sum(c.state == state for c in self.cases)


@dataclass(frozen=True)
class CaseFigures:
    case: core.CaseLine
    place: str
    as_of: date
    delivered: tuple[tuple[str, int], ...]  # the case's reports by answer (yes, no, partly)
    officials: tuple[core.OfficialLine, ...]
    quotes: tuple[core.Quote, ...]
    verified: int
    contested: int
    unverified: int
    corroboration: str | None  # the outcome of its corroboration check, if one closed


@dataclass(frozen=True)
class Brief:
    """Figures with the date they were made and their fingerprint (of the figures alone, not the date)."""

    kind: str  # place, case
    figures: PlaceFigures | CaseFigures
    generated_at: datetime
    fingerprint: str

    def as_json(self) -> dict[str, object]:
        import json
        return {"kind": self.kind, "generated_at": self.generated_at.isoformat(timespec="seconds") + "Z",
                "fingerprint": self.fingerprint, "figures": json.loads(core.canonical(self.figures))}


# --------------------------------------------------------------------------- inputs


def known_place(session: Session, text: str, gazetteers: list[Gazetteer], country: str | None) -> str:
    """The place as the gazetteers spell it ('zomba' -> 'Zomba'), or one the database already holds; else BadInput."""
    text = (text or "").strip()
    if not text:
        raise BadInput("place is required, e.g. Zomba")
    found = match_place(text, gazetteers, prefer_country=country)
    if found is not None:
        return found.name
    for column in (Report.place, Contact.place, Case.place, ServiceSchedule.place):
        held = session.scalar(select(column).where(func.lower(column) == text.lower()).limit(1))
        if held:
            return str(held)
    raise BadInput(f"place {text[:80]!r} is not in the gazetteers (flows/places/) nor in any report or case")


def _day_end(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time.min)


def _as_of(month: date, now: datetime) -> date:
    last = core.next_month(month) - timedelta(days=1)
    return min(last, now.date()) if now.date() >= month else last


# --------------------------------------------------------------------------- reading


def _names(session: Session) -> frozenset[str]:
    """Every word of every name the gateway knows: supporters' and officials'."""
    contacts = session.scalars(select(Contact.name).where(Contact.name.is_not(None)).distinct())
    officials = session.scalars(select(Official.name).distinct())
    return core.name_words([*contacts, *officials])


def _due(session: Session, place: str, start: date, end: date) -> list[core.DueDate]:
    """Every promised date of the place in [start, end): from active schedules, and from any delivery check."""
    checks = {(c.schedule_id, c.due_on): c for c in session.scalars(
        select(Check).where(Check.kind == CheckKind.DELIVERY.value, Check.place == place,
                            Check.due_on >= start, Check.due_on < end))}
    answers: dict[int, int] = dict(session.execute(  # type: ignore[arg-type]
        select(CheckAsk.check_id, func.count()).where(CheckAsk.check_id.in_([c.id for c in checks.values()]),
                                                      CheckAsk.answer.is_not(None))
        .group_by(CheckAsk.check_id)).all()) if checks else {}
    out: list[core.DueDate] = []
    seen: set[tuple[int | None, date]] = set()
    for s in session.scalars(select(ServiceSchedule).where(ServiceSchedule.place == place,
                                                            ServiceSchedule.active.is_(True))):
        for day in core.due_dates(s.starts_on, s.every_days, s.ends_on, start, end):
            c = checks.get((s.id, day))
            seen.add((s.id, day))
            out.append(core.DueDate(s.service, day, core.outcome_of(c.outcome if c else None,
                                                                   bool(c and c.status == CheckStatus.CLOSED.value)),
                                    c.asked if c else 0, answers.get(c.id, 0) if c else 0))
    for key, c in checks.items():
        if key not in seen:  # its schedule was ended since: the date was still promised
            closed = c.status == CheckStatus.CLOSED.value
            out.append(core.DueDate(c.service, c.due_on, core.outcome_of(c.outcome, closed), c.asked,
                                    answers.get(c.id, 0)))
    return out


def _case_lines(session: Session, cases: list[Case], as_of_end: datetime) -> tuple[list[core.CaseLine], list[int]]:
    """Cases as the brief lists them (state as it stood at `as_of_end`), and the officials they were sent to."""
    if not cases:
        return [], []
    ids = [c.id for c in cases]
    sent = session.execute(select(CaseEvent.case_id, CaseEvent.official_id, CaseEvent.at)
                           .where(CaseEvent.case_id.in_(ids), CaseEvent.kind.in_(("sent", "resent")),
                                  CaseEvent.official_id.is_not(None), CaseEvent.at < as_of_end)
                           .order_by(CaseEvent.at, CaseEvent.id)).all()
    officials = {o.id: o for o in session.scalars(
        select(Official).where(Official.id.in_({oid for _c, oid, _at in sent})))} if sent else {}
    asked: dict[int, list[core.Asked]] = {}
    for case_id, oid, at in sent:
        o = officials.get(oid)
        if o is not None:
            asked.setdefault(case_id, []).append(core.Asked(o.name, o.role, at.date()))
    lines = []
    for c in cases:
        finished = c.resolved_at or c.closed_at
        if finished is not None and finished < as_of_end:
            state = "resolved" if c.resolved_at is not None else "closed"
            days = core.days_between(c.opened_at, finished)
        else:
            state = "overdue" if is_overdue(c, as_of_end) else "open"
            days = core.days_between(c.opened_at, as_of_end - timedelta(seconds=1))
        lines.append(core.CaseLine(c.ref, c.service, c.status, state, c.opened_at.date(), days, c.report_count,
                                   tuple(asked.get(c.id, [])), c.promised_for))
    return lines, sorted(officials)


def _official_lines(session: Session, official_ids: list[int], since: datetime, until: datetime,
                    place: str | None) -> list[core.OfficialLine]:
    """The officials' answers over their cases (of this place, when given) in [since, until)."""
    if not official_ids:
        return []
    who = {o.id: (o.name, o.role) for o in session.scalars(select(Official).where(Official.id.in_(official_ids)))}
    q = select(CaseEvent).where(CaseEvent.official_id.in_(official_ids), CaseEvent.at >= since, CaseEvent.at < until)
    if place is not None:
        q = q.join(Case, Case.id == CaseEvent.case_id).where(Case.place == place)
    events = [core.Event(e.case_id, e.official_id, e.kind, e.at, e.actor.startswith("official:"))
              for e in session.scalars(q)]
    return core.responses(events, who)


def _verification(reports: list[Report]) -> Counter[str]:
    return Counter(r.verification for r in reports if r.verification)


def silent_places(session: Session, start: datetime, end: datetime, place: str | None = None) -> list[SilentPlace]:
    """Places with active, consenting supporters and, in [start, end), no report, or checks asked but no answer."""
    supporters = select(Contact.place, func.count()).where(
        Contact.status == ContactStatus.ACTIVE.value, Contact.consent_at.is_not(None), Contact.place.is_not(None))
    if place is not None:
        supporters = supporters.where(Contact.place == place)
    people: dict[str, int] = dict(session.execute(supporters.group_by(Contact.place)).all())  # type: ignore[arg-type]
    if not people:
        return []
    reports: dict[str, int] = dict(session.execute(select(Report.place, func.count()).where(
        Report.place.in_(list(people)), Report.created_at >= start, Report.created_at < end,
        or_(Report.source.is_(None), Report.source != SIMULATOR))
        .group_by(Report.place)).all())  # type: ignore[arg-type]
    checks = select(Check.place, func.count(func.distinct(Check.id)), func.count(CheckAsk.answer)).outerjoin(
        CheckAsk, CheckAsk.check_id == Check.id).where(
        Check.place.in_(list(people)), Check.asked > 0, Check.due_on >= start.date(), Check.due_on < end.date())
    asked = {p: (n, a) for p, n, a in session.execute(checks.group_by(Check.place))}
    out = []
    for p in sorted(people):
        n_checks, answers = asked.get(p, (0, 0))
        if not reports.get(p) or (n_checks and not answers):
            out.append(SilentPlace(p, people[p], reports.get(p, 0), n_checks, answers))
    return out


# --------------------------------------------------------------------------- the two briefs


def place_figures(session: Session, place: str, month: date, now: datetime | None = None) -> PlaceFigures:
    """Everything the brief of one place for one month shows (place already checked by known_place)."""
    now = now or utcnow()
    months = core.months_up_to(month)
    as_of = _as_of(month, now)
    start_d, end_d = months[0], as_of + timedelta(days=1)
    month_start, as_of_end = datetime.combine(month, time.min), _day_end(as_of)
    services = core.tally(_due(session, place, start_d, end_d), months)

    cases = list(session.scalars(select(Case).where(
        Case.place == place, Case.opened_at < as_of_end,
        or_(and_(Case.resolved_at.is_(None), Case.closed_at.is_(None)),
            func.coalesce(Case.resolved_at, Case.closed_at) >= month_start))
        .order_by(Case.opened_at, Case.ref)))
    lines, official_ids = _case_lines(session, cases, as_of_end)
    window_start = datetime.combine(start_d, time.min)
    officials = _official_lines(session, official_ids, window_start, as_of_end, place)

    # The console's simulator makes test reports, not evidence: they count nowhere in a brief.
    month_reports = list(session.scalars(select(Report).where(
        Report.place == place, Report.created_at >= month_start, Report.created_at < as_of_end,
        or_(Report.source.is_(None), Report.source != SIMULATOR))))
    pool = Counter(r.service for r in month_reports)
    said = [core.Said(r.service, r.details, r.created_at.date(), pool[r.service])
            for r in sorted(month_reports, key=lambda r: r.ref)]
    quotes = core.quotes(said, _names(session))

    checks = list(session.scalars(select(Check).where(
        Check.kind == CheckKind.DELIVERY.value, Check.place == place, Check.due_on >= start_d, Check.due_on < end_d,
        Check.asked > 0)))
    answered = session.scalar(select(func.count()).select_from(CheckAsk).where(
        CheckAsk.check_id.in_([c.id for c in checks]), CheckAsk.answer.is_not(None))) if checks else 0
    v = _verification(month_reports)
    method = Method(start_d, as_of, len(month_reports), sum(r.check_id is not None for r in month_reports),
                    len(checks), sum(c.asked for c in checks), answered or 0,
                    v["verified"], v["contested"], v["unverified"])
    silent = silent_places(session, month_start, as_of_end, place)
    answers: dict[str, Counter[str]] = {}
    for r in month_reports:
        answers.setdefault(r.service, Counter())[r.delivered if r.delivered in ("yes", "no", "partly") else "?"] += 1
    reported = tuple(Reported(k, c["yes"], c["no"], c["partly"], c["?"]) for k, c in sorted(answers.items()))
    return PlaceFigures(place, month.strftime("%Y-%m"), as_of, tuple(services), tuple(lines), tuple(officials),
                        tuple(quotes), method, silent[0] if silent else None, reported)


def case_figures(session: Session, case: Case, now: datetime | None = None) -> CaseFigures:
    """Everything the brief of one case shows."""
    now = now or utcnow()
    lines, official_ids = _case_lines(session, [case], now)
    reports = list(session.scalars(select(Report).join(CaseReport, CaseReport.report_id == Report.id)
                                   .where(CaseReport.case_id == case.id).order_by(Report.ref)))
    real = [r for r in reports if r.source != SIMULATOR]  # simulator tests neither quoted nor counted in the crowd
    said = [core.Said(r.service, r.details, r.created_at.date(), len(real)) for r in real]
    # Officials' records over every place, for six months: a fair rate needs enough cases.
    officials = _official_lines(session, official_ids, now - timedelta(days=183), now, None)
    corroboration = session.scalar(select(Check.outcome).where(
        Check.kind == CheckKind.CORROBORATE.value, Check.case_id == case.id,
        Check.status == CheckStatus.CLOSED.value).order_by(Check.closed_at.desc()).limit(1))
    delivered = Counter(r.delivered or "unknown" for r in reports)
    v = _verification(reports)
    return CaseFigures(lines[0], case.place, now.date(), tuple(sorted(delivered.items())), tuple(officials),
                       tuple(core.quotes(said, _names(session))), v["verified"], v["contested"], v["unverified"],
                       corroboration)


def make_brief(figures: PlaceFigures | CaseFigures, now: datetime | None = None) -> Brief:
    """The figures, stamped with the time and their fingerprint."""
    kind = "place" if isinstance(figures, PlaceFigures) else "case"
    return Brief(kind, figures, (now or utcnow()).replace(microsecond=0), core.fingerprint(figures))
