"""The inbound path: store first, drop duplicates, handle one contact's messages in order."""
from __future__ import annotations

import logging
import os
import re
import secrets
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from redis.exceptions import RedisError
from sqlalchemy import and_, bindparam, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, lazyload, make_transient_to_detached, sessionmaker

from gateway.cases import answers as case_answers
from gateway.cases import joining as case_joining
from gateway.channels.base import InboundSMS
from gateway.core import engine
from gateway.core.engine import HandledBy
from gateway.core.flowfile import Flow, FlowSet
from gateway.core.phones import InvalidNumber, normalise_number
from gateway.core.places import find_place
from gateway.core.segments import count_segments
from gateway.core.text import fold
from gateway.db import insert_or_skip
from gateway.evidence import answers as check_answers
from gateway.models import Contact, Conversation, Message, Pledge, Report, utcnow
from gateway.outbound import broadcasts
from gateway.people import contacts, privacy

logger = logging.getLogger(__name__)
T = TypeVar("T")
# What ends the open conversation, and its outcome: a new flow or START replaces it, STOP stops it
# (its last answer completes it: see _handle_one).
_ENDS = {HandledBy.FLOW: "replaced", HandledBy.START: "replaced", HandledBy.STOP: "stopped"}
MAX_BODY = 1600  # Twilio's own limit for a concatenated SMS; longer input is cut, not refused

# The path's selects, built once with their values bound at execution. Built per text, a select's
# construction and its cache key (SQLAlchemy memoises the key on the statement object, so only a
# statement kept gets it for free) were a fifth of a drained text's CPU (py-spy over
# bench.inbound_cpu --drained). tests/test_statement_count.py fails if the path builds one again.
_LOCK_BY_NUMBER = select(Contact).where(contacts.NUMBER_IS).options(lazyload(Contact.tag_rows)).with_for_update()
_STATE = (select(Contact, Conversation,
                 select(Message.id).where(Message.contact_id == Contact.id, Message.direction == "in",
                                          Message.handled_at.is_(None)).exists())
          .outerjoin(Conversation, and_(Conversation.contact_id == Contact.id, Conversation.closed_at.is_(None)))
          .order_by(Conversation.id).limit(1).options(lazyload(Contact.tag_rows)))
_STATE_BY_ID = _STATE.where(Contact.id == bindparam("contact_id"))
_STATE_BY_NUMBER = _STATE.where(contacts.NUMBER_IS)
_PENDING = (select(Message).where(Message.contact_id == bindparam("contact_id"), Message.direction == "in",
                                  Message.handled_at.is_(None)).order_by(Message.id))
_REPORT_ID_TAKEN = select(Report.id).where(Report.id == bindparam("report_id"))
_OPEN_CONVERSATION = select(Conversation).where(Conversation.contact_id == bindparam("contact_id"),
                                                Conversation.closed_at.is_(None))


@dataclass(frozen=True)
class Received:
    """What became of an inbound message: stored or a duplicate, and the replies it produced."""

    message_id: int | None
    contact_id: int | None
    duplicate: bool = False
    texts: tuple[str, ...] = ()  # inline replies, for the webhook's answer
    queued: tuple[int, ...] = ()  # replies left for the outbox: enqueue these ids after commit
    deferred: bool = False  # stored for a worker to handle (inbound/deferred.py), not handled yet


def receive(factory: sessionmaker[Session], sms: InboundSMS, default_country: str, flows: FlowSet,
            org: str, now: datetime | None = None, *, inline: bool = True,
            received_at: datetime | None = None) -> Received:
    """Store a message and handle its contact's pending messages, in one transaction.

    The contact's row is locked first, so one contact's messages are stored and handled in
    order. The first try runs without savepoints (six or seven statements for a whole text): if
    anything in it fails, its transaction is rolled back whole and the text goes the careful way
    (`_receive_guarded`), where each pending text is handled in its own savepoint, one that keeps
    failing is set aside after MAX_ATTEMPTS tries and never holds up the texts after it (a STOP
    above all), and if the whole pass fails the message is still committed, unhandled, the
    failure counts against the contact's oldest pending text, and the reconciler handles it
    later (`Inbound.handle_stranded`). One commit per message is what lets a webhook answer
    quickly (see docs/benchmarks.md). `received_at` is when it arrived, if earlier than now (a
    text replayed from the spool).
    """
    return _quick_then_careful(
        lambda: _receive_fast(factory, sms, default_country, flows, org, now, inline=inline,
                              received_at=received_at),
        lambda: _receive_guarded(factory, sms, default_country, flows, org, now, inline=inline,
                                 received_at=received_at),
        f"message {sms.provider_id} from {sms.provider}")


def _quick_then_careful(quick: Callable[[], T], careful: Callable[[], T], what: str) -> T:
    """`quick()` (no savepoint); if it fails, its transaction was rolled back whole: `careful()`.

    A database that is away is not the texts' fault: that failure goes to the caller, which
    keeps the texts (the spool, or a later run).
    """
    try:
        return quick()
    except Exception as exc:
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            raise
        logger.info("%s: the quick pass failed (%s); handled with savepoints", what, describe_error(exc))
    return careful()


def _receive_fast(factory: sessionmaker[Session], sms: InboundSMS, default_country: str, flows: FlowSet,
                  org: str, now: datetime | None, *, inline: bool, received_at: datetime | None) -> Received:
    """The usual case in one transaction and no savepoint: any failure rolls it all back (the caller
    then takes the guarded path). The contact, its open conversation and whether older texts wait
    are read in one locked statement."""
    with factory() as session, session.begin():
        try:
            address = normalise_number(sms.sender, default_country)
        except InvalidNumber:
            address = None
        found: tuple[Contact, Conversation | None, bool] | None = None
        if address is not None:
            found = _contact_and_state(session, address.value)
        if found is None:
            contact = contacts.create_new(session, address.value, lock=True) if address is not None else None
            conv, older = None, False
        else:
            contact, conv, older = found
        values = _values(sms, contact, address.medium if address else "sms", received_at)
        message_id = _insert_values(session, values)
        if message_id is None:
            logger.info("duplicate %s message %s dropped", sms.provider, sms.provider_id)
            return Received(None, None, duplicate=True)
        if contact is None:
            logger.warning("message %s from an unusable sender kept, not handled", message_id)
            return Received(message_id, None)
        status = "sent" if inline else "queued"
        now = now or utcnow()
        # Texts stored before this one wait (deferred or stranded): all of them are handled, in order;
        # else only this one, with the conversation already read.
        only = None if older else (_inserted_message(session, message_id, values), conv)
        replies = _handle_locked(session, contact, flows, org, now, status, guarded=False, only=only)
        texts = tuple(text for _, text in replies) if inline else ()
        queued = () if inline else tuple(r.id for r, _ in replies)
        return Received(message_id, contact.id, texts=texts, queued=queued)


def _contact_and_state(session: Session, number: str) -> tuple[Contact, Conversation | None, bool] | None:
    """The sender's contact locked, its open conversation and whether it has texts not yet handled.

    The state is read after the lock is held, in a statement of its own: on PostgreSQL a statement
    that waited for the row lock sees the locked row as the holder left it but every other table as
    it was when the statement began, so a conversation read alongside the lock could be stale.
    (SQLite's BEGIN IMMEDIATE has already serialised the transaction: there one statement is safe.)
    """
    digests = contacts.number_params(session, number)
    if session.get_bind().dialect.name == "postgresql":
        contact = session.scalars(_LOCK_BY_NUMBER, digests).first()
        if contact is None:
            return None
        row = session.execute(_STATE_BY_ID, {"contact_id": contact.id}).first()
    else:
        row = session.execute(_STATE_BY_NUMBER, digests).first()
    if row is None:
        return None
    return row[0], row[1], bool(row[2])


def _inserted_message(session: Session, message_id: int, values: dict[str, Any]) -> Message:
    """The inbound row just inserted, as a persistent object, without reading it back."""
    message = Message(id=message_id, **values)
    for column in Message.__table__.columns:  # every attribute loaded: none is read back lazily
        if column.key not in message.__dict__:
            setattr(message, column.key, None)
    make_transient_to_detached(message)
    session.add(message)
    return message


def _receive_guarded(factory: sessionmaker[Session], sms: InboundSMS, default_country: str, flows: FlowSet,
                     org: str, now: datetime | None = None, *, inline: bool = True,
                     received_at: datetime | None = None) -> Received:
    """Store and handle with a savepoint per text (see `receive`): what a failing text goes through."""
    with factory() as session, session.begin():
        contact, medium = _locked_contact(session, sms.sender, default_country)
        message_id = _insert(session, sms, contact, medium, received_at)
        if message_id is None:
            logger.info("duplicate %s message %s dropped", sms.provider, sms.provider_id)
            return Received(None, None, duplicate=True)
        if contact is None:
            logger.warning("message %s from an unusable sender kept, not handled", message_id)
            return Received(message_id, None)
        now = now or utcnow()
        try:
            with session.begin_nested():
                replies = _handle_locked(session, contact, flows, org, now, "sent" if inline else "queued")
        except Exception as exc:  # a bug outside any one text: the message stays, unhandled
            logger.warning("message %s of contact %s stored but not handled (%s%s); the reconciler retries it",
                           message_id, contact.id, describe_error(exc), _where(exc))
            replies = _stop_pending(session, contact, exc, flows, org, now, "sent" if inline else "queued")
            _count_failed_pass(session, contact.id, exc, now)
            return Received(message_id, contact.id, texts=tuple(t for _, t in replies) if inline else (),
                            queued=() if inline else tuple(r.id for r, _ in replies))
        texts = tuple(text for _, text in replies) if inline else ()
        queued = () if inline else tuple(r.id for r, _ in replies)
        return Received(message_id, contact.id, texts=texts, queued=queued)


def _locked_contact(session: Session, sender: str, default_country: str) -> tuple[Contact | None, str]:
    """The sender's contact, created if new and locked for the transaction; and the medium (sms, whatsapp)."""
    try:
        address = normalise_number(sender, default_country)
    except InvalidNumber:
        return None, "sms"
    return contacts.get_or_create(session, address, lock=True), address.medium


def _values(sms: InboundSMS, contact: Contact | None, medium: str, received_at: datetime | None) -> dict[str, Any]:
    """The inbound row's columns as stored (before handling)."""
    return {"direction": "in", "contact_id": contact.id if contact else None, "channel": sms.provider,
            "provider_id": sms.provider_id or f"local-{uuid.uuid4().hex}",
            "medium": medium, "body": sms.body.replace("\x00", "")[:MAX_BODY],
            "status": "received" if contact else "handled", "handled_by": None if contact else "unroutable",
            "attempts": 0, "created_at": received_at or utcnow()}


def _insert(session: Session, sms: InboundSMS, contact: Contact | None, medium: str,
            received_at: datetime | None = None) -> int | None:
    """INSERT ... ON CONFLICT DO NOTHING on the provider's id: the row's id, or None for a repeat."""
    return _insert_values(session, _values(sms, contact, medium, received_at))


def _insert_values(session: Session, values: dict[str, Any]) -> int | None:
    """The insert itself (see `_insert`)."""
    statement = insert_or_skip(Message.__table__, tuple(values), ("channel", "provider_id"),
                               session.get_bind().dialect.name)
    return session.execute(statement, values).scalar()


def handle_pending(factory: sessionmaker[Session], contact_id: int, flows: FlowSet, org: str,
                   now: datetime | None = None, *, inline: bool = True) -> list[int]:
    """Handle this contact's unhandled messages in arrival order, holding the contact's row lock.

    Replies are stored as `sent` (they ride on the caller's answer) or `queued` (for the
    outbox to send); returns the ids of queued replies, to enqueue after commit. As in `receive`,
    the first try takes no savepoint (two statements fewer a text for a worker draining a burst);
    if anything in it fails, it is rolled back whole and each text goes in a savepoint of its own.
    """
    return _quick_then_careful(
        lambda: _handle_pending(factory, contact_id, flows, org, now, inline=inline, guarded=False),
        lambda: _handle_pending(factory, contact_id, flows, org, now, inline=inline, guarded=True),
        f"contact {contact_id}")


def _handle_pending(factory: sessionmaker[Session], contact_id: int, flows: FlowSet, org: str,
                    now: datetime | None, *, inline: bool, guarded: bool) -> list[int]:
    with factory() as session, session.begin():
        # The tags are read only if handling asks for them (a flood), as on the webhook's quick path.
        contact = session.scalars(contacts.BY_ID_LOCKED, {"contact_id": contact_id}).one()
        replies = _handle_locked(session, contact, flows, org, now or utcnow(), "sent" if inline else "queued",
                                 guarded=guarded)
        return [r.id for r, _ in replies if r.status == "queued"]


def _handle_locked(session: Session, contact: Contact, flows: FlowSet, org: str, now: datetime,
                   reply_status: str, *, guarded: bool = True,
                   only: tuple[Message, Conversation | None] | None = None) -> list[tuple[Message, str]]:
    """Handle the locked contact's pending messages in order; each reply with the text it carries.

    `only`: the one pending text and the contact's open conversation, when the caller knows that
    nothing older waits (the quick pass read both in its first statement).
    """
    if only is not None:
        replies = _handle_one(session, contact, only[0], flows, org, now, reply_status, conv=only[1])
    else:
        pending = session.scalars(_PENDING, {"contact_id": contact.id}).all()
        replies = []
        for message in pending:
            if guarded:
                replies += _handle_guarded(session, contact, message, flows, org, now, reply_status)
            else:  # the quick pass: a failure rolls the whole transaction back (see receive)
                replies += _handle_one(session, contact, message, flows, org, now, reply_status)
    # Every text the contact's lock found is handled (or set aside): a STOP stored among them has
    # been applied, in its place. (One stored after the lock was taken sets the mark again.)
    if contact.stop_pending_at is not None:
        contact.stop_pending_at = None
    session.flush()
    return replies


MAX_ATTEMPTS = 3  # tries of one inbound text before it is set aside for organizers
SET_ASIDE = "set_aside"  # status and route of an inbound text that could not be handled


def _handle_guarded(session: Session, contact: Contact, message: Message, flows: FlowSet, org: str,
                    now: datetime, reply_status: str) -> list[tuple[Message, str]]:
    """Handle one text in its own savepoint, tried up to MAX_ATTEMPTS times, then set aside.

    A failure rolls back only this text's savepoint (the contact's lock is kept), so the texts
    after it are still handled in order, and a STOP among them is applied and confirmed.
    """
    while True:
        try:
            with session.begin_nested():
                replies = _handle_one(session, contact, message, flows, org, now, reply_status)
                session.flush()  # a database error shows here, inside this text's savepoint
            return replies
        except Exception as exc:
            # The database is away, or timed out (DB_STATEMENT_TIMEOUT_MS, DB_LOCK_TIMEOUT_MS): not
            # this text's fault, so it is not counted against it; the caller keeps it (see spool.py).
            if isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
                raise
            if _count_failure(message, exc, now):
                return _stop_anyway(session, contact, message, flows, org, now, reply_status)


def _count_failure(message: Message, exc: BaseException, now: datetime) -> bool:
    """One more failed try of this text; True when it is now set aside (it then blocks nothing)."""
    message.attempts = (message.attempts or 0) + 1
    error = describe_error(exc)
    if message.attempts < MAX_ATTEMPTS:
        # The message id only: a report's rows are later detached, and a line naming its contact too
        # would tie the two together (organizers find the contact from the set-aside row).
        logger.warning("message %s not handled, try %d of %d (%s%s)", message.id,
                       message.attempts, MAX_ATTEMPTS, error, _where(exc))
        return False
    message.status, message.handled_by, message.handled_at, message.error = SET_ASIDE, SET_ASIDE, now, error
    logger.error("message %s set aside after %d tries (%s%s)", message.id, message.attempts, error, _where(exc))
    return True


def _count_failed_pass(session: Session, contact_id: int, exc: BaseException, now: datetime) -> bool:
    """A whole handling pass failed: count it against the contact's oldest pending text.

    Without this a bug outside any one text would leave the contact's texts, STOP included,
    pending for ever; with it each pass that fails brings the oldest text nearer to being set aside.
    """
    oldest = session.scalars(
        select(Message).where(Message.contact_id == contact_id, Message.direction == "in",
                              Message.handled_at.is_(None)).order_by(Message.id).limit(1)).first()
    if oldest is None:
        return False
    set_aside = _count_failure(oldest, exc, now)
    session.flush()
    return set_aside


def count_failed_pass(factory: sessionmaker[Session], contact_id: int, exc: BaseException, flows: FlowSet,
                      org: str) -> list[int]:
    """For the reconciler, after a failed pass: `_stop_pending` and `_count_failed_pass` in their own
    transaction, holding the contact's lock; the ids of queued replies (a STOP's confirmation)."""
    with factory() as session, session.begin():
        contact = session.scalars(select(Contact).where(Contact.id == contact_id).with_for_update()).one()
        now = utcnow()
        replies = _stop_pending(session, contact, exc, flows, org, now, "queued")
        _count_failed_pass(session, contact_id, exc, now)
        return [r.id for r, _ in replies]


def _stop_pending(session: Session, contact: Contact, exc: BaseException, flows: FlowSet, org: str,
                  now: datetime, reply_status: str) -> list[tuple[Message, str]]:
    """A pass failed as a whole: a STOP among the pending texts is applied and confirmed all the same.

    The texts before it are set aside with the pass's error: handled after the STOP, an earlier
    JOIN would undo it. Texts after the last STOP stay pending, to be handled in order later.
    """
    stop = flows.system_words("stop")
    pending = session.scalars(select(Message).where(
        Message.contact_id == contact.id, Message.direction == "in", Message.handled_at.is_(None))
        .order_by(Message.id)).all()
    stops = [m for m in pending if next((f for raw in (m.body or "").split() if (f := fold(raw))), "") in stop]
    if not stops:
        return []
    replies: list[tuple[Message, str]] = []
    error = describe_error(exc)
    for message in pending:
        if message.id > stops[-1].id:
            break
        message.status, message.handled_by, message.handled_at, message.error = SET_ASIDE, SET_ASIDE, now, error
        if message in stops:
            replies += _stop_anyway(session, contact, message, flows, org, now, reply_status)
        else:
            logger.error("message %s of contact %s set aside: a later STOP was applied while handling failed",
                         message.id, contact.id)
    session.flush()
    return replies


def _stop_anyway(session: Session, contact: Contact, message: Message, flows: FlowSet, org: str,
                 now: datetime, reply_status: str) -> list[tuple[Message, str]]:
    """A set-aside text that is a STOP still stops the contact and is confirmed: STOP always wins.

    The same outcome as the engine's (engine.handle), written without it, since handling failed.
    """
    stop = flows.system_words("stop")
    first = next((f for raw in (message.body or "").split() if (f := fold(raw))), "")
    if first not in stop or contact.status == "blocked":
        return []
    try:
        with session.begin_nested():
            confirmed_before = contact.status == "stopped"
            if not confirmed_before:
                contact.status, contact.stopped_at = "stopped", now
            for conv in session.scalars(select(Conversation).where(
                    Conversation.contact_id == contact.id, Conversation.closed_at.is_(None))):
                conv.closed_at, conv.outcome = now, "stopped"
            message.handled_by, message.status = "stop", "handled"
            if confirmed_before:  # already confirmed once; a second confirmation costs money
                return []
            text = _PLACEHOLDER.sub("", flows.text(flows.system.texts["stop"], contact.language or stop[first])
                                    .replace("{org}", org)).strip()
            info = count_segments(text)
            reply = Message(direction="out", contact_id=contact.id, reply_to_id=message.id,
                            channel=message.channel, medium=message.medium, body=text, status=reply_status,
                            encoding=info.encoding, segments=info.segments, created_at=now)
            session.add(reply)
            session.flush()
            logger.warning("message %s: STOP of contact %s applied without the engine", message.id, contact.id)
            return [(reply, text)]
    except Exception as exc:
        logger.error("message %s: STOP of contact %s could not be applied (%s%s)", message.id, contact.id,
                     describe_error(exc), _where(exc))
        return []


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_LONG_NUMBER = re.compile(r"\+?\d[\d ()./-]{3,}\d")  # phone numbers, ids: five digits or more
_PLACEHOLDER = re.compile(r"\{[a-z_][a-z0-9_.]*\}")
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def describe_error(exc: BaseException) -> str:
    """The error's class and first line for messages.error and logs: no SQL, parameters, quotes or numbers."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()  # a driver's DETAIL line can quote a row's values
    first = _LONG_NUMBER.sub("…", _QUOTED.sub(lambda m: f"{m.group()[0]}…{m.group()[0]}", lines[0] if lines else ""))
    return (f"{type(exc).__name__}: {first}" if first else type(exc).__name__)[:200]


def _where(exc: BaseException) -> str:
    """Where in the gateway's code it failed (file, line, function): no values, unlike a traceback."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(_PACKAGE)]
    if not frames:
        return ""
    last = frames[-1]
    return f", at {os.path.basename(last.filename)}:{last.lineno} in {last.name}"


def _open_conversation(session: Session, contact_id: int) -> Conversation | None:
    return session.scalars(_OPEN_CONVERSATION, {"contact_id": contact_id}).first()


_LOOK_UP: Any = object()  # _handle_one's conv when the caller has not read it already


def _handle_one(session: Session, contact: Contact, message: Message, flows: FlowSet, org: str,
                now: datetime, reply_status: str, conv: Conversation | None = _LOOK_UP) -> list[tuple[Message, str]]:
    if conv is _LOOK_UP:
        conv = _open_conversation(session, contact.id)
    state = None
    if conv is not None:
        state = engine.ConversationState(conv.flow, conv.step, conv.language, conv.expires_at,
                                         dict(conv.answers or {}), conv.retries)
    view = engine.ContactView(status=contact.status, language=contact.language, country=contact.country,
                              name=contact.name, place=contact.place, joined=contact.consent_at is not None,
                              last_hint_at=contact.last_hint_at,
                              pledges=_LazyPledges(session, contact.id, now),
                              check=check_answers.state_of(session, contact.id, message.body or "", flows, now))
    result = engine.handle(flows, view, state, message.body or "", now, org=org)
    # A text of a private flow (a report) must leave no trace on the contact once its exchange ends.
    private = privacy.is_private(_flow_of(flows, result, state, message.body or ""))

    conversation_id = conv.id if conv is not None else None
    ended: list[Conversation] = []
    outcome = _ENDS.get(result.handled_by)
    if result.handled_by == HandledBy.CONVERSATION and result.state is None:
        outcome = "completed"  # the open conversation's last answer
    if conv is not None and outcome is not None:
        conv.closed_at, conv.outcome = now, outcome
        ended.append(conv)
        conv = None
    if conv is not None and conv.expires_at <= now and conv.closed_at is None:
        conv.closed_at, conv.outcome = now, "expired"
        ended.append(conv)
        conv = None
    if result.state is not None:
        if conv is None:
            conv = Conversation(contact_id=contact.id, flow=result.state.flow, started_at=now,
                                language=result.state.language, expires_at=result.state.expires_at)
            session.add(conv)
        conv.step, conv.answers, conv.retries = result.state.step, result.state.answers, result.state.retries
        conv.expires_at = result.state.expires_at
        session.flush()
        conversation_id = conv.id
    elif result.handled_by == HandledBy.FLOW:
        conversation_id = None  # a flow that ended with its keyword had no conversation of its own

    message.conversation_id = conversation_id if result.handled_by in (HandledBy.FLOW, HandledBy.CONVERSATION) else None
    _apply(session, contact, message, result, flows, now)
    # A reporter's STATUS or NO <ref> is private too: the reference must not stay tied to the phone
    # (unless it was no reference at all, "NO THANKS", which the organizers read in the inbox).
    asked = message.inbox_status is None and any(
        isinstance(a, engine.CaseCommand) and a.verb in engine.REPORTER_VERBS for a in result.actions)
    private = private or asked
    message.handled_by, message.status, message.handled_at = result.handled_by, "handled", now
    named = any(isinstance(a, engine.SaveReport) and not a.anonymous for a in result.actions)
    if not private or named:
        contact.last_seen_at = now  # a private text must not show when the supporter was last active
    if _too_many(session, contact, message, result, now, private):
        result.replies = []  # a flooding phone or a reply loop must not run up the bill
    replies = []
    for text in result.replies:
        info = count_segments(text)
        replies.append((Message(direction="out", contact_id=contact.id, reply_to_id=message.id,
                                conversation_id=message.conversation_id, channel=message.channel,
                                medium=message.medium, body=text, status=reply_status,
                                encoding=info.encoding, segments=info.segments, created_at=now), text))
    session.add_all(r for r, _ in replies)

    # Forget private exchanges that ended here: this one unless it saved a named report, and any
    # other private conversation this text closed (replaced, stopped, expired).
    forget_convs = [c.id for c in ended
                    if c.id != message.conversation_id and privacy.is_private(flows.flows.get(c.flow))]
    forget_messages: list[int] = []
    if private and (result.state is None or asked) and not named:
        forget_messages.append(message.id)
        if message.conversation_id is not None:
            forget_convs.append(message.conversation_id)
    if forget_convs or forget_messages:
        privacy.forget(session, forget_convs, forget_messages, now)
        privacy.drop_if_bare(session, contact.id)
    return replies


class _LazyPledges(Mapping[str, int]):
    """A contact's open pledge keywords, read only if the engine asks (a text that starts no flow
    and answers no question): most texts then cost no pledge query."""

    def __init__(self, session: Session, contact_id: int, now: datetime) -> None:
        self._args = (session, contact_id, now)
        self._found: dict[str, int] | None = None

    def _get(self) -> dict[str, int]:
        if self._found is None:
            self._found = broadcasts.open_pledges(*self._args)
        return self._found

    def __getitem__(self, key: str) -> int:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


def _flow_of(flows: FlowSet, result: engine.Result, state: engine.ConversationState | None,
             text: str) -> Flow | None:
    """The flow this text belongs to: the one it started, continued or finished; None outside flows."""
    if result.state is not None:
        return flows.flows.get(result.state.flow)
    if result.handled_by == HandledBy.CONVERSATION and state is not None:
        return flows.flows.get(state.flow)
    if result.handled_by == HandledBy.FLOW:
        words = [w for raw in text.split() if (w := fold(raw))]
        trigger = flows.triggers.get(words[0]) if words else None
        return flows.flows.get(trigger[0]) if trigger else None
    return None


FLOOD_PER_MINUTE = 20  # inbound texts from one number in a minute before it stops getting replies
LOOP_REPLIES = 15  # automatic replies to one number in LOOP_WINDOW before the gateway goes quiet
LOOP_WINDOW = timedelta(minutes=5)
FLOOD_TAG = "flood"  # organizers find flagged numbers with this tag
# Numbers that never joined can be anyone's (or a pumping scheme's): all of them together get at
# most this many automatic replies an hour.
STRANGER_REPLIES_PER_HOUR = 300
# STOP and START confirmations one number gets a day: alternating them must not buy endless texts.
STOP_START_REPLIES_PER_DAY = 6
_local_counts: Any = None


def _counts(session: Session) -> Any:
    """The Redis that counts texts (gateway.db.make_session_factory), or one in this process."""
    global _local_counts
    found = session.info.get("redis")
    if found is None:
        if _local_counts is None:
            import fakeredis

            _local_counts = fakeredis.FakeRedis()
        found = _local_counts
    return found


def _too_many(session: Session, contact: Contact, message: Message, result: engine.Result,
              now: datetime, private: bool = False) -> bool:
    try:
        return _over_limits(session, contact, message, result, now, private)
    except RedisError as exc:  # Redis away: answering beats holding up every text, STOP included
        logger.warning("flood guard unavailable (%s); replies go unguarded", type(exc).__name__)
        return False


def _over_limits(session: Session, contact: Contact, message: Message, result: engine.Result,
                 now: datetime, private: bool) -> bool:
    """True when this text's replies must not go: the number floods us or is caught in a reply loop
    (flagged once), STOP/START alternation, or too many replies to numbers that never joined.

    Counted in Redis with expiring keys, not from message rows: a private exchange's rows are
    detached from the contact, yet its texts still count.
    """
    redis = _counts(session)
    minute = int(now.replace(tzinfo=UTC).timestamp() // 60)
    with redis.pipeline() as pipe:
        pipe.incr(f"gateway:count:in:{contact.id}:{minute}")
        pipe.expire(f"gateway:count:in:{contact.id}:{minute}", 120)
        pipe.mget([f"gateway:count:out:{contact.id}:{m}" for m in range(minute - _window_minutes() + 1, minute + 1)])
        inbound_last_minute, _, recent = pipe.execute()
    if not result.replies:
        return False
    if result.handled_by in (HandledBy.STOP, HandledBy.START):
        key = f"gateway:count:stopstart:{contact.id}:{minute // 1440}"
        with redis.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, 2 * 86400)
            confirmations, _ = pipe.execute()
        if confirmations > STOP_START_REPLIES_PER_DAY:
            return True
        if result.handled_by == HandledBy.STOP:
            return False  # a STOP is confirmed even in a flood
    replies_recent = sum(int(n) for n in recent if n)
    if int(inbound_last_minute) > FLOOD_PER_MINUTE or replies_recent >= LOOP_REPLIES:
        if FLOOD_TAG not in contact.tags:
            contacts.add_tags(session, contact, [FLOOD_TAG])
            logger.warning("contact %s floods or loops: replies paused", contact.id)
        if not private:  # a report's words never go to the inbox
            message.inbox_status = message.inbox_status or "open"
        return True
    if contact.consent_at is None:
        key = f"gateway:count:strangers:{minute // 60}"
        if int(redis.get(key) or 0) >= STRANGER_REPLIES_PER_HOUR:
            logger.warning("automatic replies to numbers that never joined paused for this hour")
            return True
        with redis.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, 7200)
            pipe.execute()
    key = f"gateway:count:out:{contact.id}:{minute}"
    with redis.pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, int(LOOP_WINDOW.total_seconds()) + 120)
        pipe.execute()
    return False


def _window_minutes() -> int:
    return max(1, int(LOOP_WINDOW.total_seconds() // 60))


def _apply(session: Session, contact: Contact, message: Message, result: engine.Result,
           flows: FlowSet, now: datetime) -> None:
    for action in result.actions:
        if isinstance(action, engine.Unsubscribe):
            contact.status, contact.stopped_at = "stopped", now
        elif isinstance(action, engine.Subscribe):
            if contact.status != "blocked":
                contact.status, contact.stopped_at = "active", None
                contact.consent_at = contact.consent_at or now
                contact.language = contact.language or action.language
        elif isinstance(action, engine.SetContact):
            for field, value in action.fields.items():
                setattr(contact, field, value[:120])
        elif isinstance(action, engine.AddTags):
            contacts.add_tags(session, contact, list(action.tags))
        elif isinstance(action, engine.SaveReport):
            _save_report(session, contact, message, action, flows, now)
        elif isinstance(action, engine.Pledge):
            exists = session.scalar(select(Pledge.id).where(Pledge.broadcast_id == action.broadcast_id,
                                                            Pledge.contact_id == contact.id))
            if exists:
                result.replies.clear()  # counted once; a second thank-you would only cost money
            else:
                session.add(Pledge(broadcast_id=action.broadcast_id, contact_id=contact.id,
                                   place=contact.place, created_at=now))
        elif isinstance(action, engine.CaseCommand):
            replies = case_answers.apply(session, contact, action, flows, now, message.id)
            if replies is None:  # "NO THANKS": not a reference after all
                message.inbox_status = "open"
            else:
                result.replies.extend(replies)
        elif isinstance(action, engine.CheckAnswer):  # an answer to a check (gateway/evidence/answers.py)
            result.replies.extend(check_answers.apply(session, contact, message, action, flows, now))
        elif isinstance(action, engine.ToInbox):
            message.inbox_status = "open"
            if action.hinted:
                contact.last_hint_at = now


REPORT_IDS = 2**31 - 1  # report ids are drawn at random below this: a sequential id would date a report


def _save_report(session: Session, contact: Contact, message: Message, action: engine.SaveReport,
                 flows: FlowSet, now: datetime) -> None:
    a = action.answers
    place = find_place(a["place"], flows.gazetteers.values()) if a.get("place") else None
    report_id = secrets.randbelow(REPORT_IDS) + 1
    while session.scalar(_REPORT_ID_TAKEN, {"report_id": report_id}) is not None:
        report_id = secrets.randbelow(REPORT_IDS) + 1
    report = Report(
        id=report_id, ref=_cut(action.ref, 12), anonymous=action.anonymous,
        contact_id=None if action.anonymous else contact.id,
        service=_cut(str(a.get("service") or "other"), 40), service_detail=_cut(a.get("service_other"), 200),
        place=_cut(a.get("place"), 80), country=_cut(place.country if place else contact.country, 2),
        delivered=_cut(a.get("delivered"), 10), details=a.get("details"), language=_cut(action.language, 8),
        # An anonymous report keeps only the day, so its time cannot be matched to a phone's traffic.
        # Its messages and conversation are forgotten by _handle_one once the exchange ends.
        created_at=privacy.day_of(now) if action.anonymous else now)
    session.add(report)
    session.flush()
    case_joining.on_report(session, report, now)  # joins or opens a case (gateway/cases/joining.py)


def _cut(value: object, size: int) -> str | None:
    """A text answer cut to its column (PostgreSQL refuses a longer one; SQLite would keep it)."""
    return None if value is None or value == "" else str(value)[:size]


def replies_to(session: Session, message_id: int) -> list[Message]:
    """The replies stored for one inbound message, in order."""
    return list(session.scalars(select(Message).where(Message.reply_to_id == message_id).order_by(Message.id)))
