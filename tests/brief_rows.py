"""A district's six months written straight to the database for the brief's tests: a clinic every 14 days
with its delivery checks and answers, water once, cases sent to officials, and reports whose words carry
names and numbers the brief must scrub.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from flask import Flask

from gateway.models import (
    Case,
    CaseEvent,
    CaseReport,
    Check,
    CheckAsk,
    Official,
    Report,
    ServiceSchedule,
)
from gateway.people.contacts import new_contact

NOW = datetime(2026, 11, 28, 12, 0)  # the brief of November 2026, made on the 28th
MONTH = "2026-11"
REPORTER = "Chikondi Mwale"  # a supporter: her name must never show in a quote
NUMBERS = ["+265991234567", "0991 234 567", "CZMB7"]  # and no number or reference either
OFFICIAL = ("Grace Phiri", "District Health Officer")
SILENT_PLACE = "Machinga"  # supporters, no reports


@dataclass
class Seeded:
    schedule: int
    case_ref: str
    case_id: int
    report_ids: list[int]
    check_ids: list[int]


OUTCOMES = ["delivered", "not_delivered", "delivered", "partly", "no_answer", "delivered", "not_delivered",
            "delivered", "delivered", "not_delivered", "delivered", "delivered", "partly"]


def seed(app: Flask) -> Seeded:
    """Zomba, June to November 2026, as the brief of November 2026 finds it."""
    with app.extensions["gateway"].sessions() as s, s.begin():
        people = []
        for i in range(6):
            c = new_contact(s, f"+26599900010{i}", name=REPORTER if i == 0 else f"Supporter Tembo{i}",
                            language="en", place="Zomba", country="MW", status="active", consent_at=NOW)
            s.add(c)
            people.append(c)
        for i in range(3):
            s.add(new_contact(s, f"+26599900020{i}", name=None, language="en", place=SILENT_PLACE, country="MW",
                              status="active", consent_at=NOW))
        phone = new_contact(s, "+265888000009", name=None, language="en", place=None, country="MW", status="active")
        s.add(phone)
        s.flush()
        grace = Official(contact_id=phone.id, name=OFFICIAL[0], role=OFFICIAL[1], language="en", places=["Zomba"],
                         services=["clinic"], level=1)
        s.add(grace)
        schedule = ServiceSchedule(place="Zomba", country="MW", service="clinic", labels={"en": "the mobile clinic"},
                                   starts_on=date(2026, 5, 26), every_days=14, check_at=time(15, 0),
                                   sample_size=5, no_threshold=3, created_by="cli")
        water = ServiceSchedule(place="Zomba", country="MW", service="water", starts_on=date(2026, 11, 10),
                                every_days=None, check_at=time(15, 0), created_by="cli")
        s.add_all([schedule, water])
        s.flush()
        # Every due date of the clinic but the last has a closed check; the last is still being answered.
        from gateway.core.brief import due_dates
        days = due_dates(schedule.starts_on, 14, None, date(2026, 6, 1), date(2026, 11, 29))
        checks = []
        for i, day in enumerate(days):
            last = i == len(days) - 1
            outcome = None if last else OUTCOMES[i % len(OUTCOMES)]
            check = Check(kind="delivery", schedule_id=schedule.id, place="Zomba", country="MW", service="clinic",
                          due_on=day, ask_after=datetime.combine(day, time(13, 0)),
                          status="asked" if last else "closed", asked=5, outcome=outcome,
                          asked_at=datetime.combine(day, time(13, 0)),
                          closed_at=None if last else datetime.combine(day + timedelta(days=1), time(13, 0)))
            s.add(check)
            checks.append(check)
        s.flush()
        report_ids = []
        answer = {"delivered": "yes", "not_delivered": "no", "partly": "partly"}
        for check in checks:
            for j, person in enumerate(people[:5]):
                given = answer.get(check.outcome or "") if j < 3 else None
                report = None
                if given:
                    report = Report(ref=f"A{check.id:03d}{j}", contact_id=None, anonymous=True, service="clinic",
                                    place="Zomba", country="MW", delivered=given, language="en", source="console",
                                    created_at=datetime.combine(check.due_on, time(17, j)), check_id=check.id)
                    s.add(report)
                    s.flush()
                    report_ids.append(report.id)
                s.add(CheckAsk(check_id=check.id, contact_id=person.id,
                               asked_at=datetime.combine(check.due_on, time(13, 0)), answer=given,
                               answered_at=datetime.combine(check.due_on, time(17, j)) if given else None,
                               report_id=report.id if report else None))
        november = [
            ("no", f"The nurse {REPORTER.split()[0]} told us to call {NUMBERS[0]}, nobody came", "verified"),
            ("no", f"Clinic closed again, Mwale family waited from 7 until noon, ref {NUMBERS[2]}", "verified"),
            ("partly", f"Only paracetamol, no malaria tests; ask {OFFICIAL[0]} at {NUMBERS[1]}", "contested"),
            ("no", "Women walked twelve kilometres and found the gate locked", None),
        ]
        case_reports = []
        for k, (delivered, details, verification) in enumerate(november):
            r = Report(ref=f"RNOV{k}", contact_id=people[0].id if k == 0 else None, anonymous=k != 0,
                       service="clinic", place="Zomba", country="MW", delivered=delivered, details=details,
                       language="en", source="console", created_at=datetime(2026, 11, 3 + 4 * k, 9, 0),
                       verification=verification)
            s.add(r)
            s.flush()
            case_reports.append(r)
            report_ids.append(r.id)
        s.add(Report(ref="RSIM1", service="clinic", place="Zomba", country="MW", delivered="no", anonymous=True,
                     details="a simulator test that must never be quoted", language="en", source="simulator",
                     created_at=datetime(2026, 11, 5, 9, 0)))
        opened = datetime(2026, 11, 4, 9, 0)
        case = Case(ref="CZMB7", place="Zomba", country="MW", service="clinic", status="overdue", level=1,
                    official_id=grace.id, report_count=len(case_reports), deadline_at=datetime(2026, 11, 9, 9, 0),
                    opened_at=opened, sent_at=opened + timedelta(hours=1))
        old = [Case(ref=f"CZ{n}OLD", place="Zomba", country="MW", service="clinic", status="resolved", level=1,
                    official_id=grace.id, report_count=2, opened_at=datetime(2026, 7 + n, 2, 9, 0),
                    sent_at=datetime(2026, 7 + n, 2, 10, 0), resolved_at=datetime(2026, 7 + n, 9, 9, 0))
               for n in range(3)]
        s.add_all([case, *old])
        s.flush()
        s.add_all(CaseReport(case_id=case.id, report_id=r.id) for r in case_reports)
        s.add_all([
            CaseEvent(case_id=case.id, at=opened, kind="opened", status="open", actor="system"),
            CaseEvent(case_id=case.id, at=opened + timedelta(hours=1), kind="sent", status="sent", actor="system",
                      official_id=grace.id),
            CaseEvent(case_id=case.id, at=datetime(2026, 11, 9, 9, 0), kind="overdue", status="overdue",
                      actor="system"),
        ])
        for n, o in enumerate(old):
            s.add(CaseEvent(case_id=o.id, at=o.sent_at, kind="sent", status="sent", actor="system",
                            official_id=grace.id))
            if n < 2:  # two of three answered by SMS, after 5 and 29 hours
                s.add(CaseEvent(case_id=o.id, at=o.sent_at + timedelta(hours=5 + 24 * n), kind="acknowledged",
                                status="acknowledged", actor=f"official:{grace.id}", official_id=grace.id))
            s.add(CaseEvent(case_id=o.id, at=o.resolved_at, kind="resolved", status="resolved",
                            actor="organizer@example.org", official_id=grace.id))
        return Seeded(schedule.id, case.ref, case.id, report_ids, [c.id for c in checks])


def seed_busy(app: Flask, place: str = "Blantyre") -> None:
    """A crowded month: five services promised, twelve cases sent to six officials with long roles, long words."""
    with app.extensions["gateway"].sessions() as s, s.begin():
        officials = []
        for i in range(6):
            phone = new_contact(s, f"+26588800010{i}", name=None, language="en", place=None, country="MW",
                                status="active")
            s.add(phone)
            s.flush()
            o = Official(contact_id=phone.id, name=f"Official Number{'abcdef'[i]} Longname-Surname",
                         role="Deputy Director of Preventive Health Services and Community Outreach", language="en",
                         places=[place], services=[], level=i + 1)
            s.add(o)
            officials.append(o)
        s.flush()
        for k, service in enumerate(["clinic", "water", "fertilizer", "school", "roads"]):
            s.add(ServiceSchedule(place=place, country="MW", service=service, starts_on=date(2026, 5, 1 + k),
                                  every_days=3, check_at=time(15, 0), created_by="cli"))
        for n in range(12):
            opened = datetime(2026, 11, 1 + n, 9, 0)
            case = Case(ref=f"CB{n:02d}X", place=place, country="MW", service="clinic", status="sent", level=1,
                        official_id=officials[n % 6].id, report_count=3, opened_at=opened,
                        deadline_at=opened + timedelta(days=30))
            s.add(case)
            s.flush()
            for o in officials[: 1 + n % 6]:
                s.add(CaseEvent(case_id=case.id, at=opened + timedelta(hours=1), kind="sent", status="sent",
                                actor="system", official_id=o.id))
        for n in range(9):
            s.add(Report(ref=f"RBUSY{n}", service="clinic", place=place, country="MW", delivered="no",
                         anonymous=True, language="en", source="console", created_at=datetime(2026, 11, 2 + n, 9),
                         details="The clinic did not come again and the women who walked from the far villages "
                                 "waited all day in the sun with their babies without water or shade " * 2))
