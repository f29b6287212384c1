"""Case words by SMS: a reporter's STATUS / NO <ref>, an official's ACK / PROMISE / DONE <ref>.

The pure engine reads the words (engine.CaseCommand); this applies one and returns its one reply.
An official's word counts only from the registered number of the case's current official; anyone
else is refused politely and nothing changes. A reporter's STATUS or NO is a private exchange: the
inbound path forgets it (gateway/people/privacy.py) so no row ties the reference to the phone.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.cases import ops
from gateway.cases.notify import tell_reporters
from gateway.core import ladder
from gateway.core.dates import parse_date
from gateway.core.engine import CaseCommand
from gateway.core.flowfile import FlowSet
from gateway.models import Case, Contact, Report
from gateway.people.officials import official_of_contact

logger = logging.getLogger(__name__)


def apply(session: Session, contact: Contact, command: CaseCommand, flows: FlowSet, now: datetime,
          message_id: int | None = None) -> list[str] | None:
    """Apply one case word; the reply to send back (one SMS). None for a NO followed by no known
    reference ("NO THANKS"): it was not a dispute, and goes to the organizers' inbox."""
    if command.verb == "dispute" and session.scalar(select(Report.id).where(Report.ref == command.ref)) is None:
        return None
    if command.verb in ("status", "dispute"):
        return [_reporter(session, contact, command, flows, now)]
    return [_official(session, contact, command, flows, now, message_id)]


# ---------------------------------------------------------------- reporters


def _reporter(session: Session, contact: Contact, command: CaseCommand, flows: FlowSet, now: datetime) -> str:
    report = session.scalars(select(Report).where(Report.ref == command.ref)).first() if command.ref else None
    if report is None:
        return ops.say(flows, "status_unknown", command.language, ref=command.ref or "?")
    # NO is English and Spanish: a phone with no language of its own is answered in its report's.
    lang = contact.language or report.language or command.language
    case = ops.case_of_report(session, report.id)
    if case is None:
        return ops.say(flows, "status_none", lang, ref=report.ref)
    values = {**ops.case_values(session, case, lang), "ref": report.ref}
    if command.verb == "status":
        return ops.say(flows, f"status_{case.status}", lang, **values)
    if case.status != ladder.RESOLVED:
        return ops.say(flows, "dispute_refused", lang, **values)
    ops.move(session, case, ladder.DISPUTED, "disputed", actor="reporter", now=now,
             note="a reporter says it is not resolved; sent to the official again and the organizers told")
    case.resolved_at = None
    logger.warning("case %s disputed by a reporter: sent to its official again", case.ref)
    ops._send(session, case, actor=ops.SYSTEM, now=now, text="case_disputed")
    return ops.say(flows, "dispute_ok", lang, **values)


# ---------------------------------------------------------------- officials


def _official(session: Session, contact: Contact, command: CaseCommand, flows: FlowSet, now: datetime,
              message_id: int | None) -> str:
    lang = command.language
    case = session.scalars(select(Case).where(Case.ref == command.ref)).first() if command.ref else None
    if case is None:
        return ops.say(flows, "case_bad_ref", lang, case=command.ref or "?")
    official = official_of_contact(session, contact.id)
    values = ops.case_values(session, case, lang)
    if official is None or case.official_id != official.id or not official.active:
        logger.info("case %s: %s refused: not from the case's official", case.ref, command.verb)
        return ops.say(flows, "case_not_yours", lang, **values)
    lang = official.language or lang
    values = ops.case_values(session, case, lang)
    actor = f"official:{official.id}"
    target = {"ack": ladder.ACKNOWLEDGED, "promise": ladder.PROMISED, "done": ladder.RESOLVED}[command.verb]
    if not ladder.can_move(case.status, target):
        return ops.say(flows, "case_refused", lang, **values, status=case.status)
    if command.verb == "ack":
        case.acknowledged_at = now
        # The same number of days again to promise a date (or say DONE); then it goes up a rung.
        days = ops.rules_of(session).for_service(case.service).days_at(case.level)
        today = ops.local_today(session, case, now)
        case.deadline_at = ops.end_of_local_day(session, case, today + timedelta(days=days))
        ops.move(session, case, target, "acknowledged", actor=actor, now=now, official_id=official.id,
                 message_id=message_id)
        return ops.say(flows, "case_ack_ok", lang, **values)
    if command.verb == "promise":
        day = parse_date(command.rest, ops.local_today(session, case, now))
        if day is None:
            return ops.say(flows, "case_bad_date", lang, **values)
        case.promised_for, case.promised_at = day, now
        case.deadline_at = ops.end_of_local_day(session, case, day)
        ops.move(session, case, target, "promised", actor=actor, now=now, official_id=official.id,
                 message_id=message_id, note=f"promised for {day.isoformat()}")
        tell_reporters(session, case, "reporter_promised", now)
        from gateway.evidence import schedules  # local: the evidence package imports this one

        schedules.from_promise(session, case, day, official.id, now)  # the promised day is checked like any
        return ops.say(flows, "case_promise_ok", lang, **ops.case_values(session, case, lang))
    case.resolved_at, case.deadline_at = now, None
    ops.move(session, case, target, "resolved", actor=actor, now=now, official_id=official.id, message_id=message_id)
    tell_reporters(session, case, "reporter_resolved", now)
    return ops.say(flows, "case_done_ok", lang, **values)
