"""Webhooks of the local channels: Africa's Talking (secret-token URLs) and Android phones (signed).

Neither can carry a reply on its answer, so replies are queued on the reply queue, which workers
empty before any broadcast; they leave through the channel the supporter wrote to.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
from datetime import datetime

from flask import Blueprint, abort, current_app, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from gateway import services
from gateway import channels
from gateway.inbound import receive as inbound
from gateway.outbound import jobs as queue
from gateway.inbound import spool
from gateway.settings import allowed_ips
from gateway.models import Message
from gateway.outbound.outbox import STATUS_RANK
from gateway.channels.android import AndroidProvider, Ping
from gateway.channels.base import InboundSMS, StatusUpdate
from gateway.channels.webhooks import refuse_oversized, remember_early

bp = Blueprint("channel_hooks", __name__)
bp.before_request(refuse_oversized)  # before any form, body or signature is read
logger = logging.getLogger(__name__)


def receive(sms: InboundSMS, country: str, now: datetime | None = None) -> list[int]:
    """Store, handle in order, queue the replies; the queued reply ids (enqueued after commit)."""
    svc = services()
    # None: the database is away; the message waits in the spool and its replay queues the replies.
    received = spool.receive(sms, lambda kept: inbound.receive(svc.sessions, kept, country, svc.flows,
                                                               current_app.config["ORG_NAME"], now=now, inline=False))
    ids = list(received.queued) if received else []
    if ids:
        try:
            queue.enqueue_ids(svc.redis, ids, name=queue.REPLIES)
        except Exception:  # the rows are queued in the database: the reconciler enqueues them again
            logger.exception("could not enqueue replies %s", ids)
    return ids


def apply_status(channel: str, update: StatusUpdate) -> None:
    """Move a sent message's status forward; a status for an id not written yet is kept a while."""
    with services().sessions() as session, session.begin():
        message = session.scalars(select(Message).where(
            Message.channel == channel, Message.provider_id == update.provider_id).with_for_update()).first()
        if message is None:
            remember_early(update.provider_id, update.status, update.error_code)
            return
        if STATUS_RANK.get(update.status, -1) > STATUS_RANK.get(message.status, -1):
            message.status = update.status
            message.error_code = update.error_code or message.error_code


def _seen(name: str) -> None:
    try:
        channels.mark_seen(services().redis, name)
    except Exception:  # only a display: a webhook is not refused over it
        logger.warning("could not record contact with %s", name)


# -- Africa's Talking -------------------------------------------------------------------------


def _africastalking(token: str):  # type: ignore[no-untyped-def]
    """The provider, once the URL's secret token and (when set) the caller's address are right."""
    cfg = current_app.config
    expected = cfg.get("AT_WEBHOOK_TOKEN")
    # Africa's Talking signs nothing: the secret in the URL is what tells its callbacks apart.
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        abort(403)
    networks = allowed_ips(cfg.get("AT_ALLOWED_IPS") or "")
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
    return provider


@bp.post("/sms/africastalking/<token>")
def africastalking_inbound(token: str) -> ResponseReturnValue:
    """An incoming SMS: store, handle, queue the replies; 200 with an empty body."""
    provider = _africastalking(token)
    try:
        sms = provider.parse_inbound(request.form)
    except ValueError as exc:
        abort(400, description=str(exc))
    _seen(provider.name)
    receive(sms, current_app.config["DEFAULT_COUNTRY"])
    return "", 200


@bp.post("/sms/africastalking/<token>/status")
def africastalking_status(token: str) -> ResponseReturnValue:
    """A delivery report; unknown ids are ignored."""
    provider = _africastalking(token)
    try:
        update = provider.parse_status(request.form)
    except ValueError as exc:
        abort(400, description=str(exc))
    _seen(provider.name)
    apply_status(provider.name, update)
    return "", 200


# -- Android phones ---------------------------------------------------------------------------


def _phone() -> AndroidProvider | None:
    """The phone this webhook claims to be from: `?phone=NAME`, else the only (or the `android`) phone."""
    chans = services().channels
    name = request.args.get("phone") or ("android" if "android" in chans.phones
                                         else chans.phones[0] if len(chans.phones) == 1 else "")
    return chans.provider(name) if name in chans.phones else None  # type: ignore[return-value]


@bp.post("/sms/android")
def android_event() -> ResponseReturnValue:
    """sms:received, sms:sent / delivered / failed, system:ping from a phone; signature checked."""
    provider = _phone()
    body = request.get_data(cache=True)  # at most MAX_WEBHOOK_BYTES: refuse_oversized ran first
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
    _seen(provider.name)
    if isinstance(event, InboundSMS):
        chans = services().channels
        receive(event, chans.countries.get(provider.name) or current_app.config["DEFAULT_COUNTRY"])
    elif isinstance(event, StatusUpdate):
        apply_status(provider.name, event)
    elif isinstance(event, Ping):
        logger.debug("%s: %s", provider.name, event.event)
    return {"ok": True}, 200
