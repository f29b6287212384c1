"""The Android phones' webhook (signed): sms:received, sms:sent / delivered / failed, system:ping.

A phone's answer cannot carry a reply, so replies are queued on the reply queue, which workers
empty before any broadcast; they leave through the phone the supporter wrote to.
"""
from __future__ import annotations

import logging
from typing import cast

from flask import abort
from werkzeug.wrappers import Request, Response

from gateway import services
from gateway.channels.android import AndroidProvider, Ping
from gateway.channels.base import InboundSMS, StatusUpdate
from gateway.channels.hooks.base import seen

logger = logging.getLogger(__name__)


def _phone(request: Request) -> AndroidProvider | None:
    """The phone this webhook claims to be from: `?phone=NAME`, else the only (or the `android`) phone."""
    chans = services().channels
    name = request.args.get("phone") or ("android" if "android" in chans.phones
                                         else chans.phones[0] if len(chans.phones) == 1 else "")
    return cast(AndroidProvider, chans.provider(name)) if name in chans.phones else None


def android_event(request: Request) -> Response:
    """sms:received, sms:sent / delivered / failed, system:ping from a phone; signature checked."""
    provider = _phone(request)
    body = request.get_data(cache=True)  # at most MAX_WEBHOOK_BYTES: Webhooks ran refuse_oversized first
    timestamp, signature = request.headers.get("X-Timestamp"), request.headers.get("X-Signature")
    # Each phone has its own key (channels.build refuses a shared one), so a signature proves which
    # phone sent the event, and an event replayed to another phone's URL fails here. An unknown
    # phone gets the same answer as a wrong signature: the URL does not tell which names exist.
    if provider is None or not provider.verify(body, timestamp, signature):
        if provider is None:
            logger.warning("Android webhook refused: no phone %r (register it as /sms/android?phone=NAME)",
                           request.args.get("phone", "")[:40])
        abort(403)
    try:
        event = provider.parse_event(body)
    except ValueError as exc:
        abort(400, description=str(exc))
    svc = services()
    seen(svc.redis, provider.name)
    if isinstance(event, InboundSMS):
        country = svc.channels.countries.get(provider.name) or svc.settings.default_country
        svc.inbound.receive(event, inline=False, country=country)
    elif isinstance(event, StatusUpdate):
        # Kept in the spool while the database is away, applied when it is back: still acknowledged.
        svc.inbound.receive_status(provider.name, event)
    elif isinstance(event, Ping):
        logger.debug("%s: %s", provider.name, event.event)
    return Response('{"ok": true}', mimetype="application/json")


ROUTES = [("/sms/android", android_event)]
