"""Store and acknowledge: when the web processes cannot keep up, a text is stored in one statement
and handled by a worker, in order per sender, its replies leaving through the reply queue.

`Inbound.receive` decides per text (gateway/core/pressure.py says when). The row is stored like any
other, unhandled, by the process's `Writer` (one statement for the texts that came together);
`drain_later` is the job that handles the sender's pending texts (all of them, in arrival order,
holding the contact's lock: receive.handle_pending), and the reconciler's `handle_stranded`
handles it anyway if the job is lost. A duplicate (a provider's retry) is dropped
by the same unique index as on the full path, so a text is stored once whichever path took it.
"""
from __future__ import annotations

import functools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from gateway.channels.base import InboundSMS
from gateway.core.phones import InvalidNumber, normalise_number
from gateway.inbound import receive as path
from gateway.inbound.spool import database_away
from gateway.models import utcnow

logger = logging.getLogger(__name__)
DRAIN = "gateway.inbound.deferred.drain_later"  # the job, by dotted name (on queues.REPLIES)
LATER = "gateway:inbound:later"  # contact ids whose stored texts wait for a worker, in arrival order
LATER_JOB = "gateway:inbound:later:job"  # set while a drain job is queued or running
JOB_EVERY = 2  # seconds: a drain job queued but not started lets another be queued after this
DRAIN_BUDGET = 10.0  # seconds one drain job works before it leaves the rest of the list to a new job
# When a web process is saturated (BEHIND_AT texts or more waiting for its writer at once; or a text
# waited LAGGING seconds for its commit), every millisecond of CPU decides whether the webhooks
# queued behind are answered inside Twilio's 15 s: for BEHIND_HOLD seconds after such a batch a
# drain job works BURST_SHARE of the time and waits the rest. Workers beside the web processes took
# a third of what they stored (wrk's JOIN shape, 2 cores, 2026-11-30: 501-527 req/s with two workers
# at nice 10 against 761-774 without, A B A B): nice does not reach their PostgreSQL backends. The
# share keeps replies flowing through a long burst; under a load the web processes keep up with,
# and once a burst has passed, the workers take all they need.
BEHIND = "gateway:inbound:behind"  # set while a web process is saturated
BEHIND_AT = 8
LAGGING = 0.25
BEHIND_HOLD = 2
BURST_SHARE = 0.1

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


# PostgreSQL, a batch: every text the writer found waiting, as arrays. Contacts are upserted in
# digest order (two processes' batches lock the same rows in the same order: no deadlock), each once
# (DO UPDATE may not touch a row twice in one statement); the texts go in in arrival order, so a
# sender's texts keep their order in message ids; a retried text (its provider id seen) is dropped.
_PG_BATCH = """
WITH i AS (
  SELECT * FROM unnest(CAST(:digest AS text[]), CAST(:sealed AS text[]), CAST(:country AS text[]),
                       CAST(:channel AS text[]), CAST(:provider_id AS text[]), CAST(:medium AS text[]),
                       CAST(:body AS text[]), CAST(:now AS timestamp[]))
    WITH ORDINALITY AS t(digest, sealed, country, channel, provider_id, medium, body, now, ord)),
c AS (
  INSERT INTO contacts (number_digest, number_sealed, country, status, created_at)
  SELECT DISTINCT ON (digest) digest, sealed, country, 'active', now FROM i ORDER BY digest, ord
  ON CONFLICT (number_digest) DO UPDATE SET number_digest = EXCLUDED.number_digest
  RETURNING id, number_digest)
INSERT INTO messages (direction, contact_id, channel, provider_id, medium, body, status, attempts, created_at)
SELECT 'in', c.id, i.channel, i.provider_id, i.medium, i.body, 'received', 0, i.now
FROM i JOIN c ON c.number_digest = i.digest ORDER BY i.ord
ON CONFLICT (channel, provider_id) DO NOTHING
RETURNING id, contact_id, channel, provider_id
"""
_COLUMNS = ("digest", "sealed", "country", "channel", "provider_id", "medium", "body", "now")
# A STOP stored (not a retry of one already stored): its contact is stop-pending from the same commit
# on (outbox._stopped_as_of), until a worker has handled its texts (receive._handle_locked clears it). A
# statement of its own, and only for a batch with a STOP: the batch's upsert has already touched the row.
_MARK_STOP = """
UPDATE contacts SET stop_pending_at = coalesce(stop_pending_at, :at) WHERE id = :contact_id
"""
STORE_WAIT = 10.0  # seconds a webhook waits for its text to be written before keeping it in the spool
MAX_BATCH = 200  # texts in one statement
# Writer threads per process. A batch costs the web process about 1.3 ms of CPU whatever its size
# (its round trips, each waiting for the GIL again among the request threads, and the wake-ups),
# and a text about 0.75 ms besides; so the fewer, larger batches the better. One writer gathers
# every text that came while it wrote the last batch; a second halved the batches. With the
# Procfile's 64 threads (16 capped a batch at 16 waiting webhooks) one writer took a 2,000/s burst
# at 1,325-1,344 texts a second, batches of 11-14, against 1,016-1,051 with two writers and 16
# threads (batches of 4); wrk's JOIN shape 1,312-1,337 req/s against 1,125-1,241 (2 cores,
# 2026-11-30, A B A B, docs/benchmarks.md's eighth pass).
WRITERS = 1
# A batch costs about the same whatever its size, in the web process and in PostgreSQL (0.57 ms of
# PostgreSQL's CPU a text written alone, 0.24 in batches of 6, 0.12 in batches of 16; slow hour),
# and PostgreSQL's CPU on the same cores preempts the GIL-bound web processes (docs/benchmarks.md's
# ninth pass). So while texts keep coming, one or more each GATHER_GAP, the writer waits for
# them: up to GATHER_TEXTS, and never past GATHER_MAX after the oldest. A lone text waits
# GATHER_GAP at most (and under no load texts are handled inline, not stored here). wrk's JOIN
# shape, 2 cores, a slow hour, A B rounds: batches of 9-10 against about 6; 631 and 688 req/s
# against 580 and 611 (a prototype), then 503, 657, 619 against 524, 551, 626 (this code): a gain
# inside the hour's noise, but PostgreSQL's CPU a text fell from 0.22-0.29 ms to 0.18-0.25.
GATHER_GAP = 0.003
GATHER_MAX = 0.025
# GATHER_TEXTS is 11, not 16: a batch then ends before all of a process's connections have sent
# their text, and the process reads the next texts while it is written instead of idling through
# the write (a closed loop's connections move together). wrk's JOIN shape, 2 cores, 2026-11-30,
# two sets of three A B rounds: 1,491 and 1,584 req/s against 1,416 and 1,443 with 16 (8: 1,470;
# 6: 1,431); a 20 s burst at 2,000 req/s, A B A B: 1,424 and 1,342 texts a second against 1,343
# and 1,369. A shorter GATHER_GAP (1.5 ms) did no better.
GATHER_TEXTS = 11


@functools.cache
def _sql(source: str) -> Any:
    return text(source)


def _taken() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass
class _Waiting:
    """One text waiting for the writer: its row's values, then what became of it."""

    params: dict[str, Any]
    # Released by the writer once the text's batch is written. A plain lock, not an Event: a webhook
    # waits and is woken in one call each, where an Event's condition costs a few dozen lines of
    # Python and a second lock to take on waking. With the writer no longer woken by each text it
    # gathers (_gather): wrk's JOIN shape, 2 cores, 6 A B rounds (2026-11-30): 1,205 req/s against
    # 1,122 on average, 1.04 ms of the web processes' CPU a text against 1.16.
    done: threading.Lock = field(default_factory=_taken)
    since: float = field(default_factory=time.monotonic)  # when it came to the writer
    row: tuple[int, int] | None = None  # (message id, contact id); None: a duplicate
    error: BaseException | None = None


class _Held:
    """A writer thread's connection, held between batches: no pool checkout or ping per batch."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.conn: Connection | None = None

    def connection(self) -> Connection:
        if self.conn is None or self.conn.closed or self.conn.invalidated:
            conn = self.engine.connect()
            if conn.dialect.name == "postgresql":  # set once: each setting adds a reset to the connection's record
                conn.execution_options(isolation_level="AUTOCOMMIT")  # see Writer._write_on
            self.conn = conn
        return self.conn

    def drop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # already broken: nothing to give back
                logger.debug("closing a writer's broken connection failed", exc_info=True)
            self.conn = None


class Writer:
    """Stores texts for workers (group commit): a writer thread writes every text that arrived while
    the last batch was written, and those still coming (GATHER_GAP), in one statement and one commit,
    then hands their contacts to the workers in one Redis round trip; each webhook waits for its own text.

    Under a burst a webhook's cost is then Flask, the signature and a share of one statement,
    not a connection checkout, a statement, a commit and a Redis round trip of its own.
    """

    def __init__(self, factory: sessionmaker[Session], handoff: Callable[[list[int], bool], None] | None,
                 max_batch: int = MAX_BATCH, wait: float = STORE_WAIT, threads: int = WRITERS,
                 gap: float = GATHER_GAP, gather_max: float = GATHER_MAX, gather_texts: int = GATHER_TEXTS) -> None:
        self.factory = factory
        self.handoff = handoff
        self.max_batch = max_batch
        self.wait = wait
        self.gap, self.gather_max, self.gather_texts = gap, gather_max, gather_texts
        self._waiting: list[_Waiting] = []
        self._cond = threading.Condition()
        # SQLite has one writer at a time (BEGIN IMMEDIATE): a second thread would only wait for the lock.
        self.threads = 1 if factory.kw["bind"].dialect.name == "sqlite" else threads
        self._running: list[tuple[threading.Thread, _Held]] = []
        self._writing: set[str] = set()  # the senders (number digests) of the batches being written
        self._held = 0  # texts waiting for a writer thread or being written
        self._idle = 0  # writer threads waiting for a first text (a text wakes one; see _gather)
        self._pid = 0

    def store(self, sms: InboundSMS, default_country: str, received_at: datetime | None = None, *,
              stop: bool = False) -> path.Received | None:
        """Store a text unhandled, for a worker; None when it must take the full path instead.

        `stop`: the text is a STOP; the same commit marks its contact stop-pending, so the outbox
        sends it nothing more from the moment the webhook is answered (outbox._stopped_as_of).
        The full path is left to texts from a number that cannot be a contact (stored as unroutable
        there) and to numbers while the number keys are being rotated (a contact may still be found
        only under an older key's digest, which the one-statement upsert cannot see).
        """
        params = row_values(self.factory, sms, default_country, received_at, stop=stop)
        if params is None:
            return None
        item = _Waiting(params)
        with self._cond:
            self._start()
            self._waiting.append(item)
            self._held += 1
            if self._idle or len(self._waiting) >= self.gather_texts:
                self._cond.notify()
        if not item.done.acquire(timeout=self.wait):
            # The database is too slow to answer in time: the caller keeps the text in the spool.
            # Should the writer still store it, the replay finds it stored (its provider id).
            raise sa_exc.TimeoutError(f"text not stored within {self.wait:.0f} s")
        if item.error is not None:
            raise item.error
        if item.row is None:
            logger.info("duplicate %s message %s dropped", sms.provider, sms.provider_id)
            return path.Received(None, None, duplicate=True)
        return path.Received(item.row[0], item.row[1], deferred=True)

    def _start(self) -> None:
        """Start the writer threads in this process (again after a fork: threads do not survive one)."""
        if self._pid != os.getpid() or not all(t.is_alive() for t, _ in self._running):
            if self._pid != os.getpid():
                self._running = []  # a parent's threads and connections are not this process's to use
            self._pid = os.getpid()
            self._running = [(t, held) for t, held in self._running if t.is_alive()]
            while len(self._running) < self.threads:
                held = _Held(self.factory.kw["bind"])
                thread = threading.Thread(target=self._run, args=(held,), name="inbound-writer", daemon=True)
                thread.start()
                self._running.append((thread, held))

    def connections(self) -> list[Connection]:
        """The connections the writer threads hold now (for tests and inspection)."""
        return [held.conn for _, held in self._running if held.conn is not None]

    def _run(self, held: _Held) -> None:
        while True:
            batch, crowd = self._take()
            try:
                self._write(batch, held)
                self._hand_over(batch, crowd >= BEHIND_AT
                                or time.monotonic() - min(item.since for item in batch) > LAGGING)
            except BaseException as exc:  # noqa: BLE001 - handed to every waiting webhook
                for item in batch:
                    item.error = item.error or exc
            finally:  # each webhook answers once its text is stored and its contact handed over
                with self._cond:
                    self._writing.difference_update(item.params["digest"] for item in batch)
                    self._held -= len(batch)
                    self._cond.notify_all()
                for item in batch:
                    item.done.release()

    def _take(self) -> tuple[list[_Waiting], int]:
        """The next batch: the waiting texts in arrival order, but none from a sender whose earlier
        text another writer thread is writing now (it waits for that one, so a sender's texts are
        stored in the order they came); and how many texts wait or are being written, this batch's included."""
        with self._cond:
            while True:
                if self._waiting:
                    self._gather()
                batch: list[_Waiting] = []
                left: list[_Waiting] = []
                for item in self._waiting:
                    if len(batch) < self.max_batch and item.params["digest"] not in self._writing:
                        batch.append(item)
                    else:
                        left.append(item)
                if batch:
                    self._waiting[:] = left
                    self._writing.update(item.params["digest"] for item in batch)
                    return batch, self._held
                self._idle += 1
                try:
                    self._cond.wait()
                finally:
                    self._idle -= 1

    def _gather(self) -> None:
        """Wait (holding the condition's lock) while texts keep coming, one or more each `gap`: up to
        `gather_texts` waiting and at most `gather_max` after the oldest (see GATHER_GAP). A text
        coming meanwhile does not wake the writer (only the one that makes `gather_texts` does):
        a wake-up a text cost the web process a thread switch and a GIL hand-over each."""
        deadline = self._waiting[0].since + self.gather_max
        while len(self._waiting) < self.gather_texts:
            seen = len(self._waiting)
            left = min(self.gap, deadline - time.monotonic())
            if left <= 0:
                return
            self._cond.wait(left)
            if len(self._waiting) == seen:  # none came within the gap
                return

    def _hand_over(self, batch: list[_Waiting], behind: bool) -> None:
        """The batch's contacts onto the workers' list, and whether this process is saturated
        (`enqueue`, BEHIND); if Redis is away the reconciler finds the texts."""
        stored = sorted({item.row[1] for item in batch if item.row is not None})
        if stored and self.handoff is not None:
            try:
                self.handoff(stored, behind)
            except Exception:  # the texts are stored, unhandled: handle_stranded finds them
                logger.warning("could not hand %d contacts' texts to the workers; left for the reconciler",
                               len(stored), exc_info=True)

    def _write(self, batch: list[_Waiting], held: _Held) -> None:
        """The batch in one transaction; when it fails for a reason other than the database being
        away, each text alone, so one bad text fails only its own webhook."""
        try:
            self._write_together(batch, held)
        except Exception as exc:
            if len(batch) == 1 or database_away(exc):
                raise
            logger.warning("a batch of %d texts failed (%s); storing each alone", len(batch),
                           path.describe_error(exc))
            for item in batch:
                try:
                    self._write_together([item], held)
                except Exception as one:  # noqa: BLE001 - that webhook answers it
                    item.error = one

    def _write_together(self, batch: list[_Waiting], held: _Held) -> None:
        """One transaction on the writer thread's own connection, taken again when the database dropped it."""
        try:
            self._write_on(held.connection(), batch)
        except sa_exc.DBAPIError as exc:
            held.drop()
            if not exc.connection_invalidated:
                raise
            # A restarted database closed the connection we held (a pool's pre-ping would have
            # noticed at checkout): once more on a new one; if that fails too, the texts are spooled.
            self._write_on(held.connection(), batch)

    @staticmethod
    def _write_on(conn: Connection, batch: list[_Waiting]) -> None:
        # On PostgreSQL the connection is held in autocommit (_Held) and a batch with no STOP is one
        # statement, atomic on its own: one round trip, where BEGIN, the statement and COMMIT took
        # three, each waiting for the GIL again among the request threads (wrk's JOIN shape, 2 cores,
        # 2026-11-30, three A B rounds: 1,300 req/s against 1,225 on average). A STOP's mark is a
        # second statement: that batch opens a transaction of its own (psycopg's, as SQLAlchemy's
        # begin() sends nothing in autocommit).
        postgresql = conn.dialect.name == "postgresql"
        stop = any(item.params["stop_at"] is not None for item in batch)
        with conn.begin(), (conn.connection.dbapi_connection.transaction()  # type: ignore[union-attr]
                            if stop and postgresql else nullcontext()):
            if postgresql:
                rows = conn.execute(_sql(_PG_BATCH), {k: [item.params[k] for item in batch] for k in _COLUMNS})
                got = {(r[2], r[3]): (int(r[0]), int(r[1])) for r in rows}
                for item in batch:
                    item.row = got.pop((item.params["channel"], item.params["provider_id"]), None)
            else:  # SQLite: two statements a text, one transaction (BEGIN IMMEDIATE holds the file's lock)
                for item in batch:
                    contact_id = conn.execute(_sql(_LITE_CONTACT), item.params).scalar_one()
                    row = conn.execute(_sql(_LITE_MESSAGE), {**item.params, "contact_id": contact_id}).first()
                    item.row = (int(row[0]), int(row[1])) if row is not None else None
            stops = [{"contact_id": item.row[1], "at": item.params["stop_at"]}
                     for item in batch if item.row is not None and item.params["stop_at"] is not None]
            if stops:
                conn.execute(_sql(_MARK_STOP), stops)


def row_values(factory: sessionmaker[Session], sms: InboundSMS, default_country: str,
               received_at: datetime | None = None, *, stop: bool = False) -> dict[str, Any] | None:
    """The stored row's values, or None when the text must take the full path (see Writer.store)."""
    try:
        address = normalise_number(sms.sender, default_country)
    except InvalidNumber:
        return None
    box = factory.kw.get("info", {}).get("numbers")
    digests = box.digests(address.value) if box is not None else []
    if len(digests) != 1:
        return None
    now = received_at or utcnow()
    return {"digest": digests[0], "sealed": box.seal(address.value),
            "country": address.region, "now": now, "stop_at": now if stop else None,
            "channel": sms.provider, "provider_id": sms.provider_id or f"local-{uuid.uuid4().hex}",
            "medium": address.medium, "body": sms.body.replace("\x00", "")[:path.MAX_BODY]}


def enqueue(redis: Any, contact_ids: list[int], behind: bool = False) -> None:
    """Ask a worker to handle these contacts' pending texts: their ids onto a Redis list, and a drain
    job on the reply queue (ahead of broadcasts) unless one is already queued or running; `behind`:
    the web process fell behind in storing them (the drain jobs give way, see BEHIND).

    One round trip per batch of texts instead of an RQ job each: under a burst the web processes
    must do as little as they can. A drain job that was lost (a worker killed) leaves its contacts'
    texts stored and unhandled: the reconciler's handle_stranded handles them within a minute.
    """
    with redis.pipeline(transaction=False) as pipe:
        pipe.rpush(LATER, *contact_ids)
        pipe.set(LATER_JOB, 1, nx=True, ex=JOB_EVERY)
        if behind:
            pipe.set(BEHIND, 1, ex=BEHIND_HOLD)
        first = pipe.execute()[1]
    if first:
        _queue_drain(redis)


def _queue_drain(redis: Any) -> None:
    from gateway.outbound import queues

    queues.get_queue(redis, queues.REPLIES).enqueue(DRAIN, retry=queues.RETRY, result_ttl=0, failure_ttl=86400)


def drain_later(batch: int = 50, budget: float = DRAIN_BUDGET, pause: Callable[[float], None] = time.sleep) -> int:
    """The job: handle the listed contacts' pending texts, each contact in order, until the list is
    empty or `budget` seconds have passed (a new job then takes the rest); replies onto the reply
    queue. How many contacts were handled. While the web processes fall behind in storing texts
    (BEHIND) it works BURST_SHARE of the time, `pause`-ing after each batch.

    The job marker is cleared before the last look at the list, so a text listed meanwhile is either
    seen here or starts a new job (enqueue): none waits for the reconciler unless a worker dies.
    The budget keeps each job short: a worker told to stop (a deploy) finishes its job and is not
    killed in the middle of a batch whose contacts it had taken off the list (those would wait for
    the reconciler), and the replies queued behind it are sent between jobs, not after the backlog.
    """
    from gateway.outbound.jobs import _current

    svc = _current().extensions["gateway"]
    redis, handled, started = svc.redis, 0, time.monotonic()
    while True:
        ids = redis.lpop(LATER, batch)
        if not ids:
            redis.delete(LATER_JOB)
            if not redis.llen(LATER) or not redis.set(LATER_JOB, 1, nx=True, ex=JOB_EVERY):
                return handled  # empty, or another job has just been started for what came in
            continue
        began = time.monotonic()
        handled += int(svc.inbound.handle_contacts(sorted({int(i) for i in ids})))
        if redis.exists(BEHIND):  # the web processes first; never past the job's budget
            left = max(0.0, started + budget - time.monotonic())
            pause(min((time.monotonic() - began) * (1 / BURST_SHARE - 1), left))
        if time.monotonic() - started >= budget and redis.llen(LATER):
            redis.set(LATER_JOB, 1, ex=JOB_EVERY)
            _queue_drain(redis)
            return handled
