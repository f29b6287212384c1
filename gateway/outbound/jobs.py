"""RQ on Redis (the real server, or an in-process one when REDIS_URL is unset), and the jobs it runs.

Jobs take ids, never numbers or texts, and open their own database sessions. They are enqueued
by dotted name ("gateway.outbound.jobs.send_batch"). Jobs queued under an older name
("gateway.tasks...", "gateway.outbound.tasks...") fail harmlessly on import after an upgrade:
their rows are still `queued` in the database, so the reconciler enqueues them again.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import fakeredis
import redis
from flask import Flask, current_app, has_app_context
from rq import Queue, Retry, SimpleWorker
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty

from gateway.core.flowfile import parse_duration
from gateway.models import utcnow
from gateway.outbound import outbox
from gateway.people import audit, privacy

logger = logging.getLogger(__name__)
REPLIES = "gateway-replies"  # listened to first: a conversation never waits behind a broadcast
BULK = "gateway-bulk"
BATCH_SIZE = 100
# 429s and a provider that is away: RQ's own retry, backing off (seconds).
JOB_TIMEOUT = 3600  # a batch paced at one segment a second may take minutes
RETRY = Retry(max=6, interval=[2, 10, 30, 60, 300, 900])
SEND_BATCH = "gateway.outbound.jobs.send_batch"
RECONCILE = "gateway.outbound.jobs.reconcile"
PURGE = "gateway.outbound.jobs.purge"
RETENTION = "90d"  # message bodies older than this are forgotten by the daily purge (PRIVACY_RETENTION)
_app: Flask | None = None


# -- The queues -------------------------------------------------------------------------------


def connect(url: str | None) -> Any:
    """A Redis client for REDIS_URL, else an in-process fakeredis so no server is needed."""
    if url:
        return redis.Redis.from_url(url)
    return fakeredis.FakeRedis()


def get_queue(connection: Any, name: str = BULK) -> Queue:
    """A gateway queue; jobs are JSON (ids only), never pickles."""
    return Queue(name, connection=connection, serializer=JSONSerializer)


def enqueue_ids(connection: Any, ids: Sequence[int], *, name: str = BULK, at: datetime | None = None,
                batch_size: int = BATCH_SIZE) -> int:
    """Enqueue send jobs carrying batches of outbox ids, in one pipeline; return the job count."""
    q = get_queue(connection, name)
    batches = [list(ids[i:i + batch_size]) for i in range(0, len(ids), batch_size)]
    if at is not None:
        when = at.replace(tzinfo=UTC) if at.tzinfo is None else at
        for batch in batches:
            q.enqueue_at(when, SEND_BATCH, batch, retry=RETRY, job_timeout=JOB_TIMEOUT)
        return len(batches)
    jobs = [Queue.prepare_data(SEND_BATCH, args=(batch,), retry=RETRY, timeout=JOB_TIMEOUT) for batch in batches]
    with connection.pipeline() as pipe:
        q.enqueue_many(jobs, pipeline=pipe)
        pipe.execute()
    logger.info("enqueued %d ids in %d jobs on %s", len(ids), len(batches), name)
    return len(batches)


def pending_jobs(connection: Any) -> int:
    """Send jobs waiting, running or scheduled: when none, queued rows have been orphaned."""
    total = 0
    for name in (REPLIES, BULK):
        q = get_queue(connection, name)
        total += q.count + q.started_job_registry.count + q.scheduled_job_registry.count
    return total


class ThreadWorker(SimpleWorker):
    """An RQ worker that can run in a thread of the web process (the embedded default)."""

    # Job timeouts by a timer thread: the default (SIGALRM) only works in the main thread.
    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:  # signals belong to the main thread
        pass


def work_burst(connection: Any) -> None:
    """Run every job that is due now, in this thread, then return."""
    ThreadWorker([get_queue(connection, REPLIES), get_queue(connection, BULK)], connection=connection,
                 serializer=JSONSerializer).work(burst=True, with_scheduler=True, logging_level="WARNING")


def start_embedded_worker(app: Flask, reconcile: Callable[[], object], interval: float = 1.0,
                          reconcile_every: float = 30.0) -> threading.Thread:
    """Run the same RQ jobs in a daemon thread of this process, for installs without Redis."""

    def loop() -> None:
        last = 0.0
        with app.app_context():
            connection = app.extensions["gateway"].redis
            while True:
                try:
                    if time.monotonic() - last > reconcile_every:
                        reconcile()
                        last = time.monotonic()
                    work_burst(connection)
                except Exception:  # keep the embedded worker alive; the log says what went wrong
                    logger.exception("embedded worker")
                time.sleep(interval)

    thread = threading.Thread(target=loop, name="gateway-embedded-worker", daemon=True)
    thread.start()
    return thread


# -- The jobs ---------------------------------------------------------------------------------


def _current() -> Flask:
    """The app of this worker: the one in context, else one built once (plain `rq worker`)."""
    global _app
    if has_app_context():
        return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]
    if _app is None:
        from gateway import (
            create_app,  # local: the factory imports this module to wire the jobs in
        )

        _app = create_app()
    return _app


def send_batch(ids: list[int]) -> dict[str, Any]:
    """Send a batch of outbox rows; a 429 re-raises so RQ retries the batch later."""
    result = outbox.send_batch(_current().extensions["gateway"].outbox(), [int(i) for i in ids])
    return result.__dict__


def reconcile(force: bool = False) -> dict[str, Any]:
    """Settle rows left sending; re-enqueue queued rows when no job is left to send them."""
    app = _current()
    svc = app.extensions["gateway"]
    done = outbox.reconcile(svc.outbox(), stale_after=timedelta(seconds=int(app.config["SENDING_STALE_SECONDS"])))
    enqueued = 0
    if done.due and (force or pending_jobs(svc.redis) == 0):
        enqueued = enqueue_ids(svc.redis, done.due)
    stranded = svc.inbound.handle_stranded()
    closed = close_expired(app)
    schedule_purge(app)
    spooled = svc.inbound.replay().stored  # texts kept on this host while the database was away
    logger.info("reconcile: %d settled as sent, %d requeued, %d due, %d jobs enqueued, %d inbound handled late, "
                "%d replayed from the spool, %d expired conversations closed", done.settled_sent, done.requeued,
                len(done.due), enqueued, stranded, spooled, closed)
    return {"settled_sent": done.settled_sent, "requeued": done.requeued, "due": len(done.due),
            "jobs": enqueued, "inbound_handled_late": stranded, "spool_replayed": spooled,
            "expired_closed": closed}


def close_expired(app: Flask) -> int:
    """Close the conversations past their expiry; a report's is forgotten (gateway/people/privacy.py)."""
    svc = app.extensions["gateway"]
    return privacy.close_expired(svc.sessions, svc.flow_set, utcnow()) if svc.flow_set is not None else 0


def schedule_purge(app: Flask) -> bool:
    """Enqueue today's purge once, whichever worker's reconciler gets there first (a Redis key per day)."""
    connection = app.extensions["gateway"].redis
    day = utcnow().date().isoformat()
    if not connection.set(f"gateway:purge:{day}", "1", nx=True, ex=2 * 86400):
        return False
    get_queue(connection, BULK).enqueue(PURGE, job_id=f"purge-{day}", result_ttl=86400)
    return True


def purge() -> dict[str, Any]:
    """The daily `privacy purge`: bodies and answers older than PRIVACY_RETENTION, audited."""
    app = _current()
    older_than = str(app.config.get("PRIVACY_RETENTION") or RETENTION)
    age = parse_duration(older_than) or parse_duration(RETENTION)
    assert age is not None
    with app.extensions["gateway"].sessions() as session, session.begin():
        done = privacy.purge(session, utcnow() - age)
        audit.record(session, "worker", "privacy.purge", older_than=older_than, messages=done.messages,
                     conversations=done.conversations)
    logger.info("purge: %d message bodies and %d conversations' answers older than %s removed",
                done.messages, done.conversations, older_than)
    return {"messages": done.messages, "conversations": done.conversations}
