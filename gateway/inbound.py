"""The inbound path: store first, drop duplicates, handle one contact's messages in order."""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gateway import broadcasts, contacts, engine
from gateway.flowfile import FlowSet
from gateway.models import Contact, Conversation, Message, Pledge, Report, utcnow
from gateway.places import find_place
from gateway.providers.base import InboundSMS
from gateway.sms import InvalidNumber, count_segments, normalise_number

logger = logging.getLogger(__name__)
MAX_BODY = 1600  # Twilio's own limit for a concatenated SMS; longer input is cut, not refused


@dataclass(frozen=True)
class Stored:
    """Where an inbound message went: its row, its contact, or that it was a duplicate."""

    message_id: int | None
    contact_id: int | None
    duplicate: bool = False


def store(factory: sessionmaker[Session], sms: InboundSMS, default_country: str) -> Stored:
    """Write the message before anything else is done with it; a repeated provider id is dropped."""
    body = sms.body.replace("\x00", "")[:MAX_BODY]
    provider_id = sms.provider_id or f"local-{uuid.uuid4().hex}"
    with factory() as session, session.begin():
        try:
            address = normalise_number(sms.sender, default_country)
        except InvalidNumber:
            address = None
        contact = contacts.get_or_create(session, address) if address else None
        message = Message(direction="in", contact_id=contact.id if contact else None, provider=sms.provider,
                          provider_id=provider_id, channel=address.channel if address else "sms",
                          body=body, status="received" if contact else "handled",
                          route=None if contact else "unroutable")
        try:
            with session.begin_nested():
                session.add(message)
        except IntegrityError:
            logger.info("duplicate %s message %s dropped", sms.provider, provider_id)
            return Stored(None, None, duplicate=True)
        if contact is None:
            logger.warning("message %s from an unusable sender kept, not handled", provider_id)
        return Stored(message.id, contact.id if contact else None)


def handle_pending(factory: sessionmaker[Session], contact_id: int, flows: FlowSet, org: str,
                   now: datetime | None = None, *, inline: bool = True) -> list[int]:
    """Handle this contact's unhandled messages in arrival order, holding the contact's row lock.

    Replies are stored as `inline` (they ride on the webhook's answer) or `queued` (for the
    outbox to send); returns the ids of queued replies, to enqueue after commit.
    """
    with factory() as session, session.begin():
        contact = session.scalars(select(Contact).where(Contact.id == contact_id).with_for_update()).one()
        pending = session.scalars(
            select(Message).where(Message.contact_id == contact_id, Message.direction == "in",
                                  Message.handled_at.is_(None)).order_by(Message.id)).all()
        replies: list[Message] = []
        for message in pending:
            replies += _handle_one(session, contact, message, flows, org, now or utcnow(),
                                   "inline" if inline else "queued")
        session.flush()
        return [r.id for r in replies if r.status == "queued"]


def _open_conversation(session: Session, contact_id: int) -> Conversation | None:
    return session.scalars(select(Conversation).where(
        Conversation.contact_id == contact_id, Conversation.closed_at.is_(None))).first()


def _handle_one(session: Session, contact: Contact, message: Message, flows: FlowSet, org: str,
                now: datetime, reply_status: str) -> list[Message]:
    conv = _open_conversation(session, contact.id)
    state = None
    if conv is not None:
        state = engine.ConversationState(conv.flow, conv.step, conv.language, conv.expires_at,
                                         dict(conv.answers or {}), conv.retries)
    view = engine.ContactView(status=contact.status, language=contact.language, country=contact.country,
                              name=contact.name, place=contact.place, joined=contact.consent_at is not None,
                              last_hint_at=contact.last_hint_at,
                              pledges=broadcasts.open_pledges(session, contact.id, now))
    result = engine.handle(flows, view, state, message.body or "", now, org=org)

    conversation_id = conv.id if conv is not None else None
    if result.route in ("flow", "conversation", "stop", "start") and conv is not None and (
            result.state is None or result.route == "flow" or result.route in ("stop", "start")):
        outcome = {"flow": "replaced", "stop": "stopped", "start": "replaced"}.get(result.route, "completed")
        conv.closed_at, conv.outcome = now, outcome
        conv = None
    if conv is not None and conv.expires_at <= now and conv.closed_at is None:
        conv.closed_at, conv.outcome = now, "expired"
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

    message.conversation_id = conversation_id if result.route in ("flow", "conversation") else None
    _apply(session, contact, message, result, flows, now)
    message.route, message.status, message.handled_at = result.route, "handled", now
    contact.last_seen_at = now
    if result.replies and result.route != "stop" and _too_many(session, contact, message, now):
        result.replies = []  # a flooding phone or a reply loop must not run up the bill
    replies = []
    for text in result.replies:
        info = count_segments(text)
        replies.append(Message(direction="out", contact_id=contact.id, reply_to_id=message.id,
                               conversation_id=message.conversation_id, provider=message.provider,
                               channel=message.channel, body=text, status=reply_status,
                               encoding=info.encoding, segments=info.segments, created_at=now))
    session.add_all(replies)
    return replies


FLOOD_PER_MINUTE = 20  # inbound texts from one number in a minute before it stops getting replies
LOOP_REPLIES = 15  # automatic replies to one number in LOOP_WINDOW before the gateway goes quiet
LOOP_WINDOW = timedelta(minutes=5)
FLOOD_TAG = "flood"  # organizers find flagged numbers with this tag


def _too_many(session: Session, contact: Contact, message: Message, now: datetime) -> bool:
    """True when this number floods us or is caught in an auto-reply loop; it is flagged once."""
    inbound_last_minute = session.scalar(select(func.count()).select_from(Message).where(
        Message.contact_id == contact.id, Message.direction == "in",
        Message.created_at >= now - timedelta(minutes=1)))
    replies_recent = session.scalar(select(func.count()).select_from(Message).where(
        Message.contact_id == contact.id, Message.direction == "out", Message.reply_to_id.is_not(None),
        Message.created_at >= now - LOOP_WINDOW))
    if (inbound_last_minute or 0) > FLOOD_PER_MINUTE or (replies_recent or 0) >= LOOP_REPLIES:
        if FLOOD_TAG not in contact.tags:
            contacts.add_tags(session, contact, [FLOOD_TAG])
            logger.warning("contact %s floods or loops: replies paused", contact.id)
        message.inbox_status = message.inbox_status or "open"
        return True
    return False


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
        elif isinstance(action, engine.ToInbox):
            message.inbox_status = "open"
            if action.hinted:
                contact.last_hint_at = now


def _save_report(session: Session, contact: Contact, message: Message, action: engine.SaveReport,
                 flows: FlowSet, now: datetime) -> None:
    a = action.answers
    place = find_place(a["place"], flows.gazetteers.values()) if a.get("place") else None
    session.add(Report(
        ref=action.ref, anonymous=action.anonymous, contact_id=None if action.anonymous else contact.id,
        service=str(a.get("service") or "other"), service_detail=(a.get("service_other") or None),
        place=a.get("place"), country=place.country if place else contact.country,
        delivered=a.get("delivered"), details=a.get("details"), language=action.language,
        # An anonymous report keeps only the day, so its time cannot be matched to a phone's traffic.
        created_at=now.replace(hour=0, minute=0, second=0, microsecond=0) if action.anonymous else now))
    if action.anonymous and message.conversation_id is not None:
        # What the reporter typed (and the reference we reply with) would tie them to the report:
        # keep that messages were exchanged, not their words, nor the conversation's answers.
        session.flush()
        session.execute(update(Message).where(Message.conversation_id == message.conversation_id)
                        .values(body=None))
        message.body = None
        conv = session.get(Conversation, message.conversation_id)
        if conv is not None:
            conv.answers, conv.redacted = {}, True


def replies_to(session: Session, message_id: int) -> list[Message]:
    """The replies stored for one inbound message, in order."""
    return list(session.scalars(select(Message).where(Message.reply_to_id == message_id).order_by(Message.id)))


def mark_sent(session: Session, replies: list[Message], provider_ids: list[str | None] | None = None) -> None:
    """Record replies as handed over (inline or sent); forget the words of a redacted conversation."""
    redacted = {c.id for c in session.scalars(select(Conversation).where(
        Conversation.id.in_({r.conversation_id for r in replies if r.conversation_id}),
        Conversation.redacted.is_(True)))}
    for i, reply in enumerate(replies):
        reply.status = "sent"
        if provider_ids and provider_ids[i]:
            reply.provider_id = provider_ids[i]
        if reply.conversation_id in redacted:
            reply.body = None
