"""RQ jobs. They take ids, never numbers or texts, and open their own database sessions."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app, has_app_context

from gateway.outbound import outbox
from gateway.outbound import jobs as queue
from gateway.inbound import spool
from gateway.core.compose import parse_quiet_hours
from gateway.outbound.pacing import Pacer, parse_rates
from gateway.core.places import find_place
from gateway.channels.webhooks import early_statuses

logger = logging.getLogger(__name__)
_app: Flask | None = None


def _current() -> Flask:
    """The app of this worker: the one in context, else one built once (plain `rq worker`)."""
    global _app
    if has_app_context():
        return current_app._get_current_object()  # type: ignore[attr-defined]
    if _app is None:
        from gateway import create_app

        _app = create_app()
    return _app


def build_outbox(app: Flask) -> outbox.Outbox:
    """The outbox as configured for this app."""
    svc = app.extensions["gateway"]
    cfg = app.config
    gazetteers = list(svc.flows.gazetteers.values())
    by_country = {g.country: g.timezone for g in gazetteers}

    def timezone_for(place: str | None, country: str | None) -> str:
        found = find_place(place, gazetteers) if place else None
        if found:
            return found.timezone
        return by_country.get(country or "") or by_country.get(cfg["DEFAULT_COUNTRY"]) or "UTC"

    def schedule(ids: list[int], when: datetime) -> None:
        queue.enqueue_ids(svc.redis, ids, at=when + timedelta(seconds=1))

    base = cfg.get("PUBLIC_BASE_URL")
    chans = svc.channels
    twilio_sends = svc.provider.name == "twilio" or (chans is not None and "twilio" in chans.providers)
    # Each channel (a phone, a sender id) has its own rate from the routing file; SENDER_RATES wins.
    rates = {**(chans.rates if chans is not None else {}), **parse_rates(cfg["SENDER_RATES"])}
    return outbox.Outbox(
        sessions=svc.sessions, provider=svc.provider,
        pacer=Pacer(svc.redis, float(cfg["SENDER_RATE"]), rates),
        timezone_for=timezone_for, quiet=parse_quiet_hours(cfg["QUIET_HOURS"]),
        status_callback=f"{base}/sms/twilio/status" if base and twilio_sends else None,
        schedule=schedule, early_status=lambda sids: early_statuses(svc.redis, sids), channels=chans,
        concurrency=int(cfg["SEND_CONCURRENCY"]))


def send_batch(ids: list[int]) -> dict[str, Any]:
    """Send a batch of outbox rows; a 429 re-raises so RQ retries the batch later."""
    result = outbox.send_batch(build_outbox(_current()), [int(i) for i in ids])
    return result.__dict__


def reconcile(force: bool = False) -> dict[str, Any]:
    """Settle rows left sending; re-enqueue queued rows when no job is left to send them."""
    app = _current()
    box = build_outbox(app)
    done = outbox.reconcile(box, stale_after=timedelta(seconds=int(app.config["SENDING_STALE_SECONDS"])))
    redis = app.extensions["gateway"].redis
    enqueued = 0
    if done.due and (force or queue.pending_jobs(redis) == 0):
        enqueued = queue.enqueue_ids(redis, done.due)
    stranded = handle_stranded(app)
    closed = close_expired(app)
    schedule_purge(app)
    spooled = spool.replay_now(app).stored  # texts kept on this host while the database was away
    logger.info("reconcile: %d settled as sent, %d requeued, %d due, %d jobs enqueued, %d inbound handled late, "
                "%d replayed from the spool, %d expired conversations closed", done.settled_sent, done.requeued,
                len(done.due), enqueued, stranded, spooled, closed)
    return {"settled_sent": done.settled_sent, "requeued": done.requeued, "due": len(done.due),
            "jobs": enqueued, "inbound_handled_late": stranded, "spool_replayed": spooled,
            "expired_closed": closed}


def close_expired(app: Flask) -> int:
    """Close the conversations past their expiry; a report's is forgotten (gateway/privacy.py)."""
    from gateway.people import privacy
    from gateway.models import utcnow

    svc = app.extensions["gateway"]
    return privacy.close_expired(svc.sessions, svc.flow_set, utcnow()) if svc.flow_set is not None else 0


RETENTION = "90d"  # message bodies older than this are forgotten by the daily purge (PRIVACY_RETENTION)


def schedule_purge(app: Flask) -> bool:
    """Enqueue today's purge once, whichever worker's reconciler gets there first (a Redis key per day)."""
    from gateway.models import utcnow

    redis = app.extensions["gateway"].redis
    day = utcnow().date().isoformat()
    if not redis.set(f"gateway:purge:{day}", "1", nx=True, ex=2 * 86400):
        return False
    queue.queue(redis, queue.BULK).enqueue("gateway.outbound.tasks.purge", job_id=f"purge-{day}", result_ttl=86400)
    return True


def purge() -> dict[str, Any]:
    """The daily `privacy purge`: bodies and answers older than PRIVACY_RETENTION, audited."""
    from gateway.people import audit
    from gateway.core.flowfile import parse_duration
    from gateway.models import utcnow
    from gateway.people.privacy import purge as purge_older

    app = _current()
    older_than = str(app.config.get("PRIVACY_RETENTION") or RETENTION)
    age = parse_duration(older_than) or parse_duration(RETENTION)
    assert age is not None
    with app.extensions["gateway"].sessions() as session, session.begin():
        done = purge_older(session, utcnow() - age)
        audit.record(session, "worker", "privacy.purge", older_than=older_than, messages=done.messages,
                     conversations=done.conversations)
    logger.info("purge: %d message bodies and %d conversations' answers older than %s removed",
                done.messages, done.conversations, older_than)
    return {"messages": done.messages, "conversations": done.conversations}


def handle_stranded(app: Flask, older_than: timedelta = timedelta(minutes=1)) -> int:
    """Handle inbound messages stored but never handled (the web process died in between).

    Their webhook has long been answered, so the replies go out through the reply queue. A
    text that fails is retried and set aside inside `inbound.handle_pending`; a pass that
    fails as a whole counts against the contact's oldest text, so it too is set aside after
    `inbound.MAX_ATTEMPTS` runs and this job never fails every minute. Returns the contacts handled.
    """
    from sqlalchemy import select

    from gateway.inbound import receive as inbound
    from gateway.models import Message, utcnow

    svc = app.extensions["gateway"]
    with svc.sessions() as session:
        contact_ids = sorted(set(session.scalars(select(Message.contact_id).where(
            Message.direction == "in", Message.handled_at.is_(None), Message.contact_id.is_not(None),
            Message.created_at <= utcnow() - older_than))))
    handled = 0
    for contact_id in contact_ids:
        try:
            reply_ids = inbound.handle_pending(svc.sessions, contact_id, svc.flows, app.config["ORG_NAME"],
                                               inline=False)
        except Exception as exc:  # one contact must not stop the others, nor the spool replay after this
            logger.warning("contact %s: pending inbound not handled (%s)", contact_id, inbound.describe_error(exc))
            try:  # a STOP among its texts still wins; the oldest text is a try nearer to being set aside
                reply_ids = inbound.count_failed_pass(svc.sessions, contact_id, exc, svc.flows, app.config["ORG_NAME"])
            except Exception as again:  # the database is away: the next run tries again
                logger.warning("contact %s: failed pass not counted (%s)", contact_id, inbound.describe_error(again))
                continue
            if reply_ids:
                queue.enqueue_ids(svc.redis, reply_ids, name=queue.REPLIES)
            continue
        handled += 1
        if reply_ids:
            queue.enqueue_ids(svc.redis, reply_ids, name=queue.REPLIES)
    return handled
