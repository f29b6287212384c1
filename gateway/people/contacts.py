"""The one place that reads or writes a contact's phone number: sealed at rest, found by digest."""
from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, exists, select
from sqlalchemy.orm import Session, lazyload, make_transient_to_detached, object_session

from gateway.core.phones import Address, country_of
from gateway.core.vault import NumberVault
from gateway.db import insert_or_skip
from gateway.models import Contact, ContactTag, utcnow


def vault(session: Session) -> NumberVault:
    """The number keys this session was made with (gateway.db.make_session_factory)."""
    found = session.info.get("numbers")
    if found is None:
        raise RuntimeError("this session has no number keys: make it with make_session_factory(engine, vault)")
    return found


def number_is(session: Session, number: str) -> ColumnElement[bool]:
    """A filter for the contact with exactly this normalised number (digest under any configured key)."""
    return Contact.number_digest.in_(vault(session).digests(number))


# For statements built once (gateway/inbound/receive.py says why), their values bound at execution:
# number_is with its digests bound (`number_params` gives them), and a contact by id
# (`{"contact_id": ...}`), its tags read only if asked for.
NUMBER_IS = Contact.number_digest.in_(bindparam("digests", expanding=True))
BY_ID = select(Contact).where(Contact.id == bindparam("contact_id")).options(lazyload(Contact.tag_rows))
BY_ID_LOCKED = BY_ID.with_for_update()


def number_params(session: Session, number: str) -> dict[str, list[str]]:
    """The values NUMBER_IS is executed with, for this normalised number."""
    return {"digests": vault(session).digests(number)}


def matching(query: Select[Any], *, place: str | None = None, language: str | None = None,
             tag: str | None = None, status: str | None = None) -> Select[Any]:
    """`query` narrowed to contacts in a place, speaking a language, with a tag, in a status.

    The one filter the console's supporter search, the API's contact listing and a broadcast's
    audience share; each adds what is its own (a name search, an exact number, consent).
    """
    if place:
        query = query.where(Contact.place == place)
    if language:
        query = query.where(Contact.language == language)
    if tag:
        query = query.where(exists().where(ContactTag.contact_id == Contact.id, ContactTag.tag == tag.lower()))
    if status:
        query = query.where(Contact.status == status)
    return query


def find(session: Session, number: str, *, lock: bool = False) -> Contact | None:
    """The contact with this normalised number, optionally locked for the transaction."""
    query = select(Contact).where(number_is(session, number))
    if lock:
        # A locked look-up serves one inbound message: its tags load only if it needs them.
        query = query.with_for_update().options(lazyload(Contact.tag_rows))
    return session.scalars(query).first()


def get_or_create(session: Session, address: Address, *, lock: bool = False) -> Contact:
    """The contact for an address, created (status active, no consent yet) if new; race-safe.

    INSERT ... ON CONFLICT DO NOTHING instead of a savepoint around a plain INSERT: a request that
    loses the race to create the same new contact waits for the winner's commit, gets no row and
    reads the winner's, in two statements fewer than SAVEPOINT, INSERT, RELEASE.
    """
    contact = find(session, address.value, lock=lock)
    if contact is not None:
        return contact
    return create_new(session, address.value, lock=lock)


def create_new(session: Session, number: str, *, lock: bool = False) -> Contact:
    """Insert the contact for a number not found; the one another transaction just created, if it won."""
    values = new_contact(session, number, status="active")
    row = {c.key: getattr(values, c.key) for c in Contact.__table__.columns if c.key != "id"}
    statement = insert_or_skip(Contact.__table__, tuple(row), ("number_digest",), session.get_bind().dialect.name)
    contact_id = session.execute(statement, row).scalar()
    if contact_id is None:  # another request created it between our select and insert
        found = find(session, number, lock=lock)
        assert found is not None
        return found
    # The row as inserted, persistent in the session without reading it back (a new contact has no tags).
    created = Contact(id=contact_id, **row)
    created.tag_rows = []
    make_transient_to_detached(created)
    session.add(created)
    return created


def number_of(contact: Contact) -> str:
    """The number to send to, or to show an organizer who may see it."""
    session = object_session(contact)
    if session is None:
        raise RuntimeError(f"contact {contact.id} is detached: its number is opened inside a session")
    return vault(session).open(contact.number_sealed)


def new_contact(session: Session, number: str, **fields: Any) -> Contact:
    """A contact for a normalised number, not yet added (imports, the API, first texts)."""
    box = vault(session)
    fields.setdefault("country", country_of(number))
    fields.setdefault("status", "active")
    fields.setdefault("created_at", utcnow())
    return Contact(number_digest=box.digest(number), number_sealed=box.seal(number), **fields)


def add_tags(session: Session, contact: Contact, tags: list[str] | tuple[str, ...]) -> None:
    """Attach tags, ignoring ones the contact already has."""
    have = {t.tag for t in contact.tag_rows}
    for tag in tags:
        tag = tag.strip().lower()[:40]
        if tag and tag not in have:
            contact.tag_rows.append(ContactTag(tag=tag))
            have.add(tag)


def rekey(session: Session, batch: int = 500) -> int:
    """Move every number sealed or digested under an older key to the newest; returns how many moved."""
    box, moved, last = vault(session), 0, 0
    while rows := session.scalars(select(Contact).where(Contact.id > last).order_by(Contact.id).limit(batch)).all():
        for contact in rows:
            number = box.open(contact.number_sealed)
            if contact.number_digest != box.digest(number):
                contact.number_sealed, contact.number_digest = box.seal(number), box.digest(number)
                moved += 1
        last = rows[-1].id
        session.flush()
    return moved
