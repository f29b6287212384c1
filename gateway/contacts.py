"""The one place that reads or writes a contact's phone number (so it can be encrypted later)."""
from __future__ import annotations

from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, lazyload

from gateway.models import Contact, ContactTag, utcnow
from gateway.sms import Address, country_of


def find(session: Session, number: str, *, lock: bool = False) -> Contact | None:
    """The contact with this normalised number, optionally locked for the transaction."""
    query = select(Contact).where(Contact.number == number)
    if lock:
        # A locked look-up serves one inbound message: its tags load only if it needs them.
        query = query.with_for_update().options(lazyload(Contact.tag_rows))
    return session.scalars(query).first()


def get_or_create(session: Session, address: Address, *, lock: bool = False) -> Contact:
    """The contact for an address, created (status active, no consent yet) if new; race-safe."""
    contact = find(session, address.value, lock=lock)
    if contact is not None:
        return contact
    try:
        with session.begin_nested():
            contact = Contact(number=address.value, country=country_of(address.value), status="active")
            session.add(contact)
        return contact
    except IntegrityError:  # another request created it between our select and insert
        found = find(session, address.value, lock=lock)
        assert found is not None
        return found


def number_contains(digits: str) -> ColumnElement[bool]:
    """A filter for contacts whose number contains these digits (organizers' search)."""
    return Contact.number.contains(digits, autoescape=True)


def number_of(contact: Contact) -> str:
    """The number to send to."""
    return contact.number


def new_contact(number: str) -> Contact:
    """A detached contact for a normalised number (imports)."""
    return Contact(number=number, country=country_of(number), status="active", created_at=utcnow())


def add_tags(session: Session, contact: Contact, tags: list[str] | tuple[str, ...]) -> None:
    """Attach tags, ignoring ones the contact already has."""
    have = {t.tag for t in contact.tag_rows}
    for tag in tags:
        tag = tag.strip().lower()[:40]
        if tag and tag not in have:
            contact.tag_rows.append(ContactTag(tag=tag))
            have.add(tag)
