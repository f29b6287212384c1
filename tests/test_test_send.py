"""A broadcast's test message: only to the organizer's own confirmed phone (or an admin's allow-list),
never to a short code, a premium or fixed line, or a supporter who stopped; through the outbox, once;
limited per account; audited with the number's keyed digest; no number in a flash (H2, M10, M8)."""
from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from gateway.web.console.broadcasts import TEST_SENDS
from gateway.people.contacts import new_contact, number_is
from gateway.models import AuditEvent, Contact, Message, User, utcnow
from tests.conftest import Auth, make_stack_app
from tests.helpers import change_settings, svc, work

MY_PHONE = "+265991230001"
TEXT = "Hello {name}, the clinic in {place} has no nurse."
EXPECTED = "Hello Organizer, the clinic in Zomba has no nurse."


def set_my_phone(app, phone: str | None, *, confirmed: bool = True) -> None:  # type: ignore[no-untyped-def]
    with svc(app).sessions() as s, s.begin():
        user = s.scalars(select(User).where(User.email == "organizer@example.org")).one()
        user.phone, user.phone_verified_at = phone, (utcnow() if confirmed and phone else None)


def supporter(app, number: str, status: str = "active") -> int:  # type: ignore[no-untyped-def]
    with svc(app).sessions() as s, s.begin():
        c = new_contact(s, number, name="Chikondi", status=status, consent_at=utcnow() - timedelta(days=3))
        s.add(c)
        s.flush()
        return c.id


def draft(client, auth: Auth) -> int:  # type: ignore[no-untyped-def]
    token = auth.csrf("/broadcasts/new")
    r = client.post("/broadcasts/new", data={"csrf_token": token, "text_en": TEXT, "text_ny": "", "text_es": "",
                                             "place": "Zomba", "language": "", "tag": "", "reply_keyword": "",
                                             "send_at": ""})
    assert r.status_code == 302, r.get_data(as_text=True)
    return int(r.headers["Location"].rsplit("/", 1)[1])


def test_send(client, auth: Auth, bid: int, to: str | None = None):  # type: ignore[no-untyped-def]
    data = {"csrf_token": auth.csrf(f"/broadcasts/{bid}")}
    if to is not None:
        data["to"] = to
    return client.post(f"/broadcasts/{bid}/test", data=data)


test_send.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def outbound(app) -> list[Message]:  # type: ignore[no-untyped-def]
    with svc(app).sessions() as s:
        return list(s.scalars(select(Message).where(Message.direction == "out").order_by(Message.id)))


def audits(app, action: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    with svc(app).sessions() as s:
        return [e.detail for e in s.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                            .order_by(AuditEvent.id))]


def digest_of(app, number: str) -> str:  # type: ignore[no-untyped-def]
    from gateway.people.contacts import vault

    with svc(app).sessions() as s:
        return vault(s).digest(number)


def cookie_flashes(app, client) -> str:  # type: ignore[no-untyped-def]
    """What the browser holds: the session cookie's payload (signed, not encrypted), as text."""
    cookie = client.get_cookie("session")
    if cookie is None:
        return ""
    serializer = app.session_interface.get_signing_serializer(app)
    return json.dumps(serializer.loads(cookie.value), ensure_ascii=False)


def full_numbers_in(cookie: str) -> list[str]:
    """Runs of 7+ digits in the cookie's flash messages (a masked number has at most 5 in a row)."""
    flashes = json.dumps(json.loads(cookie or "{}").get("_flashes", []))
    return re.findall(r"\d{7,}", flashes)


def no_number_in(cookie: str, *numbers: str) -> bool:
    """None of these numbers' subscriber digits appear anywhere in the cookie but inside its random
    hex tokens (a CSRF token once held "12345", the short code of a test)."""
    readable = re.sub(r"[0-9a-f]{32,}", "<token>", cookie)
    return not any(n[-9:] in readable for n in numbers)


@pytest.fixture(autouse=True)
def fast_sending(app):  # type: ignore[no-untyped-def]
    change_settings(app, quiet_hours=None, sender_rate=1000.0)


# --------------------------------------------------------------------------- refused


@pytest.mark.parametrize("case", ["unconfirmed", "no phone", "short code", "premium", "fixed line",
                                  "someone else", "stopped", "blocked"])
def test_a_test_send_is_refused(app, client, auth, case: str) -> None:  # type: ignore[no-untyped-def]
    auth.login("organizer")
    bid = draft(client, auth)
    set_my_phone(app, MY_PHONE, confirmed=case != "unconfirmed")
    to = {"short code": "12345", "premium": "+19005550123", "fixed line": "+442079460000",
          "someone else": "+265991230002"}.get(case, MY_PHONE)
    if case == "no phone":
        set_my_phone(app, None)
    if case in ("stopped", "blocked"):
        supporter(app, MY_PHONE, status=case)  # the organizer's phone is also a supporter's who opted out
    r = test_send(client, auth, bid, to)
    assert r.status_code == 302
    flashes = cookie_flashes(app, client)
    assert "Test message not sent" in flashes
    assert full_numbers_in(flashes) == [] and no_number_in(flashes, to)  # M8: nor does the refusal repeat it
    work(app)
    assert outbound(app) == [] and svc(app).provider.sent == []
    assert audits(app, "broadcast.test") == []


def test_a_premium_or_short_code_allow_list_stops_the_start(db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from gateway.settings import ConfigError

    for bad in ("+19005550123", "12345", "+442079460000"):
        with pytest.raises(ConfigError, match="TEST_SEND_NUMBERS"):
            make_stack_app(db_url, None, tmp_path, TEST_SEND_NUMBERS=f"{MY_PHONE},{bad}")


def test_tests_are_limited_per_account(app, client, auth) -> None:  # type: ignore[no-untyped-def]
    auth.login("organizer")
    bid = draft(client, auth)
    set_my_phone(app, MY_PHONE)
    allowed = int(TEST_SENDS.split("/")[0])
    answers = [test_send(client, auth, bid).status_code for _ in range(allowed + 1)]
    assert answers == [302] * allowed + [429]
    work(app)
    assert len(svc(app).provider.sent) == allowed


# --------------------------------------------------------------------------- allowed


def test_a_test_goes_to_my_confirmed_phone_through_the_outbox_once(app, client, auth) -> None:  # type: ignore[no-untyped-def]
    auth.login("organizer")
    bid = draft(client, auth)
    set_my_phone(app, MY_PHONE)
    page = client.get(f"/broadcasts/{bid}").get_data(as_text=True)
    assert "+26599*****01" in page and 'id="test-number"' in page
    r = test_send(client, auth, bid)  # the form's default: my phone
    assert r.status_code == 302
    [row] = outbound(app)
    assert (row.status, row.body, row.broadcast_id) == ("queued", EXPECTED, None)  # written before it is sent
    assert svc(app).provider.sent == []
    work(app)
    assert svc(app).provider.sent == [(MY_PHONE, EXPECTED)]
    [row] = outbound(app)
    assert row.status == "sent" and row.attempts == 1
    [detail] = audits(app, "broadcast.test")
    assert detail["id"] == bid and detail["message_id"] == row.id
    assert detail["number_digest"] == digest_of(app, MY_PHONE)  # names the phone for whoever holds the key
    assert "*****" not in json.dumps(detail) and MY_PHONE not in json.dumps(detail)
    flashes = cookie_flashes(app, client)
    assert "+26599*****01" in flashes and full_numbers_in(flashes) == [] and no_number_in(flashes, MY_PHONE)
    # The phone got a contact record that no broadcast reaches (no consent).
    with svc(app).sessions() as s:
        me = s.scalars(select(Contact).where(number_is(s, MY_PHONE))).one()
        assert me.consent_at is None and "staff" in me.tags


def test_an_admins_allow_list_number_can_get_a_test(db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = make_stack_app(db_url, None, tmp_path, TEST_SEND_NUMBERS=" 0991230003 ")
    try:
        client = app.test_client()
        auth = Auth(app, client)
        auth.login("organizer")
        bid = draft(client, auth)
        assert test_send(client, auth, bid, "+265991230003").status_code == 302
        work(app)
        assert svc(app).provider.sent == [("+265991230003", EXPECTED)]
        # Another number is still refused.
        test_send(client, auth, bid, "+265991230004")
        work(app)
        assert len(svc(app).provider.sent) == 1
    finally:
        svc(app).engine.dispose()


def test_a_twilio_test_send_is_not_sent_again_by_the_reconciler(twilio_app, fake_twilio) -> None:  # type: ignore[no-untyped-def]
    """M10: Twilio answers `queued`; the reconciler must not take that for a row still to send."""
    client = twilio_app.test_client()
    auth = Auth(twilio_app, client)
    auth.login("organizer")
    bid = draft(client, auth)
    set_my_phone(twilio_app, MY_PHONE)
    assert test_send(client, auth, bid).status_code == 302
    work(twilio_app)
    assert [(m["to"], m["body"]) for m in fake_twilio.messages] == [(MY_PHONE, EXPECTED)]
    result = twilio_app.test_cli_runner().invoke(args=["outbox", "reconcile"])
    assert result.exit_code == 0, result.output
    work(twilio_app)
    assert len(fake_twilio.messages) == 1  # sent once
    [row] = outbound(twilio_app)
    assert row.status == "sent" and row.provider_id == fake_twilio.messages[0]["sid"]


# --------------------------------------------------------------------------- confirming my phone


def test_confirming_my_phone_with_the_code_texted_to_it(app, client, auth) -> None:  # type: ignore[no-untyped-def]
    auth.login("organizer")
    token = auth.csrf("/account")
    r = client.post("/account/phone", data={"csrf_token": token, "phone": "0991 230 001"})
    assert r.status_code == 302
    assert no_number_in(cookie_flashes(app, client), MY_PHONE)
    work(app)
    [(to, body)] = svc(app).provider.sent
    code = re.search(r"\b(\d{6})\b", body).group(1)  # type: ignore[union-attr]
    assert to == MY_PHONE
    # Not confirmed yet: a test is refused.
    bid = draft(client, auth)
    test_send(client, auth, bid, MY_PHONE)
    assert "Test message not sent" in cookie_flashes(app, client)
    wrong = "000000" if code != "000000" else "111111"
    assert client.post("/account/phone/confirm", data={"csrf_token": token, "code": wrong}).status_code == 400
    r = client.post("/account/phone/confirm", data={"csrf_token": token, "code": code})
    assert r.status_code == 302
    assert "Phone confirmed" in cookie_flashes(app, client)
    with svc(app).sessions() as s:
        user = s.scalars(select(User).where(User.email == "organizer@example.org")).one()
        assert user.phone == MY_PHONE and user.phone_verified_at is not None
    assert [d["number_digest"] for d in audits(app, "account.phone.confirmed")] == [digest_of(app, MY_PHONE)]
    test_send(client, auth, bid)
    work(app)
    assert svc(app).provider.sent[-1] == (MY_PHONE, EXPECTED)


def test_too_many_wrong_codes_void_the_code(app, client, auth) -> None:  # type: ignore[no-untyped-def]
    from gateway.people.accounts import PHONE_CODE_TRIES

    auth.login("organizer")
    token = auth.csrf("/account")
    client.post("/account/phone", data={"csrf_token": token, "phone": MY_PHONE})
    work(app)
    code = re.search(r"\b(\d{6})\b", svc(app).provider.sent[0][1]).group(1)  # type: ignore[union-attr]
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(PHONE_CODE_TRIES):
        client.post("/account/phone/confirm", data={"csrf_token": token, "code": wrong})
    assert client.post("/account/phone/confirm", data={"csrf_token": token, "code": code}).status_code == 400
    with svc(app).sessions() as s:
        assert s.scalars(select(User).where(User.email == "organizer@example.org")).one().phone_verified_at is None


@pytest.mark.parametrize("phone", ["12345", "+19005550123", "+442079460000"])
def test_a_phone_to_confirm_must_be_a_mobile(app, client, auth, phone: str) -> None:  # type: ignore[no-untyped-def]
    auth.login("organizer")
    r = client.post("/account/phone", data={"csrf_token": auth.csrf("/account"), "phone": phone})
    assert r.status_code == 302 and "Phone not changed" in cookie_flashes(app, client)
    work(app)
    assert svc(app).provider.sent == [] and outbound(app) == []
