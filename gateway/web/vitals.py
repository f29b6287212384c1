"""The few numbers that say whether the gateway is working: read from the database, Redis and the spool.

/healthz, /metrics and the dashboard all show these, so they are gathered in one place, at the
moment they are asked for. Nothing here is counted in a process's memory: with several gunicorn
processes and workers, each would hold only its own share (see gateway/web/metrics.py).
"""
from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rq import Worker
from sqlalchemy import func, or_, select, text
from sqlalchemy.orm import Session

from gateway import services
from gateway.models import Message, MessageStatus, utcnow
from gateway.outbound import queues
from gateway.outbound.jobs import RECONCILER_KEY
from gateway.outbound.pacing import PACING_KEY

logger = logging.getLogger(__name__)
# The oldest waiting message may be this old before the backlog counts as stuck, plus the time the
# waiting messages need at one sender's rate (a broadcast of 1000 at 1/s legitimately takes 17 min).
BACKLOG_GRACE = timedelta(minutes=15)


@dataclass
class Vitals:
    """What is up, what waits, and what has piled up; None where it could not be read."""

    database: bool = False
    queue: bool = False  # Redis (or the in-process queue) answers
    waiting: int | None = None  # outbound messages due and not yet claimed
    oldest_seconds: float | None = None  # how long the oldest of them has been due
    held: int | None = None  # queued for later (quiet hours, a send time)
    spool_kept: int = 0  # inbound texts kept on disk while the database was away, not replayed yet
    spool_rejected: int = 0  # kept texts that could not be replayed (set aside)
    workers: int | None = None  # RQ workers alive; None on the embedded default (the server runs its own)
    texts_in: dict[str, int] = field(default_factory=dict)  # by channel
    messages_out: dict[tuple[str, str], int] = field(default_factory=dict)  # (status, channel) -> count
    rq_jobs: dict[tuple[str, str], int] = field(default_factory=dict)  # (queue, state) -> jobs
    pacing: dict[str, float] = field(default_factory=dict)  # waits, seconds
    reconciler: dict[str, int] = field(default_factory=dict)  # action -> total
    # Parts ("database", "queue") that answered but whose figures could not all be read (a statement
    # timed out): /metrics then omits those samples and says so (zeros would read as counter resets).
    failed: set[str] = field(default_factory=set)

    def backlog_stuck(self, sender_rate: float) -> bool:
        """The oldest waiting message has waited longer than the whole backlog should take to send."""
        if not self.waiting or self.oldest_seconds is None:
            return False
        allowed = BACKLOG_GRACE.total_seconds() + self.waiting / max(sender_rate, 0.001)
        return self.oldest_seconds > allowed

    def degraded(self, sender_rate: float) -> list[str]:
        """Each thing that is wrong, in a few words an operator can act on (no names, no numbers of people)."""
        problems = []
        if not self.database:
            problems.append("database unreachable")
        if not self.queue:
            problems.append("queue unreachable")
        if self.backlog_stuck(sender_rate):
            age = int(self.oldest_seconds or 0)
            problems.append(f"queue backlog: {self.waiting} messages waiting, the oldest {age} s")
        if self.spool_kept:
            problems.append(f"spool: {self.spool_kept} texts kept while the database was away, not replayed yet")
        if self.workers == 0:
            problems.append("no worker is running")
        return problems


def gather(detail: bool = False, session: Session | None = None) -> Vitals:
    """Read the vitals now; `detail` adds the per-channel counts /metrics shows (a scan of messages).

    A page that already has a session passes it: on SQLite a second connection would wait for
    the first one's write lock.
    """
    svc = services()
    v = Vitals()
    now = utcnow()
    try:
        with nullcontext(session) if session is not None else svc.sessions() as s:
            s.execute(text("SELECT 1"))
            v.database = True
            _counts(s, v, now, detail)
    except Exception as exc:  # any failure means "not reachable"; the log keeps the reason
        logger.warning("vitals: database: %s", exc)
        if v.database:
            v.failed.add("database")
            v.waiting = v.oldest_seconds = v.held = None
            v.texts_in, v.messages_out = {}, {}
    spool = svc.inbound.spool
    v.spool_kept, v.spool_rejected = len(spool.pending()), spool.rejected()
    try:
        svc.redis.ping()
        v.queue = True
        _queue(svc, v, detail)
    except Exception as exc:
        logger.warning("vitals: queue: %s", exc)
        if v.queue:
            v.failed.add("queue")
            v.rq_jobs, v.pacing, v.reconciler = {}, {}, {}
    return v


def _counts(s: Session, v: Vitals, now: datetime, detail: bool) -> None:
    """The outbound backlog, and with `detail` the messages by direction, status and channel."""
    due = or_(Message.send_after.is_(None), Message.send_after <= now)
    queued = (Message.status == MessageStatus.QUEUED) & (Message.direction == "out")
    waiting, oldest = s.execute(select(func.count(), func.min(func.coalesce(Message.send_after,
                                                                             Message.created_at)))
                                .where(queued, due)).one()
    v.waiting = int(waiting)
    v.oldest_seconds = max(0.0, (now - _naive(oldest)).total_seconds()) if oldest else None
    v.held = int(s.scalar(select(func.count()).select_from(Message).where(queued, ~due)) or 0)
    if detail:
        rows = s.execute(select(Message.direction, Message.status, Message.channel, func.count())
                         .group_by(Message.direction, Message.status, Message.channel)).tuples()
        for direction, status, channel, n in rows:
            if direction == "in":
                v.texts_in[channel] = v.texts_in.get(channel, 0) + n
            else:
                v.messages_out[(status, channel)] = n


def _queue(svc: Any, v: Vitals, detail: bool) -> None:
    """Workers alive, and with `detail` the RQ jobs, the pacing waits and the reconciler's actions."""
    if svc.settings.redis_url:
        v.workers = len(Worker.all(connection=svc.redis))  # dead workers' keys expire with their heartbeat
    if detail:
        for name in (queues.REPLIES, queues.BULK):
            q = queues.get_queue(svc.redis, name)
            v.rq_jobs[(name, "queued")] = q.count
            v.rq_jobs[(name, "started")] = q.started_job_registry.count
            v.rq_jobs[(name, "scheduled")] = q.scheduled_job_registry.count
            v.rq_jobs[(name, "failed")] = q.failed_job_registry.count
        v.pacing = {_text(k): float(n) for k, n in svc.redis.hgetall(PACING_KEY).items()}
        v.reconciler = {_text(k): int(float(n)) for k, n in svc.redis.hgetall(RECONCILER_KEY).items()}


def _naive(when: datetime) -> datetime:
    """The database's UTC time without a zone, as utcnow() gives it (PostgreSQL may hand one back)."""
    return when.replace(tzinfo=None) if when.tzinfo else when


def _text(key: bytes | str) -> str:
    return key.decode() if isinstance(key, bytes) else key
