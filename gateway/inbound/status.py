"""The outbound status ladder, and the delivery callbacks that climb it.

A sent message's status only moves up: queued -> sending -> sent -> delivered / undelivered /
failed. A provider's callbacks can come in any order, and even before the worker has written
the provider id they name: such an early status is kept in Redis a while (the early-status
store) and the outbox applies it when it writes the id.
"""
from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.channels.base import StatusUpdate
from gateway.models import Message, MessageStatus

logger = logging.getLogger(__name__)

# The ladder: a status only replaces one of a lower rank; the top rung never changes again.
RANK: dict[str, int] = {MessageStatus.QUEUED: 0, MessageStatus.SENDING: 1, MessageStatus.SENT: 2,
                        MessageStatus.DELIVERED: 3, MessageStatus.UNDELIVERED: 3, MessageStatus.FAILED: 3}
# Where an outbound message can end; skipped and cancelled ones never left.
FINAL = (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.UNDELIVERED, MessageStatus.FAILED,
         MessageStatus.SKIPPED, MessageStatus.CANCELLED)
OUTBOUND = (MessageStatus.QUEUED, MessageStatus.SENDING, *FINAL)  # every status an outbound row can hold
EARLY_TTL = 600  # seconds a callback for a not-yet-written provider id is kept
_EARLY_KEY = "gateway:early-status:{}"


def ahead(new: str, old: str | None) -> bool:
    """True when `new` is higher on the ladder than `old` (unknown statuses rank lowest)."""
    return RANK.get(new, -1) > RANK.get(old or "", -1)


def advance(session: Session, channel: str, update: StatusUpdate, redis: Any) -> None:
    """Apply a delivery callback in the caller's transaction; an id not written yet is kept a while."""
    message = session.scalars(select(Message).where(
        Message.channel == channel, Message.provider_id == update.provider_id).with_for_update()).first()
    if message is None:
        # Unknown now, but maybe a send whose id is not written yet: keep it a while
        # (the outbox applies it when it writes the id); truly unknown ids just expire.
        remember_early(redis, update.provider_id, update.status, update.error_code)
        return
    if ahead(update.status, message.status):
        message.status = update.status
        message.error_code = update.error_code or message.error_code


def apply(sessions: sessionmaker[Session], channel: str, update: StatusUpdate, redis: Any) -> None:
    """Apply a delivery callback in a transaction of its own."""
    with sessions() as session, session.begin():
        advance(session, channel, update, redis)


def remember_early(redis: Any, sid: str, status: str, error_code: str | None) -> None:
    """Keep a status for a provider id no row holds yet, unless a higher one is kept already."""
    key = _EARLY_KEY.format(sid)
    try:
        current = redis.hget(key, "status")
        if current is None or ahead(status, current.decode()):
            redis.hset(key, mapping={"status": status, "error_code": error_code or ""})
            redis.expire(key, EARLY_TTL)
    except Exception:  # Redis away: the callback is only an update, the send itself is recorded
        logger.warning("could not keep an early status callback for %s", sid)


def early_statuses(redis: Any, sids: list[str]) -> dict[str, tuple[str, str | None]]:
    """Status callbacks that arrived before these provider ids were written."""
    with redis.pipeline() as pipe:
        for sid in sids:
            pipe.hgetall(_EARLY_KEY.format(sid))
        found = pipe.execute()
    return {sid: (h[b"status"].decode(), h.get(b"error_code", b"").decode() or None)
            for sid, h in zip(sids, found, strict=True) if h}
