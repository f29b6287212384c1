"""The one-page brief on both databases: its figures, its PDF (one page, text read back by pypdf), the CLI,
the API and the console, bad input, the audit log, and figures recounted from the reports CSV."""
from __future__ import annotations

import csv
import io
import re
from collections import Counter
from datetime import datetime

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from gateway.core import brief as core
from gateway.evidence import briefs, figures, render
from gateway.models import Case, Check, CheckAsk, Contact, Report, User
from gateway.people import accounts, csvio
from tests import brief_rows
from tests.brief_rows import MONTH, NOW, NUMBERS, OFFICIAL, REPORTER, SILENT_PLACE
from tests.helpers import audit_events, svc


def _place_brief(app, now: datetime = NOW) -> figures.Brief:  # type: ignore[no-untyped-def]
    with svc(app).sessions() as s:
        return briefs.for_place(s, "zomba", MONTH, list(svc(app).flows.gazetteers.values()), "MW", now)


def _pdf_text(data: bytes) -> tuple[int, str]:
    reader = PdfReader(io.BytesIO(data))
    return len(reader.pages), " ".join((p.extract_text() or "") for p in reader.pages)


def _token(app, auth, role: str = "viewer") -> str:  # type: ignore[no-untyped-def]
    email = auth.user(role)
    with svc(app).sessions() as s, s.begin():
        return accounts.new_api_token(s.scalars(select(User).where(User.email == email)).one())


def test_the_figures_of_a_month(app) -> None:  # type: ignore[no-untyped-def]
    brief_rows.seed(app)
    f = _place_brief(app).figures
    assert isinstance(f, figures.PlaceFigures)
    assert (f.place, f.month, f.as_of.isoformat()) == ("Zomba", MONTH, "2026-11-28")
    clinic, water = f.services
    # The clinic every 14 days from 26 May: 13 due dates June to November, 2 in November (10th and 24th).
    assert [m.due for m in clinic.months] == [2, 2, 2, 3, 2, 2]
    nov = clinic.months[-1]
    assert (nov.due, nov.delivered, nov.unchecked) == (2, 1, 1)  # the 24th's answers are still coming in
    assert (clinic.due, clinic.delivered) == (13, brief_rows.OUTCOMES[:12].count("delivered"))
    assert (water.due, water.months[-1].unchecked) == (1, 1)  # promised for the 10th; no check was made
    overdue = [c for c in f.cases if c.state == "overdue"]
    assert [c.ref for c in overdue] == ["CZMB7"] and overdue[0].days == 24
    assert overdue[0].asked == (core.Asked(*OFFICIAL, datetime(2026, 11, 4).date()),)
    (grace,) = f.officials
    assert (grace.cases, grace.answered, grace.rate, grace.median_hours) == (4, 2, 0.5, 17.0)
    m = f.method
    assert (m.checks, m.asked, m.verified, m.contested, m.unverified) == (13, 65, 2, 1, 0)
    assert f.silent is None  # Zomba spoke
    # The month's reports by answer: 4 in the case, 3 answers to the 10 November check; not the simulator's.
    (clinic_reports,) = f.reported
    assert (clinic_reports.yes, clinic_reports.no, clinic_reports.partly, m.reports) == (3, 3, 1, 7)


def test_quotes_carry_no_number_and_no_name(app) -> None:  # type: ignore[no-untyped-def]
    brief_rows.seed(app)
    made = _place_brief(app)
    texts = [q.text for q in made.figures.quotes]
    assert texts, "the seeded month has quotable words"
    for text in texts:
        assert not re.search(r"\d", text), text
        for name in (*REPORTER.split(), *OFFICIAL[0].split()):
            assert name.lower() not in text.lower(), text
    assert not any("simulator" in t for t in texts)
    pages, text = _pdf_text(render.pdf(made, "en", "Our Network"))
    for secret in (*NUMBERS[:2], REPORTER, "Mwale", "Chikondi"):  # (the case reference is in its table)
        assert secret not in text


def test_the_fingerprint_changes_when_a_figure_does_and_not_otherwise(app) -> None:  # type: ignore[no-untyped-def]
    seeded = brief_rows.seed(app)
    first = _place_brief(app)
    again = _place_brief(app, NOW.replace(hour=18))  # made later the same day: same figures
    assert first.fingerprint == again.fingerprint and first.generated_at != again.generated_at
    with svc(app).sessions() as s, s.begin():  # one check's outcome is corrected
        check = s.get(Check, seeded.check_ids[0])
        assert check is not None and check.outcome == "delivered"
        check.outcome = "not_delivered"
    changed = _place_brief(app)
    assert changed.fingerprint != first.fingerprint
    assert changed.figures.services[0].delivered == first.figures.services[0].delivered - 1


def test_silent_places_have_supporters_and_no_reports(app) -> None:  # type: ignore[no-untyped-def]
    brief_rows.seed(app)
    with svc(app).sessions() as s:
        silent = figures.silent_places(s, datetime(2026, 11, 1), datetime(2026, 12, 1))
        assert [(p.place, p.supporters, p.reports) for p in silent] == [(SILENT_PLACE, 3, 0)]
        machinga = briefs.for_place(s, SILENT_PLACE, MONTH, list(svc(app).flows.gazetteers.values()), "MW", NOW)
    assert machinga.figures.silent == silent[0]
    html = render.html(machinga, "en", "Our Network")
    assert "Silent: 3 supporters in Machinga sent no report this month." in html


def test_the_figures_recount_from_the_reports_csv(app) -> None:  # type: ignore[no-untyped-def]
    brief_rows.seed(app)
    f = _place_brief(app).figures
    out = io.StringIO()
    with svc(app).sessions() as s:
        csvio.export_reports(s, out)
        answers_by_check = Counter(a.check_id for a in s.scalars(select(CheckAsk).where(CheckAsk.answer.is_not(None))))
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    month = [r for r in rows if r["place"] == "Zomba" and r["date"].startswith(MONTH) and r["source"] != "simulator"]
    assert len(month) == f.method.reports
    assert sum(bool(r["check_id"]) for r in month) == f.method.reports_from_checks
    labels = Counter(r["verification"] for r in month if r["verification"])
    assert (labels["verified"], labels["contested"], labels["unverified"]) == \
        (f.method.verified, f.method.contested, f.method.unverified)
    # Answers to checks, by due date: the CSV's check_id and due_on give every check's answers.
    in_period = [r for r in rows if r["check_id"] and f.method.period_from.isoformat() <= r["due_on"]]
    assert len(in_period) == f.method.answered == sum(answers_by_check.values())
    assert all(Counter(r["check_id"] for r in in_period)[str(c)] == n for c, n in answers_by_check.items())


@pytest.mark.parametrize("lang, heading, words", [
    ("en", "Service delivery in Zomba", ["Promised against delivered", "How officials answered", "Grace Phiri"]),
    ("es", "Entrega de servicios en Zomba", ["Lo prometido frente a lo entregado", "Cómo respondieron las autoridades",
                                             "noviembre de 2026"]),
])
def test_the_pdf_is_one_page_with_its_text(app, lang, heading, words) -> None:  # type: ignore[no-untyped-def]
    brief_rows.seed(app)
    made = _place_brief(app)
    pages, text = _pdf_text(render.pdf(made, lang, "Our Network"))
    assert pages == 1
    flat = re.sub(r"\s+", " ", text).casefold()  # section headings are printed in capitals
    for expected in (heading, made.fingerprint, *words):
        assert expected.casefold() in flat, expected


def test_the_case_brief_is_one_page(app) -> None:  # type: ignore[no-untyped-def]
    brief_rows.seed(app)
    with svc(app).sessions() as s:
        made = briefs.for_case(s, "czmb7", NOW)
    for lang, title in (("en", "Case CZMB7"), ("es", "Caso CZMB7")):
        pages, text = _pdf_text(render.pdf(made, lang, "Our Network"))
        assert pages == 1 and title in text and OFFICIAL[0] in text and REPORTER not in text


def test_the_cli_writes_the_pdf_and_refuses_bad_input(app, runner, tmp_path) -> None:  # type: ignore[no-untyped-def]
    brief_rows.seed(app)
    out = tmp_path / "brief.pdf"
    result = runner.invoke(args=["brief", "--place", "Zomba", "--month", MONTH, "--out", str(out), "--lang", "es"])
    assert result.exit_code == 0, result.output
    pages, text = _pdf_text(out.read_bytes())
    assert pages == 1 and "Entrega de servicios en Zomba" in text
    assert audit_events(app, "export.brief")[-1].detail["place"] == "Zomba"
    case = runner.invoke(args=["brief", "--case", "CZMB7", "--out", str(tmp_path / "case.json")])
    assert case.exit_code == 0 and '"ref": "CZMB7"' in (tmp_path / "case.json").read_text()
    for bad, message in ((["--place", "Narnia", "--month", MONTH], "not in the gazetteers"),
                         (["--place", "Zomba", "--month", "2026-13"], "not a month like 2026-11"),
                         (["--place", "Zomba", "--month", MONTH, "--lang", "fr"], "en or es"),
                         (["--case", "NOPE1"], "no case")):
        result = runner.invoke(args=["brief", *bad, "--out", str(tmp_path / "x.pdf")])
        assert result.exit_code == 2 and message in result.output, result.output


def test_the_api_gives_a_pdf_or_json_and_4xx_for_bad_input(app, client, auth) -> None:  # type: ignore[no-untyped-def]
    brief_rows.seed(app)
    headers = {"Authorization": f"Bearer {_token(app, auth)}"}
    pdf = client.get(f"/api/v1/brief?place=Zomba&month={MONTH}&lang=es", headers=headers)
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    pages, text = _pdf_text(pdf.data)
    assert pages == 1 and "Entrega de servicios en Zomba" in text
    data = client.get(f"/api/v1/brief?place=Zomba&month={MONTH}&format=json", headers=headers).get_json()
    assert data["kind"] == "place" and data["fingerprint"] in text
    assert data["fingerprint"] == core.fingerprint(_place_brief(app, datetime.now()).figures)
    assert [m["due"] for m in data["figures"]["services"][0]["months"]] == [2, 2, 2, 3, 2, 2]
    for query, status, field in (("place=Narnia&month=2026-11", 400, "place"),
                                 ("place=Zomba&month=2026-13", 400, "month"),
                                 ("place=Zomba&month=9999-12", 400, "month"),
                                 ("place=Zomba&month=november", 400, "month"),
                                 ("place=Zomba", 400, "month"),
                                 ("place=Zomba&month=2026-11&lang=fr", 400, "lang"),
                                 ("place=Zomba&month=2026-11&format=docx", 400, "format"),
                                 ("place=Zomba&month=2026-11&colour=red", 400, "colour"),
                                 ("case=NOPE1", 404, "case")):
        answer = client.get(f"/api/v1/brief?{query}", headers=headers)
        assert answer.status_code == status, (query, answer.get_json())
        assert answer.get_json()["error"]["field"] == field
    assert client.get(f"/api/v1/brief?place=Zomba&month={MONTH}").status_code == 401
    events = audit_events(app, "export.brief")
    assert [e.detail["format"] for e in events] == ["pdf", "json"] and events[0].actor.startswith("api:")
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "application/pdf" in spec["paths"]["/api/v1/brief"]["get"]["responses"]["200"]["content"]


def test_the_console_shows_the_brief_and_refuses_bad_input(app, client, auth) -> None:  # type: ignore[no-untyped-def]
    brief_rows.seed(app)
    auth.login("viewer")
    page = client.get(f"/brief?place=Zomba&month={MONTH}")
    assert page.status_code == 200 and "Service delivery in Zomba" in page.get_data(as_text=True)
    assert 'href="/brief.css"' in page.get_data(as_text=True)  # linked: the console's CSP forbids inline style
    assert client.get("/brief.css").mimetype == "text/css"
    pdf = client.get(f"/brief?place=Zomba&month={MONTH}&format=pdf&lang=es")
    assert pdf.mimetype == "application/pdf" and _pdf_text(pdf.data)[0] == 1
    bad = client.get("/brief?place=Zomba&month=13-2026")
    assert bad.status_code == 400 and "not a month like 2026-11" in bad.get_data(as_text=True)
    assert client.get("/brief?place=Narnia&month=2026-11").status_code == 400
    assert client.get("/brief?place=Zomba&month=9999-12").status_code == 400
    assert client.get("/brief?case=NOPE1").status_code == 400
    reports_page = client.get("/reports").get_data(as_text=True)
    assert 'id="brief-form"' in reports_page and SILENT_PLACE in reports_page
    assert [e.actor for e in audit_events(app, "export.brief")] == ["viewer@example.org"] * 2


def test_the_reports_csv_names_the_check_and_its_due_date(app) -> None:  # type: ignore[no-untyped-def]
    seeded = brief_rows.seed(app)
    out = io.StringIO()
    with svc(app).sessions() as s:
        csvio.export_reports(s, out)
        answer = s.scalars(select(Report).where(Report.check_id == seeded.check_ids[0])).first()
        check = s.get(Check, seeded.check_ids[0])
        assert answer is not None and check is not None
        ref, due = answer.ref, check.due_on.isoformat()
    rows = {r["ref"]: r for r in csv.DictReader(io.StringIO(out.getvalue()))}
    assert (rows[ref]["check_id"], rows[ref]["due_on"]) == (str(seeded.check_ids[0]), due)
    assert rows["RNOV0"]["verification"] == "verified" and rows["RNOV3"]["verification"] == ""


def test_a_crowded_month_still_fits_one_page(app) -> None:  # type: ignore[no-untyped-def]
    brief_rows.seed_busy(app)
    with svc(app).sessions() as s:
        made = briefs.for_place(s, "Blantyre", MONTH, list(svc(app).flows.gazetteers.values()), "MW", NOW)
    assert len(made.figures.services) == 5 and len(made.figures.cases) == 12 and len(made.figures.officials) == 6
    for lang in ("en", "es"):
        pages, text = _pdf_text(render.pdf(made, lang, "Our Network"))
        assert pages == 1, lang
        assert made.fingerprint in text


def test_a_place_whose_checks_nobody_answered_is_silent_too(app) -> None:  # type: ignore[no-untyped-def]
    brief_rows.seed(app)
    with svc(app).sessions() as s, s.begin():
        s.add(Report(ref="RMACH1", service="water", place=SILENT_PLACE, country="MW", delivered="no", anonymous=True,
                     language="en", created_at=datetime(2026, 11, 2, 9)))
        check = Check(kind="delivery", place=SILENT_PLACE, country="MW", service="water",
                      due_on=datetime(2026, 11, 12).date(), ask_after=datetime(2026, 11, 12, 13), status="closed",
                      asked=3, outcome="no_answer")
        s.add(check)
        s.flush()
        people = s.scalars(select(Contact.id).where(Contact.place == SILENT_PLACE)).all()
        s.add_all(CheckAsk(check_id=check.id, contact_id=c, asked_at=datetime(2026, 11, 12, 13)) for c in people)
    with svc(app).sessions() as s:
        (silent,) = figures.silent_places(s, datetime(2026, 11, 1), datetime(2026, 12, 1))
        made = briefs.for_place(s, SILENT_PLACE, MONTH, list(svc(app).flows.gazetteers.values()), "MW", NOW)
    assert (silent.place, silent.reports, silent.checks_asked, silent.answers) == (SILENT_PLACE, 1, 1, 0)
    assert made.figures.method.checks == 1 and made.figures.method.answered == 0
    html = render.html(made, "es", "Our Network")
    assert "Silencio: se hicieron 1 consultas en Machinga este mes y nadie respondió." in html


def test_overdue_cases_are_listed_first(app) -> None:  # type: ignore[no-untyped-def]
    brief_rows.seed(app)
    with svc(app).sessions() as s, s.begin():
        s.add_all([Case(ref="CRSLVD", place="Zomba", country="MW", service="water", status="resolved",
                        opened_at=datetime(2026, 11, 20, 9), resolved_at=datetime(2026, 11, 22, 9)),
                   Case(ref="COPEN2", place="Zomba", country="MW", service="water", status="open",
                        opened_at=datetime(2026, 11, 21, 9))])
    made = _place_brief(app)
    assert {c.ref: (c.state, c.days) for c in made.figures.cases} == {
        "CZMB7": ("overdue", 24), "CRSLVD": ("resolved", 2), "COPEN2": ("open", 7)}
    html = render.html(made, "en", "Our Network")
    table = html[html.index('<table class="cases">'):]
    assert table.index("CZMB7") < table.index("COPEN2") < table.index("CRSLVD")
    assert "1 open, 1 overdue, 1 resolved, 0 closed" in html


def test_a_case_brief_counts_its_crowd_without_the_simulator(app) -> None:  # type: ignore[no-untyped-def]
    """Review finding: two real reports and a simulator test made the 3 a case needs before it is quoted."""
    from gateway.models import CaseReport

    brief_rows.seed(app)
    with svc(app).sessions() as s, s.begin():
        rows = [Report(ref=f"RCRD{k}", service="clinic", place="Zomba", country="MW", delivered="no", anonymous=True,
                       details=f"The clinic gate was locked and the women went home, {word} time", language="en",
                       source=source, created_at=datetime(2026, 11, 20, 9, 0))
                for k, (source, word) in enumerate((("console", "first"), ("sms", "second"), ("simulator", "third")))]
        case = Case(ref="CCRD1", place="Zomba", country="MW", service="clinic", status="open", level=1,
                    report_count=3, opened_at=datetime(2026, 11, 20, 10, 0))
        s.add_all([*rows, case])
        s.flush()
        s.add_all(CaseReport(case_id=case.id, report_id=r.id) for r in rows)
    with svc(app).sessions() as s:
        made = briefs.for_case(s, "CCRD1", NOW)
        assert made.figures.quotes == ()  # type: ignore[union-attr]
    with svc(app).sessions() as s, s.begin():  # a third real report
        third = Report(ref="RCRD3", service="clinic", place="Zomba", country="MW", delivered="no", anonymous=True,
                       details="Nobody came and the gate was locked", language="en", source="sms",
                       created_at=datetime(2026, 11, 20, 9, 0))
        s.add(third)
        s.flush()
        s.add(CaseReport(case_id=s.scalars(select(Case.id).where(Case.ref == "CCRD1")).one(), report_id=third.id))
    with svc(app).sessions() as s:
        quoted = briefs.for_case(s, "CCRD1", NOW).figures.quotes  # type: ignore[union-attr]
        assert len(quoted) == 3 and not any("third" in q.text for q in quoted)  # the crowd is three real reports
