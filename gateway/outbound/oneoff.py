"""One-off texts (a broadcast's test, a phone check code, an inbox reply), sent through the outbox.

A one-off text is an outbox row like any other: written `queued` and committed, then enqueued (or,
for an inbox reply the organizer waits for, sent at once by `send_now`), so it is claimed before it
is sent, sent once, routed, paced and its provider's errors classified in one place: the outbox.
A test text only ever goes to a mobile number: never a short code, a premium or shared-cost range, a
fixed line, nor a supporter who stopped or was blocked (toll fraud and harassment).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

# Moved to the pure core (settings parses TEST_SEND_NUMBERS with them); re-exported for the callers here.
from gateway.core.phones import MOBILE_TYPES, Refused, mobile_number, parse_numbers  # noqa: F401
from gateway.core.segments import count_segments
from gateway.models import Contact, Message, utcnow
from gateway.outbound import outbox, queues
from gateway.people import contacts

logger = logging.getLogger(__name__)
STAFF_TAG = "staff"  # a phone created for a test send; it has no consent, so no broadcast reaches it


def recipient(session: Session, number: str) -> Contact:
    """The contact a one-off goes to: an active one, or a new staff phone; Refused for an opt-out."""
    contact = contacts.find(session, number)
    if contact is None:
        # No consent: broadcasts never include it, whatever their place, language or tag.
        contact = contacts.new_contact(session, number, status="active", consent_at=None)
        session.add(contact)
        contacts.add_tags(session, contact, [STAFF_TAG])
        session.flush()
    elif contact.status != "active":
        raise Refused("this phone's owner texted STOP or was blocked, so the gateway sends it nothing")
    return contact


def queue_text(session: Session, contact: Contact, body: str, *, provider: str, sender: str | None,
               reply_to: Message | None = None) -> Message:
    """Write one queued outbox row (the caller commits, then calls `enqueue` or `send_now`).

    A reply (`reply_to`) leaves by `provider`, the channel the supporter wrote to.
    """
    info = count_segments(body)
    row = Message(direction="out", contact_id=contact.id, channel=provider, medium="sms", body=body,
                  status="queued", encoding=info.encoding, segments=info.segments, sender=sender,
                  reply_to_id=reply_to.id if reply_to is not None else None, created_at=utcnow())
    session.add(row)
    session.flush()
    return row


def enqueue(connection: Any, ids: Iterable[int]) -> bool:
    """Hand committed rows to the workers; False when the queue is away (the reconciler picks them up)."""
    try:
        queues.enqueue_ids(connection, list(ids), name=queues.REPLIES)
        return True
    except Exception:  # the rows are safe in the database; the reconciler enqueues queued rows
        logger.exception("one-off text: enqueue failed")
        return False


@dataclass(frozen=True)
class Sent:
    """How a one-off sent at once ended: its row's status and error code after the outbox tried it."""

    status: str  # sent, failed, skipped; queued (the provider asked to wait); sending (unconfirmed)
    error_code: str | None


def send_now(box: outbox.Outbox, row_id: int) -> Sent:
    """Send one committed queued row now, in this process, through the outbox (claim, route, pace, classify).

    A provider that asks to wait leaves the row queued: the reconciler sends it later.
    """
    try:
        outbox.send_batch(box, [row_id])
    except outbox.RetryLater:
        pass  # the outbox put the row back in the queue; its outcome is read below
    with box.sessions() as session:
        row = session.get(Message, row_id)
        assert row is not None
        return Sent(row.status, row.error_code)


def digest(session: Session, number: str) -> str:
    """The keyed digest that names a number in the audit log (for whoever holds the key)."""
    return contacts.vault(session).digest(number)


