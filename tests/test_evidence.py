"""Promised vs delivered: a recurring clinic checked with a rotating sample of Zomba's supporters as time
moves forward; answers tally; enough "no" opens a case; corroboration labels the case's reports. Both databases.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta

from flask import Flask
from sqlalchemy import select

from gateway.core.schedule import local_day
from gateway.core.segments import count_segments
from gateway.evidence import schedules
from gateway.models import Case, CaseReport, Check, CheckAsk, Report, ServiceSchedule, utcnow
from tests.cases_helpers import import_officials
from tests.evidence_helpers import add_schedule, all_checks, asked, texts_to, tick
from tests.helpers import add, change_settings, svc
from tests.transcript import Phone

A, B, C, D, E, F = (f"+26599100000{i}" for i in range(1, 7))
WATER, MACHINGA, STOPPED, NO_CONSENT = "+265991000007", "+265991000008", "+265991000009", "+265991000010"
DHO = "+265888000001"
NAMES = ("Chikondi", "Mphatso", "Thoko", "Maria", "Esther", "Grace")


def supporters(app: Flask) -> None:
    """Six Zomba supporters who follow health (three languages), and four who must never be asked."""
    for number, name, lang in zip((A, B, C, D, E, F), NAMES, ("en", "en", "es", "ny", "en", "es"), strict=True):
        add(app, number, name=name, language=lang, tags=("health",))
    add(app, WATER, name="Water Only", tags=("water",))
    add(app, MACHINGA, name="Far Away", place="Machinga", tags=("health",))
    add(app, STOPPED, name="Stopped", tags=("health",), status="stopped")
    add(app, NO_CONSENT, name="Official Like", tags=("health",), consent=False)


def test_recurring_clinic_asks_the_right_supporters_on_the_right_days(app: Flask) -> None:
    change_settings(app, quiet_hours=(time(21), time(7)))
    import_officials(app)
    supporters(app)
    add_schedule(app, place="zomba", service="clinic", labels={"en": "the mobile clinic", "es": "la clinica movil"},
                 starts_on="2026-11-03", every_days=14, check_at="16:00", sample_size=3, no_threshold=2)
    # Zomba is UTC+2: 16:00 there is 14:00 UTC.
    assert tick(app, datetime(2026, 11, 2, 15, 0)) == {"opened": 0, "asked": 0, "closed": 0}
    assert tick(app, datetime(2026, 11, 3, 13, 59)) == {"opened": 1, "asked": 0, "closed": 0}
    assert tick(app, datetime(2026, 11, 3, 14, 0))["asked"] == 3
    first = all_checks(app)[0]
    assert asked(app, first.id) == [A, B, C]  # nobody asked before: by id
    assert tick(app, datetime(2026, 11, 3, 14, 30))["asked"] == 0  # never twice for one check

    en = texts_to(app, A)[-1].body
    es = texts_to(app, C)[-1].body
    assert en.endswith("Did the mobile clinic come to Zomba today? Reply 1 Yes 2 No 3 Partly")
    assert "Llego la clinica movil a Zomba hoy? Responda 1 Si 2 No 3 En parte" in es
    for number in (A, B, C):
        row = texts_to(app, number)[-1]
        assert count_segments(row.body).segments == 1 and row.send_after is None

    phone = Phone(app, datetime(2026, 11, 3, 15, 0))
    assert phone.send(A, "1") == ["Thank you, your answer is counted."]
    assert phone.send(B, "2") == ["Thank you, your answer is counted."]
    assert phone.send(A, "NO") == ["Thank you. We already have an answer from you to that question, "
                                   "so nothing changed."]  # counted once
    assert phone.send(C, "no") == ["Gracias, su respuesta quedo registrada."]
    with svc(app).sessions() as s:
        check = s.get(Check, first.id)
        assert check is not None and check.status == "closed" and check.outcome == "not_delivered"
        answers = dict(s.execute(select(Report.delivered, Report.check_id).where(Report.check_id == check.id)).all())
        assert sorted(r.delivered or "" for r in s.scalars(select(Report).where(Report.check_id == check.id))) == \
            ["no", "no", "yes"], answers
        case = s.scalars(select(Case)).one()  # two "no" (the threshold) opened a case, sent to its official
        assert check.case_id == case.id and case.status == "sent" and case.report_count == 2
    assert phone.send(C, "2") == ["Gracias. Ya tenemos su respuesta a esa pregunta; no se cambio nada."]
    assert "1 reports" not in texts_to(app, DHO)[-1].body and "2 reports of no clinic in Zomba" in \
        texts_to(app, DHO)[-1].body

    # The case's corroboration asks five at the next tick: those never asked first, then A and B by id. The
    # answers name nobody, so B and C are not the case's reporters and may be asked (docs/evidence.md).
    tick(app, datetime(2026, 11, 10, 14, 0))
    assert len([c for c in all_checks(app) if c.kind == "delivery"]) == 1  # not a due date
    assert asked(app, [c for c in all_checks(app) if c.kind == "corroborate"][0].id) == [A, B, D, E, F]
    # Two weeks on: B and C were asked longest ago (the 3rd), then A by id among those asked on the 10th.
    tick(app, datetime(2026, 11, 17, 14, 1))
    second = [c for c in all_checks(app) if c.kind == "delivery"][1]
    assert asked(app, second.id) == [A, B, C]
    tick(app, datetime(2026, 11, 19, 14, 2))  # 48 hours on, unanswered: closed
    with svc(app).sessions() as s:
        closed = s.get(Check, second.id)
        assert closed is not None and closed.status == "closed" and closed.outcome == "no_answer"
    tick(app, datetime(2026, 12, 1, 14, 0))
    third = [c for c in all_checks(app) if c.kind == "delivery"][2]
    assert asked(app, third.id) == [D, E, F]  # the least recently asked
    for number in (WATER, MACHINGA, STOPPED, NO_CONSENT):
        assert texts_to(app, number) == []


def test_never_at_night_and_never_the_next_day(app: Flask) -> None:
    change_settings(app, quiet_hours=(time(21), time(7)))
    supporters(app)
    add_schedule(app, place="Zomba", service="clinic", starts_on="2026-11-03", check_at="22:30")
    assert tick(app, datetime(2026, 11, 3, 20, 31)) == {"opened": 1, "asked": 0, "closed": 0}  # 22:31 in Zomba
    assert tick(app, datetime(2026, 11, 3, 21, 59))["asked"] == 0
    assert tick(app, datetime(2026, 11, 4, 5, 0)) == {"opened": 0, "asked": 0, "closed": 1}  # 07:00, next day
    check = all_checks(app)[0]
    assert check.outcome == "no_answer" and check.asked == 0
    assert all(texts_to(app, n) == [] for n in (A, B, C, D, E, F))


def test_corroboration_labels_reports_and_never_asks_or_names_the_reporters(app: Flask) -> None:
    import_officials(app)
    supporters(app)
    phone = Phone(app, datetime(2026, 11, 3, 10, 0))
    phone.send(A, "REPORT NAME CLINIC ZOMBA NO nurse absent")
    phone.send(B, "REPORT CLINIC ZOMBA NO no drugs")  # anonymous: nobody to exclude, by design
    with svc(app).sessions() as s:
        case = s.scalars(select(Case)).one()
        corroboration = s.scalars(select(Check).where(Check.kind == "corroborate")).one()
        assert corroboration.case_id == case.id
        labels = list(s.scalars(select(Report.verification).join(CaseReport, CaseReport.report_id == Report.id)))
        assert labels == ["unverified", "unverified"]
    tick(app, datetime(2026, 11, 3, 10, 1))
    them = asked(app, corroboration.id)
    assert A not in them and len(them) == 5 and WATER not in them and MACHINGA not in them
    for number in them:
        body = texts_to(app, number)[-1].body
        assert "People say the clinic did not come to Zomba. Is that right?" in body or "Dicen que" in body \
            or "Anthu akuti" in body
        assert count_segments(body).segments == 1
        assert not any(name in body for name in NAMES) and A not in body
    yes_sayers = [n for n in them if n != B][:2]
    for number in yes_sayers:
        phone.send(number, "1")
    with svc(app).sessions() as s:
        labels = list(s.scalars(select(Report.verification).join(CaseReport, CaseReport.report_id == Report.id)))
        assert labels == ["verified", "verified"]
    for number in [n for n in them if n not in yes_sayers]:
        phone.send(number, "2")  # three say no after two said yes: 2 yes, 3 no is a split
    with svc(app).sessions() as s:
        check = s.get(Check, corroboration.id)
        assert check is not None and check.status == "closed" and check.outcome == "unverified"
        assert set(s.scalars(select(Report.verification))) == {"unverified"}
        assert s.scalar(select(CheckAsk.answer).where(CheckAsk.check_id == check.id,
                                                      CheckAsk.answer.is_(None))) is None


def test_stop_wins_over_an_open_check(app: Flask) -> None:
    supporters(app)
    add_schedule(app, place="Zomba", service="clinic", starts_on="2026-11-03", sample_size=2, no_threshold=2)
    tick(app, datetime(2026, 11, 3, 14, 0))
    phone = Phone(app, datetime(2026, 11, 3, 14, 30))
    assert phone.send(A, "STOP")[0].startswith("You will get no more messages")
    assert phone.send(A, "2") == []  # stopped: kept for the organizers, not counted
    with svc(app).sessions() as s:
        assert s.scalar(select(Report.id)) is None


def test_a_late_answer_is_told_so_but_a_pledge_still_counts(app: Flask) -> None:
    supporters(app)
    now = utcnow()  # an alert's pledges are open from its real launch: this test runs on today's clock
    today = local_day(now, "Africa/Blantyre")
    add_schedule(app, place="Zomba", service="clinic", starts_on=today.isoformat(), check_at="00:00",
                 sample_size=1, no_threshold=1)
    tick(app, now)
    phone = Phone(app, now)
    assert phone.send(A, "YES") == ["Thank you, your answer is counted."]
    assert phone.send(A, "yes") == ["Thank you. We already have an answer from you to that question, "
                                    "so nothing changed."]
    phone.launch("Will you come to the assembly on Friday? Reply YES", keyword="YES")
    phone.worker()
    phone.now = utcnow()
    assert phone.send(A, "YES") == ["Thank you! Your pledge is counted. Together we are heard."]
    phone.now = now + timedelta(days=7)  # a week on: a 1 is no answer to anything
    assert phone.send(A, "1")[0].startswith("Sorry, we did not understand")


def test_changing_or_stopping_a_schedule_moves_its_unasked_checks(app: Flask, runner) -> None:  # type: ignore[no-untyped-def]
    supporters(app)
    schedule_id = add_schedule(app, place="Zomba", service="clinic", starts_on="2026-11-03", every_days=7)
    assert tick(app, datetime(2026, 11, 3, 8, 0))["opened"] == 1
    with svc(app).sessions() as s, s.begin():
        row = s.get(ServiceSchedule, schedule_id)
        assert row is not None
        schedules.update(s, row, schedules.values_from(s, {"check_at": "11:00"}, before=row), actor="test")
    assert all_checks(app)[0].ask_after == datetime(2026, 11, 3, 9, 0)
    assert tick(app, datetime(2026, 11, 3, 9, 0))["asked"] == 5  # the default sample; six follow the clinic
    assert tick(app, datetime(2026, 11, 10, 8, 0))["opened"] == 1
    assert runner.invoke(args=["schedules", "stop", str(schedule_id)]).exit_code == 0
    assert [c.due_on.day for c in all_checks(app)] == [3]  # the unasked check of the 10th is gone
    assert tick(app, datetime(2026, 11, 17, 14, 0)) == {"opened": 0, "asked": 0, "closed": 0}


def test_the_workers_minute_job_runs_the_checks(app: Flask) -> None:
    from gateway.outbound import jobs

    supporters(app)
    today = local_day(utcnow(), "Africa/Blantyre")
    add_schedule(app, place="Zomba", service="clinic", starts_on=today.isoformat(), check_at="00:00", sample_size=2,
                 no_threshold=2)
    with app.app_context():
        done = jobs.cases_tick()
    assert done["checks"] == {"opened": 1, "asked": 2, "closed": 0}
    assert len(asked(app, all_checks(app)[0].id)) == 2


def test_a_corroboration_never_asks_someone_whose_answer_would_mean_something_else(app: Flask) -> None:
    """Review finding: A's "1" to the delivery question must not count as "yes, it did not come"; nor may a
    question reach someone mid-report, whose "1" answers the report's step."""
    change_settings(app, quiet_hours=(time(21), time(7)))
    import_officials(app)
    supporters(app)
    add_schedule(app, place="zomba", service="clinic", starts_on="2026-11-03", check_at="16:00",
                 sample_size=4, no_threshold=2)
    tick(app, datetime(2026, 11, 3, 14, 0))  # A, B, C, D asked whether it came
    phone = Phone(app, datetime(2026, 11, 3, 14, 5))
    phone.send(B, "2")
    phone.send(C, "2")  # the threshold: a case, and its corroboration
    phone.send(E, "REPORT")  # E is half-way through a report
    tick(app, datetime(2026, 11, 3, 14, 10))
    delivery, corroboration = all_checks(app)
    assert corroboration.kind == "corroborate"
    them = asked(app, corroboration.id)
    assert A not in them and D not in them and E not in them and F in them
    phone = Phone(app, datetime(2026, 11, 3, 14, 15))
    assert phone.send(A, "1") == ["Thank you, your answer is counted."]
    with svc(app).sessions() as s:
        answers = dict(s.execute(select(CheckAsk.contact_id, CheckAsk.answer)
                                 .where(CheckAsk.check_id == delivery.id, CheckAsk.answer.is_not(None))).all())
        assert sorted(answers.values()) == ["no", "no", "yes"]
        assert s.scalar(select(CheckAsk.answer).where(CheckAsk.check_id == corroboration.id,
                                                      CheckAsk.answer.is_not(None))) is None


def test_a_place_with_accents_is_asked_in_one_gsm7_sms(app: Flask) -> None:
    """Review finding: Copán's "á" made every question a UCS-2 SMS (70 characters), and the one-SMS check missed
    the corroboration's longer question."""
    change_settings(app, quiet_hours=(time(21), time(7)), org_name="Red de Mujeres Defensoras del Occidente")  # 40
    numbers = [f"+5049900000{i}" for i in range(1, 7)]
    for number, lang in zip(numbers, ("en", "es") * 3, strict=True):
        add(app, number, language=lang, place="Copán", tags=("health",))
    add_schedule(app, place="Copan", service="clinic", labels={"en": "the mobile clinic of the health centre",
                                                              "es": "la clinica movil del centro de salud"},
                 starts_on="2026-11-03", sample_size=4, no_threshold=2)
    tick(app, datetime(2026, 11, 3, 22, 0))  # 16:00 in Copán
    phone = Phone(app, datetime(2026, 11, 3, 22, 5))
    phone.send(numbers[0], "2")
    phone.send(numbers[1], "2")
    tick(app, datetime(2026, 11, 3, 22, 10))  # the case's corroboration asks the others
    sent = [m for n in numbers for m in texts_to(app, n)]
    assert {"Copan" in m.body for m in sent if "?" in m.body} == {True}
    assert len([m for m in sent if "People say" in m.body or "Dicen que" in m.body]) >= 2
    for m in sent:
        info = count_segments(m.body)
        assert (info.encoding, info.segments) == ("GSM-7", 1), m.body
    with svc(app).sessions() as s:
        from gateway.evidence import summary

        drafts = summary.drafts(s, summary.figures(s, "Copán", "clinic", datetime(2026, 11, 1).date()))
    assert drafts and all(count_segments(t).encoding == "GSM-7" and "Copan" in t for t in drafts.values())
    # A label that fits the delivery question but not the corroboration's longer one is refused.
    try:
        add_schedule(app, place="Copan", service="clinic", starts_on="2026-11-03",
                     labels={"en": "the mobile clinic of the health centre of Santa Rosa, Copan"})  # 60
    except schedules.ScheduleError as exc:
        assert exc.field == "labels"
    else:
        raise AssertionError("a label too long for the corroboration's question was accepted")


def test_an_answer_is_a_report_that_names_nobody_and_brings_no_texts(app: Flask) -> None:
    """Review finding: answers were named reports (the name on the Reports page, contact_id in the API, an SMS
    each time the case moved). An answer now is stored as an anonymous report is: no contact, the day only."""
    import_officials(app)
    supporters(app)
    add_schedule(app, place="zomba", service="clinic", starts_on="2026-11-03", sample_size=3, no_threshold=2)
    tick(app, datetime(2026, 11, 3, 14, 0))
    phone = Phone(app, datetime(2026, 11, 3, 14, 5))
    for number in (B, C):
        phone.send(number, "2")
    with svc(app).sessions() as s:
        rows = list(s.scalars(select(Report)))
        assert len(rows) == 2 and {(r.contact_id, r.anonymous, r.check_id is not None) for r in rows} == \
            {(None, True, True)}
        assert {r.created_at for r in rows} == {datetime(2026, 11, 3)}  # the day, never the minute
        assert set(s.scalars(select(CheckAsk.report_id))) == {None}
        case = s.scalars(select(Case)).one()
        assert case.report_count == 2
    before = {n: len(texts_to(app, n)) for n in (B, C)}
    phone.send(DHO, f"PROMISE {case.ref} 10/11")  # the case moves: its named reporters would be told
    phone.send(DHO, f"DONE {case.ref}")
    assert {n: len(texts_to(app, n)) for n in (B, C)} == before
