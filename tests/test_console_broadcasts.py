"""Console broadcasts: live counters, audience count, compose -> preview -> test -> launch -> progress, cancel, roles, CSRF."""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from gateway.models import AuditEvent, Broadcast, Message, utcnow
from gateway.outbound import queues
from tests.conftest import Auth
from tests.helpers import add, change_settings, svc, work

TEXT = "Hello {name}, the clinic in {place} has no nurse. Come to the boma on Friday!"


def mw(i: int) -> str:
    return f"+2659912345{i:02d}"


@pytest.fixture(autouse=True)
def fast_sending(app: Flask) -> None:
    """Send at any hour and without pacing waits, so a burst sends everything due."""
    change_settings(app, quiet_hours=None, sender_rate=1000.0, sms_prices={"MW": 0.1, "*": 0.05})


def audience_of_three(app: Flask) -> None:
    add(app, mw(1), name="Chikondi", tags=("health",))
    add(app, mw(2), name="Grace", language="ny", tags=("health",))
    add(app, mw(3), name="Ana", language="es")
    add(app, mw(4), name="Elsewhere", place="Blantyre")
    add(app, mw(5), name="Never", consent=False)


def post_json(client: FlaskClient, path: str, data: Any, token: str | None) -> TestResponse:
    headers = {"X-CSRFToken": token} if token else {}
    return client.post(path, json=data, headers=headers)


def compose(client: FlaskClient, token: str, **fields: str) -> TestResponse:
    data = {"csrf_token": token, "text_en": TEXT, "text_ny": "", "text_es": "", "place": "Zomba",
            "language": "", "tag": "", "reply_keyword": "", "send_at": ""}
    data.update(fields)
    return client.post("/broadcasts/new", data=data)


def draft_id(response: TestResponse) -> int:
    assert response.status_code == 302, response.get_data(as_text=True)
    match = re.fullmatch(r".*/broadcasts/(\d+)", response.headers["Location"])
    assert match, response.headers["Location"]
    return int(match.group(1))


def broadcast(app: Flask, bid: int) -> Broadcast:
    with svc(app).sessions() as s:
        b = s.get(Broadcast, bid)
        assert b is not None
        return b


def outbox(app: Flask, bid: int) -> list[Message]:
    with svc(app).sessions() as s:
        return list(s.scalars(select(Message).where(Message.broadcast_id == bid)))


def audits(app: Flask, action: str) -> list[dict[str, Any]]:
    with svc(app).sessions() as s:
        return [e.detail for e in s.scalars(select(AuditEvent).where(AuditEvent.action == action))]


# --------------------------------------------------------------------------- live counter and audience


def test_measure_counts_like_the_sms_module(client: FlaskClient, auth: Auth) -> None:
    auth.login("organizer")
    token = auth.csrf("/broadcasts/new")

    plain = post_json(client, "/broadcasts/measure", {"text": "Meeting at the boma on Friday"}, token)
    assert plain.status_code == 200
    assert plain.json == {**plain.json, "characters": 29, "encoding": "GSM-7", "segments": 1,
                          "ucs2_chars": [], "suggestion": None, "suggestion_segments": None}

    accented = post_json(client, "/broadcasts/measure", {"text": "Reunión"}, token).json
    assert (accented["encoding"], accented["segments"], accented["characters"]) == ("UCS-2", 1, 7)
    assert accented["ucs2_chars"] == ["ó"]
    assert (accented["suggestion"], accented["suggestion_segments"]) == ("Reunion", 1)
    again = post_json(client, "/broadcasts/measure", {"text": accented["suggestion"]}, token).json
    assert (again["encoding"], again["ucs2_chars"], again["suggestion"]) == ("GSM-7", [], None)

    emoji = post_json(client, "/broadcasts/measure", {"text": "Come on Friday 🙂"}, token).json
    assert (emoji["encoding"], emoji["segments"], emoji["ucs2_chars"]) == ("UCS-2", 1, ["🙂"])
    assert emoji["suggestion"] is None  # no GSM-7 stand-in for an emoji

    long = post_json(client, "/broadcasts/measure", {"text": "a" * 161}, token).json
    assert (long["characters"], long["encoding"], long["segments"]) == (161, "GSM-7", 2)
    exactly = post_json(client, "/broadcasts/measure", {"text": "a" * 160}, token).json
    assert exactly["segments"] == 1

    # A long accented text: the plain version saves segments.
    long_accented = post_json(client, "/broadcasts/measure", {"text": "ó" * 100}, token).json
    assert (long_accented["segments"], long_accented["suggestion_segments"]) == (2, 1)

    assert post_json(client, "/broadcasts/measure", {"text": 5}, token).status_code == 400
    assert post_json(client, "/broadcasts/measure", ["x"], token).status_code == 400


def test_measure_fills_merge_fields_with_the_longest_name(app: Flask, client: FlaskClient, auth: Auth) -> None:
    add(app, mw(1), name="N" * 30)
    auth.login("organizer")
    token = auth.csrf("/broadcasts/new")
    m = post_json(client, "/broadcasts/measure", {"text": "Hi {name}"}, token).json
    assert m["characters"] == len("Hi ") + 30 and m["merge_fields"] is True


def test_audience_count(app: Flask, client: FlaskClient, auth: Auth) -> None:
    audience_of_three(app)
    auth.login("organizer")
    token = auth.csrf("/broadcasts/new")

    def count(**filters: str) -> int:
        r = post_json(client, "/broadcasts/audience", {"place": "", "language": "", "tag": "", **filters}, token)
        assert r.status_code == 200
        return r.json["recipients"]

    assert count() == 4
    assert count(place="Zomba") == 3
    assert count(place="Zomba", language="ny") == 1
    assert count(tag="Health") == 2  # tags match whatever the case typed
    assert count(place="Nowhere") == 0
    assert post_json(client, "/broadcasts/audience", "Zomba", token).status_code == 400


def test_compose_page_has_the_fields_and_no_inline_code(app: Flask, client: FlaskClient, auth: Auth) -> None:
    audience_of_three(app)
    auth.login("organizer")
    html = client.get("/broadcasts/new").get_data(as_text=True)
    for element in ('id="compose-form"', 'id="text-en"', 'id="text-ny"', 'id="text-es"', 'id="counter-en"',
                    'id="segments-en"', 'id="encoding-en"', 'id="fix-en"', 'id="place"', 'id="audience-language"',
                    'id="tag"', 'id="reply-keyword"', 'id="urgent"', 'id="send-at"', 'id="preview-button"',
                    '<option value="Zomba">', '<option value="Choluteca">', "compose.js"):
        assert element in html, element
    assert re.search(r'id="audience-count">4<', html)
    assert 'name="text_en" data-lang="en" rows="4" lang="en"\n              required' in html
    assert "<script>" not in html and "style=" not in html and " onclick" not in html


# --------------------------------------------------------------------------- compose, preview, launch, progress


def test_compose_preview_launch_and_progress(app: Flask, client: FlaskClient, auth: Auth) -> None:
    audience_of_three(app)
    auth.login("organizer")
    token = auth.csrf("/broadcasts/new")
    bid = draft_id(compose(client, token, text_ny="Moni {name}, bwerani Lachisanu!", reply_keyword="yes"))
    b = broadcast(app, bid)
    assert (b.status, b.place, b.reply_keyword, b.created_by) == ("draft", "Zomba", "YES", "organizer@example.org")

    page = client.get(f"/broadcasts/{bid}").get_data(as_text=True)
    assert re.search(r'id="preview-recipients">3<', page)
    # en (Chikondi, Ana: no Spanish text) 1 segment each, ny (Grace) 1 segment: 3 segments at MW=0.1
    assert re.search(r'id="preview-segments">3<', page)
    assert re.search(r'id="preview-cost">0.30<', page)
    assert 'id="launch-confirm"' in page and 'id="launch-button"' in page and 'id="test-number"' in page
    assert outbox(app, bid) == []  # a preview sends nothing

    launched = client.post(f"/broadcasts/{bid}/launch", data={"csrf_token": token, "confirm": "yes"})
    assert launched.status_code == 302
    assert broadcast(app, bid).status == "sending"
    assert audits(app, "broadcast.launch") == [{"id": bid, "recipients": 3}]
    assert sorted(m.status for m in outbox(app, bid)) == ["queued"] * 3

    before = client.get(f"/broadcasts/{bid}/progress.json").json
    assert (before["status"], before["recipients"], before["counts"]["queued"]) == ("sending", 3, 3)
    page = client.get(f"/broadcasts/{bid}").get_data(as_text=True)
    assert 'id="broadcast-status" class="status status-sending">sending<' in page
    assert 'id="progress-overall"' in page and 'id="count-sent">0<' in page and "progress.js" in page
    assert 'id="cancel-button"' in page

    work(app)
    p = client.get(f"/broadcasts/{bid}/progress.json").json
    assert p["status"] == "done"
    assert p["counts"]["sent"] == p["recipients"] == 3
    assert p["counts"]["queued"] == 0 and p["reply_keyword"] == "YES"
    assert sorted(svc(app).provider.sent) == [
        (mw(1), "Hello Chikondi, the clinic in Zomba has no nurse. Come to the boma on Friday!"),
        (mw(2), "Moni Grace, bwerani Lachisanu!"),
        (mw(3), "Hello Ana, the clinic in Zomba has no nurse. Come to the boma on Friday!"),
    ]
    page = client.get(f"/broadcasts/{bid}").get_data(as_text=True)
    assert ">done<" in page and 'id="count-sent">3<' in page and 'id="cancel-button"' not in page

    listing = client.get("/broadcasts").get_data(as_text=True)
    assert f'href="/broadcasts/{bid}"' in listing and "status-done" in listing

    again = client.post(f"/broadcasts/{bid}/launch", data={"csrf_token": token, "confirm": "yes"})
    assert again.status_code == 302
    assert len(outbox(app, bid)) == 3 and len(audits(app, "broadcast.launch")) == 1


def test_launch_without_the_confirmation_is_refused(app: Flask, client: FlaskClient, auth: Auth) -> None:
    audience_of_three(app)
    auth.login("organizer")
    token = auth.csrf("/broadcasts/new")
    bid = draft_id(compose(client, token))
    refused = client.post(f"/broadcasts/{bid}/launch", data={"csrf_token": token})
    assert refused.status_code == 400
    html = refused.get_data(as_text=True)
    assert 'id="launch-error"' in html and "I have checked the text and the audience" in html
    assert broadcast(app, bid).status == "draft"
    assert outbox(app, bid) == [] and audits(app, "broadcast.launch") == []
    wrong = client.post(f"/broadcasts/{bid}/launch", data={"csrf_token": token, "confirm": "maybe"})
    assert wrong.status_code == 400 and broadcast(app, bid).status == "draft"


def test_launch_to_nobody_is_refused(app: Flask, client: FlaskClient, auth: Auth) -> None:
    auth.login("organizer")
    token = auth.csrf("/broadcasts/new")
    bid = draft_id(compose(client, token))
    refused = client.post(f"/broadcasts/{bid}/launch", data={"csrf_token": token, "confirm": "yes"})
    assert refused.status_code == 400 and "no supporter matches" in refused.get_data(as_text=True)
    assert broadcast(app, bid).status == "draft"


def test_cancel_before_the_jobs_run(app: Flask, client: FlaskClient, auth: Auth) -> None:
    audience_of_three(app)
    auth.login("organizer")
    token = auth.csrf("/broadcasts/new")
    bid = draft_id(compose(client, token))
    client.post(f"/broadcasts/{bid}/launch", data={"csrf_token": token, "confirm": "yes"})

    unconfirmed = client.post(f"/broadcasts/{bid}/cancel", data={"csrf_token": token})
    assert unconfirmed.status_code == 400 and 'id="cancel-error"' in unconfirmed.get_data(as_text=True)
    assert broadcast(app, bid).status == "sending"

    assert client.post(f"/broadcasts/{bid}/cancel", data={"csrf_token": token, "confirm": "yes"}).status_code == 302
    work(app)
    p = client.get(f"/broadcasts/{bid}/progress.json").json
    assert p["status"] == "cancelled"
    assert p["counts"]["cancelled"] == 3 and p["counts"]["sent"] == 0
    assert svc(app).provider.sent == []
    assert audits(app, "broadcast.cancel") == [{"id": bid, "cancelled": 3}]


def test_scheduled_broadcast_waits_for_its_time(app: Flask, client: FlaskClient, auth: Auth) -> None:
    audience_of_three(app)
    auth.login("organizer")
    token = auth.csrf("/broadcasts/new")
    # Malawi time (the default country's gazetteer): UTC+2.
    local = (utcnow() + timedelta(days=1, hours=2)).replace(second=0, microsecond=0)
    bid = draft_id(compose(client, token, send_at=local.strftime("%Y-%m-%dT%H:%M")))
    assert broadcast(app, bid).send_at == local - timedelta(hours=2)
    page = client.get(f"/broadcasts/{bid}").get_data(as_text=True)
    assert "Schedule for" in page
    client.post(f"/broadcasts/{bid}/launch", data={"csrf_token": token, "confirm": "yes"})
    work(app)
    p = client.get(f"/broadcasts/{bid}/progress.json").json
    assert (p["status"], p["counts"]["queued"], p["counts"]["sent"]) == ("sending", 3, 0)
    assert queues.get_queue(svc(app).redis).scheduled_job_registry.count == 1
    assert all(m.send_after == local - timedelta(hours=2) for m in outbox(app, bid))


def test_compose_errors_are_explained_and_kept(app: Flask, client: FlaskClient, auth: Auth) -> None:
    auth.login("organizer")
    token = auth.csrf("/broadcasts/new")
    r = compose(client, token, text_en="  ", text_ny="Moni!", place="Atlantis", reply_keyword="yes please",
                send_at="2001-01-01T10:00")
    assert r.status_code == 400
    html = r.get_data(as_text=True)
    assert "Write the alert in English" in html and "choose a place from the list" in html
    assert "one short word" in html and "already passed" in html
    assert ">Moni!</textarea>" in html  # what was typed is kept
    with svc(app).sessions() as s:
        assert s.scalar(select(func.count()).select_from(Broadcast)) == 0


def test_copy_prefills_the_form(app: Flask, client: FlaskClient, auth: Auth) -> None:
    auth.login("organizer")
    token = auth.csrf("/broadcasts/new")
    bid = draft_id(compose(client, token, text_es="Reunión el viernes", reply_keyword="SI", urgent="1"))
    html = client.get(f"/broadcasts/new?copy={bid}").get_data(as_text=True)
    assert f">{TEXT}</textarea>" in html and ">Reunión el viernes</textarea>" in html
    assert '<option value="Zomba" selected>' in html and 'value="SI"' in html
    assert 'id="encoding-es">UCS-2<' in html and "Reunion" in html  # counted on the server for the prefilled text


# --------------------------------------------------------------------------- test send
# tests/test_test_send.py: only to the organizer's confirmed phone, through the outbox, limited, audited.


# --------------------------------------------------------------------------- roles and CSRF


def test_viewer_can_look_but_not_act(app: Flask, client: FlaskClient, auth: Auth) -> None:
    audience_of_three(app)
    auth.login("organizer")
    token = auth.csrf("/broadcasts/new")
    bid = draft_id(compose(client, token))
    client.post("/logout", data={"csrf_token": token})

    auth.login("viewer")
    token = auth.csrf("/broadcasts")
    assert client.get("/broadcasts").status_code == 200
    page = client.get(f"/broadcasts/{bid}")
    assert page.status_code == 200 and 'id="launch-form"' not in page.get_data(as_text=True)
    assert client.get(f"/broadcasts/{bid}/progress.json").status_code == 200
    assert client.get("/broadcasts/new").status_code == 403
    assert compose(client, token).status_code == 403
    for action in ("launch", "cancel", "test"):
        r = client.post(f"/broadcasts/{bid}/{action}", data={"csrf_token": token, "confirm": "yes",
                                                              "to": "+265991234599"})
        assert r.status_code == 403, action
    assert post_json(client, "/broadcasts/measure", {"text": "hi"}, token).status_code == 403
    assert post_json(client, "/broadcasts/audience", {"place": ""}, token).status_code == 403
    assert broadcast(app, bid).status == "draft" and outbox(app, bid) == []
    assert svc(app).provider.sent == []


def test_posts_without_csrf_are_refused(app: Flask, client: FlaskClient, auth: Auth) -> None:
    audience_of_three(app)
    auth.login("organizer")
    token = auth.csrf("/broadcasts/new")
    bid = draft_id(compose(client, token))
    assert post_json(client, "/broadcasts/measure", {"text": "hi"}, None).status_code == 400
    assert post_json(client, "/broadcasts/audience", {"place": ""}, None).status_code == 400
    assert post_json(client, "/broadcasts/measure", {"text": "hi"}, "forged").status_code == 400
    assert client.post(f"/broadcasts/{bid}/launch", data={"confirm": "yes"}).status_code == 400
    assert client.post(f"/broadcasts/{bid}/cancel", data={"confirm": "yes"}).status_code == 400
    assert client.post("/broadcasts/new", data={"text_en": "Hi"}).status_code == 400
    assert broadcast(app, bid).status == "draft" and outbox(app, bid) == []


def test_unknown_broadcast_is_404(client: FlaskClient, auth: Auth) -> None:
    auth.login("viewer")
    assert client.get("/broadcasts/999").status_code == 404
    assert client.get("/broadcasts/999/progress.json").status_code == 404


def test_pages_need_a_login(client: FlaskClient) -> None:
    for path in ("/broadcasts", "/broadcasts/new", "/broadcasts/1", "/broadcasts/1/progress.json"):
        r = client.get(path)
        assert r.status_code == 302 and "/login" in r.headers["Location"], path
