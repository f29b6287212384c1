"""An anonymous report cannot be tied to its reporter (issue 11, review C1, H4).

Two supporters join the same way; one of them then files an anonymous report. Everything the
gateway keeps about each of them (rows, console pages, API answers, log lines) must look the same,
but for their number and name.
"""
from __future__ import annotations

import difflib
import logging
import re
from datetime import datetime, timedelta
from typing import Any, Callable, Iterator

import pytest
from sqlalchemy import text, func, or_, select

from gateway.people import accounts
from gateway.people import contacts as contacts_module
from gateway.inbound import receive as inbound
from gateway.people.contacts import number_is
from gateway.models import AuditEvent, Contact, ContactTag, Conversation, Message, Pledge, Report, User, utcnow
from tests.conftest import Auth, make_stack_app
from tests.fakes.africastalking_api import FakeAfricasTalking
from tests.fakes.android_api import FakeAndroidPhone
from tests.reporting import file_anonymous_report
from tests.test_webhooks import inbound as post_inbound, replies as twiml_replies, sms
from tests.wires import QueuedWire, channel_settings

A, B, C = "+265991234567", "+265881234567", "+265991112223"
NAMES = {A: "Alice Banda", B: "Beatrice Phiri"}


class Clock:
    """The gateway's clock, held still: both supporters join at one instant, the report comes later."""

    def __init__(self) -> None:
        self.joined = utcnow().replace(microsecond=0) - timedelta(hours=3)
        self.now = self.joined

    def __call__(self) -> datetime:
        return self.now

    def phase(self, value: Any) -> Any:
        """A time as the phase it falls in; anything else unchanged."""
        if not isinstance(value, datetime):
            return value
        if value < self.joined + timedelta(minutes=30):
            return "at the join"
        return "at the report" if value < self.joined + timedelta(hours=2) else "real time"


@pytest.fixture(params=["twilio", "africastalking"])
def channel(request: pytest.FixtureRequest, db_url: str, redis_url: str | None, tmp_path,
            monkeypatch) -> Iterator[tuple[Any, Callable[[str, str], list[str]], Clock]]:
    """The app, a way for a number to text it (Twilio's signed webhook, or Africa's Talking and the
    reply queue), and the gateway's clock."""
    clock = Clock()
    monkeypatch.setattr(inbound, "utcnow", clock)
    monkeypatch.setattr(contacts_module, "utcnow", clock)
    with FakeAfricasTalking() as at, FakeAndroidPhone() as phone:
        app = make_stack_app(db_url, redis_url, tmp_path, **channel_settings(at, phone))
        client = app.test_client()
        if request.param == "twilio":
            def send(number: str, text: str) -> list[str]:
                response = post_inbound(client, sms(text, sender=number))
                assert response.status_code == 200
                return twiml_replies(response)
        else:
            wire = QueuedWire("africastalking", at)

            def send(number: str, text: str) -> list[str]:
                return wire.exchange(app, number, text, clock.now)
        app.extensions["test_client"] = client
        yield app, send, clock
        app.extensions["gateway"].engine.dispose()


def join(send: Callable[[str, str], list[str]], number: str) -> None:
    for text in ("JOIN", NAMES[number], "Zomba", "1 3"):
        assert send(number, text), f"no reply to {text!r}"


def _row(obj: Any, skip: set[str], clock: Clock, refs: dict[int, int]) -> dict[str, Any]:
    out = {}
    for column in obj.__table__.columns:
        if column.name in skip:
            continue
        value = getattr(obj, column.key)
        if column.name in ("contact_id", "conversation_id", "reply_to_id") and value is not None:
            value = refs.get(value, "elsewhere")
        out[column.name] = _plain(value, clock)
    return out


def _plain(value: Any, clock: Clock) -> Any:
    """Names blanked and times as phases, inside JSON values too."""
    if isinstance(value, dict):
        return {k: _plain(v, clock) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, clock) for v in value]
    if isinstance(value, str):
        for name in NAMES.values():
            value = value.replace(name, "<name>")
    return clock.phase(value)


def reachable(app: Any, number: str, clock: Clock) -> dict[str, Any]:
    """Every row that names this contact, or hangs off a row that does, with ids and times made
    comparable: ids as positions, times as the phase of the test they fall in."""
    with app.extensions["gateway"].sessions() as s:
        c = s.scalars(select(Contact).where(number_is(s, number))).one()
        convs = s.scalars(select(Conversation).where(Conversation.contact_id == c.id).order_by(Conversation.id)).all()
        conv_ids = [x.id for x in convs]
        msgs = s.scalars(select(Message).where(or_(Message.contact_id == c.id, Message.conversation_id.in_(conv_ids)))
                         .order_by(Message.id)).all()
        ids = [m.id for m in msgs]
        msgs += s.scalars(select(Message).where(Message.reply_to_id.in_(ids), Message.id.not_in(ids))).all()
        refs = {c.id: 0, **{cid: i for i, cid in enumerate(conv_ids)}, **{m.id: i for i, m in enumerate(msgs)}}
        skip = {"id", "provider_id"}
        audit = [e for e in s.scalars(select(AuditEvent)) if c.id in (e.detail or {}).values()]
        return {
            "contact": _row(c, {"id", "number_digest", "number_sealed", "name", "created_at"}, clock, refs),
            "created": clock.phase(c.created_at),
            "conversations": [_row(x, skip, clock, refs) for x in convs],
            "messages": [_row(m, skip, clock, refs) for m in msgs],
            "tags": sorted(s.scalars(select(ContactTag.tag).where(ContactTag.contact_id == c.id))),
            "pledges": [_row(p, skip, clock, refs) for p in s.scalars(select(Pledge).where(Pledge.contact_id == c.id))],
            "reports": [_row(r, skip, clock, refs) for r in s.scalars(select(Report).where(Report.contact_id == c.id))],
            "audit": [(e.action, {k: v for k, v in e.detail.items() if v != c.id}) for e in audit],
        }


def contact_id(app: Any, number: str) -> int:
    with app.extensions["gateway"].sessions() as s:
        return s.scalars(select(Contact.id).where(number_is(s, number))).one()


def pages(app: Any, number: str) -> dict[str, Any]:
    """The supporter's console page and list row (as a viewer) and API answer, number and name blanked."""
    client = app.extensions["test_client"]
    cid = contact_id(app, number)
    with app.extensions["gateway"].sessions() as s, s.begin():
        viewer = s.scalars(select(User).where(User.email == "viewer@example.org")).one()
        token = accounts.new_api_token(viewer)

    def blank(text: str) -> str:
        text = re.sub(r'name="csrf_token"[^>]*value="[^"]*"', "", text)
        text = re.sub(r'<meta name="csrf-token" content="[^"]*"', "", text)
        text = text.replace(f"/supporters/{cid}", "/supporters/ID")
        for shown in (number, number[:6], number[-2:]):
            text = text.replace(shown, "#")
        for name in NAMES.values():
            text = text.replace(name, "<name>").replace(name.replace(" ", "+"), "<name>")
        return re.sub(r"\+?[0-9*•…]{6,}", "#", text)

    page = client.get(f"/supporters/{cid}")
    assert page.status_code == 200
    listing = client.get("/supporters", query_string={"q": NAMES[number]})
    api = client.get("/api/v1/contacts", query_string={"number": number},
                     headers={"Authorization": f"Bearer {token}"})
    [answer] = api.get_json()["data"]
    return {"page": blank(page.get_data(as_text=True)), "list": blank(listing.get_data(as_text=True)),
            "api": {k: v for k, v in answer.items() if k not in ("id", "number", "name")}}


def test_a_reporter_and_a_supporter_who_never_reported_look_the_same(channel, caplog) -> None:
    app, send, clock = channel
    caplog.set_level(logging.DEBUG)
    join(send, A)
    join(send, B)
    clock.now = clock.joined + timedelta(hours=1)
    replies = file_anonymous_report(lambda text: send(A, text))
    assert replies and replies[-1].startswith("Thank you")
    # A number the gateway never saw before reports too: its bare contact row would betray it.
    assert file_anonymous_report(lambda text: send(C, text))[-1].startswith("Thank you")

    with app.extensions["gateway"].sessions() as s:
        reports = s.scalars(select(Report)).all()
        contacts = s.scalar(select(func.count()).select_from(Contact))
        conversations = s.scalars(select(Conversation)).all()
        loose = s.scalars(select(Message).where(Message.contact_id.is_(None))).all()
    assert len(reports) == 2 and all(r.anonymous and r.contact_id is None for r in reports)
    assert contacts == 2, "the number that only ever reported is still a contact"
    assert {x.flow for x in conversations} == {"join"}
    # What the report traffic leaves behind: no words, no contact, no conversation, only the day.
    for m in loose:
        assert (m.body, m.conversation_id, m.reply_to_id, m.handled_by, m.inbox_status) == (None,) * 5
        assert (m.created_at.hour, m.created_at.minute, m.created_at.second) == (0, 0, 0)

    reporter, other = reachable(app, A, clock), reachable(app, B, clock)
    for table in reporter:
        assert reporter[table] == other[table], table
    if app.config["DATABASE_URL"].startswith("postgres"):
        # A row lock would write the report transaction's id into the contact (xmax), next to the
        # ids the report's rows carry (xmin): the system columns must not tell them apart either.
        with app.extensions["gateway"].sessions() as s:
            xmax = {n: s.execute(text("SELECT xmax::text FROM contacts WHERE id = :id"),
                                 {"id": contact_id(app, n)}).scalar() for n in (A, B)}
        assert xmax[A] == xmax[B], xmax

    Auth(app, app.extensions["test_client"]).login("viewer")
    seen_a, seen_b = pages(app, A), pages(app, B)
    for what in seen_a:
        assert seen_a[what] == seen_b[what], "\n".join(difflib.unified_diff(
            str(seen_a[what]).splitlines(), str(seen_b[what]).splitlines(), lineterm=""))

    ids = {contact_id(app, A)}
    for record in caplog.records:
        line = record.getMessage()
        assert not any(r.ref in line for r in reports), line
        assert not any(re.search(rf"\bcontact {i}\b", line) for i in ids), line
