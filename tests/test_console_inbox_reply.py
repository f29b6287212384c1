"""Inbox reply: only to the contact of a message that was put in the inbox, never into an anonymous
report's conversation (L8); its flash messages carry no full number (M8)."""
from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select, update

from gateway.models import Message
from gateway.channels.base import ProviderError
from tests.conftest import csrf_from
from tests.helpers import svc
from tests.transcript import Phone

A = "+265991234567"
B = "+265881234567"


def cookie(app, client) -> str:  # type: ignore[no-untyped-def]
    """The session cookie's payload as the browser holds it (signed, not encrypted)."""
    value = client.get_cookie("session").value
    return json.dumps(app.session_interface.get_signing_serializer(app).loads(value), ensure_ascii=False)


def reply(client, message_id: int, body: str = "We will call the clinic."):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get("/inbox").get_data(as_text=True))
    return client.post(f"/inbox/{message_id}/reply", data={"csrf_token": token, "body": body})


def message_id(app, body: str) -> int:  # type: ignore[no-untyped-def]
    with svc(app).sessions() as s:
        return s.scalars(select(Message.id).where(Message.body == body, Message.direction == "in")).one()


def replies_sent(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return list(svc(app).provider.sent)


def test_a_message_that_is_not_in_the_inbox_cannot_be_answered(app, client, auth) -> None:  # type: ignore[no-untyped-def]
    phone = Phone(app)
    phone.send(A, "Hello, the clinic did not come")  # in the inbox
    for text in ("JOIN", "Grace", "Mangochi"):  # another supporter's conversation with a flow
        phone.send(B, text)
    before = len(replies_sent(app))
    auth.login("organizer")
    assert reply(client, message_id(app, "Grace")).status_code == 404
    assert reply(client, message_id(app, "Mangochi")).status_code == 404
    assert len(replies_sent(app)) == before
    assert reply(client, message_id(app, "Hello, the clinic did not come")).status_code == 302
    assert replies_sent(app)[-1] == (A, "We will call the clinic.")


@pytest.mark.parametrize("in_inbox", [False, True], ids=["report-step", "flagged-into-inbox"])
def test_an_anonymous_reports_messages_cannot_be_answered(app, client, auth, in_inbox: bool) -> None:  # type: ignore[no-untyped-def]
    phone = Phone(app)
    phone.send(A, "Hello")  # the number stays a contact after its report
    with svc(app).sessions() as s:
        first = s.scalar(select(func.max(Message.id)))
    for text in ("REPORT CLINIC ZOMBA", "no", "nurse absent"):  # anonymous: no NAME given
        phone.send(A, text)
    with svc(app).sessions() as s, s.begin():
        ids = list(s.scalars(select(Message.id).where(Message.id > first, Message.direction == "in")))
        assert len(ids) == 3
        if in_inbox:  # e.g. the flood guard put one of them in the inbox
            s.execute(update(Message).where(Message.id.in_(ids)).values(inbox_status="open"))
    before = len(replies_sent(app))
    auth.login("organizer")
    for mid in ids:
        assert reply(client, mid, "Who are you?").status_code == 404
    assert len(replies_sent(app)) == before
    with svc(app).sessions() as s:
        assert s.scalars(select(Message).where(Message.body == "Who are you?")).all() == []


def test_reply_flashes_carry_no_full_number(app, client, auth, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    phone = Phone(app)
    phone.send(A, "Hello, the clinic did not come")  # a number with no name yet
    phone.send(A, "Are you there?")
    auth.login("organizer")
    assert reply(client, message_id(app, "Hello, the clinic did not come")).status_code == 302
    text = cookie(app, client)
    assert "Reply sent" in text and "+26599*****67" in text and A[-9:] not in text

    def refuse(number: str, body: str, **_kw: object) -> None:
        raise ProviderError(f"send to {number} refused: unreachable", code="21612")

    monkeypatch.setattr(svc(app).provider, "send", refuse)
    client.get("/inbox")  # the first flash is shown, and leaves the cookie
    assert reply(client, message_id(app, "Are you there?")).status_code == 302
    text = cookie(app, client)
    assert "Not sent" in text and "21612" in text
    assert A[-9:] not in text and not re.search(r"\d{7,}", json.dumps(json.loads(text).get("_flashes", [])))
