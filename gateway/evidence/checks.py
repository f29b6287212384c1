"""The checks' timer: a check per due date, the question to a rotating sample, and the tally at the end.

`tick(session, now)` runs each minute in the workers (gateway/outbound/jobs.py cases_tick) and on
demand (`flask --app app checks tick [--at]`). It
1. opens a delivery check for each due date of each active schedule (one per schedule and date,
   due dates up to LOOKBACK days back, so a tick that did not run still leaves the date counted);
2. asks the pending checks whose time has come, on their due day only and never in the place's
   quiet hours: at most sample_size active supporters of the place who follow the service, the
   least recently asked first, none twice for one check, officials and (corroboration) the case's
   own reporters never; one SMS each, in their language;
3. closes a check when everyone asked has answered or WINDOW has passed, with its outcome.
"""
from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.cases import ops
from gateway.core import schedule as rules
from gateway.core.compose import quiet_until
from gateway.evidence.schedules import question, timezone_of
from gateway.models import (
    Case,
    CaseReport,
    Check,
    CheckAsk,
    CheckKind,
    CheckStatus,
    Contact,
    ContactTag,
    Conversation,
    Official,
    Report,
    ServiceSchedule,
)
from gateway.outbound import oneoff

logger = logging.getLogger(__name__)
WINDOW = timedelta(hours=48)  # answers counted this long after the question went out
LOOKBACK = 31  # days of due dates a late tick still opens checks for (they close unasked: no_answer)
CORROBORATE_SAMPLE = 5  # other supporters asked whether a new case's reports are right


def tick(session: Session, now: datetime) -> dict[str, int]:
    """Open due checks, ask those whose time has come, close those that are done; counts of each."""
    opened = open_due(session, now)
    asked = closed = 0
    # Close first: a question whose time is up no longer keeps its supporters from being asked again.
    for check in _locked(session, select(Check).where(Check.status == CheckStatus.ASKED.value).order_by(Check.id)):
        if now >= (check.asked_at or now) + WINDOW or answered(session, check) >= check.asked:
            close(session, check, now)
            closed += 1
    for check in _locked(session, select(Check).where(Check.status == CheckStatus.PENDING.value,
                                                      Check.ask_after <= now).order_by(Check.ask_after, Check.id)):
        got = ask(session, check, now)
        asked += got if got > 0 else 0
        closed += got < 0
    return {"opened": opened, "asked": asked, "closed": closed}


def _locked(session: Session, query: Select[tuple[Check]]) -> list[Check]:
    """The checks, locked where the database can: two workers never ask or close one check twice."""
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def open_due(session: Session, now: datetime) -> int:
    """A pending check for each due date, up to today in the place's calendar, that has none yet."""
    made = 0
    for s in session.scalars(select(ServiceSchedule).where(ServiceSchedule.active.is_(True))
                             .order_by(ServiceSchedule.id)):
        zone = timezone_of(session, s.place, s.country)
        today = rules.local_day(now, zone)
        first = max(s.starts_on, today - timedelta(days=LOOKBACK))
        plan = rules.Plan(s.starts_on, s.every_days, s.ends_on)
        days = plan.due_between(first, today)
        if not days:
            continue
        have = set(session.scalars(select(Check.due_on).where(Check.schedule_id == s.id, Check.due_on.in_(days))))
        for day in days:
            if day in have:
                continue
            # Savepoint: another worker may open the same check at once (uq_checks_schedule_due_on).
            try:
                with session.begin_nested():
                    session.add(Check(kind=CheckKind.DELIVERY.value, schedule_id=s.id, place=s.place,
                                      country=s.country, service=s.service, due_on=day,
                                      ask_after=rules.ask_after(day, s.check_at, zone), created_at=now))
                made += 1
            except IntegrityError:  # the other worker's check stands
                logger.info("check for schedule %s on %s already opened", s.id, day)
    session.flush()
    return made


def corroborate(session: Session, case: Case, now: datetime) -> Check | None:
    """A corroboration check for a case that just opened (asked at the next tick)."""
    if not case.report_count:
        return None
    zone = timezone_of(session, case.place, case.country)
    check = Check(kind=CheckKind.CORROBORATE.value, case_id=case.id, place=case.place, country=case.country,
                  service=case.service, due_on=rules.local_day(now, zone), ask_after=now, created_at=now)
    session.add(check)
    session.flush()
    # Its reports are unverified until the answers say more.
    for report in session.scalars(select(Report).join(CaseReport, CaseReport.report_id == Report.id)
                                  .where(CaseReport.case_id == case.id)):
        report.verification = rules.UNVERIFIED
    return check


def candidates(session: Session, check: Check, now: datetime) -> list[rules.Candidate]:
    """Supporters of the check's place who follow its service and may be texted, with when they were last asked.

    Not those a reply would be read for something else: anyone with a question still open (their "1"
    would answer the latest question, whatever they meant) or in the middle of a conversation (a report
    half-written: their "1" answers its step).
    """
    follow = select(ContactTag.contact_id).where(ContactTag.tag.in_(rules.follows(check.service)))
    officials = select(Official.contact_id)
    waiting = (select(CheckAsk.contact_id).join(Check, Check.id == CheckAsk.check_id)
               .where(CheckAsk.answer.is_(None), Check.status == CheckStatus.ASKED.value))
    talking = select(Conversation.contact_id).where(Conversation.closed_at.is_(None), Conversation.expires_at > now)
    rows = session.execute(
        select(Contact.id, func.max(CheckAsk.asked_at))
        .outerjoin(CheckAsk, CheckAsk.contact_id == Contact.id)
        .where(Contact.status == "active", Contact.consent_at.is_not(None), Contact.place == check.place,
               Contact.id.in_(follow), Contact.id.not_in(officials), Contact.id.not_in(waiting),
               Contact.id.not_in(talking))
        .group_by(Contact.id)).all()
    return [rules.Candidate(cid, last) for cid, last in rows]


def reporters_of(session: Session, case_id: int | None) -> set[int]:
    """Contacts who made a case's reports: never asked to corroborate it (anonymous reports name nobody)."""
    if case_id is None:
        return set()
    return set(session.scalars(
        select(Report.contact_id).join(CaseReport, CaseReport.report_id == Report.id)
        .where(CaseReport.case_id == case_id, Report.contact_id.is_not(None))))


def ask(session: Session, check: Check, now: datetime) -> int:
    """Ask the check's sample now: how many were asked; 0 to wait (quiet hours); -1 when it closed unasked."""
    zone = timezone_of(session, check.place, check.country)
    today = rules.local_day(now, zone)
    if check.kind == CheckKind.DELIVERY.value and today > check.due_on:
        close(session, check, now)  # "did it come today?" cannot be asked the next day
        return -1
    quiet = ops.env(session).settings.quiet_hours
    if quiet_until(now, zone, quiet) is not None:
        return 0  # asked when the quiet hours end, if still on the due day
    schedule = session.get(ServiceSchedule, check.schedule_id) if check.schedule_id else None
    size = schedule.sample_size if schedule else CORROBORATE_SAMPLE
    asked_before = set(session.scalars(select(CheckAsk.contact_id).where(CheckAsk.check_id == check.id)))
    exclude = asked_before | reporters_of(session, check.case_id if check.kind == CheckKind.CORROBORATE.value
                                          else None)
    chosen = rules.pick(candidates(session, check, now), size - len(asked_before), exclude)
    if not chosen and not asked_before:
        close(session, check, now)
        logger.info("check %s: nobody to ask in %s about %s", check.id, check.place, check.service)
        return -1
    labels = (schedule.labels if schedule else _labels_for(session, check)) or {}
    text = "check_ask" if check.kind == CheckKind.DELIVERY.value else "corroborate_ask"
    flows = ops.flows_of(session)
    svc = ops.env(session)
    contacts = list(session.scalars(select(Contact).where(Contact.id.in_(chosen)).order_by(Contact.id)))
    # One question per language: the supporters asked share a handful of languages.
    bodies = {lang: question(session, text, check.place, labels, check.service, lang)
              for lang in {c.language or flows.default_language for c in contacts}}
    too_long = sorted(b for b in bodies.values() if not rules.one_segment(b))
    if too_long:
        # The schedule passed when made; ORG_NAME or a text changed since. Two SMS per supporter is not
        # sent: the check closes unasked and the organizers see why in the log.
        close(session, check, now)
        logger.error("check %s: not asked, the question is longer than one SMS: %r", check.id, too_long[0][:80])
        return -1
    ids = []
    for contact in contacts:
        body = bodies[contact.language or flows.default_language]
        row = oneoff.queue_text(session, contact, body, provider=svc.provider.name, sender=None)
        row.send_after = quiet_until(now, timezone_of(session, contact.place, contact.country), quiet)
        session.add(CheckAsk(check_id=check.id, contact_id=contact.id, asked_at=now, message_id=row.id))
        ids.append(row.id)
    session.flush()
    ops.enqueue_after_commit(session, ids)
    check.status, check.asked, check.asked_at = CheckStatus.ASKED.value, len(asked_before) + len(ids), now
    logger.info("check %s (%s, %s in %s): %d supporters asked", check.id, check.kind, check.service, check.place,
                len(ids))
    return len(ids)


def _labels_for(session: Session, check: Check) -> dict[str, str]:
    """A corroboration names the service as an active schedule of the place labels it, if one does."""
    row = session.scalars(select(ServiceSchedule).where(ServiceSchedule.place == check.place,
                                                        ServiceSchedule.service == check.service)
                          .order_by(ServiceSchedule.active.desc(), ServiceSchedule.id.desc())).first()
    return dict(row.labels or {}) if row else {}


def answers_of(session: Session, check: Check) -> list[str | None]:
    return list(session.scalars(select(CheckAsk.answer).where(CheckAsk.check_id == check.id)))


def answered(session: Session, check: Check) -> int:
    return sum(1 for a in answers_of(session, check) if a is not None)


def tally(session: Session, check: Check) -> rules.Tally:
    return rules.Tally.of(check.asked, answers_of(session, check))


def label_reports(session: Session, check: Check) -> str:
    """Label every report of the corroborated case from the answers so far; the label."""
    label = rules.verification(tally(session, check))
    for report in session.scalars(select(Report).join(CaseReport, CaseReport.report_id == Report.id)
                                  .where(CaseReport.case_id == check.case_id)):
        report.verification = label
    return label


def corroboration_of(session: Session, case_id: int) -> tuple[Check, rules.Tally] | None:
    """The case's latest corroboration and its answers so far (for the case page), if it has one."""
    check = session.scalars(select(Check).where(Check.case_id == case_id,
                                                Check.kind == CheckKind.CORROBORATE.value)
                            .order_by(Check.id.desc())).first()
    return (check, tally(session, check)) if check is not None else None


def close(session: Session, check: Check, now: datetime) -> None:
    """Final outcome: a delivery outcome, or the corroboration's label on the case's reports."""
    if check.kind == CheckKind.CORROBORATE.value:
        check.outcome = label_reports(session, check) if check.case_id else rules.UNVERIFIED
    else:
        check.outcome = rules.delivery_outcome(tally(session, check))
    check.status, check.closed_at = CheckStatus.CLOSED.value, now
    session.flush()


def new_report_id(session: Session) -> int:
    """A random report id (a sequential one would date a report), as the inbound path draws them."""
    while True:
        report_id = secrets.randbelow(2**31 - 1) + 1
        if session.get(Report, report_id) is None:
            return report_id


def describe(check: Check) -> dict[str, Any]:
    """A check for the CLI and logs: no contact."""
    return {"id": check.id, "kind": check.kind, "place": check.place, "service": check.service,
            "due_on": check.due_on.isoformat(), "status": check.status, "asked": check.asked,
            "outcome": check.outcome}
