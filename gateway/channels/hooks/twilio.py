"""Twilio's webhooks: inbound SMS answered with TwiML, and delivery status callbacks."""
from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, request

from gateway import services
from gateway.channels.hooks.base import refuse_oversized
from gateway.channels.twilio import TwilioProvider

bp = Blueprint("twilio_hooks", __name__)
bp.before_request(refuse_oversized)  # before any form, body or signature is read
logger = logging.getLogger(__name__)


def _signed_url() -> str:
    """The URL Twilio signed: PUBLIC_BASE_URL plus the path and query, else the request's own."""
    base = services().settings.public_base_url
    if base:
        return base + (request.full_path if request.query_string else request.path)
    return request.url


def _verified_twilio() -> TwilioProvider:
    twilio = services().twilio
    if twilio is None:
        logger.warning("Twilio webhook refused: no TWILIO_AUTH_TOKEN to check its signature")
        abort(403)
    if not twilio.validate(_signed_url(), request.form, request.headers.get("X-Twilio-Signature")):
        abort(403)
    return twilio  # type: ignore[no-any-return]


@bp.post("/sms/twilio")
def twilio_inbound() -> Response:
    """Store the message, handle it, answer with the replies as TwiML."""
    twilio = _verified_twilio()
    try:
        sms = twilio.parse_inbound(request.form)
    except ValueError as exc:
        abort(400, description=str(exc))
    # None: the database is away and the message waits in the spool; Twilio still gets its answer.
    received = services().inbound.receive(sms, inline=True)
    return Response(twilio.twiml(list(received.texts) if received else []), mimetype="application/xml")


@bp.post("/sms/twilio/status")
def twilio_status() -> tuple[str, int]:
    """Move a sent message's status forward; unknown ids are ignored."""
    twilio = _verified_twilio()
    try:
        update = twilio.parse_status(request.form)
    except ValueError as exc:
        abort(400, description=str(exc))
    svc = services()
    # Kept in the spool while the database is away, applied when it is back: still acknowledged.
    svc.inbound.receive_status("twilio", update)
    return "", 204
