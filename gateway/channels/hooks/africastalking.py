"""Africa's Talking's webhooks, on secret-token URLs: inbound SMS and delivery reports.

Its answer cannot carry a reply, so replies are queued on the reply queue, which workers
empty before any broadcast; they leave through the channel the supporter wrote to.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
from typing import cast

from flask import abort
from werkzeug.wrappers import Request, Response

from gateway import services
from gateway.channels.africastalking import AfricasTalkingProvider
from gateway.channels.hooks.base import seen

logger = logging.getLogger(__name__)


def _africastalking(request: Request, token: str) -> AfricasTalkingProvider:
    """The provider, once the URL's secret token and (when set) the caller's address are right."""
    settings = services().settings
    expected = settings.at_webhook_token
    # Africa's Talking signs nothing: the secret in the URL is what tells its callbacks apart.
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        abort(403)
    networks = settings.at_allowed_ips
    if networks:
        try:
            address = ipaddress.ip_address(request.remote_addr or "")
        except ValueError:
            abort(403)
        if not any(address in network for network in networks):
            logger.warning("Africa's Talking callback from %s refused: not in AT_ALLOWED_IPS", address)
            abort(403)
    provider = services().channels.provider("africastalking")
    if provider is None:
        logger.warning("Africa's Talking callback refused: set AT_USERNAME and AT_API_KEY")
        abort(403)
    return cast(AfricasTalkingProvider, provider)


def africastalking_inbound(request: Request, token: str) -> Response:
    """An incoming SMS: store, handle, queue the replies; 200 with an empty body."""
    provider = _africastalking(request, token)
    try:
        sms = provider.parse_inbound(request.form)
    except ValueError as exc:
        abort(400, description=str(exc))
    svc = services()
    seen(svc.redis, provider.name)
    svc.inbound.receive(sms, inline=False)
    return Response("")


def africastalking_status(request: Request, token: str) -> Response:
    """A delivery report; unknown ids are ignored."""
    provider = _africastalking(request, token)
    try:
        update = provider.parse_status(request.form)
    except ValueError as exc:
        abort(400, description=str(exc))
    svc = services()
    seen(svc.redis, provider.name)
    # Kept in the spool while the database is away, applied when it is back: still acknowledged.
    svc.inbound.receive_status(provider.name, update)
    return Response("")


ROUTES = [("/sms/africastalking/<token>", africastalking_inbound),
          ("/sms/africastalking/<token>/status", africastalking_status)]
