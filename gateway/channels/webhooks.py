"""Provider webhooks: inbound SMS and delivery status callbacks."""
from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, request
from sqlalchemy import select

from gateway import services
from gateway.inbound import receive as inbound
from gateway.inbound import spool
from gateway.outbound.outbox import STATUS_RANK
from gateway.models import Message

bp = Blueprint("webhooks", __name__)
logger = logging.getLogger(__name__)

EARLY_TTL = 600  # seconds a callback for a not-yet-written provider id is kept


def _signed_url() -> str:
    """The URL Twilio signed: PUBLIC_BASE_URL plus the path and query, else the request's own."""
    base = current_app.config.get("PUBLIC_BASE_URL")
    if base:
        return base + (request.full_path if request.query_string else request.path)
    return request.url


MAX_WEBHOOK_BYTES = 64 * 1024  # a provider's webhook is a few hundred bytes


def refuse_oversized() -> None:
    """413 for a webhook body far beyond what any provider sends, chunked bodies included.

    Content-Length alone is not enough: a chunked request has none. So the body is read here,
    before anything (the form, a signature check) looks at it, and never past one byte over the
    limit: werkzeug stops reading a stream at the request's max_content_length (silently, so the
    one extra byte is how an oversized body shows). Later reads (request.form) use this copy.
    """
    request.max_content_length = MAX_WEBHOOK_BYTES + 1
    if (request.content_length or 0) > MAX_WEBHOOK_BYTES:
        abort(413)
    if len(request.get_data(cache=True)) > MAX_WEBHOOK_BYTES:
        abort(413)


# Every webhook of this blueprint is held to the limit before its view runs.
bp.before_request(refuse_oversized)


def _verified_twilio():  # type: ignore[no-untyped-def]
    twilio = services().twilio
    if twilio is None:
        logger.warning("Twilio webhook refused: no TWILIO_AUTH_TOKEN to check its signature")
        abort(403)
    if not twilio.validate(_signed_url(), request.form, request.headers.get("X-Twilio-Signature")):
        abort(403)
    return twilio


@bp.post("/sms/twilio")
def twilio_inbound() -> Response:
    """Store the message, handle it, answer with the replies as TwiML."""
    twilio = _verified_twilio()
    try:
        sms = twilio.parse_inbound(request.form)
    except ValueError as exc:
        abort(400, description=str(exc))
    svc = services()
    # None: the database is away and the message waits in the spool; Twilio still gets its answer.
    received = spool.receive(sms, lambda kept: inbound.receive(
        svc.sessions, kept, current_app.config["DEFAULT_COUNTRY"], svc.flows, current_app.config["ORG_NAME"]))
    return Response(twilio.twiml(list(received.texts) if received else []), mimetype="application/xml")


@bp.post("/sms/twilio/status")
def twilio_status() -> tuple[str, int]:
    """Move a sent message's status forward; unknown ids are ignored."""
    twilio = _verified_twilio()
    try:
        update = twilio.parse_status(request.form)
    except ValueError as exc:
        abort(400, description=str(exc))
    with services().sessions() as session, session.begin():
        message = session.scalars(select(Message).where(
            Message.channel == "twilio", Message.provider_id == update.provider_id).with_for_update()).first()
        if message is None:
            # Unknown now, but maybe a send whose id is not written yet: keep it a while
            # (the outbox applies it when it writes the id); truly unknown ids just expire.
            remember_early(update.provider_id, update.status, update.error_code)
            return "", 204
        if STATUS_RANK.get(update.status, -1) > STATUS_RANK.get(message.status, -1):
            message.status = update.status
            message.error_code = update.error_code or message.error_code
    return "", 204


def remember_early(sid: str, status: str, error_code: str | None) -> None:
    key = f"gateway:early-status:{sid}"
    try:
        redis = services().redis
        current = redis.hget(key, "status")
        if current is None or STATUS_RANK.get(status, -1) > STATUS_RANK.get(current.decode(), -1):
            redis.hset(key, mapping={"status": status, "error_code": error_code or ""})
            redis.expire(key, EARLY_TTL)
    except Exception:  # Redis away: the callback is only an update, the send itself is recorded
        logger.warning("could not keep an early status callback for %s", sid)


def early_statuses(redis, sids: list[str]) -> dict[str, tuple[str, str | None]]:  # type: ignore[no-untyped-def]
    """Status callbacks that arrived before these provider ids were written."""
    with redis.pipeline() as pipe:
        for sid in sids:
            pipe.hgetall(f"gateway:early-status:{sid}")
        found = pipe.execute()
    return {sid: (h[b"status"].decode(), h.get(b"error_code", b"").decode() or None)
            for sid, h in zip(sids, found) if h}
