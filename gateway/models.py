"""Typed SQLAlchemy 2.0 models. Phone numbers are read and written only in gateway/people/contacts.py."""
from __future__ import annotations

from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.db import Base


def utcnow() -> datetime:
    """Naive UTC: SQLite keeps no time zone, so every timestamp is UTC without one."""
    return datetime.now(UTC).replace(tzinfo=None)


class ContactStatus(StrEnum):
    """Whether a supporter receives texts; the values are what the database holds."""

    ACTIVE = "active"
    STOPPED = "stopped"  # sent STOP (or the provider says they opted out)
    BLOCKED = "blocked"  # set by an organiser
    INVALID = "invalid"  # the provider says the number cannot receive texts (the outbox sets it)


class MessageStatus(StrEnum):
    """Where a message is; outbound ones climb the ladder in gateway/inbound/status.py."""

    RECEIVED = "received"  # in: stored, not handled yet
    HANDLED = "handled"  # in: handled
    QUEUED = "queued"  # out: waiting for the outbox
    SENDING = "sending"  # out: claimed by a worker
    SENT = "sent"  # out: the provider took it
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    SKIPPED = "skipped"  # out: not sent (the supporter stopped, or the number is unusable)
    CANCELLED = "cancelled"  # out: its broadcast was cancelled before it left


class BroadcastStatus(StrEnum):
    """A broadcast's life: a draft, sending, then done or cancelled."""

    DRAFT = "draft"
    SENDING = "sending"
    DONE = "done"
    CANCELLED = "cancelled"


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The number (E.164 or a short code) only encrypted, and its keyed digest for look-ups;
    # gateway/people/contacts.py seals, opens and finds them (gateway/core/vault.py holds the keys).
    number_digest: Mapped[str] = mapped_column(String(64), unique=True)
    number_sealed: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(120))
    language: Mapped[str | None] = mapped_column(String(8))
    place: Mapped[str | None] = mapped_column(String(80), index=True)
    country: Mapped[str | None] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(16), default=ContactStatus.ACTIVE.value, index=True)  # ContactStatus
    consent_at: Mapped[datetime | None] = mapped_column(DateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime)
    # A STOP stored for a worker and not handled yet (inbound/deferred.py): from then on the outbox
    # sends this contact nothing but what a stopped contact is owed; cleared once its texts are handled.
    stop_pending_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_hint_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    tag_rows: Mapped[list[ContactTag]] = relationship(cascade="all, delete-orphan", lazy="selectin")

    @property
    def tags(self) -> list[str]:
        return sorted(t.tag for t in self.tag_rows)


class ContactTag(Base):
    __tablename__ = "contact_tags"

    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_contact_open", "contact_id", "closed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    flow: Mapped[str] = mapped_column(String(40))
    step: Mapped[int] = mapped_column(Integer, default=0)
    language: Mapped[str] = mapped_column(String(8))
    answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    outcome: Mapped[str | None] = mapped_column(String(16))  # completed, replaced, stopped, expired
    redacted: Mapped[bool] = mapped_column(Boolean, default=False)  # it produced an anonymous report


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel", "provider_id", name="uq_messages_channel_provider_id"),
        Index("ix_messages_contact_pending", "contact_id", "direction", "handled_at"),
        Index("ix_messages_status_broadcast", "status", "broadcast_id"),
        # One alert per supporter per broadcast, whatever retries or relaunches happen.
        Index("uq_messages_broadcast_contact", "broadcast_id", "contact_id", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    direction: Mapped[str] = mapped_column(String(3))  # in, out
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"))
    reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(20))  # the channel it came in or left by (twilio, a phone ...)
    provider_id: Mapped[str | None] = mapped_column(String(64))
    medium: Mapped[str] = mapped_column(String(12), default="sms")  # sms, whatsapp
    body: Mapped[str | None] = mapped_column(Text)  # None once purged (anonymous report, retention)
    status: Mapped[str] = mapped_column(String(16))  # MessageStatus
    error_code: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(200))  # why handling failed (set aside), no numbers
    encoding: Mapped[str | None] = mapped_column(String(8))
    segments: Mapped[int | None] = mapped_column(Integer)
    broadcast_id: Mapped[int | None] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"))
    sender: Mapped[str | None] = mapped_column(String(40))  # the number or service it leaves from (pacing)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime)  # queued -> sending
    send_after: Mapped[datetime | None] = mapped_column(DateTime)  # held by quiet hours or a send time
    handled_by: Mapped[str | None] = mapped_column(String(16))  # what handled an inbound text (engine.HandledBy)
    inbox_status: Mapped[str | None] = mapped_column(String(8), index=True)  # open, handled
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    handled_at: Mapped[datetime | None] = mapped_column(DateTime)


class Report(Base):
    __tablename__ = "reports"
    __table_args__ = (Index("ix_reports_place_service", "place", "service"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(12), unique=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))  # None: anonymous
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    service: Mapped[str] = mapped_column(String(40))
    service_detail: Mapped[str | None] = mapped_column(String(200))
    place: Mapped[str | None] = mapped_column(String(80))
    country: Mapped[str | None] = mapped_column(String(2))
    delivered: Mapped[str | None] = mapped_column(String(10))  # yes, no, partly
    details: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(8))
    source: Mapped[str | None] = mapped_column(String(12))  # the channel it came through; "simulator" for tests
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    # An answer to a delivery check (gateway/evidence): which check, so answers tally per due date.
    check_id: Mapped[int | None] = mapped_column(ForeignKey("checks.id", ondelete="SET NULL"), index=True)
    verification: Mapped[str | None] = mapped_column(String(12))  # Verification, once its case was corroborated


class Broadcast(Base):
    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(primary_key=True)
    texts: Mapped[dict[str, str]] = mapped_column(JSON)  # language -> text, with merge fields
    default_language: Mapped[str] = mapped_column(String(8), default="en")
    place: Mapped[str | None] = mapped_column(String(80))
    language: Mapped[str | None] = mapped_column(String(8))
    tag: Mapped[str | None] = mapped_column(String(40))
    reply_keyword: Mapped[str | None] = mapped_column(String(20))  # "YES": replies are pledges
    pledge_window_hours: Mapped[int] = mapped_column(Integer, default=72)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)  # ignores quiet hours
    send_at: Mapped[datetime | None] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(12), default=BroadcastStatus.DRAFT.value)  # BroadcastStatus
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    launched_at: Mapped[datetime | None] = mapped_column(DateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime)


class Pledge(Base):
    __tablename__ = "pledges"
    __table_args__ = (UniqueConstraint("broadcast_id", "contact_id", name="uq_pledges_broadcast_contact"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    place: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(12))  # admin, organizer, viewer
    phone: Mapped[str | None] = mapped_column(String(32))  # for test sends to the organizer's own phone
    phone_verified_at: Mapped[datetime | None] = mapped_column(DateTime)  # test sends go only to a verified phone
    api_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Part of the id a console session carries; a new one at logout ends every copy of the session.
    session_nonce: Mapped[str | None] = mapped_column(String(32))
    locale: Mapped[str | None] = mapped_column(String(8))  # the console's language; None: the browser's

    # Flask-Login's user interface
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return f"{self.id}:{self.session_nonce or ''}"


class AuditEvent(Base):
    """Append-only: who did what, when; nothing in the console edits or deletes these rows."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(254))  # an email, "cli" or "api:<email>"
    action: Mapped[str] = mapped_column(String(40), index=True)  # login, export.reports, broadcast.launch ...
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CaseStatus(StrEnum):
    """Where a case is on its ladder (gateway/core/ladder.py says which moves are allowed)."""

    OPEN = "open"  # enough reports; not sent to an official yet
    SENT = "sent"  # its official has the SMS
    ACKNOWLEDGED = "acknowledged"  # the official answered ACK
    PROMISED = "promised"  # the official answered PROMISE with a date
    RESOLVED = "resolved"  # the official answered DONE (or an organizer closed it as resolved)
    OVERDUE = "overdue"  # a deadline passed without an answer; sent up the ladder
    DISPUTED = "disputed"  # a reporter answered NO after "resolved": it is open again
    CLOSED = "closed"  # closed by an organizer, with a note


class Official(Base):
    """A decision maker who answers for places and services, at a rung of the ladder.

    Their phone is a Contact (tagged `official`, no consent, so never in a broadcast's audience):
    texts to and from them take the same inbound and outbound paths as a supporter's.
    """

    __tablename__ = "officials"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(120))  # "District Health Officer"
    language: Mapped[str] = mapped_column(String(8))
    places: Mapped[list[str]] = mapped_column(JSON, default=list)  # as the gazetteers spell them; [] = any
    services: Mapped[list[str]] = mapped_column(JSON, default=list)  # clinic, water ...; [] = any
    level: Mapped[int] = mapped_column(Integer, default=1)  # the rung: 1 first, then 2, 3 ...
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Case(Base):
    """Reports about one place and service, sent to a named official, with a deadline and an answer."""

    __tablename__ = "cases"
    __table_args__ = (Index("ix_cases_place_service", "place", "service"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(12), unique=True)  # read out and retyped: no 0/O, 1/I/L
    place: Mapped[str] = mapped_column(String(80))
    country: Mapped[str | None] = mapped_column(String(2))
    service: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), index=True)  # CaseStatus
    level: Mapped[int] = mapped_column(Integer, default=1)  # the rung it is at
    official_id: Mapped[int | None] = mapped_column(ForeignKey("officials.id", ondelete="SET NULL"))
    report_count: Mapped[int] = mapped_column(Integer, default=0)
    deadline_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)  # naive UTC; None: no timer
    promised_for: Mapped[date | None] = mapped_column(Date)  # in the place's own calendar
    opened_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime)
    promised_at: Mapped[datetime | None] = mapped_column(DateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class CaseReport(Base):
    """A report in a case (a report is in one case at most). Reports carry no reporter here."""

    __tablename__ = "case_reports"

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), primary_key=True,
                                           unique=True)


class CaseEvent(Base):
    """One line of a case's timeline: what changed, when, and who or what did it. Never a number."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(24))  # opened, joined, sent, acknowledged, promised, ...
    status: Mapped[str] = mapped_column(String(16))  # the case's status after it
    actor: Mapped[str] = mapped_column(String(160))  # "system", "official:<id>", an organizer's e-mail, "reporter"
    note: Mapped[str | None] = mapped_column(Text)  # words for people; never a reporter's identity or words
    official_id: Mapped[int | None] = mapped_column(ForeignKey("officials.id", ondelete="SET NULL"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))


class Verification(StrEnum):
    """What asking other supporters of the place said about a report that opened a case."""

    VERIFIED = "verified"  # enough of them said the service did not come either
    CONTESTED = "contested"  # enough of them said it did
    UNVERIFIED = "unverified"  # too few answers, or they disagree


class CheckKind(StrEnum):
    DELIVERY = "delivery"  # did a scheduled service come on its due date?
    CORROBORATE = "corroborate"  # is what a case's reports say right?


class CheckStatus(StrEnum):
    PENDING = "pending"  # not asked yet (waits for its time, and out of quiet hours)
    ASKED = "asked"  # the question is out; answers are coming in
    CLOSED = "closed"  # tallied; its outcome is final


class ServiceSchedule(Base):
    """A service promised to a place: a clinic every 14 days from a date, or one distribution on one day.

    Organizers record it, or an official's PROMISE creates it (case_id). Each due date gets a delivery
    check (a Check) that asks a few supporters of the place, after `check_at` local time.
    """

    __tablename__ = "service_schedules"
    __table_args__ = (Index("ix_service_schedules_place_service", "place", "service"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    place: Mapped[str] = mapped_column(String(80))  # as the gazetteers spell it
    country: Mapped[str | None] = mapped_column(String(2))
    service: Mapped[str] = mapped_column(String(40))  # clinic, water ... as reports spell it
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # language -> "the mobile clinic"
    starts_on: Mapped[date] = mapped_column(Date)  # the first due date, in the place's own calendar
    every_days: Mapped[int | None] = mapped_column(Integer)  # 14: every second week; None: one date only
    ends_on: Mapped[date | None] = mapped_column(Date)  # the last possible due date; None: open-ended
    check_at: Mapped[time] = mapped_column(Time)  # local time after which supporters are asked
    sample_size: Mapped[int] = mapped_column(Integer, default=5)  # at most this many asked per due date
    no_threshold: Mapped[int] = mapped_column(Integer, default=3)  # this many "no" answers open a case
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"))  # from a PROMISE
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str | None] = mapped_column(String(160))  # an organizer's e-mail, "cli", "official:<id>"
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Check(Base):
    """One question put to a few supporters of a place: a delivery check for a due date, or a corroboration."""

    __tablename__ = "checks"
    __table_args__ = (
        UniqueConstraint("schedule_id", "due_on", name="uq_checks_schedule_due_on"),  # one check per due date
        Index("ix_checks_status_ask_after", "status", "ask_after"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(12))  # CheckKind
    schedule_id: Mapped[int | None] = mapped_column(ForeignKey("service_schedules.id", ondelete="CASCADE"))
    # delivery: the case its "no" answers opened; corroborate: the case whose reports it checks
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"), index=True)
    place: Mapped[str] = mapped_column(String(80))
    country: Mapped[str | None] = mapped_column(String(2))
    service: Mapped[str] = mapped_column(String(40))
    due_on: Mapped[date] = mapped_column(Date)  # the due date (delivery) or the day it was opened (corroborate)
    ask_after: Mapped[datetime] = mapped_column(DateTime)  # naive UTC: not asked before this
    status: Mapped[str] = mapped_column(String(12), default=CheckStatus.PENDING.value)  # CheckStatus
    asked: Mapped[int] = mapped_column(Integer, default=0)  # how many supporters were asked (the sample)
    # delivery: delivered, not_delivered, partly, no_answer; corroborate: a Verification
    outcome: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    asked_at: Mapped[datetime | None] = mapped_column(DateTime)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)


class CheckAsk(Base):
    """One supporter asked in one check (never twice for one check), and their answer once given."""

    __tablename__ = "check_asks"
    __table_args__ = (Index("ix_check_asks_contact_asked_at", "contact_id", "asked_at"),)  # rotation

    check_id: Mapped[int] = mapped_column(ForeignKey("checks.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True)
    asked_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    answer: Mapped[str | None] = mapped_column(String(10))  # yes, no, partly
    answered_at: Mapped[datetime | None] = mapped_column(DateTime)
    report_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id", ondelete="SET NULL"))
