"""Schedules through every door (API, console, CLI, an official's PROMISE), the verification label wherever
reports show, and "Tell supporters" prefilling the normal broadcast form. Both databases.
"""
from __future__ import annotations

import csv
import io
from datetime import datetime

from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select

from gateway.models import Case, Check, Message, Report, ServiceSchedule
from tests.cases_helpers import import_officials
from tests.conftest import Auth
from tests.evidence_helpers import add_schedule, tick
from tests.helpers import add, change_settings, svc
from tests.test_api import api, bearer, error_of, tokens  # noqa: F401  (fixtures)
from tests.transcript import Phone

A, B, C, D = "+265991000001", "+265991000002", "+265991000003", "+265991000004"
DHO = "+265888000001"


def test_the_api_creates_lists_changes_and_refuses_schedules(app, api, tokens) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    body = {"place": "zomba", "service": "Clinic", "labels": {"en": "the mobile clinic"}, "starts_on": "2026-11-03",
            "every_days": 14, "check_at": "16:00", "sample_size": 5, "no_threshold": 3}
    error_of(api.post("/api/v1/schedules", headers=bearer(tokens["viewer"]), json=body), 403)
    made = api.post("/api/v1/schedules", headers=bearer(tokens["organizer"]), json=body)
    assert made.status_code == 201, made.get_data(as_text=True)
    row = made.get_json()
    assert (row["place"], row["service"], row["every_days"], row["check_at"]) == ("Zomba", "clinic", 14, "16:00")
    assert made.headers["Location"] == f"/api/v1/schedules/{row['id']}"
    for bad, field in ((dict(body, place="Atlantis"), "place"), (dict(body, starts_on="3 Nov"), "starts_on"),
                       (dict(body, no_threshold=9), "no_threshold"), (dict(body, check_at="25:99"), "check_at"),
                       (dict(body, labels={"fr": "la clinique"}), "labels"),
                       (dict(body, labels={"en": "the " + "very " * 11 + "long clinic"}), "labels"),
                       (dict(body, every_days="often"), "every_days"), (dict(body, colour="red"), None),
                       (dict(body, sample_size="\u00b2"), "sample_size"),  # a digit to str.isdigit, not to int
                       (dict(body, sample_size="9" * 5000), "sample_size")):  # past int()'s digit limit
        err = error_of(api.post("/api/v1/schedules", headers=bearer(tokens["organizer"]), json=bad), 400)
        assert field is None or err["field"] == field, err
    accented = api.post("/api/v1/schedules", headers=bearer(tokens["organizer"]),
                        json=dict(body, labels={"es": "la clínica móvil"}, active=False))
    assert accented.status_code == 201 and accented.get_json()["labels"] == {"es": "la clinica movil"}
    listed = api.get("/api/v1/schedules?active=true", headers=bearer(tokens["viewer"])).get_json()
    assert [r["id"] for r in listed["data"]] == [row["id"]]
    changed = api.patch(f"/api/v1/schedules/{row['id']}", headers=bearer(tokens["organizer"]), json={"active": False})
    assert changed.status_code == 200 and changed.get_json()["active"] is False
    assert api.get("/api/v1/schedules?active=true", headers=bearer(tokens["viewer"])).get_json()["data"] == []
    error_of(api.get("/api/v1/schedules/999", headers=bearer(tokens["viewer"])), 404)
    spec = api.get("/api/v1/openapi.json").get_json()
    assert set(spec["paths"]["/api/v1/schedules"]) == {"get", "post"}
    assert set(spec["paths"]["/api/v1/schedules/{schedule_id}"]) == {"get", "patch"}
    assert "verification" in spec["components"]["schemas"]["Report"]["properties"]
    assert "verification" in spec["components"]["schemas"]["CaseReport"]["properties"]


def test_the_cli_adds_lists_and_ticks(app: Flask, runner: FlaskCliRunner) -> None:
    add(app, A, tags=("health",))
    result = runner.invoke(args=["schedules", "add", "--place", "Zomba", "--service", "clinic", "--label",
                                 "the mobile clinic", "--label", "es=la clinica movil", "--starts", "2026-11-03",
                                 "--every", "14", "--check-at", "16:00", "--sample", "5", "--no-threshold", "3"])
    assert result.exit_code == 0, result.output
    assert "every 14 days" in result.output
    bad = runner.invoke(args=["schedules", "add", "--place", "Nowhere", "--service", "clinic", "--starts", "2026-11-03"])
    assert bad.exit_code != 0 and "place: 'Nowhere' is not in the gazetteers" in bad.output
    listing = runner.invoke(args=["schedules", "list"])
    assert "Zomba\tclinic\t2026-11-03\tevery 14 days\t16:00" in listing.output
    ticked = runner.invoke(args=["checks", "tick", "--at", "2026-11-03T14:05"])
    assert ticked.output.strip() == "1 checks opened, 1 supporters asked, 0 checks closed", ticked.output
    with svc(app).sessions() as s:
        row = s.scalars(select(ServiceSchedule)).one()
        assert row.labels == {"en": "the mobile clinic", "es": "la clinica movil"}


def test_a_promise_becomes_a_checked_date(app: Flask) -> None:
    import_officials(app)
    add(app, C, tags=("health",))
    phone = Phone(app, datetime(2026, 11, 2, 8, 0))
    phone.send(A, "REPORT CLINIC ZOMBA NO")
    phone.send(B, "REPORT CLINIC ZOMBA NO")
    with svc(app).sessions() as s:
        case = s.scalars(select(Case)).one()
    replies = phone.send(DHO, f"PROMISE {case.ref} 5/11")
    assert "promised for 5/11" in replies[0]
    with svc(app).sessions() as s:
        row = s.scalars(select(ServiceSchedule)).one()
        assert (row.case_id, row.place, row.service, str(row.starts_on), row.every_days) == \
            (case.id, "Zomba", "clinic", "2026-11-05", None)
        assert row.created_by and row.created_by.startswith("official:")
    tick(app, datetime(2026, 11, 2, 8, 1))  # the case's corroboration asks C, who answers it
    assert phone.send(C, "1") == ["Thank you, your answer is counted."]
    tick(app, datetime(2026, 11, 5, 14, 0))
    phone.now = datetime(2026, 11, 5, 15, 0)
    assert phone.send(C, "2") == ["Thank you, your answer is counted."]
    with svc(app).sessions() as s:
        check = s.scalars(select(Check).where(Check.kind == "delivery")).one()
        answer = s.scalars(select(Report).where(Report.check_id == check.id)).one()
        # The promised case is still open: the "no" joins it.
        assert check.case_id == case.id and answer.delivered == "no"
        assert s.get(Case, case.id).report_count == 3  # type: ignore[union-attr]


def test_the_console_schedules_page_and_the_verification_label(app: Flask, client: FlaskClient, auth: Auth) -> None:
    auth.login("organizer")
    page = client.get("/schedules").get_data(as_text=True)
    assert 'href="/schedules"' in page and "A new schedule" in page
    no_csrf = client.post("/schedules", data={"place": "Zomba", "service": "clinic", "starts_on": "2026-11-03"})
    assert no_csrf.status_code == 400
    token = auth.csrf("/schedules")
    bad = client.post("/schedules", data={"csrf_token": token, "place": "Zomba", "service": "clinic",
                                          "starts_on": "2026-11-03", "sample_size": "2", "no_threshold": "3"})
    assert bad.status_code == 400 and "no_threshold: is more than the sample size" in bad.get_data(as_text=True)
    ok = client.post("/schedules", data={"csrf_token": token, "place": "Zomba", "service": "clinic",
                                         "label_en": "the mobile clinic", "starts_on": "2026-11-03",
                                         "every_days": "14", "check_at": "16:00", "sample_size": "5",
                                         "no_threshold": "3"}, follow_redirects=True)
    assert ok.status_code == 200 and "Schedule saved: clinic in Zomba" in ok.get_data(as_text=True)
    with svc(app).sessions() as s:
        schedule_id = s.scalars(select(ServiceSchedule.id)).one()
    stop = client.post(f"/schedules/{schedule_id}/active", data={"csrf_token": token, "active": "0"},
                       follow_redirects=True)
    assert "stopped" in stop.get_data(as_text=True)
    with svc(app).sessions() as s:
        assert s.get(ServiceSchedule, schedule_id).active is False  # type: ignore[union-attr]

    # A case's reports carry their label on the Reports page, the case page and the CSV export.
    for number in (A, B, C, D):
        add(app, number, tags=("health",))
    phone = Phone(app, datetime(2026, 11, 3, 8, 0))
    phone.send(A, "REPORT NAME CLINIC ZOMBA NO")
    phone.send(B, "REPORT NAME CLINIC ZOMBA NO")
    tick(app, datetime(2026, 11, 3, 8, 1))
    phone.send(C, "1")
    phone.send(D, "YES")
    with svc(app).sessions() as s:
        case = s.scalars(select(Case)).one()
        assert set(s.scalars(select(Report.verification))) == {"verified"}
    assert 'class="badge verified"' in client.get("/reports").get_data(as_text=True)
    case_page = client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert 'class="badge verified"' in case_page
    assert "Checked with 2 other supporters of Zomba:\n  2 said it is right, 0 said it is not; the reports are " \
           "<b>verified</b>" in case_page
    rows = list(csv.DictReader(io.StringIO(client.get("/reports/export").get_data(as_text=True))))
    assert [r["verification"] for r in rows] == ["verified", "verified"]


def test_tell_supporters_prefills_the_broadcast_form(app: Flask, client: FlaskClient, auth: Auth) -> None:
    for number in (A, B, C):
        add(app, number, tags=("health",))
    add_schedule(app, place="Zomba", service="clinic", labels={"en": "the clinic", "es": "la clinica"},
                 starts_on="2026-11-03", every_days=7, sample_size=3, no_threshold=3)
    phone = Phone(app)
    for day, answers in ((3, ("1", "1", "2")), (10, ("2", "2", "2")), (17, ("1", "3", "1")), (24, ())):
        tick(app, datetime(2026, 11, day, 14, 0))
        phone.now = datetime(2026, 11, day, 15, 0)
        for number, answer in zip((A, B, C), answers, strict=False):
            phone.send(number, answer)
        tick(app, datetime(2026, 11, day + 2, 15, 0))
    auth.login("organizer")
    page = client.get("/schedules/tell?place=zomba&service=clinic&month=2026-11").get_data(as_text=True)
    # Delivered on the 3rd and the 17th; not on the 10th; nobody answered on the 24th (not counted).
    assert "Zomba: the clinic came 2 of 3 due days in November. Thank you for reporting." in page
    assert "Zomba: la clinica llego 2 de 3 dias previstos en noviembre. Gracias por reportar." in page
    assert '<option value="Zomba" selected>' in page and 'action="/broadcasts/new"' in page
    for month in ("9999-12", "2026-13", "soon"):
        far = client.get(f"/schedules/tell?place=zomba&service=clinic&month={month}")
        assert far.status_code == 400 and "not a month like 2026-11" in far.get_data(as_text=True)


LONG_ORG = "Womens Rights and Service Delivery Monitoring Network of Zomba District Malawi 2026"


def test_a_schedule_stops_even_when_its_question_no_longer_fits(app, client, auth, api, tokens,  # type: ignore[no-untyped-def]  # noqa: F811
                                                               runner) -> None:
    """Review finding: a longer ORG_NAME made "Stop" re-check every field and fail (a 500 in the console)."""
    for number in (A, B):
        add(app, number, tags=("health",))
    label = {"en": "the mobile clinic run by the district office"}
    ids = [add_schedule(app, place="zomba", service="clinic", labels=label, starts_on="2026-11-03", every_days=14)
           for _ in range(3)]
    change_settings(app, org_name=LONG_ORG)
    auth.login("organizer")
    token = auth.csrf("/schedules")
    stop = client.post(f"/schedules/{ids[0]}/active", data={"csrf_token": token, "active": "0"})
    assert stop.status_code == 302
    again = client.post(f"/schedules/{ids[0]}/active", data={"csrf_token": token, "active": "1"})
    assert again.status_code == 400 and "longer than one SMS" in again.get_data(as_text=True)
    patched = api.patch(f"/api/v1/schedules/{ids[1]}", headers=bearer(tokens["organizer"]), json={"active": False})
    assert patched.status_code == 200 and patched.get_json()["active"] is False
    err = error_of(api.patch(f"/api/v1/schedules/{ids[1]}", headers=bearer(tokens["organizer"]),
                             json={"active": True}), 400)
    assert err["field"] == "labels"
    # The one still running is not asked: its question would be two SMS. Its check closes unasked.
    assert tick(app, datetime(2026, 11, 3, 14, 0)) == {"opened": 1, "asked": 0, "closed": 1}
    with svc(app).sessions() as s:
        assert s.scalar(select(Message.id).where(Message.direction == "out")) is None
        assert [r.active for r in s.scalars(select(ServiceSchedule).order_by(ServiceSchedule.id))] == \
            [False, False, True]
    assert runner.invoke(args=["schedules", "stop", str(ids[2])]).exit_code == 0
    with svc(app).sessions() as s:
        assert s.get(ServiceSchedule, ids[2]).active is False  # type: ignore[union-attr]


def test_a_promise_is_never_refused_and_its_questions_still_fit(app: Flask) -> None:
    """A new promise keeps the case's schedule label only while its questions fit one SMS; else the
    service's word (a promise is never refused)."""
    import_officials(app)
    phone = Phone(app, datetime(2026, 11, 2, 8, 0))
    phone.send(A, "REPORT CLINIC ZOMBA NO")
    phone.send(B, "REPORT CLINIC ZOMBA NO")
    with svc(app).sessions() as s:
        case = s.scalars(select(Case)).one()
    phone.send(DHO, f"PROMISE {case.ref} 5/11")
    with svc(app).sessions() as s, s.begin():
        row = s.scalars(select(ServiceSchedule)).one()
        row.labels = {"en": "the mobile clinic of the health centre of Santa Rosa, Zomba"}  # fitted once
    change_settings(app, org_name="Red de Mujeres Defensoras del Occidente")  # now too long for the corroboration
    assert "promised for 12/11" in phone.send(DHO, f"PROMISE {case.ref} 12/11")[0]
    with svc(app).sessions() as s:
        row = s.scalars(select(ServiceSchedule)).one()
        assert (str(row.starts_on), row.labels) == ("2026-11-12", {})
