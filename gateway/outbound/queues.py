"""The RQ queues (on Redis, or an in-process fakeredis when REDIS_URL is unset), and putting ids on them.

Jobs are enqueued by dotted name (gateway.outbound.jobs.*) with ids only; this module never imports
what the jobs run, so the modules that write rows (broadcasts, oneoff) can enqueue them without a cycle.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import fakeredis
import redis
from flask import Flask
from rq import Queue, Retry, SimpleWorker
from rq.job import Job
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
HEARTBEAT_SECONDS = 10  # WORKER_HEARTBEAT_SECONDS' default
MISSED_BEATS = 3  # a running job whose worker missed this many heartbeats is abandoned
# A scheduled job (a retry) this late was not moved by any scheduler: its scheduler died with its
# worker, and RQ's other schedulers take its lock over only minutes later. Its rows count as nobody's.
OVERDUE_SECONDS = 10


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


def live_ids(connection: Any) -> set[int]:
    """Outbox ids a live send job still carries: waiting, scheduled (a retry, quiet hours) or running.

    A running job is live while its worker keeps beating (HeartbeatWorker): RQ's own
    StartedJobRegistry.cleanup() first takes out the jobs whose worker stopped (killed, lost),
    retrying or failing them, so the rows of a dead worker's job count as nobody's. A scheduled
    job counts until it is OVERDUE_SECONDS late.
    """
    job_ids: list[str] = []
    for name in (REPLIES, BULK):
        q = get_queue(connection, name)
        q.started_job_registry.cleanup()  # RQ's check of the running jobs' heartbeats
        job_ids += q.get_job_ids() + q.started_job_registry.get_job_ids(cleanup=False)
        # The scheduled registry is scored by the time each job is due.
        job_ids += [j.decode() if isinstance(j, bytes) else j for j in connection.zrangebyscore(
            q.scheduled_job_registry.key, time.time() - OVERDUE_SECONDS, "+inf")]
    ids: set[int] = set()
    for job in Job.fetch_many(list(dict.fromkeys(job_ids)), connection=connection, serializer=JSONSerializer):
        if job is not None and job.func_name == SEND_BATCH and job.args:
            ids.update(int(i) for i in job.args[0])
    return ids


def pending_jobs(connection: Any) -> int:
    """Send jobs waiting, running or scheduled: when none, queued rows have been orphaned."""
    total = 0
    for name in (REPLIES, BULK):
        q = get_queue(connection, name)
        total += q.count + q.started_job_registry.count + q.scheduled_job_registry.count
    return total


class HeartbeatWorker(SimpleWorker):
    """A SimpleWorker that tells RQ it is alive while a job runs, so a dead one is seen in seconds.

    RQ's SimpleWorker registers a running job for its whole timeout (an hour here) and sends no
    heartbeat until it ends; a worker killed mid-batch then holds the batch's ids for an hour.
    Here the started-job registry entry lasts MISSED_BEATS heartbeats, and a thread renews it (with
    RQ's own maintain_heartbeats) every `job_monitoring_interval` seconds while the job runs.
    """

    def get_heartbeat_ttl(self, job: Job) -> int:
        return max(1, math.ceil(MISSED_BEATS * self.job_monitoring_interval))

    def execute_job(self, job: Job, queue: Queue) -> None:
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.job_monitoring_interval):
                try:
                    self.maintain_heartbeats(job)
                except Exception:  # Redis away for a moment: the next beat tries again
                    logger.warning("heartbeat of job %s failed", job.id, exc_info=True)

        thread = threading.Thread(target=beat, name=f"rq-heartbeat-{job.id}", daemon=True)
        thread.start()
        try:
            super().execute_job(job, queue)
        finally:
            stop.set()
            thread.join()


class ThreadWorker(HeartbeatWorker):
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
