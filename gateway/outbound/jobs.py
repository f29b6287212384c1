"""The jobs the workers run (gateway/outbound/queues.py puts them on RQ's queues).

Jobs take ids, never numbers or texts, and open their own database sessions. They are enqueued
by dotted name ("gateway.outbound.jobs.send_batch"). Jobs queued under an older name
("gateway.tasks...", "gateway.outbound.tasks...") fail harmlessly on import after an upgrade:
their rows are still `queued` in the database, so the reconciler enqueues them again.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import Flask, current_app, has_app_context

from gateway.models import utcnow
from gateway.outbound import outbox, queues
from gateway.people import audit, privacy

logger = logging.getLogger(__name__)
RECONCILER_KEY = "gateway:metrics:reconciler"  # hash: each action's total over every run, for /metrics
_app: Flask | None = None


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
    done = outbox.reconcile(svc.outbox(), stale_after=timedelta(seconds=svc.settings.sending_stale_seconds))
    enqueued = 0
    if done.due and (force or queues.pending_jobs(svc.redis) == 0):
        enqueued = queues.enqueue_ids(svc.redis, done.due)
    stranded = svc.inbound.handle_stranded()
    closed = close_expired(app)
    schedule_purge(app)
    spooled = svc.inbound.replay().stored  # texts kept on this host while the database was away
    if not svc.settings.redis_url:
        # The embedded worker has no loop of its own that enqueues cases_tick (`flask worker` does,
        # every minute): it runs the case deadlines here, with the reconciler, each minute.
        cases_tick()
    logger.info("reconcile: %d settled as sent, %d requeued, %d due, %d jobs enqueued, %d inbound handled late, "
                "%d replayed from the spool, %d expired conversations closed", done.settled_sent, done.requeued,
                len(done.due), enqueued, stranded, spooled, closed)
    result = {"settled_sent": done.settled_sent, "requeued": done.requeued, "due": len(done.due),
              "jobs": enqueued, "inbound_handled_late": stranded, "spool_replayed": spooled,
              "expired_closed": closed}
    count_actions(svc.redis, result)
    return result


def count_actions(connection: Any, result: dict[str, int]) -> None:
    """Add a reconciler run's actions to the totals in Redis (every worker's runs add up); never fails the run."""
    try:
        with connection.pipeline(transaction=False) as pipe:
            pipe.hincrby(RECONCILER_KEY, "runs", 1)
            for action, n in result.items():
                if n and action != "due":  # "due" is a level, not an action: /metrics shows the queue itself
                    pipe.hincrby(RECONCILER_KEY, action, n)
            pipe.execute()
    except Exception as exc:  # Redis away: the figures miss one run, the work is done
        logger.warning("reconcile: could not count its actions: %s", exc)


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
    queues.get_queue(connection, queues.BULK).enqueue(queues.PURGE, job_id=f"purge-{day}", result_ttl=86400)
    return True


def age_text(age: timedelta) -> str:
    """An age as PRIVACY_RETENTION is written (90d, 12h, 30m), in its largest whole unit, for the audit."""
    minutes = int(age.total_seconds()) // 60
    for unit, size in (("d", 24 * 60), ("h", 60)):
        if minutes and minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def purge() -> dict[str, Any]:
    """The daily `privacy purge`: bodies and answers older than PRIVACY_RETENTION, audited."""
    svc = _current().extensions["gateway"]
    age: timedelta = svc.settings.privacy_retention
    older_than = age_text(age)
    with svc.sessions() as session, session.begin():
        done = privacy.purge(session, utcnow() - age)
        audit.record(session, "worker", "privacy.purge", older_than=older_than, messages=done.messages,
                     conversations=done.conversations)
    logger.info("purge: %d message bodies and %d conversations' answers older than %s removed",
                done.messages, done.conversations, older_than)
    return {"messages": done.messages, "conversations": done.conversations}


def cases_tick() -> dict[str, Any]:
    """Case deadlines (overdue cases go up their ladder, organizers told: gateway/cases/timer.py), then
    the delivery checks and corroborations (gateway/evidence/checks.py)."""
    from gateway.cases import timer  # local: gateway.cases imports the outbound package
    from gateway.evidence import checks  # local, as above

    app = _current()
    with app.extensions["gateway"].sessions() as session, session.begin():
        done = timer.tick(session, utcnow())
    # Delivery checks and corroboration ride on the same minute (gateway/evidence/checks.py).
    with app.extensions["gateway"].sessions() as session, session.begin():
        done["checks"] = checks.tick(session, utcnow())
    if done["checks"]["asked"] or done["checks"]["closed"]:
        logger.info("checks tick: %(opened)d opened, %(asked)d supporters asked, %(closed)d closed", done["checks"])
    if done["overdue"]:
        logger.info("cases tick: %(overdue)d overdue, %(escalated)d sent up a rung, %(top_rung)d at the top rung",
                    done)
    return done
