"""A supporter's answer to a check: a report for a delivery check, a label for a corroboration.

The engine reads the words (engine.CheckAnswer, when `state_of` says a check asked this contact);
this applies one and returns the one reply. An answer counts once: a second one, or one after its
check closed, gets a polite reply and changes nothing. Enough "no" answers to one due date open a
case through gateway/cases (the check's reports join it); later ones join the open case.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from gateway.cases import joining, ops
from gateway.core import schedule as rules
from gateway.core.answers import tokenize
from gateway.core.engine import CheckAnswer, check_answer, new_ref
from gateway.core.flowfile import FlowSet
from gateway.evidence import checks
from gateway.evidence.checks import WINDOW
from gateway.models import (
    CaseReport,
    Check,
    CheckAsk,
    CheckKind,
    CheckStatus,
    Contact,
    Message,
    Report,
    ServiceSchedule,
)
from gateway.people import privacy

logger = logging.getLogger(__name__)
LATE = WINDOW + timedelta(days=1)  # an answer this long after the question is still told it was not needed
# state_of's two reads, built once (the inbound path runs them per answer word: receive.py says why)
_WAITING = (select(CheckAsk.check_id).join(Check, Check.id == CheckAsk.check_id)
            .where(CheckAsk.contact_id == bindparam("contact_id"), CheckAsk.answer.is_(None),
                   Check.status == CheckStatus.ASKED.value).limit(1))
_RECENT = select(CheckAsk.check_id).where(CheckAsk.contact_id == bindparam("contact_id"),
                                          CheckAsk.asked_at >= bindparam("since")).limit(1)


def state_of(session: Session, contact_id: int, body: str, flows: FlowSet, now: datetime) -> str | None:
    """'open' when a check awaits this contact's answer, 'late' when the last one closed or was answered
    recently, None otherwise. Costs no query unless the text starts with an answer word."""
    tokens = tokenize(body)
    first = tokens[0].folded if tokens else ""
    if check_answer(flows, first) is None:
        return None
    waiting = session.scalar(_WAITING, {"contact_id": contact_id})
    if waiting is not None:
        return "open"  # until the tick closes its check, whatever the clock says (a replayed or simulated day)
    recent = session.scalar(_RECENT, {"contact_id": contact_id, "since": now - LATE})
    return "late" if recent is not None else None


def apply(session: Session, contact: Contact, message: Message, answer: CheckAnswer, flows: FlowSet,
          now: datetime) -> list[str]:
    """Record the answer (once) and return the one reply."""
    lang = contact.language or answer.language
    ask = session.scalars(select(CheckAsk).join(Check, Check.id == CheckAsk.check_id)
                          .where(CheckAsk.contact_id == contact.id, CheckAsk.answer.is_(None),
                                 Check.status == CheckStatus.ASKED.value)
                          .order_by(CheckAsk.asked_at.desc(), CheckAsk.check_id.desc())
                          .with_for_update()).first()
    if ask is None:
        return [ops.say(flows, "check_late", lang)]
    check = session.get(Check, ask.check_id, with_for_update=True)
    assert check is not None
    ask.answer, ask.answered_at = answer.answer, now
    if check.kind == CheckKind.DELIVERY.value:
        _report(session, message, check, answer.answer, lang, now)  # not linked back: see _report
    else:
        checks.label_reports(session, check)  # the label follows the answers as they come
    session.flush()
    if checks.answered(session, check) >= check.asked:
        checks.close(session, check, now)  # everyone asked has answered: no need to wait
    return [ops.say(flows, "check_thanks", lang)]


def _report(session: Session, message: Message, check: Check, answer: str, lang: str, now: datetime) -> Report:
    """The answer as a report of the place and service, naming nobody; it may join or open a case.

    Stored as an anonymous report is (gateway/inbound/receive.py _save_report): no contact, the day only,
    and the CheckAsk does not point at it. So the supporter's name is on no Reports page, no contact id in
    the API, and nobody is texted when the case moves: they answered a question, they did not ask to be
    a reporter. The CheckAsk keeps only that they answered and what (counted once, and the tally).
    """
    ref = new_ref()
    while session.scalar(select(Report.id).where(Report.ref == ref)) is not None:
        ref = new_ref()
    report = Report(id=checks.new_report_id(session), ref=ref, contact_id=None, anonymous=True,
                    service=check.service, place=check.place, country=check.country, delivered=answer,
                    language=lang[:8], source=(message.channel or "")[:12] or None, check_id=check.id,
                    created_at=privacy.day_of(now))
    session.add(report)
    session.flush()
    rule = ops.rules_of(session).for_service(check.service)
    if answer not in rule.counts:
        return report
    case = joining.join_open(session, report, now)
    if case is None and answer == rules.NO:
        schedule = session.get(ServiceSchedule, check.schedule_id) if check.schedule_id else None
        threshold = schedule.no_threshold if schedule else 1
        said_no = list(session.scalars(select(Report.id).where(Report.check_id == check.id,
                                                               Report.delivered.in_(sorted(rule.counts)),
                                                               ~Report.id.in_(select(CaseReport.report_id)))))
        no_count = session.scalar(select(func.count()).select_from(Report)
                                  .where(Report.check_id == check.id, Report.delivered == rules.NO)) or 0
        if no_count >= threshold:
            case = joining.open_case(session, check.place, check.service, check.country, said_no, now,
                                     note=f"{no_count} supporters asked on {check.due_on.isoformat()} said it "
                                          "did not come")
            logger.warning("check %s: %d said no; case %s opened", check.id, no_count, case.ref)
    if case is not None and check.case_id is None:
        check.case_id = case.id
    return report
