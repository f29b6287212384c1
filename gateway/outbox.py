"""The outbox: claim rows, send them paced, settle ambiguous sends, reconcile what was left behind.

Nothing is sent twice: a row is claimed (queued -> sending) by a conditional update before it is
sent, and a send whose outcome is unknown is settled by asking the provider, never by sending again.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, time as dtime, timedelta
from typing import Any, Callable, Sequence

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from gateway import contacts
from gateway.broadcasts import finish_if_done
from gateway.compose import quiet_until
from gateway.models import Broadcast, Contact, Message, utcnow
from gateway.pacing import Pacer
from gateway.providers.base import Provider, ProviderError

logger = logging.getLogger(__name__)
STOPPED_CODES = {"21610"}  # the recipient texted STOP to the provider: an opt-out
UNUSABLE_CODES = {"21211", "21214", "21217", "21407", "21408", "21421", "21612", "21614"}
SETTLE_MARGIN = timedelta(seconds=60)  # look back this far before a claim when asking the provider
CANCEL_CHECK_SECONDS = 2.0
WRITE_EVERY = 25  # rows per commit: fewer round trips, and a crash costs at most a settle
FLUSH_SECONDS = 0.5
# Statuses only move forward; the final ones never change again.
STATUS_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3}


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
    confirms_stop: bool = False  # the reply to the supporter's own STOP: the one text still owed


def _load(session: Session, ids: list[int]) -> list[_Row]:
    answered = aliased(Message)
    query = (select(Message, Contact, Broadcast.urgent, answered.route)
             .join(Contact, Contact.id == Message.contact_id)
             .outerjoin(Broadcast, Broadcast.id == Message.broadcast_id)
             .outerjoin(answered, answered.id == Message.reply_to_id)
             .where(Message.id.in_(ids)).order_by(Message.id))
    return [_Row(m.id, m.broadcast_id, c.id, contacts.number_of(c), c.status, c.place, c.country,
                 m.body or "", m.segments or 1, m.sender or "default", m.claimed_at or utcnow(),
                 bool(urgent) or m.broadcast_id is None, route == "stop")
            for m, c, urgent, route in session.execute(query)]


def send_batch(box: Outbox, ids: Sequence[int]) -> BatchResult:
    """Claim, then send each row at its sender's pace; every row ends in a definite state."""
    result = BatchResult()
    with box.sessions() as session, session.begin():
        claimed = claim(session, ids, box.now())
        rows = _load(session, claimed) if claimed else []
    writes: list[dict[str, Any]] = []
    contact_writes: list[dict[str, Any]] = []
    handled: set[int] = set()  # rows that have their outcome, written or about to be
    cancelled: set[int] = set()
    last_check = 0.0
    last_flush = time.monotonic()

    def flush() -> None:
        nonlocal last_flush
        if box.early_status and writes:
            _apply_early_status(box, writes)
        with box.sessions() as session, session.begin():
            if writes:
                session.execute(update(Message), writes)
            if contact_writes:
                session.execute(update(Contact), contact_writes)
            finish_if_done(session, {r.broadcast_id for r in rows if r.broadcast_id})
        handled.update(w["id"] for w in writes)
        writes.clear()
        contact_writes.clear()
        last_flush = time.monotonic()

    try:
        for i, row in enumerate(rows):
            if row.broadcast_id and time.monotonic() - last_check > CANCEL_CHECK_SECONDS:
                cancelled |= _cancelled(box, {r.broadcast_id for r in rows[i:] if r.broadcast_id})
                last_check = time.monotonic()
            if row.broadcast_id in cancelled:
                writes.append({"id": row.id, "status": "cancelled"})
                result.cancelled += 1
            elif row.contact_status != "active" and not row.confirms_stop:  # an opt-out is honoured at send time
                writes.append({"id": row.id, "status": "skipped", "error_code": row.contact_status})
                result.skipped += 1
            elif not row.urgent and (until := quiet_until(box.now(), box.timezone_for(row.place, row.country),
                                                          box.quiet)):
                writes.append({"id": row.id, "status": "queued", "claimed_at": None, "send_after": until})
                box.schedule([row.id], until)
                result.held += 1
            else:
                _send_one(box, row, writes, contact_writes, result)
            # Provider ids are written within a second, so a status callback finds its row.
            if len(writes) >= WRITE_EVERY or time.monotonic() - last_flush > FLUSH_SECONDS:
                flush()
    except RetryLater:
        done = handled | {w["id"] for w in writes}
        writes.extend({"id": r.id, "status": "queued", "claimed_at": None}
                      for r in rows if r.id not in done)
        flush()
        raise
    except BaseException:
        flush()  # keep what was sent; the rest stays `sending` for the reconciler to settle
        raise
    flush()
    return result


def _apply_early_status(box: Outbox, writes: list[dict[str, Any]]) -> None:
    """A status callback that came before its provider id was written is applied now."""
    sids = [w["provider_id"] for w in writes if w.get("provider_id")]
    early = box.early_status(sids) if sids else {}
    for w in writes:
        found = early.get(w.get("provider_id") or "")
        if found and STATUS_RANK.get(found[0], -1) > STATUS_RANK.get(w.get("status", ""), -1):
            w["status"], w["error_code"] = found[0], found[1] or w.get("error_code")


def _send_one(box: Outbox, row: _Row, writes: list[dict[str, Any]], contact_writes: list[dict[str, Any]],
              result: BatchResult) -> None:
    box.pacer.wait(row.sender, row.segments)
    try:
        sent = box.provider.send(row.number, row.body, status_callback=box.status_callback)
    except ProviderError as exc:
        if exc.retryable:
            logger.warning("provider asks to slow down (%s); batch goes back to the queue", exc.code)
            raise RetryLater(str(exc)) from exc
        if exc.ambiguous:
            try:
                found = settle(box, row.number, row.body, row.claimed_at)
            except ProviderError:
                found = None  # cannot ask now: the reconciler asks again later
            if found is not None:
                writes.append({"id": row.id, "status": "sent", "provider_id": found})
                result.sent += 1
            else:  # the reconciler asks again once any request still in flight has ended
                writes.append({"id": row.id, "error_code": exc.code or "ambiguous"})
                result.unsettled += 1
            return
        writes.append({"id": row.id, "status": "failed", "error_code": exc.code or "error"})
        result.failed += 1
        if exc.code in STOPPED_CODES:
            contact_writes.append({"id": row.contact_id, "status": "stopped", "stopped_at": box.now()})
        elif exc.code in UNUSABLE_CODES:
            contact_writes.append({"id": row.contact_id, "status": "invalid"})
        return
    writes.append({"id": row.id, "status": "sent", "provider_id": sent.provider_id, "error_code": None})
    result.sent += 1


def _cancelled(box: Outbox, broadcast_ids: set[int]) -> set[int]:
    if not broadcast_ids:
        return set()
    with box.sessions() as session:
        return set(session.scalars(select(Broadcast.id).where(Broadcast.id.in_(broadcast_ids),
                                                              Broadcast.status == "cancelled")))


def settle(box: Outbox, number: str, body: str, claimed_at: datetime) -> str | None:
    """Ask the provider whether it accepted this text for this number; its id, or None."""
    find = getattr(box.provider, "find_sent", None)
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


def reconcile(box: Outbox, stale_after: timedelta = timedelta(minutes=2)) -> Reconciled:
    """Settle rows left `sending` (asking the provider) and list the queued rows that are due."""
    out = Reconciled()
    now = box.now()
    with box.sessions() as session:
        stale = session.scalars(select(Message.id).where(
            Message.status == "sending", Message.claimed_at <= now - stale_after)).all()
    for ids in _chunks(list(stale), 200):
        with box.sessions() as session, session.begin():
            loaded = _load(session, ids)
            for row in loaded:
                try:
                    found = settle(box, row.number, row.body, row.claimed_at)
                except ProviderError:
                    continue  # provider unreachable: stays `sending`, asked again next time
                if found is not None:
                    session.execute(update(Message).where(Message.id == row.id, Message.status == "sending")
                                    .values(status="sent", provider_id=found))
                    out.settled_sent += 1
                else:
                    session.execute(update(Message).where(Message.id == row.id, Message.status == "sending")
                                    .values(status="queued", claimed_at=None))
                    out.requeued += 1
            finish_if_done(session, {r.broadcast_id for r in loaded if r.broadcast_id})
    with box.sessions() as session:
        out.due = list(session.scalars(select(Message.id).where(
            Message.status == "queued", Message.direction == "out",
            or_(Message.send_after.is_(None), Message.send_after <= now)).order_by(Message.id)))
    return out


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
