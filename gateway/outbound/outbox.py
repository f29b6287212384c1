"""The outbox: claim rows, send them paced, settle ambiguous sends, reconcile what was left behind.

Nothing is sent twice: a row is claimed (queued -> sending) by a conditional update before it is
sent, and a send whose outcome is unknown is settled by asking the provider, never by sending again.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import time as dtime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, aliased, lazyload, sessionmaker

from gateway.channels.base import Provider, ProviderError
from gateway.core.compose import quiet_until
from gateway.inbound import status
from gateway.models import (
    Broadcast,
    Contact,
    ContactStatus,
    Conversation,
    Message,
    utcnow,
)
from gateway.outbound.broadcasts import finish_if_done
from gateway.outbound.pacing import Pacer
from gateway.people import contacts, privacy

logger = logging.getLogger(__name__)
STOPPED_CODES = {"21610", "at-406"}  # the recipient opted out at the provider (Twilio, Africa's Talking)
UNUSABLE_CODES = {"21211", "21214", "21217", "21407", "21408", "21421", "21612", "21614", "at-403", "at-404"}
SETTLE_MARGIN = timedelta(seconds=60)  # look back this far before a claim when asking the provider
CANCEL_CHECK_SECONDS = 2.0
WRITE_EVERY = 25  # rows per commit: fewer round trips, and a crash costs at most a settle
FLUSH_SECONDS = 0.5


class RetryLater(Exception):
    """The provider asked us to slow down; the unsent rows are queued again."""


@dataclass
class Outbox:
    """What sending needs, handed in so tests and workers build it the same way."""

    sessions: sessionmaker[Session]
    provider: Provider
    pacer: Pacer
    timezone_for: Callable[[str | None, str | None], str]
    quiet: tuple[dtime, dtime] | None = None
    status_callback: str | None = None
    schedule: Callable[[list[int], datetime], None] = lambda ids, when: None
    early_status: Callable[[list[str]], dict[str, tuple[str, str | None]]] | None = None
    now: Callable[[], datetime] = utcnow
    # Sends in flight at once per batch: a provider's answer takes ~100-300 ms, and while one
    # request waits others can go; each still waits for its sender's pacing slot first.
    concurrency: int = 1
    channels: Any = None  # gateway.channels.Channels; None: every row goes through `provider`


@dataclass
class BatchResult:
    """How a batch ended, row by row."""

    sent: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0
    held: int = 0  # quiet hours
    unsettled: int = 0  # ambiguous and not found yet: left `sending` for the reconciler
    counts: dict[str, int] = field(default_factory=dict)


def claim(session: Session, ids: Sequence[int], now: datetime) -> list[int]:
    """queued -> sending for the due rows among `ids`; a row another worker claimed is not returned."""
    stmt = (update(Message)
            .where(Message.id.in_(list(ids)), Message.status == "queued",
                   or_(Message.send_after.is_(None), Message.send_after <= now))
            .values(status="sending", claimed_at=now, attempts=Message.attempts + 1)
            .returning(Message.id)
            .execution_options(synchronize_session=False))
    return sorted(session.scalars(stmt))


@dataclass
class _Row:
    id: int
    broadcast_id: int | None
    contact_id: int
    number: str
    contact_status: str
    place: str | None
    country: str | None
    body: str
    segments: int
    sender: str
    claimed_at: datetime
    urgent: bool
    redacted: bool = False  # a reply in a conversation that became an anonymous report
    channel: str = ""  # the channel it was written for: a reply leaves by the one it answers
    reply: bool = False
    # A reply a stopped supporter is still owed: the one confirming their STOP, or the answer to a
    # text they sent after stopping (HELP, say). A reply to what came before the STOP is not.
    owed_after_stop: bool = False


def _load(session: Session, ids: list[int]) -> list[_Row]:
    answered = aliased(Message)
    query = (select(Message, Contact, Broadcast.urgent, Conversation.redacted, answered.handled_by, answered.created_at)
             .join(Contact, Contact.id == Message.contact_id)
             .outerjoin(Broadcast, Broadcast.id == Message.broadcast_id)
             .outerjoin(Conversation, Conversation.id == Message.conversation_id)
             .outerjoin(answered, answered.id == Message.reply_to_id)
             .where(Message.id.in_(ids)).order_by(Message.id)
             .options(lazyload(Contact.tag_rows)))  # a send needs no tags: not a second SELECT a batch
    # A reply of a forgotten exchange (privacy.PRIVATE) has lost its links but is still a reply.
    return [_Row(m.id, m.broadcast_id, c.id, contacts.number_of(c), status, c.place, c.country,
                 m.body or "", m.segments or 1, m.sender or "default", m.claimed_at or utcnow(),
                 bool(urgent) or m.broadcast_id is None, bool(redacted) or m.handled_by == privacy.PRIVATE, m.channel,
                 m.reply_to_id is not None or m.handled_by == privacy.PRIVATE,
                 answered_by == "stop" or (asked_at is not None and stopped_at is not None and asked_at >= stopped_at))
            for m, c, urgent, redacted, answered_by, asked_at in session.execute(query)
            for status, stopped_at in [_stopped_as_of(c)]]


def _stopped_as_of(c: Contact) -> tuple[str, datetime | None]:
    """The contact's status and when it stopped, counting a STOP stored but not handled yet as applied."""
    if c.stop_pending_at is not None and c.status == "active":
        return "stopped", c.stop_pending_at
    return c.status, c.stopped_at


def _forget_settled(writes: list[dict[str, Any]], private: dict[int, int], now: datetime) -> set[int]:
    """Detach the settled rows of forgotten exchanges (whatever their end: sent, failed, skipped,
    cancelled); the contacts they leave, which may now hold nothing but a number."""
    left: set[int] = set()
    for w in writes:
        if w["id"] in private and w.get("status") not in (None, *privacy.UNSETTLED):
            w.update(privacy.detached(now))
            left.add(private[w["id"]])
    return left


# -- channels: which provider and pacing sender a row leaves by --------------------------------


@dataclass(frozen=True)
class Route:
    channel: str
    provider: Provider | None  # None: the channel is not configured (any more)
    sender: str
    status_callback: str | None


def route(box: Outbox, row: _Row) -> Route:
    """A reply leaves by the channel it answers; anything else by the routing file, chosen now."""
    if box.channels is None:
        return Route(box.provider.name, box.provider, row.sender, box.status_callback)
    channel = row.channel if row.reply else box.channels.route(row.number)
    # A broadcast row names the sender it was launched for; another channel paces by its own.
    sender = row.sender if channel == row.channel and row.sender != "default" else box.channels.sender(channel)
    return Route(channel, box.channels.provider(channel), sender,
                 box.status_callback if channel == "twilio" else None)


@dataclass
class _Outcome:
    """What one send came to: the row's write, maybe the contact's, and which counter it adds to."""

    write: dict[str, Any]
    counter: str  # sent, failed, unsettled
    contact_write: dict[str, Any] | None = None


def send_batch(box: Outbox, ids: Sequence[int]) -> BatchResult:
    """Claim, then send the rows (up to `box.concurrency` at once, each at its sender's pace).

    Every row ends in a definite state: sent, failed, skipped, cancelled, held (queued with a
    send time), queued again after a 429, or left `sending` for the reconciler to settle.
    """
    result = BatchResult()
    with box.sessions() as session, session.begin():
        claimed = claim(session, ids, box.now())
        rows = _load(session, claimed) if claimed else []
    writes: list[dict[str, Any]] = []
    contact_writes: list[dict[str, Any]] = []
    broadcast_ids = {r.broadcast_id for r in rows if r.broadcast_id}
    last_flush = time.monotonic()

    private = {r.id: r.contact_id for r in rows if r.redacted}

    def flush() -> None:
        nonlocal last_flush
        if box.early_status and writes:
            _apply_early_status(box, writes)
        left = _forget_settled(writes, private, box.now())
        with box.sessions() as session, session.begin():
            if writes:
                session.execute(update(Message), writes)
            if contact_writes:
                session.execute(update(Contact), contact_writes)
            for contact_id in left:
                privacy.drop_if_bare(session, contact_id)
            finish_if_done(session, broadcast_ids)
        writes.clear()
        contact_writes.clear()
        last_flush = time.monotonic()

    cancelled = _cancelled(box, broadcast_ids)
    due: list[_Row] = []
    for row in rows:
        if row.broadcast_id in cancelled:
            writes.append({"id": row.id, "status": "cancelled"})
            result.cancelled += 1
        elif row.contact_status != "active" and not row.owed_after_stop:  # an opt-out is honoured at send time
            writes.append({"id": row.id, "status": "skipped", "error_code": row.contact_status})
            result.skipped += 1
        elif not row.body.strip():  # its words were removed before it went: an empty SMS helps nobody
            writes.append({"id": row.id, "status": "failed", "error_code": "empty"})
            result.failed += 1
        elif not row.urgent and (until := quiet_until(box.now(), box.timezone_for(row.place, row.country),
                                                      box.quiet)):
            writes.append({"id": row.id, "status": "queued", "claimed_at": None, "send_after": until})
            box.schedule([row.id], until)
            result.held += 1
        else:
            due.append(row)

    stop = threading.Event()  # set on an error here: no new sends from this batch
    away: dict[str, str] = {}  # channels that asked us to wait (429, a phone offline): why

    def attempt(row: _Row) -> _Outcome | None:
        way = route(box, row)
        if stop.is_set() or way.channel in away or row.broadcast_id in cancelled:
            return None  # its channel waits; other channels' rows go on at their own pace
        if way.provider is None:
            logger.error("message %s: channel %r is not configured", row.id, way.channel)
            return _Outcome({"id": row.id, "status": "failed", "error_code": "no-channel",
                             "channel": way.channel}, "failed")
        box.pacer.wait(way.sender, row.segments)
        if stop.is_set() or way.channel in away or row.broadcast_id in cancelled:
            return None  # the booked slot goes unused: cheaper than a send nobody wants
        try:
            return _send_one(box, row, way)
        except RetryLater as exc:
            # Here, not when the main thread collects: this thread's next row must not go.
            away.setdefault(way.channel, str(exc))
            return None

    outcomes: dict[int, _Outcome | None] = {}

    def collect(row: _Row, future: Future[_Outcome | None]) -> None:
        outcome = future.result()
        outcomes[row.id] = outcome
        if outcome is not None:
            writes.append(outcome.write)
            if outcome.contact_write:
                contact_writes.append(outcome.contact_write)
            setattr(result, outcome.counter, getattr(result, outcome.counter) + 1)

    pool = ThreadPoolExecutor(max_workers=max(1, min(box.concurrency, len(due))), thread_name_prefix="send")
    futures = {pool.submit(attempt, row): row for row in due}
    try:
        pending: set[Future[_Outcome | None]] = set(futures)
        last_check = time.monotonic()
        while pending:
            done, pending = wait(pending, timeout=FLUSH_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                collect(futures[future], future)
            if broadcast_ids and time.monotonic() - last_check > CANCEL_CHECK_SECONDS:
                cancelled |= _cancelled(box, broadcast_ids)
                last_check = time.monotonic()
            # Provider ids are written within a second, so a status callback finds its row.
            if len(writes) >= WRITE_EVERY or time.monotonic() - last_flush > FLUSH_SECONDS:
                flush()
    except BaseException:
        # A job timeout or shutdown: start nothing new, keep what was sent; rows not yet
        # answered stay `sending` for the reconciler to settle.
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        for future, row in futures.items():
            if future.done() and not future.cancelled() and row.id not in outcomes:
                try:
                    collect(row, future)
                except Exception:  # that send's own error: its row stays `sending`, the others are written
                    logger.exception("message %s: send failed", row.id)
        flush()
        raise
    pool.shutdown(wait=True)
    for row in due:
        if outcomes.get(row.id) is None:  # never attempted: cancelled meanwhile, or its channel waits
            if row.broadcast_id in cancelled:
                writes.append({"id": row.id, "status": "cancelled"})
                result.cancelled += 1
            else:
                writes.append({"id": row.id, "status": "queued", "claimed_at": None})
    flush()
    if away:  # the waiting rows are queued again; RQ retries the job with backoff
        raise RetryLater("; ".join(f"{channel}: {why}" for channel, why in sorted(away.items())))
    return result


def _apply_early_status(box: Outbox, writes: list[dict[str, Any]]) -> None:
    """A status callback that came before its provider id was written is applied now."""
    sids = [w["provider_id"] for w in writes if w.get("provider_id")]
    early = box.early_status(sids) if sids and box.early_status else {}
    for w in writes:
        found = early.get(w.get("provider_id") or "")
        if found and status.ahead(found[0], w.get("status")):
            w["status"], w["error_code"] = found[0], found[1] or w.get("error_code")


def _send_one(box: Outbox, row: _Row, way: Route) -> _Outcome:
    """Send one claimed row; raise RetryLater when the provider asks us to wait."""
    assert way.provider is not None
    # The channel is written with the attempt (a forgotten exchange's reply is detached at flush).
    also: dict[str, Any] = {"channel": way.channel}
    try:
        # `key` is one per row: a provider that keeps one message per key (a phone) never doubles it.
        sent = way.provider.send(row.number, row.body, status_callback=way.status_callback, key=f"gw-{row.id}")
    except ProviderError as exc:
        if exc.retryable:
            logger.warning("%s asks to wait (%s); its rows go back to the queue", way.channel, exc.code)
            raise RetryLater(str(exc)) from exc
        if exc.ambiguous:
            try:
                found = settle(box, row.number, row.body, row.claimed_at, way.provider)
            except ProviderError:
                found = None  # cannot ask now: the reconciler asks again later
            if found is not None:
                return _Outcome({"id": row.id, "status": "sent", "provider_id": found, **also}, "sent")
            # The reconciler asks again once any request still in flight has ended.
            return _Outcome({"id": row.id, "error_code": exc.code or "ambiguous", "channel": way.channel},
                            "unsettled")
        contact_write = None
        if exc.code in STOPPED_CODES:
            contact_write = {"id": row.contact_id, "status": "stopped", "stopped_at": box.now()}
        elif exc.code in UNUSABLE_CODES:
            contact_write = {"id": row.contact_id, "status": ContactStatus.INVALID.value}
        return _Outcome({"id": row.id, "status": "failed", "error_code": exc.code or "error", **also},
                        "failed", contact_write)
    return _Outcome({"id": row.id, "status": "sent", "provider_id": sent.provider_id, "error_code": None,
                     **also}, "sent")


def _cancelled(box: Outbox, broadcast_ids: set[int]) -> set[int]:
    if not broadcast_ids:
        return set()
    with box.sessions() as session:
        return set(session.scalars(select(Broadcast.id).where(Broadcast.id.in_(broadcast_ids),
                                                              Broadcast.status == "cancelled")))


def settle(box: Outbox, number: str, body: str, claimed_at: datetime, provider: Provider | None = None) -> str | None:
    """Ask the provider whether it accepted this text for this number; its id, or None."""
    find = getattr(provider or box.provider, "find_sent", None)
    if find is None:
        return None
    try:
        found = find(number, claimed_at - SETTLE_MARGIN)
    except ProviderError as exc:
        logger.warning("could not settle a send to the provider: %s", exc)
        raise
    for candidate in found:
        if candidate.body is None or candidate.body == body:
            return candidate.provider_id
    return None


@dataclass
class Reconciled:
    settled_sent: int = 0
    requeued: int = 0
    due: list[int] = field(default_factory=list)


def reconcile(box: Outbox, stale_after: timedelta = timedelta(minutes=2),
              progress: Callable[[], object] = lambda: None) -> Reconciled:
    """Settle rows left `sending` (asking the provider) and list the queued rows that are due.

    The provider is asked with no transaction open: its answers can take a while, and a row lock
    held meanwhile would make a worker's claim on that row wait (and time out). Each answer is then
    written only if the row is still the same claim (still `sending`, claimed at the same time).
    """
    out = Reconciled()
    now = box.now()
    with box.sessions() as session:
        stale = session.scalars(select(Message.id).where(
            Message.status == "sending", Message.claimed_at <= now - stale_after)).all()
    for ids in _chunks(list(stale), 200):
        with box.sessions() as session:
            loaded = _load(session, ids)
        found_by_row: list[tuple[_Row, str | None]] = []
        # One question at a time: a provider's message list is a heavy request (it searches its
        # log), and many in flight at once only make each one slower, past the client timeout.
        for row in loaded:
            try:
                found_by_row.append((row, settle(box, row.number, row.body, row.claimed_at, _provider_of(box, row))))
            except ProviderError:
                continue  # provider unreachable: stays `sending`, asked again next time
            finally:
                progress()  # still at it (the caller's lock stays held)
        with box.sessions() as session, session.begin():
            for row, found in found_by_row:
                same_claim = (Message.id == row.id, Message.status == "sending", Message.claimed_at == row.claimed_at)
                if found is not None:
                    forget = privacy.detached(now) if row.redacted else {}
                    done = session.execute(update(Message).where(*same_claim)
                                           .values(status="sent", provider_id=found, **forget))
                    if done.rowcount and row.redacted:  # type: ignore[attr-defined]
                        privacy.drop_if_bare(session, row.contact_id)
                    out.settled_sent += done.rowcount  # type: ignore[attr-defined]
                else:
                    done = session.execute(update(Message).where(*same_claim).values(status="queued", claimed_at=None))
                    out.requeued += done.rowcount  # type: ignore[attr-defined]
            finish_if_done(session, {r.broadcast_id for r in loaded if r.broadcast_id})
    with box.sessions() as session:
        out.due = list(session.scalars(select(Message.id).where(
            Message.status == "queued", Message.direction == "out",
            or_(Message.send_after.is_(None), Message.send_after <= now)).order_by(Message.id)))
    return out


def _provider_of(box: Outbox, row: _Row) -> Provider | None:
    """The provider a row left `sending` was handed to (its channel is written with the attempt)."""
    return box.provider if box.channels is None else box.channels.provider(row.channel)


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
