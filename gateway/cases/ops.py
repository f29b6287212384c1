"""Cases: opening, sending, escalating and closing, for the organizers (console, API, CLI) and the timer.

Every change goes through `_move` (the ladder in gateway/core/ladder.py decides) and leaves a
CaseEvent (who, when, a note) and an audit entry. Texts to officials and reporters are rows in the
outbox, enqueued once the caller's transaction commits. A case text carries counts, never a
reporter's name, number or words.
"""
from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from gateway.core import ladder
from gateway.core.caserules import CaseRules
from gateway.core.compose import quiet_until
from gateway.core.engine import REF_ALPHABET
from gateway.core.flowfile import FlowSet
from gateway.core.places import find_place
from gateway.models import (
    Case,
    CaseEvent,
    CaseReport,
    Contact,
    Message,
    Official,
    Report,
)
from gateway.outbound import oneoff
from gateway.people import audit

logger = logging.getLogger(__name__)
SYSTEM = "system"


class CaseError(ValueError):
    """A move the ladder refuses, or an operation that makes no sense; the message is a sentence."""


# ---------------------------------------------------------------- the environment


def env(session: Session) -> Any:
    """The gateway's services: from the session (gateway/factory.py puts them there), else the app's."""
    found = session.info.get("services")
    if found is not None:
        return found
    from gateway import (
        services,  # local: the app context is only there in requests and commands
    )

    return services()


def flows_of(session: Session) -> FlowSet:
    return env(session).flows  # type: ignore[no-any-return]


def rules_of(session: Session) -> CaseRules:
    """flows/cases.yaml, as create_app loaded it with the flows (checked at start and by `flows check`)."""
    return env(session).case_rules  # type: ignore[no-any-return]


def timezone_of(session: Session, case: Case) -> ZoneInfo:
    """The place's time zone (its gazetteer's); UTC when the place is not in one."""
    flows = flows_of(session)
    place = find_place(case.place, flows.gazetteers.values()) if case.place else None
    if place is not None:
        return ZoneInfo(place.timezone)
    for g in flows.gazetteers.values():
        if case.country and g.country == case.country:
            return ZoneInfo(g.timezone)
    return ZoneInfo("UTC")


def privacy_day(when: datetime) -> datetime:
    """Midnight of that day (anonymous reports keep only their day: a window starts at a day's start)."""
    return when.replace(hour=0, minute=0, second=0, microsecond=0)


def local_today(session: Session, case: Case, now: datetime) -> date:
    return now.replace(tzinfo=ZoneInfo("UTC")).astimezone(timezone_of(session, case)).date()


def end_of_local_day(session: Session, case: Case, day: date) -> datetime:
    """The naive-UTC moment a local day ends in the case's place (deadlines end at local midnight)."""
    zone = timezone_of(session, case)
    ends = datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=zone)
    return ends.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)


# ---------------------------------------------------------------- records


def new_case_ref(session: Session) -> str:
    """A case reference: C and four characters a person can read out and retype (C7K2P)."""
    while True:
        ref = "C" + "".join(secrets.choice(REF_ALPHABET) for _ in range(4))
        if session.scalar(select(Case.id).where(Case.ref == ref)) is None:
            return ref


def record(session: Session, case: Case, kind: str, *, actor: str, now: datetime, note: str | None = None,
           official_id: int | None = None, message_id: int | None = None) -> CaseEvent:
    """One line of the case's timeline, and its audit entry."""
    ev = CaseEvent(case_id=case.id, at=now, kind=kind, status=case.status, actor=actor[:160], note=note,
                   official_id=official_id, message_id=message_id)
    session.add(ev)
    audit.record(session, actor[:254], f"case.{kind}"[:40], case=case.ref, status=case.status,
                 **({"note": note} if note else {}))
    session.flush()
    if kind == "opened":  # however it opened, a few other supporters of the place are asked if it is right
        from gateway.evidence import checks  # local: the evidence package imports this module

        checks.corroborate(session, case, now)
    return ev


def move(session: Session, case: Case, to: str, kind: str, *, actor: str, now: datetime,
         note: str | None = None, official_id: int | None = None, message_id: int | None = None) -> CaseEvent:
    """Move a case along its ladder, or raise CaseError with a sentence."""
    if not ladder.can_move(case.status, to):
        raise CaseError(f"Case {case.ref} is {case.status}: it cannot become {to}.")
    case.status, case.updated_at = to, now
    return record(session, case, kind, actor=actor, now=now, note=note, official_id=official_id,
                  message_id=message_id)


def timeline(session: Session, case: Case) -> list[CaseEvent]:
    """Every change of a case, oldest first."""
    return list(session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)
                                .order_by(CaseEvent.at, CaseEvent.id)))


def report_ids_of(session: Session, case: Case) -> list[int]:
    return list(session.scalars(select(CaseReport.report_id).where(CaseReport.case_id == case.id)))


def _recount(session: Session, case: Case) -> None:
    case.report_count = session.scalar(select(func.count()).select_from(CaseReport)
                                       .where(CaseReport.case_id == case.id)) or 0


def case_of_report(session: Session, report_id: int) -> Case | None:
    return session.scalars(select(Case).join(CaseReport, CaseReport.case_id == Case.id)
                           .where(CaseReport.report_id == report_id)).first()


def _link(session: Session, case: Case, report_ids: Iterable[int]) -> None:
    for rid in report_ids:
        session.add(CaseReport(case_id=case.id, report_id=rid))
    session.flush()
    _recount(session, case)


# ---------------------------------------------------------------- officials


def official_for(session: Session, place: str, service: str, level: int) -> Official | None:
    """The active official at this rung for the place and service (one who names them before one for any)."""
    found = [o for o in session.scalars(select(Official).where(Official.active.is_(True), Official.level == level)
                                        .order_by(Official.id))
             if (not o.places or place in o.places) and (not o.services or service in o.services)]
    found.sort(key=lambda o: (not o.places, not o.services))
    return found[0] if found else None


# ---------------------------------------------------------------- texts


def say(flows: FlowSet, name: str, language: str | None, **values: Any) -> str:
    """A system text (flows/system.yaml) in a language, placeholders filled.

    A text missing from the flow files raises CaseError naming it: an empty SMS is never sent.
    """
    texts = flows.system.texts.get(name) or {}
    text = flows.text(texts, language or flows.default_language) if texts else ""
    if not text.strip():
        raise CaseError(f"flows/system.yaml has no text {name!r}: add it (flows check measures it)")
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    return text.strip()


def service_word(flows: FlowSet, service: str, language: str | None) -> str:
    """A service as the report flow names it in a language ('clinica' for clinic in es)."""
    flow = flows.flows.get("report")
    for step in flow.steps if flow else ():
        choices = getattr(step, "choices", None)
        if getattr(step, "id", None) == "service" and choices and service in choices:
            words = choices[service].get(language or "", ()) or choices[service].get("en", ())
            named = [str(w) for w in words if not str(w).isdigit()]
            if named:
                return named[0]
    return service


def short_date(day: date) -> str:
    return f"{day.day}/{day.month}"


def case_values(session: Session, case: Case, language: str | None) -> dict[str, Any]:
    """What a case text may say: counts, place, service, since when, the reference. Never a reporter."""
    first = session.scalar(select(func.min(Report.created_at)).join(CaseReport, CaseReport.report_id == Report.id)
                           .where(CaseReport.case_id == case.id))
    since = (first or case.opened_at).replace(tzinfo=ZoneInfo("UTC")).astimezone(timezone_of(session, case)).date()
    return {"org": env(session).settings.org_name, "count": case.report_count, "place": case.place,
            "service": service_word(flows_of(session), case.service, language), "since": short_date(since),
            "case": case.ref, "date": short_date(case.promised_for) if case.promised_for else ""}


def queue_to(session: Session, contact: Contact, body: str, now: datetime, *, case: Case | None = None) -> Message:
    """One outbox row to a contact, held to the end of quiet hours in the place's time zone."""
    svc = env(session)
    row = oneoff.queue_text(session, contact, body, provider=svc.provider.name, sender=None)
    if case is not None and svc.settings.quiet_hours is not None:
        row.send_after = quiet_until(now, timezone_of(session, case).key, svc.settings.quiet_hours)
    enqueue_after_commit(session, [row.id])
    return row


_PENDING = "cases_enqueue"


def enqueue_after_commit(session: Session, ids: list[int]) -> None:
    """Hand these rows to the workers once the caller commits (the reconciler catches any missed)."""
    pending = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = []
        event.listen(session, "after_commit", _enqueue_pending, once=True)
        event.listen(session, "after_rollback", _forget_pending, once=True)
    pending.extend(ids)


def _enqueue_pending(session: Session) -> None:
    ids = session.info.pop(_PENDING, None) or []
    if ids:
        oneoff.enqueue(session.info.get("redis") or env(session).redis, ids)


def _forget_pending(session: Session) -> None:
    if not session.in_transaction():
        session.info.pop(_PENDING, None)


# ---------------------------------------------------------------- organizer operations


def open_by_hand(session: Session, *, place: str, service: str, report_ids: list[int], actor: str,
                 now: datetime) -> Case:
    """An organizer opens a case for these reports (none may already be in a case); it is not sent yet."""
    place, service = place.strip(), service.strip().lower()
    if not place or not service:
        raise CaseError("A case needs a place and a service.")
    reports = _reports(session, report_ids)
    case = Case(ref=new_case_ref(session), place=place[:80], service=service[:40], status=ladder.OPEN, level=1,
                country=next((r.country for r in reports if r.country), None), opened_at=now, updated_at=now)
    session.add(case)
    session.flush()
    _link(session, case, [r.id for r in reports])
    record(session, case, "opened", actor=actor, now=now, note=f"opened by hand with {len(reports)} report(s)")
    return case


def _reports(session: Session, report_ids: Iterable[int]) -> list[Report]:
    ids = list(dict.fromkeys(int(i) for i in report_ids))
    reports = list(session.scalars(select(Report).where(Report.id.in_(ids)))) if ids else []
    if len(reports) != len(ids):
        raise CaseError("Some of those reports do not exist.")
    taken = session.scalars(select(CaseReport).where(CaseReport.report_id.in_(ids))).first() if ids else None
    if taken is not None:
        raise CaseError("A report can be in one case only; one of those is already in a case.")
    return reports


def merge(session: Session, into: Case, other: Case, *, actor: str, now: datetime) -> Case:
    """Move every report of `other` into `into`; `other` is closed with a note pointing to `into`."""
    if into.id == other.id:
        raise CaseError("A case cannot be merged into itself.")
    if into.status == ladder.CLOSED:
        raise CaseError(f"Case {into.ref} is closed: reopen it before merging into it.")
    if not ladder.can_move(other.status, ladder.CLOSED):
        raise CaseError(f"Case {other.ref} is {other.status}: it cannot be closed by a merge.")
    moved = report_ids_of(session, other)
    for link in session.scalars(select(CaseReport).where(CaseReport.case_id == other.id)):
        session.delete(link)
    session.flush()
    _link(session, into, moved)
    _recount(session, other)
    other.closed_at, other.deadline_at = now, None
    move(session, other, ladder.CLOSED, "merged", actor=actor, now=now, note=f"merged into {into.ref}")
    into.updated_at = now
    record(session, into, "merged", actor=actor, now=now, note=f"{len(moved)} report(s) from {other.ref}")
    return into


def split(session: Session, case: Case, report_ids: list[int], *, actor: str, now: datetime) -> Case:
    """Move some of a case's reports to a new case (open, not sent); returns the new case."""
    ids = list(dict.fromkeys(int(i) for i in report_ids))
    mine = set(report_ids_of(session, case))
    if not ids or not set(ids) <= mine:
        raise CaseError(f"Choose reports that are in case {case.ref}.")
    if set(ids) == mine:
        raise CaseError(f"Leave at least one report in case {case.ref}.")
    for link in session.scalars(select(CaseReport).where(CaseReport.case_id == case.id,
                                                         CaseReport.report_id.in_(ids))):
        session.delete(link)
    session.flush()
    _recount(session, case)
    new = Case(ref=new_case_ref(session), place=case.place, service=case.service, country=case.country,
               status=ladder.OPEN, level=1, opened_at=now, updated_at=now)
    session.add(new)
    session.flush()
    _link(session, new, ids)
    case.updated_at = now
    record(session, case, "split", actor=actor, now=now, note=f"{len(ids)} report(s) moved to {new.ref}")
    record(session, new, "opened", actor=actor, now=now, note=f"split from {case.ref} with {len(ids)} report(s)")
    return new


def send(session: Session, case: Case, *, actor: str, now: datetime) -> Message | None:
    """Text the case to its official at its rung (again, if already sent); None when no official answers
    for its place and service at that rung (an event says so)."""
    return _send(session, case, actor=actor, now=now, text="case_sent")


def _send(session: Session, case: Case, *, actor: str, now: datetime, text: str,
          history: dict[str, Any] | None = None, note: str | None = None) -> Message | None:
    official = official_for(session, case.place, case.service, case.level)
    if official is None:
        record(session, case, "no_official", actor=actor, now=now,
               note=note or f"no official at rung {case.level} for {case.service} in {case.place}")
        return None
    resend = case.status in (ladder.SENT, ladder.ACKNOWLEDGED, ladder.PROMISED)
    if not resend and not ladder.can_move(case.status, ladder.SENT):
        raise CaseError(f"Case {case.ref} is {case.status}: it cannot be sent.")
    contact = session.get(Contact, official.contact_id)
    if contact is None or contact.status != "active":
        record(session, case, "no_official", actor=actor, now=now,
               note=f"{official.role} {official.name} cannot be texted (their phone stopped or was blocked)")
        return None
    if case.status == ladder.DISPUTED and text == "case_sent":
        text = "case_disputed"
    values = {**case_values(session, case, official.language), **(history or {})}
    body = say(flows_of(session), text, official.language, **values)
    row = queue_to(session, contact, body, now, case=case)
    days = rules_of(session).for_service(case.service).days_at(case.level)
    case.official_id, case.sent_at = official.id, now
    if not resend or case.status == ladder.SENT:  # sent again by hand: an answer's deadline stays
        case.deadline_at = end_of_local_day(session, case, local_today(session, case, now) + timedelta(days=days))
    case.updated_at = now
    kind = "resent" if resend else "sent"
    what = note or f"sent to {official.role} {official.name} (rung {case.level}); {days} days to acknowledge"
    if resend:
        record(session, case, kind, actor=actor, now=now, note=what, official_id=official.id, message_id=row.id)
    else:
        case.acknowledged_at = None
        move(session, case, ladder.SENT, kind, actor=actor, now=now, note=what, official_id=official.id,
             message_id=row.id)
    return row


def escalate(session: Session, case: Case, *, actor: str, now: datetime, note: str | None = None) -> Case:
    """Send the case to the next rung, the history in the text; CaseError when there is none."""
    if case.status in (ladder.OPEN, ladder.RESOLVED, ladder.CLOSED):
        raise CaseError(f"Case {case.ref} is {case.status}: only a case sent to an official can be escalated.")
    if official_for(session, case.place, case.service, case.level + 1) is None:
        raise CaseError(f"No official above rung {case.level} answers for {case.service} in {case.place}; "
                        "import one with a higher level.")
    why = "promise" if case.status == ladder.PROMISED else "ack"
    escalate_up(session, case, actor=actor, now=now, why=why, note=note)
    return case


def escalate_up(session: Session, case: Case, *, actor: str, now: datetime, why: str,
                note: str | None = None) -> Message | None:
    """Overdue (if not already), then up one rung with the history; the caller has checked the rung exists."""
    before = session.get(Official, case.official_id) if case.official_id else None
    role = before.role if before else "official"
    days = rules_of(session).for_service(case.service).days_at(case.level)
    if case.status != ladder.OVERDUE:
        move(session, case, ladder.OVERDUE, "overdue", actor=actor, now=now, note=note or _why(why, role, days, case))
    case.level += 1
    official = official_for(session, case.place, case.service, case.level)
    history = {"role": role, "days": days}
    text = {"promise": "case_escalated_promise", "date": "case_escalated_nodate"}.get(why, "case_escalated")
    return _send(session, case, actor=actor, now=now, text=text, history=history,
                 note=(f"escalated to {official.role} {official.name} (rung {case.level}): "
                       f"{_why(why, role, days, case)}" if official else None))


def _why(why: str, role: str, days: int, case: Case) -> str:
    if why == "promise":
        return f"promised for {short_date(case.promised_for)} by the {role}, not done" if case.promised_for \
            else f"promise by the {role} not kept"
    if why == "date":
        return f"acknowledged by the {role}, but no date promised in {days} days"
    return f"not acknowledged by the {role} in {days} days"


def close(session: Session, case: Case, *, actor: str, note: str, now: datetime, resolved: bool = False) -> Case:
    """Close a case with a note (resolved: named reporters are told, and may still dispute it)."""
    if not note or not note.strip():
        raise CaseError("Say why the case is closed (a note).")
    to = ladder.RESOLVED if resolved else ladder.CLOSED
    move(session, case, to, "resolved" if resolved else "closed", actor=actor, now=now, note=note.strip())
    case.deadline_at = None
    if resolved:
        case.resolved_at = now
        from gateway.cases.notify import (
            tell_reporters,  # local: notify imports this module
        )

        tell_reporters(session, case, "reporter_resolved", now)
    else:
        case.closed_at = now
    return case


def reopen(session: Session, case: Case, *, actor: str, now: datetime, note: str | None = None) -> Case:
    """A closed case opens again (not sent yet)."""
    move(session, case, ladder.OPEN, "reopened", actor=actor, now=now, note=note)
    case.closed_at, case.level = None, 1
    return case
