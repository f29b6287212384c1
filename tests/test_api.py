"""The JSON API under /api/v1/: tokens and roles, contacts, broadcasts, reports, errors, OpenAPI."""
from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.people import accounts
from gateway.outbound import queues
from gateway.people.contacts import number_is
from gateway.models import Broadcast, Contact, Report, User
from tests.helpers import audit_events, change_settings
from tests.transcript import Phone

ZOMBA_1, ZOMBA_2, ZOMBA_3, BLANTYRE = "+265991234501", "+265991234502", "+265991234503", "+265991234504"


@pytest.fixture
def api(app):  # type: ignore[no-untyped-def]
    """A test client for the app with the API registered (by create_app, or here until it is)."""
    if "api" not in app.blueprints:
        from gateway.web import api as api_module

        api_module.init_app(app)
    return app.test_client()


@pytest.fixture
def tokens(app, auth) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """An API token per role."""
    out = {}
    for role in ("viewer", "organizer", "admin"):
        email = auth.user(role)
        with app.extensions["gateway"].sessions() as s, s.begin():
            out[role] = accounts.new_api_token(s.scalars(select(User).where(User.email == email)).one())
    return out


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_of(response, status: int) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The error object of a JSON error answer with this status."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.is_json, response.content_type
    body = response.get_json()
    assert set(body) == {"error"}
    assert body["error"]["code"] and body["error"]["message"].strip()
    return body["error"]


def add_contact(api, token: str, number: str, **fields: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = api.post("/api/v1/contacts", headers=bearer(token), json={"number": number, **fields})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def count(app, model: type) -> int:  # type: ignore[no-untyped-def]
    with app.extensions["gateway"].sessions() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


# --------------------------------------------------------------------------- tokens and roles


def test_missing_or_wrong_token_is_401_json(app, api, tokens) -> None:  # type: ignore[no-untyped-def]
    for headers in ({}, {"Authorization": "Bearer gw_not-a-token"}, {"Authorization": "Basic dXNlcjpwYXNz"},
                    {"Authorization": "Bearer "}, {"Authorization": tokens["admin"]}):
        response = api.get("/api/v1/contacts", headers=headers)
        error_of(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    error_of(api.post("/api/v1/contacts", json={"number": ZOMBA_1}), 401)
    assert count(app, Contact) == 0
    # A disabled account's token stops working at once.
    assert api.get("/api/v1/contacts", headers=bearer(tokens["viewer"])).status_code == 200
    with app.extensions["gateway"].sessions() as s, s.begin():
        s.scalars(select(User).where(User.role == "viewer")).one().active = False
    error_of(api.get("/api/v1/contacts", headers=bearer(tokens["viewer"])), 401)


def test_a_viewer_reads_but_cannot_write(app, api, tokens) -> None:  # type: ignore[no-untyped-def]
    viewer = bearer(tokens["viewer"])
    contact = add_contact(api, tokens["organizer"], ZOMBA_1)
    bid = api.post("/api/v1/broadcasts", headers=bearer(tokens["organizer"]),
                   json={"texts": {"en": "Hello"}}).get_json()["id"]
    assert api.get("/api/v1/contacts", headers=viewer).status_code == 200
    assert api.get(f"/api/v1/broadcasts/{bid}", headers=viewer).status_code == 200
    assert api.get("/api/v1/reports", headers=viewer).status_code == 200
    writes = [("post", "/api/v1/contacts", {"number": ZOMBA_2}),
              ("patch", f"/api/v1/contacts/{contact['id']}", {"name": "Someone"}),
              ("post", "/api/v1/broadcasts/preview", {"texts": {"en": "Hello"}}),
              ("post", "/api/v1/broadcasts", {"texts": {"en": "Hello"}}),
              ("post", f"/api/v1/broadcasts/{bid}/launch", None),
              ("post", f"/api/v1/broadcasts/{bid}/cancel", None)]
    for method, path, body in writes:
        error = error_of(getattr(api, method)(path, headers=viewer, json=body), 403)
        assert "organizer" in error["message"], (path, error)
    assert count(app, Contact) == 1 and count(app, Broadcast) == 1
    assert api.get(f"/api/v1/broadcasts/{bid}", headers=viewer).get_json()["status"] == "draft"
    # An admin can do what an organizer can.
    assert api.post("/api/v1/contacts", headers=bearer(tokens["admin"]), json={"number": ZOMBA_2}).status_code == 201


# --------------------------------------------------------------------------- contacts


def test_contacts_create_normalise_list_filter_and_change(app, api, tokens) -> None:  # type: ignore[no-untyped-def]
    org = bearer(tokens["organizer"])
    response = api.post("/api/v1/contacts", headers=org, json={
        "number": "0991 234 501", "name": " Chifundo ", "language": "NY", "place": "zomba city",
        "tags": ["Nurses", "nurses", " water "]})
    assert response.status_code == 201
    first = response.get_json()
    assert first["number"] == ZOMBA_1  # a local number, read in DEFAULT_COUNTRY (MW)
    assert (first["name"], first["language"], first["place"], first["tags"], first["status"], first["country"]) == (
        "Chifundo", "ny", "Zomba", ["nurses", "water"], "active", "MW")
    assert response.headers["Location"].endswith(f"/api/v1/contacts/{first['id']}")

    # The same number written another way is the same contact.
    for written in ("+265 99 123 4501", "00265991234501", "0991-234-501"):
        error = error_of(api.post("/api/v1/contacts", headers=org, json={"number": written}), 409)
        assert error["code"] == "contact_exists" and str(first["id"]) in error["message"]
    assert count(app, Contact) == 1

    add_contact(api, tokens["organizer"], ZOMBA_2, language="en", place="Zomba", tags=["water"])
    add_contact(api, tokens["organizer"], BLANTYRE, language="en", place="Blantyre")
    viewer = bearer(tokens["viewer"])

    def numbers(query: str = "") -> list[str]:  # organizers see whole numbers (viewers: see below)
        response = api.get(f"/api/v1/contacts{query}", headers=org)
        assert response.status_code == 200, response.get_data(as_text=True)
        return [c["number"] for c in response.get_json()["data"]]

    assert numbers() == [ZOMBA_1, ZOMBA_2, BLANTYRE]
    assert numbers("?place=zomba") == [ZOMBA_1, ZOMBA_2]
    assert numbers("?language=en") == [ZOMBA_2, BLANTYRE]
    assert numbers("?tag=Water") == [ZOMBA_1, ZOMBA_2]
    assert numbers("?tag=nurses&place=Zomba") == [ZOMBA_1]
    assert numbers("?status=stopped") == []
    assert numbers("?number=0991234502") == [ZOMBA_2]
    page = api.get("/api/v1/contacts?per_page=2&page=2", headers=viewer).get_json()
    assert [c["number"] for c in page["data"]] == ["+26599*****04"]
    assert page["pagination"] == {"page": 2, "per_page": 2, "total": 3, "pages": 2}
    listed = api.get("/api/v1/contacts", headers=viewer).get_json()["data"][0]
    assert {"id", "number", "name", "language", "place", "tags", "status"} <= set(listed)

    changed = api.patch(f"/api/v1/contacts/{first['id']}", headers=org,
                        json={"name": "Chifundo Banda", "place": "blantyre", "tags": ["Drivers", "water"]})
    assert changed.status_code == 200, changed.get_data(as_text=True)
    body = changed.get_json()
    assert (body["name"], body["place"], body["tags"], body["language"]) == (
        "Chifundo Banda", "Blantyre", ["drivers", "water"], "ny")
    cleared = api.patch(f"/api/v1/contacts/{first['id']}", headers=org, json={"language": None, "tags": []}).get_json()
    assert (cleared["language"], cleared["tags"]) == (None, [])
    assert numbers("?tag=water") == [ZOMBA_2]
    blocked = api.patch(f"/api/v1/contacts/{first['id']}", headers=org, json={"status": "blocked"}).get_json()
    assert blocked["status"] == "blocked"
    assert api.patch(f"/api/v1/contacts/{first['id']}", headers=org,
                     json={"status": "active"}).get_json()["status"] == "active"

    error_of(api.patch("/api/v1/contacts/9999", headers=org, json={"name": "x"}), 404)
    error_of(api.patch("/api/v1/contacts/99999999999999999999", headers=org, json={"name": "x"}), 404)


def test_a_viewer_token_gets_masked_numbers_and_every_listing_is_audited(app, api, tokens) -> None:  # type: ignore[no-untyped-def]
    for number in (ZOMBA_1, ZOMBA_2, BLANTYRE):
        add_contact(api, tokens["organizer"], number, place="Zomba")
    viewer = bearer(tokens["viewer"])
    listed = api.get("/api/v1/contacts?per_page=200", headers=viewer).get_json()["data"]
    assert [c["number"] for c in listed] == ["+26599*****01", "+26599*****02", "+26599*****04"]
    body = api.get("/api/v1/contacts?place=Zomba", headers=viewer).get_data(as_text=True)
    assert not any(n in body for n in (ZOMBA_1, ZOMBA_2, BLANTYRE))
    one = api.get(f"/api/v1/contacts?number={ZOMBA_2}", headers=viewer).get_json()["data"]
    assert [c["number"] for c in one] == ["+26599*****02"]
    # An organizer still gets whole numbers, and that listing is recorded too.
    full = api.get("/api/v1/contacts", headers=bearer(tokens["organizer"])).get_json()["data"]
    assert [c["number"] for c in full] == [ZOMBA_1, ZOMBA_2, BLANTYRE]

    events = audit_events(app, "export.contacts")
    assert [(e.actor, e.detail["via"], e.detail["count"]) for e in events] == [
        ("api:viewer@example.org", "api", 3), ("api:viewer@example.org", "api", 3),
        ("api:viewer@example.org", "api", 1), ("api:organizer@example.org", "api", 3)]
    assert events[1].detail["filters"] == {"place": "Zomba"}
    # A search for one number records its keyed digest, never the number, masked or not.
    with app.extensions["gateway"].sessions() as s:
        digest = s.scalar(select(Contact.number_digest).where(number_is(s, ZOMBA_2)))
    assert events[2].detail["number_digest"] == digest
    assert all("99*****" not in str(e.detail) and ZOMBA_2 not in str(e.detail) for e in events)


def test_number_searches_by_a_viewer_are_rate_limited(app, api, tokens) -> None:  # type: ignore[no-untyped-def]
    from gateway.web.api.contacts import VIEWER_NUMBER_SEARCHES

    add_contact(api, tokens["organizer"], ZOMBA_1)
    viewer = bearer(tokens["viewer"])
    allowed = int(VIEWER_NUMBER_SEARCHES.split("/")[0])
    answers = [api.get(f"/api/v1/contacts?number=+2659912{i:05d}", headers=viewer).status_code
               for i in range(allowed + 1)]
    assert answers == [200] * allowed + [429]
    error = error_of(api.get(f"/api/v1/contacts?number={ZOMBA_1}", headers=viewer), 429)
    assert error["code"] == "too_many_requests"
    # Listings without a number, and organizers' searches, are not limited by it.
    assert api.get("/api/v1/contacts", headers=viewer).status_code == 200
    assert api.get(f"/api/v1/contacts?number={ZOMBA_1}", headers=bearer(tokens["organizer"])).status_code == 200


def test_contact_listings_are_rate_limited_per_token(app, api, tokens, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from gateway.web.api import contacts as api_contacts

    monkeypatch.setattr(api_contacts, "CONTACT_LISTINGS", "3/hour")
    viewer, organizer = bearer(tokens["viewer"]), bearer(tokens["organizer"])
    assert [api.get(f"/api/v1/contacts?page={p}", headers=viewer).status_code for p in (1, 2, 3, 4)] == [
        200, 200, 200, 429]
    assert api.get("/api/v1/contacts", headers=organizer).status_code == 200  # another token's own count
    assert len(audit_events(app, "export.contacts")) == 4  # a refused listing exports nothing


def test_a_stopped_contact_is_never_reactivated_by_the_api(app, api, tokens) -> None:  # type: ignore[no-untyped-def]
    org = bearer(tokens["organizer"])
    phone = Phone(app)
    assert phone.send(ZOMBA_1, "JOIN")
    assert phone.send(ZOMBA_1, "STOP")
    stopped = api.get("/api/v1/contacts?status=stopped", headers=org).get_json()["data"]
    assert [c["number"] for c in stopped] == [ZOMBA_1]
    cid = stopped[0]["id"]

    # Adding them again (local format) is a conflict, not a restart.
    error = error_of(api.post("/api/v1/contacts", headers=org, json={"number": "0991234501", "name": "Again"}), 409)
    assert error["code"] == "contact_exists"
    error = error_of(api.patch(f"/api/v1/contacts/{cid}", headers=org, json={"status": "active"}), 409)
    assert error["code"] == "contact_stopped" and error["field"] == "status"
    assert "START" in error["message"] and "opted out" in error["message"]
    # Other changes are fine, and leave them stopped.
    body = api.patch(f"/api/v1/contacts/{cid}", headers=org, json={"name": "Thoko", "tags": ["nurses"]}).get_json()
    assert (body["name"], body["status"]) == ("Thoko", "stopped")
    with app.extensions["gateway"].sessions() as s:
        contact = s.get(Contact, cid)
        assert contact.status == "stopped" and contact.stopped_at is not None

    # An organizer can record an opt-out that came by other means; it cannot be undone here either.
    other = add_contact(api, tokens["organizer"], ZOMBA_2)
    assert api.patch(f"/api/v1/contacts/{other['id']}", headers=org,
                     json={"status": "stopped"}).get_json()["status"] == "stopped"
    error_of(api.patch(f"/api/v1/contacts/{other['id']}", headers=org, json={"status": "active"}), 409)


@pytest.mark.parametrize(("body", "field"), [
    ({}, "number"),
    ({"number": ""}, "number"),
    ({"number": 265991234501}, "number"),
    ({"number": "12"}, "number"),
    ({"number": "0991 234"}, "number"),
    ({"number": "12345"}, "number"),  # a short code is no supporter
    ({"number": "+265991234501\u0000"}, "number"),
    ({"number": ZOMBA_1, "name": "x" * 121}, "name"),
    ({"number": ZOMBA_1, "name": ["Ann"]}, "name"),
    ({"number": ZOMBA_1, "language": "fr"}, "language"),
    ({"number": ZOMBA_1, "place": "Narnia"}, "place"),
    ({"number": ZOMBA_1, "tags": "nurses"}, "tags"),
    ({"number": ZOMBA_1, "tags": ["ok", 7]}, "tags[1]"),
    ({"number": ZOMBA_1, "tags": ["x" * 41]}, "tags[0]"),
    ({"number": ZOMBA_1, "status": "active"}, "status"),  # not a field of a new contact
    ({"number": ZOMBA_1, "colour": "red"}, "colour"),
])
def test_an_invalid_contact_field_is_400_naming_it(app, api, tokens, body, field) -> None:  # type: ignore[no-untyped-def]
    error = error_of(api.post("/api/v1/contacts", headers=bearer(tokens["organizer"]), json=body), 400)
    assert error["field"] == field
    assert error["message"].startswith(f"{field}: ") or f"'{field}'" in error["message"], error
    assert count(app, Contact) == 0


def test_invalid_patch_fields_and_parameters_are_400_naming_them(app, api, tokens) -> None:  # type: ignore[no-untyped-def]
    org = bearer(tokens["organizer"])
    cid = add_contact(api, tokens["organizer"], ZOMBA_1)["id"]
    for body, field in [({"status": "gone"}, "status"), ({"status": None}, "status"), ({"language": 3}, "language"),
                        ({"number": ZOMBA_2}, "number"), ({"tags": [None]}, "tags[0]")]:
        error = error_of(api.patch(f"/api/v1/contacts/{cid}", headers=org, json=body), 400)
        assert error["field"] == field and field in error["message"], (body, error)
    assert error_of(api.patch(f"/api/v1/contacts/{cid}", headers=org, json={}), 400)["code"] == "invalid_body"
    for query, field in [("per_page=201", "per_page"), ("per_page=0", "per_page"), ("page=abc", "page"),
                         ("page=-1", "page"), ("status=gone", "status"), ("language=xx", "language"),
                         ("place=Narnia", "place"), ("plaec=Zomba", "plaec"), ("number=12", "number")]:
        error = error_of(api.get(f"/api/v1/contacts?{query}", headers=org), 400)
        assert error["field"] == field and field in error["message"], (query, error)
    for query, field in [("delivered=maybe", "delivered"), ("from=yesterday", "from"), ("to=2025-13-01", "to"),
                         ("from=2025-03-02&to=2025-03-01", "from"), ("per_page=500", "per_page")]:
        error = error_of(api.get(f"/api/v1/reports?{query}", headers=org), 400)
        assert error["field"] == field, (query, error)
    error_of(api.get("/api/v1/reports/counts?delivered=maybe", headers=org), 400)
    assert audit_events(app, "export.reports") == []  # refused calls export nothing


def test_malformed_json_wrong_content_type_and_too_large_bodies(app, api, tokens) -> None:  # type: ignore[no-untyped-def]
    org = bearer(tokens["organizer"])
    for path in ("/api/v1/contacts", "/api/v1/broadcasts", "/api/v1/broadcasts/preview"):
        error = error_of(api.post(path, headers=org, data='{"number": "+265991234501",', content_type="application/json"), 400)
        assert error["code"] == "malformed_json" and "not valid JSON" in error["message"]
        error = error_of(api.post(path, headers=org, data={"number": ZOMBA_1}), 400)  # a form
        assert error["code"] == "unsupported_content_type" and "application/json" in error["message"]
        error_of(api.post(path, headers=org, data="number=1", content_type="text/plain"), 400)
        assert error_of(api.post(path, headers=org, json=[ZOMBA_1]), 400)["code"] == "invalid_body"
        error_of(api.post(path, headers=org, data=b'{"number": "\xff"}', content_type="application/json"), 400)
        error_of(api.post(path, headers=org, data="[" * 60_000, content_type="application/json"), 400)
        error = error_of(api.post(path, headers=org, json={"name": "x" * 300_000}), 413)
        assert error["code"] == "payload_too_large"
    cid = add_contact(api, tokens["organizer"], ZOMBA_1)["id"]
    error_of(api.patch(f"/api/v1/contacts/{cid}", headers=org, data="{", content_type="application/json"), 400)
    assert count(app, Contact) == 1 and count(app, Broadcast) == 0


# --------------------------------------------------------------------------- broadcasts


def test_preview_counts_audience_encoding_segments_and_cost(app, api, tokens) -> None:  # type: ignore[no-untyped-def]
    org = bearer(tokens["organizer"])
    add_contact(api, tokens["organizer"], ZOMBA_1, language="en", place="Zomba")
    add_contact(api, tokens["organizer"], ZOMBA_2, language="en", place="Zomba")
    add_contact(api, tokens["organizer"], ZOMBA_3, language="ny", place="Zomba")
    add_contact(api, tokens["organizer"], BLANTYRE, language="en", place="Blantyre")
    assert Phone(app).send("+265991234505", "HELP")  # texted us, never joined: in no audience
    stopped = add_contact(api, tokens["organizer"], "+265991234506", language="en", place="Zomba")
    api.patch(f"/api/v1/contacts/{stopped['id']}", headers=org, json={"status": "stopped"})

    en = "Reunión at the boma: " + "a" * 59  # 80 characters; the ó is not GSM-7
    ny = "Msonkhano ku boma Lachisanu."
    response = api.post("/api/v1/broadcasts/preview", headers=org,
                        json={"texts": {"en": en, "ny": ny}, "place": "zomba"})
    assert response.status_code == 200, response.get_data(as_text=True)
    p = response.get_json()
    assert p["audience"] == 3
    texts = {t["language"]: t for t in p["texts"]}
    assert (texts["en"]["encoding"], texts["en"]["segments"], texts["en"]["recipients"]) == ("UCS-2", 2, 2)
    assert texts["en"]["ucs2_characters"] == ["ó"] and texts["en"]["characters"] == 80
    assert texts["en"]["gsm7_suggestion"] == en.replace("ó", "o") and texts["en"]["gsm7_suggestion_segments"] == 1
    assert (texts["ny"]["encoding"], texts["ny"]["segments"], texts["ny"]["recipients"]) == ("GSM-7", 1, 1)
    assert texts["ny"]["gsm7_suggestion"] is None
    assert p["total_segments"] == 2 * 2 + 1 * 1
    assert p["estimated_cost"] == pytest.approx(5 * 0.05)  # SMS_PRICES defaults to *=0.05
    assert p["segments_by_country"] == {"MW": 5}

    assert api.post("/api/v1/broadcasts/preview", headers=org,
                    json={"texts": {"en": "Hi"}, "language": "ny"}).get_json()["audience"] == 1
    assert api.post("/api/v1/broadcasts/preview", headers=org,
                    json={"texts": {"en": "Hi"}}).get_json()["audience"] == 4
    assert count(app, Broadcast) == 0  # a preview creates nothing


@pytest.mark.parametrize(("body", "field"), [
    ({}, "texts"),
    ({"texts": "Hello"}, "texts"),
    ({"texts": {"ny": "Moni"}}, "texts.en"),
    ({"texts": {"en": "   "}}, "texts.en"),
    ({"texts": {"en": "Hi", "fr": "Salut"}}, "texts.fr"),
    ({"texts": {"en": 5}}, "texts.en"),
    ({"texts": {"en": "x" * 1601}}, "texts.en"),
    ({"texts": {"en": "Hi"}, "place": "Narnia"}, "place"),
    ({"texts": {"en": "Hi"}, "language": "xx"}, "language"),
    ({"texts": {"en": "Hi"}, "tag": "t" * 41}, "tag"),
    ({"texts": {"en": "Hi"}, "urgent": "yes"}, "urgent"),
    ({"texts": {"en": "Hi"}, "send_at": "tomorrow"}, "send_at"),
    ({"texts": {"en": "Hi"}, "reply_keyword": "two words"}, "reply_keyword"),
    ({"texts": {"en": "Hi"}, "reply_keyword": "Y" * 21}, "reply_keyword"),
    ({"texts": {"en": "Hi"}, "audience": "all"}, "audience"),
])
def test_an_invalid_broadcast_field_is_400_naming_it(app, api, tokens, body, field) -> None:  # type: ignore[no-untyped-def]
    for path in ("/api/v1/broadcasts", "/api/v1/broadcasts/preview"):
        error = error_of(api.post(path, headers=bearer(tokens["organizer"]), json=body), 400)
        assert error["field"] == field and field in error["message"], (path, error)
    assert count(app, Broadcast) == 0


def test_create_launch_send_and_progress(app, api, tokens) -> None:  # type: ignore[no-untyped-def]
    change_settings(app, sender_rate=1000.0)  # the worker reads it when it runs: no one-second pacing in a test
    org = bearer(tokens["organizer"])
    add_contact(api, tokens["organizer"], ZOMBA_1, language="en", place="Zomba", name="Ann")
    add_contact(api, tokens["organizer"], ZOMBA_2, language="ny", place="Zomba", name="Thoko")
    add_contact(api, tokens["organizer"], BLANTYRE, language="en", place="Blantyre")
    response = api.post("/api/v1/broadcasts", headers=org, json={
        "texts": {"en": "Hello {name}, meet at the {place} boma.", "ny": "Moni {name}, tikumane ku {place}."},
        "place": "Zomba", "reply_keyword": "yes", "urgent": True})  # urgent: quiet hours do not hold it
    assert response.status_code == 201, response.get_data(as_text=True)
    created = response.get_json()
    bid = created["id"]
    assert (created["status"], created["place"], created["reply_keyword"], created["recipients"]) == (
        "draft", "Zomba", "YES", 0)
    assert created["created_by"] == "api:organizer@example.org"
    assert response.headers["Location"].endswith(f"/api/v1/broadcasts/{bid}")

    launched = api.post(f"/api/v1/broadcasts/{bid}/launch", headers=org)
    assert launched.status_code == 202, launched.get_data(as_text=True)
    body = launched.get_json()
    assert (body["status"], body["recipients"], body["counts"]["queued"]) == ("sending", 2, 2)
    [event] = audit_events(app, "broadcast.launch")
    assert event.actor == "api:organizer@example.org" and event.detail == {"broadcast_id": bid, "recipients": 2}

    with app.app_context():
        queues.work_burst(app.extensions["gateway"].redis)

    progress = api.get(f"/api/v1/broadcasts/{bid}", headers=bearer(tokens["viewer"])).get_json()
    assert progress["status"] == "done"
    assert progress["counts"]["sent"] == 2 and progress["recipients"] == 2
    assert sum(progress["counts"].values()) == 2
    assert sorted(app.extensions["gateway"].provider.sent) == [
        (ZOMBA_1, "Hello Ann, meet at the Zomba boma."), (ZOMBA_2, "Moni Thoko, tikumane ku Zomba.")]

    error = error_of(api.post(f"/api/v1/broadcasts/{bid}/launch", headers=org), 409)
    assert "already" in error["message"]
    error_of(api.post(f"/api/v1/broadcasts/{bid}/cancel", headers=org), 409)
    for path in ("/api/v1/broadcasts/999", "/api/v1/broadcasts/999/launch", "/api/v1/broadcasts/999/cancel",
                 "/api/v1/broadcasts/99999999999999999999"):
        method = api.get if path.count("/") == 4 else api.post
        error_of(method(path, headers=org), 404)
    assert len(audit_events(app, "broadcast.launch")) == 1


def test_cancel_stops_what_has_not_been_sent(app, api, tokens) -> None:  # type: ignore[no-untyped-def]
    org = bearer(tokens["organizer"])
    for number in (ZOMBA_1, ZOMBA_2, ZOMBA_3):
        add_contact(api, tokens["organizer"], number, place="Zomba")
    bid = api.post("/api/v1/broadcasts", headers=org, json={"texts": {"en": "Meet Friday"}, "urgent": True}).get_json()["id"]
    assert api.post(f"/api/v1/broadcasts/{bid}/launch", headers=org).status_code == 202

    response = api.post(f"/api/v1/broadcasts/{bid}/cancel", headers=org)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["status"], body["not_sent"], body["counts"]["cancelled"]) == ("cancelled", 3, 3)
    with app.app_context():
        queues.work_burst(app.extensions["gateway"].redis)
    assert app.extensions["gateway"].provider.sent == []
    progress = api.get(f"/api/v1/broadcasts/{bid}", headers=org).get_json()
    assert (progress["status"], progress["counts"]["cancelled"], progress["counts"]["sent"]) == ("cancelled", 3, 0)
    [event] = audit_events(app, "broadcast.cancel")
    assert event.actor == "api:organizer@example.org" and event.detail == {"broadcast_id": bid, "not_sent": 3}
    error_of(api.post(f"/api/v1/broadcasts/{bid}/cancel", headers=org), 409)
    error_of(api.post(f"/api/v1/broadcasts/{bid}/launch", headers=org), 409)

    draft = api.post("/api/v1/broadcasts", headers=org, json={"texts": {"en": "Never mind"}}).get_json()["id"]
    cancelled = api.post(f"/api/v1/broadcasts/{draft}/cancel", headers=org).get_json()
    assert (cancelled["status"], cancelled["not_sent"]) == ("cancelled", 0)
    error_of(api.post(f"/api/v1/broadcasts/{draft}/launch", headers=org), 409)


# --------------------------------------------------------------------------- reports


def test_reports_list_and_counts_never_show_a_number(app, api, tokens) -> None:  # type: ignore[no-untyped-def]
    named, anonymous = "+265991234511", "+265991234512"
    phone = Phone(app)
    assert phone.send(named, "REPORT NAME CLINIC ZOMBA NO nurse absent")  # NAME: keep my name on it
    assert phone.send(anonymous, "REPORT WATER BLANTYRE YES")  # anonymous, no details
    assert phone.send(named, "REPORT NAME WATER ZOMBA PARTLY half the tanks")
    with app.extensions["gateway"].sessions() as s:
        assert s.scalar(select(func.count()).select_from(Report)) == 3
        named_id = s.scalar(select(Contact.id).where(number_is(s, named)))

    viewer = bearer(tokens["viewer"])
    bodies: list[str] = []

    def get(path: str) -> dict[str, Any]:
        response = api.get(path, headers=viewer)
        assert response.status_code == 200, response.get_data(as_text=True)
        bodies.append(response.get_data(as_text=True))
        return response.get_json()

    listed = get("/api/v1/reports")
    assert listed["pagination"]["total"] == 3
    by_service = {(r["service"], r["place"]): r for r in listed["data"]}
    clinic, water_blantyre = by_service[("clinic", "Zomba")], by_service[("water", "Blantyre")]
    assert (clinic["delivered"], clinic["details"], clinic["anonymous"], clinic["contact_id"]) == (
        "no", "nurse absent", False, named_id)
    assert water_blantyre["anonymous"] is True and "contact_id" not in water_blantyre
    assert [r["service"] for r in get("/api/v1/reports?place=zomba&delivered=no")["data"]] == ["clinic"]
    # Within a day by reference, not in the order they came in.
    assert sorted(r["place"] for r in get("/api/v1/reports?service=WATER")["data"]) == ["Blantyre", "Zomba"]
    assert get("/api/v1/reports?from=2000-01-01&to=2000-12-31")["data"] == []
    assert len(get("/api/v1/reports?from=2000-01-01")["data"]) == 3
    page = get("/api/v1/reports?per_page=2&page=2")
    assert len(page["data"]) == 1 and page["pagination"]["pages"] == 2

    counts = get("/api/v1/reports/counts")
    assert counts["total"] == 3
    assert {(c["place"], c["service"], c["count"]) for c in counts["by_place_and_service"]} == {
        ("Zomba", "clinic", 1), ("Zomba", "water", 1), ("Blantyre", "water", 1)}
    assert {c["place"]: c["count"] for c in counts["by_place"]} == {"Zomba": 2, "Blantyre": 1}
    assert {c["service"]: c["count"] for c in counts["by_service"]} == {"clinic": 1, "water": 2}
    assert sum(w["count"] for w in counts["by_week"]) == 3
    assert all(re.fullmatch(r"\d{4}-W\d{2}", w["week"]) for w in counts["by_week"])
    assert get("/api/v1/reports/counts?place=Blantyre")["total"] == 1

    # No phone number, in any form, in anything the report endpoints answered.
    for number in (named, anonymous):
        for form in (number, number[1:], "0" + number[4:], number[4:]):
            assert all(form not in body for body in bodies), form
    # Each list call is an export on the record, with its filters.
    events = audit_events(app, "export.reports")
    assert len(events) == 6
    assert all(e.actor == "api:viewer@example.org" for e in events)
    assert events[1].detail["filters"] == {"place": "Zomba", "delivered": "no"}
    assert events[0].detail["count"] == 3
    assert all(named not in json.dumps(e.detail) for e in events)


# --------------------------------------------------------------------------- errors and the description


def test_404_and_405_under_api_are_json_and_the_console_keeps_its_pages(app, api, tokens) -> None:  # type: ignore[no-untyped-def]
    org = bearer(tokens["organizer"])
    for path in ("/api/v1/nothing", "/api/nothing", "/api", "/api/v1/contacts/abc", "/api/v1/contacts/1/x"):
        error = error_of(api.get(path, headers=org), 404)
        assert error["code"] == "not_found"
    error_of(api.get("/api/v1/nothing"), 404)  # no token needed to learn there is nothing there
    response = api.delete("/api/v1/contacts", headers=org)
    error = error_of(response, 405)
    assert error["code"] == "method_not_allowed" and "GET, POST" in error["message"]
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    error_of(api.post("/api/v1/reports", headers=org, json={}), 405)
    error_of(api.put("/api/v1/contacts/1", headers=org, json={}), 405)
    error_of(api.get("/api/v1/broadcasts/1/launch", headers=org), 405)
    # Outside /api/ nothing changed: the console's 404 is not JSON.
    console = api.get("/no-such-page")
    assert console.status_code == 404 and not console.is_json


def test_bad_input_never_causes_a_500(app, api, tokens) -> None:  # type: ignore[no-untyped-def]
    org = bearer(tokens["organizer"])
    cid = add_contact(api, tokens["organizer"], ZOMBA_1)["id"]
    nasty = ["\u0000", "\ud800", "x" * 5000, "0" * 40, "Zomba\u0000", "'; DROP TABLE contacts; --", "%", "\u202e"]
    for value in nasty:
        query = value.encode("utf-8", "surrogatepass")  # a URL can carry any bytes
        for param in ("place", "tag", "language", "status", "number", "page"):
            assert api.get("/api/v1/contacts", headers=org, query_string={param: query}).status_code < 500
        for param in ("place", "service", "delivered", "from", "to"):
            assert api.get("/api/v1/reports", headers=org, query_string={param: query}).status_code < 500
            assert api.get("/api/v1/reports/counts", headers=org, query_string={param: query}).status_code < 500
        for field in ("name", "place", "language"):
            assert api.patch(f"/api/v1/contacts/{cid}", headers=org, json={field: value}).status_code < 500
        assert api.post("/api/v1/contacts", headers=org, json={"number": value}).status_code < 500
        for field in ("tag", "reply_keyword", "send_at", "place"):
            response = api.post("/api/v1/broadcasts/preview", headers=org, json={"texts": {"en": "Hi"}, field: value})
            assert response.status_code < 500, (field, value)
        assert api.post("/api/v1/broadcasts", headers=org, json={"texts": {"en": value}}).status_code < 500
        assert api.post("/api/v1/broadcasts", headers=org, json={"texts": {value: "Hi"}}).status_code < 500
    for body in ('{"number": NaN}', '{"texts": {"en": "Hi"}, "send_at": "9999-12-31T23:59:59-23:59"}',
                 '{"texts": {"en": "Hi"}, "send_at": "0001-01-01T00:00:00+01:00"}'):
        for path in ("/api/v1/contacts", "/api/v1/broadcasts/preview"):
            assert api.post(path, headers=org, data=body, content_type="application/json").status_code < 500
    for page in ("99999999999999999999", "1000000"):
        assert api.get(f"/api/v1/contacts?page={page}", headers=org).status_code < 500


def _flask_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_openapi_describes_every_route(app, api) -> None:  # type: ignore[no-untyped-def]
    response = api.get("/api/v1/openapi.json")  # no token
    assert response.status_code == 200 and response.is_json
    spec = json.loads(response.get_data(as_text=True))
    assert spec["openapi"].startswith("3.1")
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["bearerAuth"]["description"]}
    assert spec["security"] == [{"bearerAuth": []}]

    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1"):
            routes.setdefault(_flask_path(rule.rule), set()).update(
                m.lower() for m in (rule.methods or ()) if m not in ("HEAD", "OPTIONS"))
    assert len(routes) >= 9
    described = {path: set(ops) for path, ops in spec["paths"].items()}
    assert described == routes

    def resolve(ref: str) -> Any:
        assert ref.startswith("#/"), ref
        node: Any = spec
        for part in ref[2:].split("/"):
            assert part in node, f"dangling $ref {ref}"
            node = node[part]
        return node

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                resolve(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    operation_ids = []
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            operation_ids.append(op["operationId"])
            assert op["responses"] and any(code.startswith("2") for code in op["responses"]), (path, method)
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), (path, method)
            public = op.get("security") == []
            assert public == (path == "/api/v1/openapi.json")
            if not public:
                assert "401" in op["responses"], (path, method)
            if method in ("post", "patch") and "requestBody" in op:
                assert "400" in op["responses"] and "413" in op["responses"]
                resolve(op["requestBody"]["content"]["application/json"]["schema"]["$ref"])
    assert len(operation_ids) == len(set(operation_ids))
