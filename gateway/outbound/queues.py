"""The RQ queues (on Redis, or an in-process fakeredis when REDIS_URL is unset), and putting ids on them.

Jobs are enqueued by dotted name (gateway.outbound.jobs.*) with ids only; this module never imports
what the jobs run, so the modules that write rows (broadcasts, oneoff) can enqueue them without a cycle.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import fakeredis
import redis
from flask import Flask
from rq import Queue, Retry, SimpleWorker
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty

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
CASES_TICK = "gateway.outbound.jobs.cases_tick"  # case deadlines (gateway/cases/timer.py), then checks (evidence)


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


def start_embedded_worker(app: Flask, reconcile: Callable[..., object], interval: float = 1.0,
                          reconcile_every: float = 30.0,
                          nudged_at: Callable[[], float] | None = None) -> threading.Thread:
    """Run the same RQ jobs in a daemon thread of this process, for installs without Redis.

    `nudged_at` gives the time a command last queued rows for this process (`broadcast send`
    hands its broadcast over so): a new time runs the reconciler at once, which enqueues them.
    """

    def loop() -> None:
        last = 0.0
        seen = nudged_at() if nudged_at else 0.0
        with app.app_context():
            connection = app.extensions["gateway"].redis
            while True:
                try:
                    nudge = nudged_at() if nudged_at else 0.0
                    if nudge != seen:
                        seen = nudge
                        reconcile(force=True)  # rows in jobs already queued are claimed once: no doubles
                        last = time.monotonic()
                    elif time.monotonic() - last > reconcile_every:
                        reconcile()
                        last = time.monotonic()
                    work_burst(connection)
                except Exception:  # keep the embedded worker alive; the log says what went wrong
                    logger.exception("embedded worker")
                time.sleep(interval)

    thread = threading.Thread(target=loop, name="gateway-embedded-worker", daemon=True)
    thread.start()
    return thread
