"""One-off texts to a staff phone (a broadcast's test, a phone check code), sent through the outbox.

A one-off text is an outbox row like any other: written `queued` and committed, then enqueued, so
it is claimed before it is sent, sent once, routed by the routing file and paced with the rest.
It only ever goes to a mobile number: never a short code, a premium or shared-cost range, a
fixed line, nor a supporter who stopped or was blocked (toll fraud and harassment).
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

from sqlalchemy.orm import Session

from gateway.people import contacts
from gateway.outbound import jobs as queue
from gateway.models import Contact, Message, utcnow
from gateway.core.segments import count_segments
# Moved to the pure core (settings parses TEST_SEND_NUMBERS with them); re-exported for the callers here.
from gateway.core.phones import MOBILE_TYPES, Refused, mobile_number, parse_numbers  # noqa: F401

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


def queue_text(session: Session, contact: Contact, body: str, *, provider: str, sender: str) -> Message:
    """Write one queued outbox row (the caller commits, then calls `enqueue`)."""
    info = count_segments(body)
    row = Message(direction="out", contact_id=contact.id, channel=provider, medium="sms", body=body,
                  status="queued", encoding=info.encoding, segments=info.segments, sender=sender,
                  created_at=utcnow())
    session.add(row)
    session.flush()
    return row


def enqueue(connection: Any, ids: Iterable[int]) -> bool:
    """Hand committed rows to the workers; False when the queue is away (the reconciler picks them up)."""
    try:
        queue.enqueue_ids(connection, list(ids), name=queue.REPLIES)
        return True
    except Exception:  # the rows are safe in the database; the reconciler enqueues queued rows
        logger.exception("one-off text: enqueue failed")
        return False


def digest(session: Session, number: str) -> str:
    """The keyed digest that names a number in the audit log (for whoever holds the key)."""
    return contacts.vault(session).digest(number)


