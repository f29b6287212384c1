"""Texts to named reporters (promised, resolved); an anonymous report has no one to tell."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.cases.ops import case_values, flows_of, queue_to, say
from gateway.models import Case, CaseReport, Contact, Report


def tell_reporters(session: Session, case: Case, text: str, now: datetime) -> int:
    """One text to each named reporter of the case who still receives texts; how many."""
    rows = session.execute(select(Report.ref, Report.contact_id, Report.language)
                           .join(CaseReport, CaseReport.report_id == Report.id)
                           .where(CaseReport.case_id == case.id, Report.anonymous.is_(False),
                                  Report.contact_id.is_not(None))).all()
    told = 0
    flows = flows_of(session)
    for ref, contact_id, language in rows:
        contact = session.get(Contact, contact_id)
        if contact is None or contact.status != "active":
            continue
        lang = contact.language or language
        body = say(flows, text, lang, **{**case_values(session, case, lang), "ref": ref})
        queue_to(session, contact, body, now, case=case)
        told += 1
    return told
