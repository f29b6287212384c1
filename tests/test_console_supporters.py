"""Console pages for supporters (search, contact page, CSV import and export), the inbox and the flows."""
from __future__ import annotations

import csv
import io
import re
import shutil
from pathlib import Path

from sqlalchemy import select

from gateway.people.contacts import new_contact, number_is
from gateway.models import Contact, Message
from gateway.core.phones import mask_number
from tests.conftest import csrf_from
from tests.helpers import audit_events, change_settings, svc
from tests.reporting import file_anonymous_report
from tests.transcript import Phone

A = "+265991234567"
B = "+265881234567"
H = "+50499123456"


def join(phone: Phone, number: str, name: str, place: str, interests: str = "SKIP") -> None:
    for text in ("JOIN", name, place, interests):
        phone.send(number, text)


def people(app) -> Phone:  # type: ignore[no-untyped-def]
    """Three supporters: A (Zomba, health+water), B (Mangochi, then STOP), H (Honduras, Spanish)."""
    phone = Phone(app)
    join(phone, A, "Chikondi Banda", "Zomba", "1 3")
    join(phone, B, "Grace Phiri", "Mangochi")
    phone.send(B, "STOP")
    for text in ("UNIRME", "Maria Lopez", "Cortes", "SALTAR"):
        phone.send(H, text)
    return phone


def page(client, url: str) -> str:  # type: ignore[no-untyped-def]
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.get_data(as_text=True)


def one(app, model, *where, number: str | None = None):  # type: ignore[no-untyped-def]
    with app.extensions["gateway"].sessions() as s:
        if number is not None:  # numbers are found by their digest, never compared in plain
            where = (*where, number_is(s, number))
        return s.scalars(select(model).where(*where)).one()


# --------------------------------------------------------------------------- supporters


def test_search_and_filters(app, client, auth) -> None:
    people(app)
    auth.login("organizer")
    everyone = page(client, "/supporters")
    assert all(n in everyone for n in ("Chikondi Banda", "Grace Phiri", "Maria Lopez", A, B, H))
    assert "3 of 3 supporters" in everyone

    def names(query: str) -> set[str]:
        html = page(client, "/supporters?" + query)
        return {n for n in ("Chikondi Banda", "Grace Phiri", "Maria Lopez") if n in html}

    assert names("q=banda") == {"Chikondi Banda"}
    # Numbers are encrypted and found by their digest: a whole number in any format, never a part.
    assert names("q=0881+234+567") == {"Grace Phiri"}  # local format, spaces
    assert names("q=265-881-234-567") == names("q=%2B265881234567") == {"Grace Phiri"}
    assert names("q=%2B504+9912+3456") == {"Maria Lopez"}
    assert names("q=0881") == names("q=%2B504") == set()
    assert names("q=%25") == set()  # LIKE wildcards are searched for, not expanded
    assert names("place=Zomba") == {"Chikondi Banda"}
    assert names("language=es") == {"Maria Lopez"}
    assert names("tag=water") == {"Chikondi Banda"}
    assert names("status=stopped") == {"Grace Phiri"}
    assert names("status=active&language=en") == {"Chikondi Banda"}
    assert "No supporters match" in page(client, "/supporters?q=nobody")


def test_pagination_keeps_the_filter(app, client, auth) -> None:
    with app.extensions["gateway"].sessions() as s, s.begin():
        s.add_all(new_contact(s, f"+2659912{i:05d}", name=f"Person {i:03d}", place="Zomba", status="active")
                  for i in range(60))
        s.add(new_contact(s, "+265991299999", name="Elsewhere", place="Dedza", status="active"))
    auth.login("viewer")
    first = page(client, "/supporters?place=Zomba")
    assert "1–50 of 60 supporters" in first and "Elsewhere" not in first
    assert "/supporters?place=Zomba&amp;page=2" in first
    second = page(client, "/supporters?place=Zomba&page=2")
    assert "51–60 of 60" in second and "Person 000" in second and "Person 059" not in second


def test_viewer_sees_masked_numbers(app, client, auth) -> None:
    people(app)
    auth.login("viewer")
    html = page(client, "/supporters")
    assert A not in html and mask_number(A) in html
    contact_id = one(app, Contact, number=A).id
    detail = page(client, f"/supporters/{contact_id}")
    assert A not in detail and mask_number(A) in detail


def test_contact_page_history_newest_first_and_no_trace_of_an_anonymous_report(app, client, auth) -> None:
    phone = Phone(app)
    join(phone, A, "Chikondi Banda", "Zomba", "1 3")
    # An anonymous one-SMS report: its messages are no longer the supporter's, not even as markers.
    file_anonymous_report(lambda text: phone.send(A, text))
    auth.login("organizer")
    contact_id = one(app, Contact, number=A).id
    html = page(client, f"/supporters/{contact_id}")
    assert "Chikondi Banda" in html and A in html and "Zomba" in html
    assert "health" in html and "water" in html  # tags
    history = html[html.index('<ol class="history">'):]
    order = [history.index(text) for text in (
        "Welcome! You will get alerts for Zomba.", "Chikondi Banda", "What is your name?", "JOIN")]
    assert order == sorted(order)  # newest first
    assert "(removed)" not in html and "nurse absent" not in html and "REPORT CLINIC" not in history
    assert client.get("/supporters/99999").status_code == 404


def test_import_reports_bad_lines_and_keeps_good_rows(app, client, auth) -> None:
    auth.login("organizer")
    token = auth.csrf("/supporters/import")
    text = ("number,name,language,place,tags\n"
            "0991234567,Chikondi Banda,en,Zomba,health;water\n"
            "not a number,Nobody,en,Zomba,\n"
            "+50499123456,Maria Lopez,es,Cortes,\n")
    response = client.post("/supporters/import", data={
        "csrf_token": token, "file": (io.BytesIO(text.encode()), "people.csv")},
        content_type="multipart/form-data")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "2 created, 0 updated" in html
    assert "line 3: number &#39;not a number&#39;" in html or "line 3: number 'not a number'" in html
    a = one(app, Contact, number=A)
    assert (a.name, a.place, a.language, a.tags) == ("Chikondi Banda", "Zomba", "en", ["health", "water"])
    assert one(app, Contact, number=H).place == "Cortés"
    [event] = audit_events(app, "contacts.import")
    assert event.actor == "organizer@example.org"
    assert (event.detail["created"], event.detail["updated"], event.detail["errors"]) == (2, 0, 1)

    again = client.post("/supporters/import", data={
        "csrf_token": token, "file": (io.BytesIO(text.encode("cp1252")), "people.csv")},
        content_type="multipart/form-data")
    assert "0 created, 2 updated" in again.get_data(as_text=True)


def test_import_of_a_file_without_header_says_line_1(app, client, auth) -> None:
    auth.login("organizer")
    token = auth.csrf("/supporters/import")
    response = client.post("/supporters/import", data={
        "csrf_token": token, "file": (io.BytesIO(b"phone,who\n0991234567,x\n"), "x.csv")},
        content_type="multipart/form-data")
    assert "line 1: expected the columns" in response.get_data(as_text=True)
    with app.extensions["gateway"].sessions() as s:
        assert s.scalars(select(Contact)).all() == []


def test_viewer_cannot_import(app, client, auth) -> None:
    auth.login("viewer")
    assert client.get("/supporters/import").status_code == 403
    token = auth.csrf("/supporters")
    response = client.post("/supporters/import", data={
        "csrf_token": token, "file": (io.BytesIO(b"number\n0991234567\n"), "x.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 403
    assert "Import a CSV" not in page(client, "/supporters")
    with app.extensions["gateway"].sessions() as s:
        assert s.scalars(select(Contact)).all() == []


def test_post_without_csrf_token_is_refused(app, client, auth) -> None:
    auth.login("organizer")
    response = client.post("/supporters/import", data={"file": (io.BytesIO(b"number\n0991234567\n"), "x.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 400
    with app.extensions["gateway"].sessions() as s:
        assert s.scalars(select(Contact)).all() == []


def test_export_csv_with_the_filter_and_its_audit_event(app, client, auth) -> None:
    people(app)
    auth.login("organizer")
    response = client.get("/supporters/export?place=Zomba")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows == [["number", "name", "language", "place", "tags", "status"],
                    [A, "Chikondi Banda", "en", "Zomba", "health;water", "active"]]
    [event] = audit_events(app, "export.contacts")
    assert event.actor == "organizer@example.org"
    assert event.detail["filter"] == {"place": "Zomba"} and event.detail["count"] == 1


def test_viewer_export_masks_numbers(app, client, auth) -> None:
    people(app)
    auth.login("viewer")
    text = client.get("/supporters/export").get_data(as_text=True)
    assert len(text.strip().splitlines()) == 4
    assert all(n not in text for n in (A, B, H)) and mask_number(A) in text
    assert audit_events(app, "export.contacts")[0].detail["masked"] is True


# --------------------------------------------------------------------------- inbox


def open_inbox_message(app) -> Phone:  # type: ignore[no-untyped-def]
    phone = Phone(app)
    join(phone, A, "Chikondi Banda", "Zomba")
    phone.send(A, "Hello, the clinic did not come")
    return phone


def test_inbox_lists_open_messages_masked_for_viewers(app, client, auth) -> None:
    open_inbox_message(app)
    auth.login("viewer")
    html = page(client, "/inbox")
    assert "Hello, the clinic did not come" in html
    assert A not in html and mask_number(A) in html
    contact_id = one(app, Contact, number=A).id
    assert f'href="/supporters/{contact_id}"' in html
    assert "Send reply" not in html and "Mark handled" not in html


def test_inbox_reply_reaches_the_provider_and_handled_leaves_the_list(app, client, auth) -> None:
    open_inbox_message(app)
    provider = app.extensions["gateway"].provider
    auth.login("organizer")
    html = page(client, "/inbox")
    assert A in html and "Hello, the clinic did not come" in html
    inbound = one(app, Message, Message.inbox_status == "open")

    token = csrf_from(html)
    response = client.post(f"/inbox/{inbound.id}/reply", data={"csrf_token": token,
                                                               "body": "Thank you, we will call the clinic."})
    assert response.status_code == 302
    assert provider.sent == [(A, "Thank you, we will call the clinic.")]
    reply = one(app, Message, Message.reply_to_id == inbound.id, Message.body == "Thank you, we will call the clinic.")
    assert (reply.direction, reply.status, reply.channel, reply.segments, reply.encoding) == (
        "out", "sent", "console", 1, "GSM-7")
    assert reply.provider_id and reply.provider_id.startswith("console-")
    [event] = audit_events(app, "inbox.reply")
    assert event.detail["message_id"] == inbound.id and event.actor == "organizer@example.org"
    html = page(client, "/inbox")
    assert "Hello, the clinic did not come" in html  # not ticked: still open, with the reply under it
    assert "Thank you, we will call the clinic." in html

    response = client.post(f"/inbox/{inbound.id}/handled", data={"csrf_token": token})
    assert response.status_code == 302
    assert "Hello, the clinic did not come" not in page(client, "/inbox")
    assert one(app, Message, Message.id == inbound.id).inbox_status == "handled"


def test_inbox_reply_refused_to_a_stopped_contact(app, client, auth) -> None:
    phone = open_inbox_message(app)
    phone.send(A, "STOP")
    phone.send(A, "why did you stop")  # kept for organizers, but no more texts to them
    auth.login("organizer")
    html = page(client, "/inbox")
    assert "why did you stop" in html and "texted STOP" in html
    inbound = one(app, Message, Message.body == "why did you stop")
    response = client.post(f"/inbox/{inbound.id}/reply", data={"csrf_token": csrf_from(html), "body": "Hello?"},
                           follow_redirects=True)
    assert "Not sent" in response.get_data(as_text=True) and "texted STOP" in response.get_data(as_text=True)
    assert app.extensions["gateway"].provider.sent == []
    with app.extensions["gateway"].sessions() as s:
        assert s.scalars(select(Message).where(Message.body == "Hello?")).all() == []


def test_viewer_cannot_reply_nor_mark_handled(app, client, auth) -> None:
    open_inbox_message(app)
    inbound = one(app, Message, Message.inbox_status == "open")
    auth.login("viewer")
    token = auth.csrf("/inbox")
    assert client.post(f"/inbox/{inbound.id}/reply", data={"csrf_token": token, "body": "hi"}).status_code == 403
    assert client.post(f"/inbox/{inbound.id}/handled", data={"csrf_token": token}).status_code == 403
    assert app.extensions["gateway"].provider.sent == []
    assert one(app, Message, Message.id == inbound.id).inbox_status == "open"


def test_inbox_reply_without_csrf_token_is_refused(app, client, auth) -> None:
    open_inbox_message(app)
    inbound = one(app, Message, Message.inbox_status == "open")
    auth.login("organizer")
    assert client.post(f"/inbox/{inbound.id}/reply", data={"body": "hi"}).status_code == 400
    assert app.extensions["gateway"].provider.sent == []


# --------------------------------------------------------------------------- flows


def prompt_row(html: str, text: str) -> tuple[str, str, str]:
    """Encoding, characters and SMS count shown next to a prompt."""
    match = re.search(re.escape(text) + r'</td>\s*<td>([^<]+)</td>\s*<td>(\d+)</td>\s*<td class="segments">([^<]+)', html)
    assert match, text
    return match.group(1), match.group(2), match.group(3).strip()


def test_flows_page_shows_keywords_and_segments(client, auth) -> None:
    auth.login("viewer")
    html = page(client, "/flows")
    assert "REPORT" in html and "LIPOTI" in html and "DENUNCIA" in html
    text = "Which service? 1 Clinic 2 Fertilizer 3 Water 4 School 5 Other"
    assert prompt_row(html, text) == ("GSM-7", str(len(text)), "1 segment")
    assert "draft" in html and "over the limit" not in html


def test_flows_page_marks_prompts_over_their_segments(app, client, auth, tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    shutil.copytree(svc(app).settings.flows_dir, flows)
    rights = flows / "rights.yaml"
    long_text = "Your rights: " + "public services are for everyone. " * 5 + "Text REPORT."
    rights.write_text(rights.read_text().replace(
        'en: "Your rights: public services are for everyone and free of bribes. You may speak out and report '
        'without your name. Text REPORT."', f'en: "{long_text}"'))
    rights.write_text(rights.read_text().replace("Tumizani LIPOTI.", "Tumizani LIPOTI ✊."))
    change_settings(app, flows_dir=flows)
    auth.login("viewer")
    html = page(client, "/flows")
    assert prompt_row(html, long_text) == ("GSM-7", str(len(long_text)), "2 segments")
    # One emoji makes the whole Chichewa text UCS-2: 70 characters an SMS, so it needs two.
    encoding, _chars, segments = prompt_row(html, "Tumizani LIPOTI ✊.")
    assert (encoding, segments) == ("UCS-2", "2 segments")
    assert html.count("over the limit of 1") == 2 and "2 texts are over the number of SMS allowed" in html


def test_flows_page_lists_the_errors_of_broken_files(app, client, auth, tmp_path: Path) -> None:
    broken = tmp_path / "flows"
    shutil.copytree(svc(app).settings.flows_dir, broken)
    (broken / "report.yaml").write_text("flow: report\nkeywords: {en: [REPORT]}\nsteps:\n  - ask: Which?\n")
    change_settings(app, flows_dir=broken)
    auth.login("viewer")
    html = page(client, "/flows")
    assert "problem" in html
    assert "report.yaml: steps[0].id: an ask step needs an id" in html
    assert "Which service?" not in html
