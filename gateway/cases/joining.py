"""A saved report joins an open case of its place and service, or, with enough matching reports
within the window (flows/cases.yaml), opens one, which is sent to its official at once.

Reports are linked by CaseReport, never through a contact.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from gateway.cases import ops
from gateway.core import ladder
from gateway.models import Case, CaseReport, Report

DONE = (ladder.RESOLVED, ladder.CLOSED)


def on_report(session: Session, report: Report, now: datetime) -> Case | None:
    """The case this report is now in, if any."""
    if not report.place:
        return None
    rule = ops.rules_of(session).for_service(report.service)
    if (report.delivered or "") not in rule.counts:
        return None
    case = join_open(session, report, now)
    if case is not None:
        return case
    since = ops.privacy_day(now - rule.window)
    loose = list(session.scalars(
        select(Report.id).where(Report.place == report.place, Report.service == report.service,
                                Report.delivered.in_(sorted(rule.counts)), Report.created_at >= since,
                                ~Report.id.in_(select(CaseReport.report_id)))))
    if report.id not in loose:
        loose.append(report.id)
    if len(loose) < rule.threshold:
        return None
    return open_case(session, report.place, report.service, report.country, loose, now,
                     note=f"{len(loose)} reports within {rule.window.days} days")


# Built once: a report from the inbound path reads it (gateway/inbound/receive.py says why).
_OPEN_CASE = (select(Case).where(Case.place == bindparam("place"), Case.service == bindparam("service"),
                                 Case.status.not_in(DONE)).order_by(Case.id.desc()))


def join_open(session: Session, report: Report, now: datetime) -> Case | None:
    """Put the report in the open case of its place and service, if there is one."""
    case = session.scalars(_OPEN_CASE, {"place": report.place, "service": report.service}).first()
    if case is None:
        return None
    session.add(CaseReport(case_id=case.id, report_id=report.id))
    session.flush()
    case.report_count += 1
    case.updated_at = now
    return case


def open_case(session: Session, place: str, service: str, country: str | None, report_ids: list[int],
              now: datetime, *, note: str) -> Case:
    """Open a case with these reports (none in a case yet) and send it to its official at once."""
    case = Case(ref=ops.new_case_ref(session), place=place, service=service, country=country,
                status=ladder.OPEN, level=1, opened_at=now, updated_at=now)
    session.add(case)
    session.flush()
    for rid in report_ids:
        session.add(CaseReport(case_id=case.id, report_id=rid))
    session.flush()
    case.report_count = len(report_ids)
    ops.record(session, case, "opened", actor=ops.SYSTEM, now=now, note=note)
    ops.send(session, case, actor=ops.SYSTEM, now=now)
    return case
