"""Console simulator: texts go through the same inbound path as `flask sms simulate`, with and without JavaScript."""
from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from gateway.models import AuditEvent, Contact, Message, Report, utcnow
from gateway.people.contacts import new_contact, number_is
from tests.conftest import Auth
from tests.helpers import svc

CONSENT = "Our Network: you joined our SMS alerts. Text STOP any time to end, HELP for help. What is your name? (or SKIP)"
NUMBER = "+265990000001"


def send_json(client: FlaskClient, token: str, sender: str, text: str) -> TestResponse:
    return client.post("/simulator/send", json={"from": sender, "text": text}, headers={"X-CSRFToken": token})


def test_join_with_javascript_gets_the_consent_reply(app: Flask, client: FlaskClient, auth: Auth) -> None:
    auth.login("organizer")
    token = auth.csrf("/simulator")
    r = send_json(client, token, NUMBER, "JOIN")
    assert r.status_code == 200
    assert r.json["from"] == NUMBER and r.json["replies"] == [CONSENT]
    assert [(m["mine"], m["body"]) for m in r.json["conversation"]] == [(True, "JOIN"), (False, CONSENT)]
    r = send_json(client, token, "0990000001", "Chikondi")  # a local number: the same supporter
    assert r.json["replies"] == ["Where do you live? Send your district, e.g. Zomba."]
    with svc(app).sessions() as s:
        c = s.scalars(select(Contact).where(number_is(s, NUMBER))).one()
        assert (c.status, c.language, c.consent_at is not None) == ("active", "en", True)
        stored = list(s.scalars(select(Message).order_by(Message.id)))
    assert [(m.direction, m.channel, m.status) for m in stored] == [
        ("in", "console", "handled"), ("out", "console", "sent"), ("in", "console", "handled"), ("out", "console", "sent")]
    # The page shows the same conversation from the database, oldest first.
    html = client.get(f"/simulator?from={NUMBER}").get_data(as_text=True)
    assert html.index("JOIN") < html.index(CONSENT) < html.index("Chikondi") < html.index("Where do you live?")


def test_join_without_javascript_posts_the_form(app: Flask, client: FlaskClient, auth: Auth) -> None:
    auth.login("organizer")
    page = client.get("/simulator").get_data(as_text=True)
    for element in ('id="sim-form"', 'id="sim-from"', f'value="{NUMBER}"', 'id="sim-text"', 'id="sim-send"',
                    'id="sim-screen"', "simulator.js"):
        assert element in page, element
    assert "<script>" not in page and "style=" not in page
    token = auth.csrf("/simulator")
    r = client.post("/simulator/send", data={"csrf_token": token, "from": "+265990000002", "text": "JOIN"})
    assert r.status_code == 302 and r.headers["Location"].endswith("from=%2B265990000002#sim-last")
    html = client.get(r.headers["Location"]).get_data(as_text=True)
    mine = re.search(r'<li class="msg mine">\s*<span class="msg-body">JOIN</span>', html)
    theirs = re.search(r'<li class="msg theirs" id="sim-last">\s*<span class="msg-body">([^<]*)</span>', html)
    assert mine and theirs and theirs.group(1) == CONSENT
    # Another number's conversation is not shown.
    other = client.get(f"/simulator?from={NUMBER}").get_data(as_text=True)
    assert CONSENT not in other and "No messages yet" in other


def test_a_report_through_the_simulator_creates_a_report(app: Flask, client: FlaskClient, auth: Auth) -> None:
    auth.login("organizer")
    token = auth.csrf("/simulator")
    r = send_json(client, token, NUMBER, "REPORT NAME CLINIC ZOMBA NO nurse absent")
    [reply] = r.json["replies"]
    with svc(app).sessions() as s:
        [report] = s.scalars(select(Report)).all()
        contact_id = s.scalar(select(Contact.id).where(number_is(s, NUMBER)))
    assert reply == f"Thank you. Report {report.ref} is recorded with your name. Text STATUS {report.ref} for news. Your voice makes services come."
    assert (report.service, report.place, report.delivered, report.details, report.anonymous,
            report.contact_id) == ("clinic", "Zomba", "no", "nurse absent", False, contact_id)
    assert report.source == "simulator"  # a test report can be told from evidence (M3)


def test_an_anonymous_report_leaves_no_words_on_the_screen(app: Flask, client: FlaskClient, auth: Auth) -> None:
    auth.login("organizer")
    token = auth.csrf("/simulator")
    send_json(client, token, NUMBER, "REPORT CLINIC ZOMBA")
    send_json(client, token, NUMBER, "no")
    r = send_json(client, token, NUMBER, "nurse absent")
    assert r.json["replies"][0].startswith("Thank you. Report ")  # the phone gets it once
    with svc(app).sessions() as s:
        [report] = s.scalars(select(Report)).all()
    assert report.anonymous and report.contact_id is None
    html = client.get(f"/simulator?from={NUMBER}").get_data(as_text=True)
    screen = re.search(r'id="sim-screen".*?</ol>', html, re.DOTALL)
    assert screen, "no phone screen"
    assert "nurse absent" not in screen.group(0) and report.ref not in screen.group(0)
    # No marker hints that texts were there and were removed (C1).
    assert "removed" not in screen.group(0) and "anonymous" not in screen.group(0)
    assert r.json["conversation"] == []


def test_bad_input_is_explained(app: Flask, client: FlaskClient, auth: Auth) -> None:
    auth.login("organizer")
    token = auth.csrf("/simulator")
    r = send_json(client, token, "12", "JOIN")
    assert r.status_code == 400 and r.json["error"].startswith("Test number:")
    r = send_json(client, token, NUMBER, "   ")
    assert r.status_code == 400 and "Type a message" in r.json["error"]
    form = client.post("/simulator/send", data={"csrf_token": token, "from": "nonsense", "text": "JOIN"})
    assert form.status_code == 400
    html = form.get_data(as_text=True)
    assert 'id="sim-error"' in html and "not a phone number" in html and 'value="JOIN"' in html
    with svc(app).sessions() as s:
        assert s.scalars(select(Message)).all() == []


def real_supporter(app: Flask, number: str, *, texted: bool) -> int:
    """A supporter who texted for real, or one imported (or added through the API) who never texted."""
    with svc(app).sessions() as s, s.begin():
        c = new_contact(s, number, name="Chikondi", status="active", consent_at=utcnow())
        s.add(c)
        s.flush()
        if texted:
            s.add(Message(direction="in", contact_id=c.id, channel="twilio", provider_id="SM1", body="JOIN",
                          status="handled"))
            s.add(Message(direction="out", contact_id=c.id, channel="twilio", provider_id="SM2",
                          body="Welcome Chikondi", status="sent"))
        return c.id


@pytest.mark.parametrize("texted", [True, False], ids=["texted", "imported"])
def test_a_real_supporters_number_is_refused(app: Flask, client: FlaskClient, auth: Auth, texted: bool) -> None:
    real_supporter(app, "+265991234567", texted=texted)
    auth.login("organizer")
    token = auth.csrf("/simulator")
    for text in ("STOP", "JOIN"):
        r = send_json(client, token, "+265991234567", text)
        assert r.status_code == 400 and "real supporter" in r.json["error"]
    form = client.post("/simulator/send", data={"csrf_token": token, "from": "+265991234567", "text": "STOP"})
    assert form.status_code == 400 and "real supporter" in form.get_data(as_text=True)
    # Nor can their conversation be read here (GET).
    page = client.get("/simulator?from=0991234567")
    html = page.get_data(as_text=True)
    assert page.status_code == 403 and "real supporter" in html
    if texted:
        assert "Welcome Chikondi" not in html and "JOIN</span>" not in html
    with svc(app).sessions() as s:
        c = s.scalars(select(Contact).where(number_is(s, "+265991234567"))).one()
        assert (c.status, c.name, c.tags) == ("active", "Chikondi", [])
        assert len(s.scalars(select(Message)).all()) == (2 if texted else 0)
        assert s.scalars(select(AuditEvent).where(AuditEvent.action == "simulator.send")).all() == []


def test_simulator_sends_are_audited_with_the_numbers_digest(app: Flask, client: FlaskClient, auth: Auth) -> None:
    auth.login("organizer")
    token = auth.csrf("/simulator")
    send_json(client, token, NUMBER, "JOIN")
    send_json(client, token, NUMBER, "Chikondi")
    with svc(app).sessions() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "simulator.send")
                           .order_by(AuditEvent.id)).all()
        digest = s.scalar(select(Contact.number_digest).where(number_is(s, NUMBER)))
    assert [(e.actor, e.detail["number_digest"], e.detail["characters"]) for e in events] == [
        ("organizer@example.org", digest, 4), ("organizer@example.org", digest, 8)]
    assert all(NUMBER[-9:] not in str(e.detail) and "Chikondi" not in str(e.detail) for e in events)


def test_simulator_reports_are_marked_in_the_console_and_the_export(app: Flask, client: FlaskClient, auth: Auth) -> None:
    from tests.transcript import Phone

    Phone(app).send("+265991234567", "REPORT WATER ZOMBA NO borehole broken")
    Phone(app).send("+265991234567", "2")
    auth.login("organizer")
    token = auth.csrf("/simulator")
    send_json(client, token, NUMBER, "REPORT CLINIC ZOMBA NO nurse absent")
    send_json(client, token, NUMBER, "2")
    with svc(app).sessions() as s:
        sources = {r.service: r.source for r in s.scalars(select(Report))}
    assert sources["clinic"] == "simulator" and sources["water"] != "simulator"
    html = client.get("/reports").get_data(as_text=True)
    assert html.count('class="badge simulated"') == 1
    rows = client.get("/reports/export").get_data(as_text=True).lstrip("\ufeff").splitlines()
    header = rows[0].split(",")
    assert "source" in header
    by_service = {line.split(",")[header.index("service")]: line.split(",")[header.index("source")]
                  for line in rows[1:]}
    assert by_service["clinic"] == "simulator" and by_service["water"] != "simulator"


def test_only_organizers_and_only_with_csrf(app: Flask, client: FlaskClient, auth: Auth) -> None:
    auth.login("viewer")
    token = auth.csrf("/")
    assert client.get("/simulator").status_code == 403
    assert send_json(client, token, NUMBER, "JOIN").status_code == 403
    client.post("/logout", data={"csrf_token": token})
    auth.login("organizer")
    assert client.post("/simulator/send", json={"from": NUMBER, "text": "JOIN"}).status_code == 400
    assert client.post("/simulator/send", data={"from": NUMBER, "text": "JOIN"}).status_code == 400
    with svc(app).sessions() as s:
        assert s.scalars(select(Message)).all() == []


def test_simulator_numbers_are_left_out_of_real_alerts(app, client, auth) -> None:
    """A number that joined through the simulator is tagged and gets no real broadcast."""
    from gateway.outbound import broadcasts
    from tests.transcript import Phone

    auth.login("organizer")
    token = auth.csrf("/simulator")
    for text in ("JOIN", "Test", "Zomba", "1"):
        client.post("/simulator/send", json={"from": "+265990000001", "text": text},
                    headers={"X-CSRFToken": token})
    for text in ("JOIN", "Real", "Zomba", "1"):
        Phone(app).send("+265991234567", text)
    with svc(app).sessions() as s, s.begin():
        b = broadcasts.create(s, {"en": "Meeting Thursday"}, place="Zomba")
        assert broadcasts.preview(s, b, {}).recipients == 1
        b2 = broadcasts.create(s, {"en": "Simulator check"}, tag="simulator")
        assert broadcasts.preview(s, b2, {}).recipients == 1
