"""Cases, officials, reports and texts written straight to the database, for the console and API tests.

A named report (its reporter's name and number known) sits in the Zomba case on purpose: no case
page or API answer may show that name or number.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask

from gateway.core.phones import country_of
from gateway.models import (
    Case,
    CaseEvent,
    CaseReport,
    Contact,
    Message,
    Official,
    Report,
    utcnow,
)
from gateway.people.contacts import new_contact

REPORTER_NAME, REPORTER_NUMBER = "Chikondi Reporter", "+265991777001"
REPORTER_WORDS = "the nurse sent me away"  # the reporter's own words in an inbound text
OFFICIAL_NUMBER, OFFICIAL2_NUMBER = "+265991888001", "+265991888002"


@dataclass
class Seeded:
    zomba: int  # acknowledged by Grace, past its deadline: overdue by the clock
    mangochi: int  # open, water, no official yet
    blantyre: int  # marked overdue, at rung 2
    grace: int
    john: int
    zomba_ref: str
    report_refs: list[str]


def seed(app: Flask, now: datetime | None = None) -> Seeded:
    now = now or utcnow()
    with app.extensions["gateway"].sessions() as s, s.begin():
        reporter = new_contact(s, REPORTER_NUMBER, name=REPORTER_NAME, language="en", place="Zomba",
                               country=country_of(REPORTER_NUMBER), status="active", consent_at=now)
        grace_phone = new_contact(s, OFFICIAL_NUMBER, name=None, language="en", place=None, country="MW",
                                  status="active")
        john_phone = new_contact(s, OFFICIAL2_NUMBER, name=None, language="en", place=None, country="MW",
                                 status="active")
        s.add_all([reporter, grace_phone, john_phone])
        s.flush()
        grace = Official(contact_id=grace_phone.id, name="Grace Phiri", role="District Health Officer",
                         language="en", places=["Zomba"], services=["clinic"], level=1)
        john = Official(contact_id=john_phone.id, name="John Banda", role="District Commissioner",
                        language="en", places=["Zomba", "Blantyre"], services=[], level=2)
        s.add_all([grace, john])
        s.flush()
        day = now - timedelta(days=6)
        reports = [
            Report(ref="RNAMED1", contact_id=reporter.id, anonymous=False, service="clinic", place="Zomba",
                   country="MW", delivered="no", details="nurse absent", language="en", created_at=day),
            Report(ref="RANON22", contact_id=None, anonymous=True, service="clinic", place="Zomba", country="MW",
                   delivered="partly", details="no medicine", language="en", created_at=day),
            Report(ref="RWATER3", contact_id=None, anonymous=True, service="water", place="Mangochi",
                   country="MW", delivered="no", details="borehole dry", language="en", created_at=day),
            Report(ref="RBLANT4", contact_id=None, anonymous=True, service="clinic", place="Blantyre",
                   country="MW", delivered="no", details="closed all week", language="en", created_at=day),
        ]
        s.add_all(reports)
        s.flush()
        zomba = Case(ref="CZMB7", place="Zomba", country="MW", service="clinic", status="acknowledged", level=1,
                     official_id=grace.id, report_count=2, deadline_at=now - timedelta(hours=3),
                     opened_at=day, sent_at=day + timedelta(hours=1))
        mangochi = Case(ref="CMNG8", place="Mangochi", country="MW", service="water", status="open", level=1,
                        report_count=1, opened_at=day)
        blantyre = Case(ref="CBLT9", place="Blantyre", country="MW", service="clinic", status="overdue", level=2,
                        official_id=john.id, report_count=1, deadline_at=now + timedelta(days=2), opened_at=day)
        s.add_all([zomba, mangochi, blantyre])
        s.flush()
        s.add_all([CaseReport(case_id=zomba.id, report_id=reports[0].id),
                   CaseReport(case_id=zomba.id, report_id=reports[1].id),
                   CaseReport(case_id=mangochi.id, report_id=reports[2].id),
                   CaseReport(case_id=blantyre.id, report_id=reports[3].id)])
        # The reporter's own texts: never on a case page.
        s.add(Message(direction="in", contact_id=reporter.id, channel="console", body=f"REPORT NAME CLINIC ZOMBA NO "
                      f"{REPORTER_WORDS} CZMB7", status="handled", created_at=day))
        out = Message(direction="out", contact_id=grace_phone.id, channel="console", status="sent",
                      body="2 reports: clinic in Zomba since 23 Nov. Case CZMB7. Reply ACK CZMB7",
                      created_at=day + timedelta(hours=1))
        ack = Message(direction="in", contact_id=grace_phone.id, channel="console", status="handled",
                      body="ACK czmb7", created_at=day + timedelta(hours=5))
        s.add_all([out, ack])
        s.flush()
        s.add_all([
            CaseEvent(case_id=zomba.id, at=day, kind="opened", status="open", actor="system",
                      note="2 reports of no or partly within 14 days"),
            CaseEvent(case_id=zomba.id, at=day + timedelta(hours=1), kind="sent", status="sent", actor="system",
                      official_id=grace.id, message_id=out.id, note="sent to the District Health Officer"),
            CaseEvent(case_id=zomba.id, at=day + timedelta(hours=5), kind="acknowledged", status="acknowledged",
                      actor=f"official:{grace.id}", official_id=grace.id, message_id=ack.id),
            CaseEvent(case_id=blantyre.id, at=day, kind="sent", status="sent", actor="system", official_id=john.id),
            CaseEvent(case_id=blantyre.id, at=day + timedelta(days=5), kind="overdue", status="overdue",
                      actor="system", note="not acknowledged by the District Commissioner in 5 days"),
        ])
        return Seeded(zomba.id, mangochi.id, blantyre.id, grace.id, john.id, zomba.ref,
                      [r.ref for r in reports])


def reporter_identity(app: Flask) -> list[str]:
    """Every way the named reporter could show: name, number in its forms, contact id link, own words."""
    with app.extensions["gateway"].sessions() as s:
        contact_id = s.query(Contact.id).filter(Contact.name == REPORTER_NAME).scalar()
    return [REPORTER_NAME, "Chikondi", REPORTER_NUMBER, REPORTER_NUMBER[4:], "991777001", REPORTER_WORDS,
            f"/supporters/{contact_id}"]
