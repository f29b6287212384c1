"""The inbound path as one object: every way a text comes in calls `Inbound.receive`.

`create_app` builds one `Inbound` (svc.inbound) from what the path needs, as it builds the
outbox for sending, so a webhook, `flask sms simulate`, the console simulator, the spool
replay and the tests all take the same path with the same five settings.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.channels.base import InboundSMS, StatusUpdate
from gateway.core import engine
from gateway.core.flowfile import FlowSet
from gateway.core.pressure import Pressure
from gateway.inbound import deferred, status
from gateway.inbound import receive as path
from gateway.inbound.spool import Replayed, Spool, database_away
from gateway.models import Message, utcnow

logger = logging.getLogger(__name__)
# Texts handled inline at once in one process. Each holds a pooled connection and an anonymous report
# takes a second one when it commits (privacy's lock wash): unbounded, the Procfile's threads (16
# then, 64 now) each holding one and waiting for another emptied the pool (5 + 10) and every webhook
# waited its 30 s timeout (a wave of STOPs in `make bench`, each handling its sender's stored texts).
# 4 x 2, plus the writer's one, stays well inside the pool; on two cores more at once would not
# handle texts any faster.
INLINE_AT_ONCE = 4
REQUEST_BUDGET = 2.0  # seconds a request may spend replaying the spool before it is served (Twilio waits 15)
REPLY_HOLD = 0.25  # seconds a drain holds replies to send them in one job (see Inbound.handle_contacts)
RETRY_EVERY = 0.5  # seconds between replay attempts of one process while the database is away
BROKEN = "broken"  # Inbound.keyword when the flow files cannot be read
INLINE_UNDER_LOAD = ("start", "help", BROKEN)  # handled at once even under load (see Inbound.keyword)


@dataclass(frozen=True)
class Inbound:
    """What receiving needs, handed in once so every caller takes the same path."""

    sessions: sessionmaker[Session]
    flows: Callable[[], FlowSet]  # the loaded flows; raises (naming the problems) when the files are broken
    org: str
    default_country: str
    spool: Spool  # texts kept on this host while the database is away
    enqueue_replies: Callable[[list[int]], None]  # hands queued replies' ids to the reply queue
    redis: Any = None  # where a status callback for a provider id not written yet waits (status.py)
    # Stores a text for a worker and hands its contact over (deferred.Writer); None: never store for later.
    writer: deferred.Writer | None = None
    pressure: Pressure = field(default_factory=Pressure, compare=False)  # when to store for later
    _last_replay: list[float] = field(default_factory=lambda: [-RETRY_EVERY], compare=False)
    _replay_lock: threading.Lock = field(default_factory=threading.Lock, compare=False)
    _inline: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(INLINE_AT_ONCE), compare=False)

    def receive(self, sms: InboundSMS, *, inline: bool = True, country: str | None = None,
                now: datetime | None = None) -> path.Received | None:
        """Store and handle a text, or keep it in the spool while the database is away (None).

        Inline replies come back as texts (for the webhook's answer); otherwise they are queued
        and enqueued on the reply queue here. While older texts from the same sender wait in the
        spool, this one joins them so their order holds; other senders' texts are stored at once.
        The database may also leave after the text was stored but before it was handled: it is
        kept then too, and the replay finds it stored (its provider id) and handles it.
        """
        if self.spool.has_pending(sms.sender):
            self.spool.keep(sms)
            return None
        started = time.monotonic()
        # Store and acknowledge when this process cannot keep up (core/pressure.py): a worker handles
        # the text moments later, in order per sender (deferred.py). enter() counts every text in flight.
        writer = self.writer if self.pressure.enter(started) else None
        meaning = self.keyword(sms) if writer is not None else None
        if meaning in INLINE_UNDER_LOAD:
            writer = None
        inline_seconds = None
        try:
            received = (writer.store(sms, country or self.default_country, stop=meaning == "stop")
                        if writer is not None else None)
            if received is None:
                received = self.store_and_handle(sms, inline=inline, country=country, now=now)
                inline_seconds = time.monotonic() - started
        except Exception as exc:
            if not database_away(exc):
                raise
            self.spool.keep(sms)
            return None
        finally:
            self.pressure.leave(time.monotonic(), inline_seconds)
        # (A text stored for later was handed to the workers by the writer, with its batch.)
        if received.queued:
            self.send_replies(list(received.queued))
        return received

    def keyword(self, sms: InboundSMS) -> str | None:
        """The text's compliance meaning under load (stop, start, help, any language); None for any other text.

        START and HELP are handled at once even under load: they are few, and their answer is what
        the sender waits for. A STOP is stored like any text, in order, but marks its contact
        stop-pending in the same commit (deferred.Writer), so the outbox sends it nothing more from
        the moment the webhook is answered; the worker then handles the sender's texts in the order
        sent and confirms the STOP. Handled inline instead, a STOP had to handle every text its
        sender had stored first (5-10 ms each), and the wave of STOPs a broadcast can bring stalled
        every webhook (`make bench`: p99 8 s).
        """
        try:
            return engine.compliance_keyword(self.flows(), sms.body)
        except Exception:  # broken flow files: the inline path names the problem
            return BROKEN

    def receive_status(self, channel: str, update: StatusUpdate) -> bool:
        """Apply a delivery status callback; while the database is away keep it in the spool (False)."""
        try:
            status.apply(self.sessions, channel, update, self.redis)
        except Exception as exc:
            if not database_away(exc):
                raise
            self.spool.keep_status(channel, update)
            return False
        return True

    def apply_status(self, channel: str, update: StatusUpdate) -> None:
        """Apply a kept status callback (the replay): the database errors go to the replay."""
        status.apply(self.sessions, channel, update, self.redis)

    def store_and_handle(self, sms: InboundSMS, *, inline: bool = True, country: str | None = None,
                         now: datetime | None = None, received_at: datetime | None = None) -> path.Received:
        """The path itself, without the spool: one transaction (see receive.receive)."""
        with self._inline:  # at most INLINE_AT_ONCE in this process: the others wait their turn
            return path.receive(self.sessions, sms, country or self.default_country, self.flows(), self.org, now,
                                inline=inline, received_at=received_at)

    def handle_pending(self, contact_id: int) -> list[int]:
        """Handle a contact's texts stored but not handled; the queued replies' ids."""
        with self._inline:
            return path.handle_pending(self.sessions, contact_id, self.flows(), self.org, inline=False)

    def send_replies(self, ids: list[int]) -> None:
        """Enqueue replies on the reply queue; if Redis is away the rows wait for the reconciler."""
        try:
            self.enqueue_replies(ids)
        except Exception:  # the rows are queued in the database: the reconciler enqueues them again
            logger.warning("could not enqueue %d replies; left for the reconciler", len(ids), exc_info=True)

    def replay(self, budget: float | None = None) -> Replayed:
        """Store and handle the texts kept in the spool, in arrival order; replies go to the reply queue."""
        # The provider got its answer long ago: replies are queued and sent by the outbox.
        done = self.spool.replay(
            self.sessions, lambda sms, at: self.store_and_handle(sms, inline=False, received_at=at),
            self.handle_pending, self.send_replies, budget, self.apply_status)
        if done.stored or done.duplicates or done.rejected or done.statuses:
            logger.info("spool replayed: %s", done)
        return done

    def replay_on_request(self) -> None:
        """Before a request: replay when something is kept and this process has not just tried."""
        try:
            if not self.spool.has_pending():
                return
            with self._replay_lock:
                if time.monotonic() - self._last_replay[0] < RETRY_EVERY:
                    return
                self._last_replay[0] = time.monotonic()
            self.replay(REQUEST_BUDGET)
        except Exception:  # never fail a request because of the spool; the worker replays too
            logger.warning("spool replay on request failed", exc_info=True)

    def handle_stranded(self, older_than: timedelta = timedelta(minutes=1)) -> int:
        """Handle texts stored but never handled (the web process died in between); the contacts handled.

        Their webhook has long been answered, so the replies go out through the reply queue. A
        text that fails is retried and set aside inside `receive.handle_pending`; a pass that
        fails as a whole counts against the contact's oldest text, so it too is set aside after
        `receive.MAX_ATTEMPTS` runs and this job never fails every minute.
        """
        with self.sessions() as session:
            contact_ids = sorted({c for c in session.scalars(select(Message.contact_id).where(
                Message.direction == "in", Message.handled_at.is_(None), Message.contact_id.is_not(None),
                Message.created_at <= utcnow() - older_than)) if c is not None})
        return self.handle_contacts(contact_ids)

    def handle_contacts(self, contact_ids: list[int]) -> int:
        """Handle these contacts' stored, unhandled texts in order (each contact holding its lock);
        replies go out through the reply queue. How many contacts were handled.

        The replies of several contacts share a send job (up to REPLY_HOLD seconds of them): a job
        per reply cost the workers a job's bookkeeping, a claim and a write for each text drained.
        """
        handled, since = 0, time.monotonic()
        replies: list[int] = []

        def hand_over() -> None:
            nonlocal replies, since
            if replies:
                self.send_replies(replies)
            replies, since = [], time.monotonic()

        for contact_id in contact_ids:
            self.pressure.give_way()  # the embedded default: webhooks in this process come first
            try:
                reply_ids = self.handle_pending(contact_id)
            except Exception as exc:  # one contact must not stop the others, nor the spool replay after this
                logger.warning("contact %s: pending inbound not handled (%s)", contact_id, path.describe_error(exc))
                try:  # a STOP among its texts still wins; the oldest text is a try nearer to being set aside
                    reply_ids = path.count_failed_pass(self.sessions, contact_id, exc, self.flows(), self.org)
                except Exception as again:  # the database is away: the next run tries again
                    logger.warning("contact %s: failed pass not counted (%s)", contact_id,
                                   path.describe_error(again))
                    continue
            else:
                handled += 1
            replies += reply_ids
            if time.monotonic() - since >= REPLY_HOLD:
                hand_over()
        hand_over()
        return handled
