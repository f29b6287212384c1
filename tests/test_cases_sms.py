"""Cases by SMS: reports open a case, its official answers by SMS, reporters ask and dispute, deadlines climb.

Transcripts (tests/transcript.py) in English, Spanish and Chichewa; both databases.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from flask import Flask
from sqlalchemy import func, select

from gateway import cases
from gateway.models import AuditEvent, Case, CaseEvent, Message, Report, utcnow
from gateway.people import contacts
from tests.cases_helpers import import_officials
from tests.helpers import svc
from tests.transcript import Phone

DHO, DC = "+265888000001", "+265888000002"
ES_OFFICIAL, NY_OFFICIAL = "+265888000003", "+265888000004"
A, B, C = "+265991000001", "+265991000002", "+265991000009"


def noon() -> datetime:
    """A clock at 10:00 UTC (noon in Zomba), whatever the hour the tests run."""
    return utcnow().replace(hour=10, minute=0, second=0, microsecond=0)


def the_case(app: Flask, place: str = "Zomba") -> Case:
    with svc(app).sessions() as s:
        case = s.scalars(select(Case).where(Case.place == place).order_by(Case.id.desc())).first()
        assert case is not None, f"no case for {place}"
        return case


def report_refs(app: Flask, place: str) -> list[str]:
    with svc(app).sessions() as s:
        return list(s.scalars(select(Report.ref).where(Report.place == place).order_by(Report.anonymous.desc(), Report.ref)))


def kinds(app: Flask, case: Case) -> list[str]:
    with svc(app).sessions() as s:
        return [e.kind for e in cases.timeline(s, case)]


def tick(app: Flask, now: datetime) -> dict[str, int]:
    with svc(app).sessions() as s, s.begin():
        return cases.tick(s, now)


def test_english_case_opened_sent_acknowledged_promised_resolved_disputed(app: Flask) -> None:
    import_officials(app)
    phone = Phone(app, noon())
    phone.run(f"""
        {A} > REPORT CLINIC ZOMBA NO nurse absent
        {A} < Thank you. Report * is recorded without your name. Text STATUS * for news. Your voice makes services come.
        @ worker
        {DHO} <
        {B} > REPORT NAME CLINIC ZOMBA NO no drugs
        {B} < Thank you. Report * is recorded with your name. Text STATUS * for news. Your voice makes services come.
        @ worker
        {DHO} < Our Network: 2 reports of no clinic in Zomba since *. Case *. Reply ACK *, PROMISE * 12/3 or DONE *
    """)
    case = the_case(app)
    ref = case.ref
    anon, named = report_refs(app, "Zomba")
    assert case.status == "sent" and case.report_count == 2
    phone.run(f"""
        {DHO} > ACK {ref}
        {DHO} < Thank you. Case {ref} is acknowledged. Reply PROMISE {ref} 12/3 with a date, or DONE {ref} when it is done.
        {A} > STATUS {anon}
        {A} < Report {anon}: the official has acknowledged case {ref} (2 reports).
        {DHO} > PROMISE {ref} 12 March
        {DHO} < Thank you. Case {ref} is promised for 12/3. Reply DONE {ref} when it is done.
        @ worker
        {B} < Our Network: the official promised clinic in Zomba by 12/3 (your report {named}). Text STATUS {named} for news.
        {A} <
        {DHO} > DONE {ref}
        {DHO} < Thank you. Case {ref} is marked resolved. The reporters will be told.
        @ worker
        {B} < Our Network: the official says clinic in Zomba is fixed (your report {named}). If it is not, reply NO {named}.
        {A} > NO {anon}
        {A} < Thank you. Case {ref} is open again and goes back to the official.
        @ worker
        {DHO} < Our Network: case {ref} (clinic, Zomba) was marked done, but a reporter says it is not. Reply ACK {ref}, PROMISE {ref} 12/3 or DONE {ref}
    """)
    assert kinds(app, case) == ["opened", "sent", "acknowledged", "promised", "resolved", "disputed", "sent"]
    with svc(app).sessions() as s:
        assert s.get(Case, case.id).status == "sent"  # type: ignore[union-attr]
        told = s.scalars(select(AuditEvent).where(AuditEvent.action == "case.disputed")).all()
        assert len(told) == 1 and told[0].detail["case"] == ref  # the organizers' record


def test_an_anonymous_status_leaves_no_row_tying_the_reference_to_the_phone(app: Flask) -> None:
    import_officials(app)
    phone = Phone(app, noon())
    phone.run(f"""
        {A} > REPORT CLINIC ZOMBA NO nurse absent
        {A} < Thank you. Report * is recorded without your name...
        {B} > REPORT CLINIC ZOMBA PARTLY
        {B} < Thank you. Report * is recorded without your name...
    """)
    anon = report_refs(app, "Zomba")[0]
    ref = the_case(app).ref
    phone.run(f"""
        {A} > STATUS {anon}
        {A} < Report {anon}: case {ref} (2 reports) is with the official, waiting for an answer.
    """)
    with svc(app).sessions() as s:
        assert s.scalar(select(func.count()).select_from(Message).where(Message.body.contains(anon))) == 0
        contact = contacts.find(s, A)
        if contact is not None:  # a phone that only reported keeps no row at all; else none of its texts
            assert s.scalar(select(func.count()).select_from(Message).where(Message.contact_id == contact.id)) == 0
        assert s.scalar(select(func.count()).select_from(Report).where(Report.contact_id.is_not(None))) == 0


def test_spanish_and_chichewa_transcripts(app: Flask) -> None:
    import_officials(app)
    phone = Phone(app, noon())
    h1, h2 = "+50499123456", "+50499123457"
    phone.run(f"""
        {h1} > REPORTE CLINICA CHOLUTECA NO falta medico
        {h1} < Gracias. Su reporte * quedo registrado sin su nombre. Envie ESTADO * para saber mas. Su voz trae los servicios.
        {h2} > REPORTE CLINICA CHOLUTECA NO
        {h2} < Gracias. Su reporte *
        @ worker
        {ES_OFFICIAL} < Our Network: 2 reportes sin clinica en Choluteca desde *. Caso *. Responda RECIBIDO *, PROMESA * 12/3 o HECHO *
    """)
    ref, anon = the_case(app, "Choluteca").ref, report_refs(app, "Choluteca")[0]
    phone.run(f"""
        {ES_OFFICIAL} > RECIBIDO {ref}
        {ES_OFFICIAL} < Gracias. Caso {ref} recibido. Responda PROMESA {ref} 12/3 con una fecha, o HECHO {ref} cuando este hecho.
        {ES_OFFICIAL} > PROMESA {ref} 12 de marzo
        {ES_OFFICIAL} < Gracias. Caso {ref} prometido para el 12/3. Responda HECHO {ref} cuando este hecho.
        {h1} > ESTADO {anon}
        {h1} < Reporte {anon}: la autoridad prometio resolver el caso {ref} para el 12/3.
        {ES_OFFICIAL} > HECHO {ref}
        {ES_OFFICIAL} < Gracias. Caso {ref} marcado como resuelto. Se avisara a quienes reportaron.
        {h1} > NO {anon}
        {h1} < Gracias. El caso {ref} se abre de nuevo y vuelve a la autoridad.
        @ worker
        {ES_OFFICIAL} < Our Network: el caso {ref} (clinica, Choluteca) se marco hecho, pero un reporte dice que no...
    """)
    m1, m2 = "+265991000011", "+265991000012"
    phone.run(f"""
        {m1} > LIPOTI CHIPATALA MACHINGA AYI
        {m1} < Zikomo. Lipoti * lalembedwa popanda dzina lanu. Tumizani ZAKE * kuti mudziwe zambiri. Mawu anu amabweretsa ntchito.
        {m2} > LIPOTI CHIPATALA MACHINGA AYI
        {m2} < Zikomo. Lipoti *
        @ worker
        {NY_OFFICIAL} < Our Network: malipoti 2 akuti chipatala sanafike ku Machinga kuyambira *. Nkhani *. Yankhani TALANDIRA *, LONJEZO * 12/3, ZATHA *
    """)
    ref, anon = the_case(app, "Machinga").ref, report_refs(app, "Machinga")[0]
    phone.run(f"""
        {NY_OFFICIAL} > TALANDIRA {ref}
        {NY_OFFICIAL} < Zikomo. Nkhani {ref} yalandiridwa...
        {NY_OFFICIAL} > LONJEZO {ref} 12/3
        {NY_OFFICIAL} < Zikomo. Nkhani {ref} yalonjezedwa pa 12/3. Yankhani ZATHA {ref} ikatha.
        {NY_OFFICIAL} > ZATHA {ref}
        {NY_OFFICIAL} < Zikomo. Nkhani {ref} yalembedwa kuti yatha. Olemba adziwitsidwa.
        {m1} > ZAKE {anon}
        {m1} < Lipoti {anon}: akuluakulu akuti nkhani {ref} yatha. Ngati sizoona, yankhani AYI {anon}.
        {m1} > AYI {anon}
        {m1} < Zikomo. Nkhani {ref} yatsegulidwanso ndipo ibwerera kwa akuluakulu.
        @ worker
        {NY_OFFICIAL} < Our Network: nkhani {ref} (chipatala, Machinga) inati yatha, koma wolemba akuti ayi...
    """)
    assert the_case(app, "Machinga").status == "sent"


def case_sent_to_the_dho(app: Flask) -> Phone:
    """Officials imported, then two reports of no clinic in Zomba: their case is texted to the DHO."""
    import_officials(app)
    phone = Phone(app, noon())
    phone.run(f"""
        {A} > REPORT CLINIC ZOMBA NO
        {A} < Thank you...
        {B} > REPORT CLINIC ZOMBA NO
        {B} < Thank you...
        @ worker
        {DHO} < Our Network: 2 reports...
    """)
    return phone


def test_not_acknowledged_in_time_goes_up_a_rung_and_a_passed_promise_is_overdue(app: Flask) -> None:
    phone = case_sent_to_the_dho(app)
    case = the_case(app)
    ref = case.ref
    assert tick(app, phone.now + timedelta(days=4))["overdue"] == 0  # 5 days to acknowledge (flows/cases.yaml)
    phone.run("@ worker\n" + f"{DC} <")
    phone.now += timedelta(days=6)
    assert tick(app, phone.now) == {"overdue": 1, "escalated": 1, "top_rung": 0}
    phone.run(f"""
        @ worker
        {DC} < 2 reports of no clinic in Zomba since *, not acknowledged by the District Health Officer in 5 days. ACK {ref}, PROMISE {ref} 12/3 or DONE {ref}
        {DHO} > ACK {ref}
        {DHO} < Sorry, case {ref} is not with this number, so nothing was changed. Contact Our Network if this is wrong.
    """)
    with svc(app).sessions() as s:
        c = s.get(Case, case.id)
        assert c is not None and c.level == 2 and c.status == "sent"
        assert s.scalars(select(AuditEvent).where(AuditEvent.action == "case.overdue")).first() is not None
        assert cases.overdue_count(s) == 1
    promised = (phone.now + timedelta(days=3)).date()
    phone.run(f"""
        {DC} > PROMISE {ref} {promised.day}/{promised.month}
        {DC} < Thank you. Case {ref} is promised for {promised.day}/{promised.month}. Reply DONE {ref} when it is done.
    """)
    assert tick(app, phone.now + timedelta(days=3))["overdue"] == 0  # the promised day is not over yet
    done = tick(app, phone.now + timedelta(days=4, hours=1))
    assert done == {"overdue": 1, "escalated": 0, "top_rung": 1}  # no rung above the Commissioner
    assert the_case(app).status == "overdue"
    assert kinds(app, case)[-3:] == ["sent", "promised", "overdue"]


def test_acknowledged_without_a_date_in_time_goes_up_a_rung_too(app: Flask) -> None:
    phone = case_sent_to_the_dho(app)
    ref = the_case(app).ref
    phone.run(f"{DHO} > ACK {ref}\n{DHO} < Thank you. Case {ref} is acknowledged...")
    assert the_case(app).deadline_at is not None  # ACK alone does not stop the clock
    assert tick(app, phone.now + timedelta(days=4))["overdue"] == 0  # 5 more days to promise a date
    phone.now += timedelta(days=6)
    assert tick(app, phone.now) == {"overdue": 1, "escalated": 1, "top_rung": 0}
    phone.run(f"""
        @ worker
        {DC} < 2 reports of no clinic in Zomba since *; the District Health Officer gave no date in 5 days. ACK {ref}, PROMISE {ref} 12/3 or DONE {ref}
    """)
    with svc(app).sessions() as s:
        notes = [e.note for e in cases.timeline(s, the_case(app)) if e.kind == "overdue"]
    assert notes == ["acknowledged by the District Health Officer, but no date promised in 5 days"]


def test_commands_from_another_number_are_refused_and_change_nothing(app: Flask) -> None:
    phone = case_sent_to_the_dho(app)
    case = the_case(app)
    before = kinds(app, case)
    phone.run(f"""
        {C} > ACK {case.ref}
        {C} < Sorry, case {case.ref} is not with this number, so nothing was changed. Contact Our Network if this is wrong.
        {ES_OFFICIAL} > HECHO {case.ref}
        {ES_OFFICIAL} < Perdon, el caso {case.ref} no esta a cargo de este numero; no se cambio nada...
        {DHO} > ACK CXXXX
        {DHO} < Sorry, we found no case CXXXX. Check the reference in our message, e.g. ACK C7K2P.
        {DHO} > PROMISE {case.ref} someday
        {DHO} < Sorry, we could not read that date. Reply e.g. PROMISE {case.ref} 12/3 (day/month) or PROMISE {case.ref} 12 March.
        {A} > STATUS NOSUCH
        {A} < Sorry, we found no report NOSUCH. Check the reference in our reply to your report.
        {C} > NO THANKS
        {C} <
    """)
    with svc(app).sessions() as s:  # not a dispute: the organizers read it
        assert s.scalar(select(Message.inbox_status).where(Message.body == "NO THANKS")) == "open"
    after = the_case(app)
    assert after.status == "sent" and after.acknowledged_at is None and after.promised_for is None
    assert kinds(app, case) == before
    phone.run(f"""
        {C} > REPORT CLINIC ZOMBA PARTLY
        {C} < Thank you...
        @ alert: Our Network meets on Friday.
        {DHO} <
    """)
    joined = the_case(app)
    assert joined.id == case.id and joined.report_count == 3  # a later report joins the open case


def test_officials_csv_import_reports_bad_lines_and_cases_tick_command(app: Flask, tmp_path: Path) -> None:
    csv_file = tmp_path / "officials.csv"
    csv_file.write_text("number,name,role,language,places,services,level\n"
                        "+265888000001,Grace Phiri,District Health Officer,en,Zomba|Balaka,clinic;water,1\n"
                        "not-a-number,Nobody,Officer,en,Zomba,clinic,1\n"
                        "+265888000002,John Banda,District Commissioner,xx,Zomba,clinic,2\n"
                        "+265888000005,Ruth Mwale,Minister,en,Qwxyzzy,clinic,3\n"
                        "+265888000006,Peter Gondwe,Ombudsman,en,,,3\n", encoding="utf-8")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["officials", "import", str(csv_file)])
    assert result.exit_code == 1
    assert "2 official(s) imported, 3 line(s) with errors" in result.output
    for line in ("line 3: number", "line 4: language 'xx'", "line 5: place 'Qwxyzzy'"):
        assert line in result.output
    with svc(app).sessions() as s:
        grace = s.scalars(select(cases.ops.Official).where(cases.ops.Official.name == "Grace Phiri")).one()
        assert grace.places == ["Zomba", "Balaka"] and grace.services == ["clinic", "water"]
        contact = s.get(contacts.Contact, grace.contact_id)
        assert contact is not None and contact.consent_at is None and "official" in contact.tags
    phone = Phone(app, noon())
    phone.run(f"{A} > REPORT WATER BALAKA NO\n{A} < Thank you...\n{B} > REPORT WATER BALAKA NO\n{B} < Thank you...")
    result = runner.invoke(args=["cases", "tick"])
    assert result.exit_code == 0 and "0 overdue" in result.output
    with svc(app).sessions() as s:
        case = s.scalars(select(Case).where(Case.place == "Balaka")).one()
        assert case.deadline_at is not None
    before = (case.deadline_at - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    result = runner.invoke(args=["cases", "tick", "--at", before])  # a minute before the deadline: nothing
    assert result.exit_code == 0 and "0 overdue" in result.output
    after = (case.deadline_at + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    result = runner.invoke(args=["cases", "tick", "--at", after])  # time moved past it
    assert result.exit_code == 0 and "1 overdue, 0 sent to the next rung, 1 overdue at the top rung" in result.output
    with svc(app).sessions() as s:
        assert s.scalars(select(CaseEvent.kind).where(CaseEvent.case_id == case.id)).all()[-1] == "overdue"


def test_the_workers_run_the_case_deadlines(stack_app: Flask) -> None:
    from gateway.outbound import jobs, queues

    app = stack_app
    import_officials(app)
    phone = Phone(app, noon())
    phone.run(f"{A} > REPORT CLINIC ZOMBA NO\n{A} < Thank you...\n{B} > REPORT CLINIC ZOMBA NO\n{B} < Thank you...")
    with svc(app).sessions() as s, s.begin():
        case = s.scalars(select(Case)).one()
        case.deadline_at = utcnow() - timedelta(minutes=1)
    queues.get_queue(svc(app).redis, queues.REPLIES).enqueue(queues.CASES_TICK)
    with app.app_context():
        queues.work_burst(svc(app).redis)
    assert the_case(app).level == 2  # the job sent it up a rung
    if not svc(app).settings.redis_url:  # the embedded worker runs them with the reconciler
        with svc(app).sessions() as s, s.begin():
            s.get(Case, case.id).deadline_at = utcnow() - timedelta(minutes=1)  # type: ignore[union-attr]
        with app.app_context():
            jobs.reconcile()
        assert the_case(app).status == "overdue"
