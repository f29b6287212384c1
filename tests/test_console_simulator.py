"""Console simulator: texts go through the same inbound path as `flask sms simulate`, with and without JavaScript."""
from __future__ import annotations

import re

from sqlalchemy import select

from gateway.contacts import new_contact, number_is
from gateway.models import Contact, Message, Report, utcnow

CONSENT = "Our Network: you joined our SMS alerts. Text STOP any time to end, HELP for help. What is your name? (or SKIP)"
NUMBER = "+265990000001"


def svc(app):  # type: ignore[no-untyped-def]
    return app.extensions["gateway"]


def send_json(client, token: str, sender: str, text: str):  # type: ignore[no-untyped-def]
    return client.post("/simulator/send", json={"from": sender, "text": text}, headers={"X-CSRFToken": token})


def test_join_with_javascript_gets_the_consent_reply(app, client, auth) -> None:  # type: ignore[no-untyped-def]
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
    assert [(m.direction, m.provider, m.status) for m in stored] == [
        ("in", "console", "handled"), ("out", "console", "sent"), ("in", "console", "handled"), ("out", "console", "sent")]
    # The page shows the same conversation from the database, oldest first.
    html = client.get(f"/simulator?from={NUMBER}").get_data(as_text=True)
    assert html.index("JOIN") < html.index(CONSENT) < html.index("Chikondi") < html.index("Where do you live?")


def test_join_without_javascript_posts_the_form(app, client, auth) -> None:  # type: ignore[no-untyped-def]
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


def test_a_report_through_the_simulator_creates_a_report(app, client, auth) -> None:  # type: ignore[no-untyped-def]
    auth.login("organizer")
    token = auth.csrf("/simulator")
    r = send_json(client, token, NUMBER, "REPORT CLINIC ZOMBA NO nurse absent")
    assert r.json["replies"] == ["Keep your name and number off this report? 1 Yes 2 No"]
    r = send_json(client, token, NUMBER, "2")
    [reply] = r.json["replies"]
    with svc(app).sessions() as s:
        [report] = s.scalars(select(Report)).all()
        contact_id = s.scalar(select(Contact.id).where(number_is(s, NUMBER)))
    assert reply == f"Thank you. Report {report.ref} is recorded. Your voice makes services come."
    assert (report.service, report.place, report.delivered, report.details, report.anonymous,
            report.contact_id) == ("clinic", "Zomba", "no", "nurse absent", False, contact_id)


def test_an_anonymous_report_leaves_no_words_on_the_screen(app, client, auth) -> None:  # type: ignore[no-untyped-def]
    auth.login("organizer")
    token = auth.csrf("/simulator")
    send_json(client, token, NUMBER, "REPORT CLINIC ZOMBA NO nurse absent")
    r = send_json(client, token, NUMBER, "1")
    assert r.json["replies"][0].startswith("Thank you. Report ")  # the phone gets it once
    with svc(app).sessions() as s:
        [report] = s.scalars(select(Report)).all()
    assert report.anonymous and report.contact_id is None
    html = client.get(f"/simulator?from={NUMBER}").get_data(as_text=True)
    screen = re.search(r'id="sim-screen".*?</ol>', html, re.DOTALL)
    assert screen, "no phone screen"
    assert "nurse absent" not in screen.group(0) and report.ref not in screen.group(0)
    assert "removed" not in screen.group(0)  # no marker says a report was made from this number


def test_bad_input_is_explained(app, client, auth) -> None:  # type: ignore[no-untyped-def]
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


def test_a_real_supporters_number_is_refused(app, client, auth) -> None:  # type: ignore[no-untyped-def]
    with svc(app).sessions() as s, s.begin():
        c = new_contact(s, "+265991234567", status="active", consent_at=utcnow())
        s.add(c)
        s.flush()
        s.add(Message(direction="in", contact_id=c.id, provider="twilio", provider_id="SM1", body="JOIN",
                      status="handled"))
    auth.login("organizer")
    token = auth.csrf("/simulator")
    r = send_json(client, token, "+265991234567", "STOP")
    assert r.status_code == 400 and "real supporter" in r.json["error"]
    with svc(app).sessions() as s:
        assert s.scalar(select(Contact.status).where(number_is(s, "+265991234567"))) == "active"


def test_only_organizers_and_only_with_csrf(app, client, auth) -> None:  # type: ignore[no-untyped-def]
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
    from gateway import broadcasts
    from tests.transcript import Phone

    auth.login("organizer")
    token = auth.csrf("/simulator")
    for text in ("JOIN", "Test", "Zomba", "1"):
        client.post("/simulator/send", json={"from": "+265990000001", "text": text},
                    headers={"X-CSRFToken": token})
    for text in ("JOIN", "Real", "Zomba", "1"):
        Phone(app).send("+265991234567", text)
    with app.extensions["gateway"].sessions() as s, s.begin():
        b = broadcasts.create(s, {"en": "Meeting Thursday"}, place="Zomba")
        assert broadcasts.preview(s, b, {}).recipients == 1
        b2 = broadcasts.create(s, {"en": "Simulator check"}, tag="simulator")
        assert broadcasts.preview(s, b2, {}).recipients == 1
