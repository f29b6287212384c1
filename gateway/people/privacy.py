"""Privacy: forgetting a private exchange (an anonymous report) and retention of what supporters wrote.

A private exchange is forgotten by detaching its rows, not just blanking them: a message row that
keeps its contact, conversation or exact time says who texted when, and the report says what.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import BindParameter, CursorResult, Result, bindparam, delete, event, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.core.flowfile import Flow, FlowSet
from gateway.models import Contact, ContactTag, Conversation, Message, Pledge, Report
from gateway.people import contacts

logger = logging.getLogger(__name__)
# On a reply of a forgotten exchange that is not sent yet: it keeps its contact (the number to send
# to) and its words until the outbox settles it, then it is detached like the rest.
PRIVATE = "private"
UNSETTLED = ("queued", "sending")
# The reads an anonymous report's end takes on the inbound path, built once (receive.py says why).
_CONVS: BindParameter[int] = bindparam("convs", expanding=True)
_LOOSE: BindParameter[int] = bindparam("loose", expanding=True)
_INBOUND = select(Message.id).where(Message.direction == "in",
                                    or_(Message.conversation_id.in_(_CONVS), Message.id.in_(_LOOSE)))
_OUTBOUND = select(Message.id, Message.status).where(
    Message.direction == "out", or_(Message.conversation_id.in_(_CONVS),
                                    Message.reply_to_id.in_(bindparam("inbound", expanding=True)),
                                    Message.id.in_(_LOOSE)))
# (A contact's tags are one more thing that holds it, read as the others are: contacts.BY_ID leaves them.)
_HOLDS_THE_CONTACT = tuple(select(column).where(column == bindparam("contact_id")).limit(1) for column in (
    ContactTag.contact_id, Message.contact_id, Conversation.contact_id, Pledge.contact_id, Report.contact_id))


def is_private(flow: Flow | None) -> bool:
    """True for a flow whose conversations must not stay tied to the contact (the report flow)."""
    return flow is not None and bool(getattr(flow, "private", flow.name == "report"))


def day_of(when: datetime) -> datetime:
    """Midnight of that day: a forgotten row keeps the day, never the time."""
    return when.replace(hour=0, minute=0, second=0, microsecond=0)


def detached(now: datetime) -> dict[str, Any]:
    """The values of a forgotten message row: no contact, conversation, words or time of day.

    Provider and provider id stay: they are how a repeated webhook is recognised and dropped.
    """
    return {"contact_id": None, "conversation_id": None, "reply_to_id": None, "body": None, "handled_by": None,
            "inbox_status": None, "error": None, "claimed_at": None, "send_after": None,
            "created_at": day_of(now)}


def forget(session: Session, conversation_ids: Iterable[int], message_ids: Iterable[int], now: datetime) -> None:
    """Detach these conversations' messages (and these inbound messages) with every reply, and delete
    the conversations. Replies not sent yet keep their contact and words until the outbox settles them."""
    convs, loose = [i for i in conversation_ids if i is not None], [i for i in message_ids if i is not None]
    session.flush()
    bind = session.get_bind()
    if bind.dialect.name == "postgresql" and not session.info.get(_WASH):
        session.info[_WASH] = True
        event.listen(session, "after_commit", lambda s: _wash_contact_locks(s, bind), once=True)
    inbound = list(session.scalars(_INBOUND, {"convs": convs, "loose": loose}))
    outbound = session.execute(_OUTBOUND, {"convs": convs, "loose": loose, "inbound": inbound}).all()
    gone = detached(now)
    if inbound:
        session.execute(update(Message).where(Message.id.in_(inbound)).values(**gone, handled_at=gone["created_at"]))
    settled = [i for i, status in outbound if status not in UNSETTLED]
    if settled:
        session.execute(update(Message).where(Message.id.in_(settled)).values(**gone))
    waiting = [i for i, status in outbound if status in UNSETTLED]
    if waiting:
        session.execute(update(Message).where(Message.id.in_(waiting)).values(
            conversation_id=None, reply_to_id=None, handled_by=PRIVATE, inbox_status=None,
            created_at=gone["created_at"]))
    if convs:
        session.execute(delete(Conversation).where(Conversation.id.in_(convs)))


def drop_if_bare(session: Session, contact_id: int) -> bool:
    """Delete a contact that holds nothing but its number: one first seen by a private exchange,
    now forgotten. Imports and the API set consent, so they never make such a row."""
    if not _bare(session, contact_id, lock=False):
        return False
    # Locked only once it looks bare: on PostgreSQL a row lock writes this transaction's id into the
    # row (xmax), the same id the detached rows carry, so a contact that stays is never locked here.
    if not _bare(session, contact_id, lock=True):
        return False
    c = session.get(Contact, contact_id)
    if c is not None:
        session.delete(c)
    return c is not None


def _bare(session: Session, contact_id: int, *, lock: bool) -> bool:
    c = session.scalars(contacts.BY_ID_LOCKED if lock else contacts.BY_ID, {"contact_id": contact_id}).first()
    if c is None or c.consent_at is not None or c.status != "active" or any(
            (c.name, c.place, c.language, c.last_seen_at, c.last_hint_at, c.stopped_at)):
        return False
    for holds in _HOLDS_THE_CONTACT:
        if session.scalar(holds, {"contact_id": contact_id}) is not None:
            return False
    return True


def close_expired(sessions: sessionmaker[Session], flows: FlowSet, now: datetime) -> int:
    """Close conversations past their expiry (they otherwise close only when the number texts again);
    a private one is forgotten. The contact's row is not locked (see drop_if_bare): an expired
    conversation takes no more answers, and the conditional update settles a race with a new text."""
    with sessions() as session:
        found = session.execute(select(Conversation.id, Conversation.contact_id).where(
            Conversation.closed_at.is_(None), Conversation.expires_at <= now)).all()
    closed = 0
    for conv_id, contact_id in found:
        with sessions() as session, session.begin():
            flow = session.scalar(update(Conversation).where(
                Conversation.id == conv_id, Conversation.closed_at.is_(None), Conversation.expires_at <= now)
                .values(closed_at=now, outcome="expired").returning(Conversation.flow)
                .execution_options(synchronize_session=False))
            if flow is None:
                continue  # the supporter texted meanwhile
            closed += 1
            if is_private(flows.flows.get(flow)):
                forget(session, [conv_id], [], now)
                drop_if_bare(session, contact_id)
    return closed


@dataclass(frozen=True)
class Purged:
    messages: int
    conversations: int


def _count(result: Result[Any]) -> int:
    """The rows an UPDATE changed (execute() is typed as returning a plain Result)."""
    return cast(CursorResult[Any], result).rowcount or 0


def purge(session: Session, before: datetime) -> Purged:
    """Forget message bodies and finished conversations' answers older than `before`; keep the rows.

    Conversations marked redacted by older versions (which only blanked them) are forgotten whole.
    On SQLite, the write-ahead log is emptied after the commit so the old words leave the disk.
    """
    messages = _count(session.execute(update(Message).where(
        Message.created_at < before, Message.body.is_not(None),
        Message.status.not_in(("queued", "sending", "inline"))).values(body=None)))
    conversations = _count(session.execute(update(Conversation).where(
        or_(Conversation.closed_at < before, Conversation.expires_at < before)).values(answers={})))
    legacy = list(session.scalars(select(Conversation.id).where(Conversation.redacted.is_(True))))
    if legacy:
        forget(session, legacy, [], before)
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        event.listen(session, "after_commit", lambda _s: checkpoint(bind), once=True)
    return Purged(messages, conversations + len(legacy))


_WASH = "wash_contact_locks"
_EVERY_CONTACT_LOCKED = select(Contact.id).with_for_update(read=True, key_share=True, skip_locked=True)


def _wash_contact_locks(session: Session, bind: Any) -> None:
    """PostgreSQL: stamp every contact row with one new transaction id, right after a private exchange.

    Storing the reporter's texts checked their foreign key, which takes a KEY SHARE lock on the
    contact's row, and PostgreSQL writes the locking transaction's id into that row (xmax): the same
    id the report and its detached rows carry (xmin). A lock on every row from one later transaction
    overwrites it, so a reporter's row and a row that never reported look alike. Rows another
    transaction holds are skipped: that transaction overwrites their xmax itself.
    """
    session.info.pop(_WASH, None)
    engine = getattr(bind, "engine", bind)
    try:
        with engine.begin() as conn:
            conn.execute(_EVERY_CONTACT_LOCKED)
    except Exception:  # the report is saved; the next private exchange washes again
        logger.warning("could not renew the contacts' lock stamps after a private exchange", exc_info=True)


def checkpoint(bind: Any) -> None:
    """SQLite: copy the write-ahead log into the database and truncate it (the log keeps old pages)."""
    engine = getattr(bind, "engine", bind)
    raw = engine.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except Exception:  # a busy database: the next purge empties it
        logger.warning("could not empty the SQLite write-ahead log after a purge", exc_info=True)
    finally:
        raw.close()
