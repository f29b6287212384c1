"""What tests do to the gateway, written once: add contacts, launch broadcasts, run the worker, read rows.

conftest.py holds the fixtures (`app`, `stack_app`, `client`, `auth`, ...); the helpers here take
the app a fixture gave and drive the gateway the way its CLI, console and worker do.
"""
from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import event, select
from twilio.request_validator import RequestValidator

from gateway import Services
from gateway.channels.console import ConsoleProvider
from gateway.core.phones import country_of, normalise_number
from gateway.models import AuditEvent, Broadcast, Contact, ContactTag, Message, utcnow
from gateway.outbound import broadcasts, jobs, queues
from gateway.people.contacts import get_or_create, new_contact, number_of
from tests.transcript import Phone

TWILIO_TOKEN = "test-auth-token"
NUMBERS_KEY = "test-numbers-key-of-at-least-32-characters"
SECRET_KEY = "test-secret-key-of-at-least-32-characters"  # config refuses shorter ones
PUBLIC_BASE = "https://gateway.example.org"


def svc(app: Flask) -> Services:
    """The gateway's services on this app: sessions, redis, provider, flows."""
    return app.extensions["gateway"]


@contextmanager
def statements(app: Flask, keep: Callable[[Any], bool] = lambda _context: True) -> Iterator[list[str]]:
    """The SQL the app's engine sends meanwhile (those whose execution context `keep` accepts)."""
    seen: list[str] = []

    def note(_conn, _cursor, statement, _params, context, _many) -> None:  # type: ignore[no-untyped-def]
        if keep(context):
            seen.append(statement)

    engine = svc(app).engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def change_settings(app: Flask, **fields: Any) -> None:
    """Change settings of a built app (Settings is frozen, so svc.settings is replaced): sender_rate=1000.0."""
    services = svc(app)
    services.settings = dataclasses.replace(services.settings, **fields)


def add(app: Flask, number: str, *, name: str | None = None, language: str | None = "en",
        place: str | None = "Zomba", tags: tuple[str, ...] = (), consent: bool = True,
        status: str = "active") -> int:
    """Insert a contact directly (faster than a JOIN conversation); return its id."""
    with svc(app).sessions() as s, s.begin():
        c = new_contact(s, number, name=name, language=language, place=place, country=country_of(number),
                        status=status, consent_at=utcnow() - timedelta(days=1) if consent else None)
        s.add(c)
        s.flush()
        s.add_all(ContactTag(contact_id=c.id, tag=t) for t in tags)
        return c.id


def join(app: Flask, number: str, name: str, place: str, interests: str) -> None:
    """Enrol through the real inbound path, as a supporter's phone would."""
    phone = Phone(app)
    for text in ("JOIN", name, place, interests):
        assert phone.send(number, text), f"no reply to {text!r}"


def create(app: Flask, texts: dict[str, str], **options: Any) -> int:
    """A draft broadcast; return its id."""
    with svc(app).sessions() as s, s.begin():
        return broadcasts.create(s, texts, **options).id


def launch(app: Flask, bid: int, *, provider: str = "console", sender: str = "console",
           enqueue: bool = True) -> list[int]:
    """Launch (rows committed first), then enqueue the queued ids as the CLI does; return them."""
    with svc(app).sessions() as s, s.begin():
        b = s.get(Broadcast, bid)
        assert b is not None, f"no broadcast {bid}"
        broadcasts.launch(s, b, provider, sender)
    ids = queued_ids(app, bid)
    if enqueue:
        queues.enqueue_ids(svc(app).redis, ids)
    return ids


def queued_ids(app: Flask, bid: int) -> list[int]:
    """The broadcast's outbox ids still queued, oldest first."""
    with svc(app).sessions() as s:
        return list(s.scalars(select(Message.id).where(Message.broadcast_id == bid, Message.status == "queued")
                              .order_by(Message.id)))


def launch_to_zomba(app: Flask, numbers: list[str], text: str, sender: str) -> list[int]:
    """Active, consenting contacts in Zomba and a broadcast launched to them by Twilio; its outbox ids."""
    for n in numbers:
        assert normalise_number(n).value == n
        add(app, n)
    ids = launch(app, create(app, {"en": text}, place="Zomba"), provider="twilio", sender=sender, enqueue=False)
    assert len(ids) == len(numbers)
    return ids


def work(app: Flask) -> None:
    """Run every due job, as a worker would, on this stack's queue."""
    with app.app_context():
        queues.work_burst(svc(app).redis)


def send(app: Flask, ids: list[int]) -> dict[str, Any]:
    """Run the send job's function in the app, as a worker would."""
    with app.app_context():
        return jobs.send_batch(ids)


def sent(app: Flask) -> list[tuple[str, str]]:
    """(to, text) of everything the console provider sent."""
    provider = svc(app).provider
    assert isinstance(provider, ConsoleProvider), "only the console provider keeps what it sent"
    return list(provider.sent)


def rows(app: Flask, bid: int | None = None) -> dict[str, Message]:
    """The outbox rows by recipient number: all of them, or one broadcast's."""
    where = Message.broadcast_id == bid if bid is not None else Message.direction == "out"
    with svc(app).sessions() as s:
        return {number_of(c): m for m, c in s.execute(
            select(Message, Contact).join(Contact, Contact.id == Message.contact_id).where(where))}


def audit_events(app: Flask, action: str) -> list[AuditEvent]:
    """The audit trail's events of one action, oldest first."""
    with svc(app).sessions() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def store_unhandled(app: Flask, sender: str, text: str, *, channel: str = "console",
                    provider_id: str | None = None) -> tuple[int, int]:
    """A text stored but never handled, as if its request died right after the insert: (its id, its contact's)."""
    with svc(app).sessions() as s, s.begin():
        address = normalise_number(sender, "MW")
        contact = get_or_create(s, address)
        message = Message(direction="in", contact_id=contact.id, channel=channel,
                          provider_id=provider_id or f"local-{uuid.uuid4().hex}", medium=address.medium,
                          body=text, status="received", attempts=0, created_at=utcnow())
        s.add(message)
        s.flush()
        return message.id, contact.id


def sign(url: str, params: dict[str, str], token: str = TWILIO_TOKEN) -> str:
    """The X-Twilio-Signature Twilio would send for these parameters."""
    return RequestValidator(token).compute_signature(url, params)


def csrf_from(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, "no csrf_token in the page"
    return match.group(1)
