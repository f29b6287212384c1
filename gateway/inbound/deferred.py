"""Store and acknowledge: when the web processes cannot keep up, a text is stored in one statement
and handled by a worker, in order per sender, its replies leaving through the reply queue.

`Inbound.receive` decides per text (gateway/core/pressure.py says when). The row is stored like any
other, unhandled; `drain_later` is the job that handles the sender's pending texts (all of them,
in arrival order, holding the contact's lock: receive.handle_pending), and the reconciler's
`handle_stranded` handles it anyway if the job is lost. A duplicate (a provider's retry) is dropped
by the same unique index as on the full path, so a text is stored once whichever path took it.
"""
from __future__ import annotations

import functools
import logging
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from gateway.channels.base import InboundSMS
from gateway.core.phones import InvalidNumber, country_of, normalise_number
from gateway.inbound import receive as path
from gateway.models import utcnow

logger = logging.getLogger(__name__)
DRAIN = "gateway.inbound.deferred.drain_later"  # the job, by dotted name (on queues.REPLIES)
LATER = "gateway:inbound:later"  # contact ids whose stored texts wait for a worker, in arrival order
LATER_JOB = "gateway:inbound:later:job"  # set while a drain job is queued or running
JOB_EVERY = 2  # seconds: a drain job queued but not started lets another be queued after this

# PostgreSQL: the contact (created if new, its row locked by the upsert until commit, so the
# sender's texts on the full path wait for this one and then see it) and the text, in one statement.
_PG_STORE = """
WITH c AS (
  INSERT INTO contacts (number_digest, number_sealed, country, status, created_at)
  VALUES (:digest, :sealed, :country, 'active', :now)
  ON CONFLICT (number_digest) DO UPDATE SET number_digest = EXCLUDED.number_digest
  RETURNING id)
INSERT INTO messages (direction, contact_id, channel, provider_id, medium, body, status, attempts, created_at)
SELECT 'in', c.id, :channel, :provider_id, :medium, :body, 'received', 0, :now FROM c
ON CONFLICT (channel, provider_id) DO NOTHING
RETURNING id, contact_id
"""
# SQLite has no data-modifying WITH: two statements in the transaction (BEGIN IMMEDIATE locks the file).
_LITE_CONTACT = """
INSERT INTO contacts (number_digest, number_sealed, country, status, created_at)
VALUES (:digest, :sealed, :country, 'active', :now)
ON CONFLICT (number_digest) DO UPDATE SET number_digest = excluded.number_digest
RETURNING id
"""
_LITE_MESSAGE = """
INSERT INTO messages (direction, contact_id, channel, provider_id, medium, body, status, attempts, created_at)
VALUES ('in', :contact_id, :channel, :provider_id, :medium, :body, 'received', 0, :now)
ON CONFLICT (channel, provider_id) DO NOTHING
RETURNING id, contact_id
"""


@functools.cache
def _sql(source: str) -> Any:
    return text(source)


def store(factory: sessionmaker[Session], sms: InboundSMS, default_country: str,
          received_at: datetime | None = None) -> path.Received | None:
    """Store a text unhandled, for a worker; None when it must take the full path instead.

    The full path is left to texts from a number that cannot be a contact (stored as unroutable
    there) and to numbers while the number keys are being rotated (a contact may still be found
    only under an older key's digest, which the one-statement upsert cannot see).
    """
    try:
        address = normalise_number(sms.sender, default_country)
    except InvalidNumber:
        return None
    box = factory.kw.get("info", {}).get("numbers")
    if box is None or len(box.digests(address.value)) != 1:
        return None
    params = {"digest": box.digest(address.value), "sealed": box.seal(address.value),
              "country": country_of(address.value), "now": received_at or utcnow(),
              "channel": sms.provider, "provider_id": sms.provider_id or f"local-{uuid.uuid4().hex}",
              "medium": address.medium, "body": sms.body.replace("\x00", "")[:path.MAX_BODY]}
    engine: Engine = factory.kw["bind"]
    with engine.begin() as conn:  # a connection, not an ORM session: nothing here is an object
        if conn.dialect.name == "postgresql":
            row = conn.execute(_sql(_PG_STORE), params).first()
        else:
            contact_id = conn.execute(_sql(_LITE_CONTACT), params).scalar_one()
            row = conn.execute(_sql(_LITE_MESSAGE), {**params, "contact_id": contact_id}).first()
    if row is None:
        logger.info("duplicate %s message %s dropped", sms.provider, sms.provider_id)
        return path.Received(None, None, duplicate=True)
    return path.Received(int(row[0]), int(row[1]), deferred=True)


def enqueue(redis: Any, contact_id: int) -> None:
    """Ask a worker to handle this contact's pending texts: its id onto a Redis list, and a drain job
    on the reply queue (ahead of broadcasts) unless one is already queued or running.

    One round trip per text instead of an RQ job each: under a burst the web processes must do as
    little as they can. A drain job that was lost (a worker killed) leaves its contacts' texts stored
    and unhandled: the reconciler's handle_stranded handles them within a minute.
    """
    with redis.pipeline(transaction=False) as pipe:
        pipe.rpush(LATER, contact_id)
        pipe.set(LATER_JOB, 1, nx=True, ex=JOB_EVERY)
        _, first = pipe.execute()
    if first:
        from gateway.outbound import queues

        queues.get_queue(redis, queues.REPLIES).enqueue(DRAIN, retry=queues.RETRY, result_ttl=0,
                                                        failure_ttl=86400)


def drain_later(batch: int = 50) -> int:
    """The job: handle the listed contacts' pending texts, each contact in order, until the list is
    empty; replies onto the reply queue. How many contacts were handled.

    The job marker is cleared before the last look at the list, so a text listed meanwhile is either
    seen here or starts a new job (enqueue): none waits for the reconciler unless a worker dies.
    """
    from gateway.outbound.jobs import _current

    svc = _current().extensions["gateway"]
    redis, handled = svc.redis, 0
    while True:
        ids = redis.lpop(LATER, batch)
        if not ids:
            redis.delete(LATER_JOB)
            if not redis.llen(LATER) or not redis.set(LATER_JOB, 1, nx=True, ex=JOB_EVERY):
                return handled  # empty, or another job has just been started for what came in
            continue
        handled += int(svc.inbound.handle_contacts(sorted({int(i) for i in ids})))
