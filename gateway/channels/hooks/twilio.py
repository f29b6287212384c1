"""Twilio's webhooks: inbound SMS answered with TwiML, and delivery status callbacks."""
from __future__ import annotations

import logging

from flask import abort
from werkzeug.wrappers import Request, Response

from gateway import services
from gateway.channels.twilio import TwilioProvider

logger = logging.getLogger(__name__)


def _signed_url(request: Request) -> str:
    """The URL Twilio signed: PUBLIC_BASE_URL plus the path and query, else the request's own."""
    base = services().settings.public_base_url
    if base:
        return base + (request.full_path if request.query_string else request.path)
    return request.url


def _verified_twilio(request: Request) -> TwilioProvider:
    twilio = services().twilio
    if twilio is None:
        logger.warning("Twilio webhook refused: no TWILIO_AUTH_TOKEN to check its signature")
        abort(403)
    if not twilio.validate(_signed_url(request), request.form, request.headers.get("X-Twilio-Signature")):
        abort(403)
    return twilio  # type: ignore[no-any-return]


def twilio_inbound(request: Request) -> Response:
    """Store the message, handle it, answer with the replies as TwiML."""
    twilio = _verified_twilio(request)
    try:
        sms = twilio.parse_inbound(request.form)
    except ValueError as exc:
        abort(400, description=str(exc))
    # None: the database is away and the message waits in the spool; Twilio still gets its answer.
    received = services().inbound.receive(sms, inline=True)
    return Response(twilio.twiml(list(received.texts) if received else []), mimetype="application/xml")


def twilio_status(request: Request) -> Response:
    """Move a sent message's status forward; unknown ids are ignored."""
    twilio = _verified_twilio(request)
    try:
        update = twilio.parse_status(request.form)
    except ValueError as exc:
        abort(400, description=str(exc))
    svc = services()
    # Kept in the spool while the database is away, applied when it is back: still acknowledged.
    svc.inbound.receive_status("twilio", update)
    return Response(status=204)


ROUTES = [("/sms/twilio", twilio_inbound), ("/sms/twilio/status", twilio_status)]
