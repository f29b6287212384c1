"""An Android phone as the modem (SMS Gateway for Android, sms-gate.app), through its official client.

Every send carries an id the gateway chooses (`key`, one per outbox row). The app keeps one
message per id, so a send whose answer was lost is simply sent again with the same id: a phone
that is slow or offline never gets a message twice, and never loses one.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from android_sms_gateway import APIClient, Message, SmsReceivedPayload, TextMessage
from android_sms_gateway.errors import APIError
from android_sms_gateway.http import RequestsHttpClient

from gateway.channels.base import (
    InboundSMS,
    ProviderError,
    SendResult,
    StatusUpdate,
    error_code,
    message_id,
    required_id,
)

logger = logging.getLogger(__name__)
SIGNATURE_TOLERANCE = 300  # seconds of clock difference accepted on X-Timestamp (the app's docs advise ±5 min)
STATUS_EVENTS = {"sms:sent": "sent", "sms:delivered": "delivered", "sms:failed": "failed"}


class _TimeoutSession(requests.Session):
    """The client's requests carry no timeout; a phone that hangs must not hold a worker forever."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self.timeout)
        return super().request(*args, **kwargs)


@dataclass(frozen=True)
class Ping:
    """A sign of life from the phone (system:ping, or an event the gateway does not use)."""

    event: str


def sign(key: str, body: bytes, timestamp: str) -> str:
    """X-Signature: hex HMAC-SHA256 of the raw body followed by X-Timestamp (the app's scheme)."""
    return hmac.new(key.encode(), body + timestamp.encode(), hashlib.sha256).hexdigest()


class AndroidProvider:
    """One phone (one SIM) reached through its local server or the app's cloud relay."""

    inline_replies = False

    def __init__(self, name: str, url: str, login: str | None, password: str, *, signing_key: str | None = None,
                 sim: int | None = None, timeout: float = 10.0,
                 on_contact: Callable[[], None] | None = None) -> None:
        self.name = name
        self.signing_key = signing_key or None
        self.sim = sim
        self.on_contact = on_contact  # records the phone's last contact (for /healthz and the console)
        self.client = APIClient(login or None, password, base_url=url,
                                http=RequestsHttpClient(_TimeoutSession(timeout)))

    def _contact(self) -> None:
        if self.on_contact is not None:
            try:
                self.on_contact()
            except Exception:  # only a display; never fail a send over it
                logger.warning("could not record contact with %s", self.name)

    def send(self, to: str, body: str, *, status_callback: str | None = None, key: str | None = None) -> SendResult:
        """Queue one message on the phone; raise ProviderError when the phone does not take it."""
        message = Message(phone_numbers=[to], text_message=TextMessage(text=body), id=key,
                          sim_number=self.sim, with_delivery_report=True)
        try:
            state = self.client.send(message)
        except APIError as exc:
            if exc.status_code == 409 and key:  # it already has this id: an earlier try got through
                self._contact()
                return SendResult(provider_id=key, status="sent")
            if exc.status_code == 400:
                raise ProviderError(f"{self.name} send: refused: {exc.response or exc}", code="android-400",
                                    http_status=400) from exc
            # 401/403 (credentials), 429, 5xx: the message waits; the same id makes a resend safe.
            raise ProviderError(f"{self.name} send: HTTP {exc.status_code}: {exc.response or exc}",
                                code=f"android-{exc.status_code}", http_status=exc.status_code,
                                retryable=True) from exc
        except requests.RequestException as exc:
            raise ProviderError(f"{self.name} send: phone not reachable: {exc}", code="offline",
                                retryable=True) from exc
        except (KeyError, ValueError) as exc:  # an answer the client could not read; it reached the phone
            raise ProviderError(f"{self.name} send: unreadable answer: {exc!r}", retryable=True) from exc
        self._contact()
        return SendResult(provider_id=state.id, status="sent")

    def verify(self, body: bytes, timestamp: str | None, signature: str | None, now: float | None = None) -> bool:
        """True when X-Signature matches the raw body and a fresh X-Timestamp."""
        if not (self.signing_key and timestamp and signature):
            return False
        try:
            age = abs((now if now is not None else time.time()) - int(timestamp))
        except ValueError:
            return False
        if age > SIGNATURE_TOLERANCE:
            return False  # an old request replayed
        return hmac.compare_digest(sign(self.signing_key, body, timestamp), signature.strip().lower())

    def parse_event(self, body: bytes) -> InboundSMS | StatusUpdate | Ping:
        """What a webhook says: a received SMS, a status for a sent one, or only a sign of life."""
        try:
            envelope = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"not JSON: {exc}") from exc
        if not isinstance(envelope, dict) or not isinstance(envelope.get("payload"), dict):
            raise ValueError("expected {event, id, payload}")
        event, payload = envelope.get("event"), envelope["payload"]
        if event == "sms:received":
            if not envelope.get("id"):
                raise ValueError("missing id")
            try:
                # Older app versions send no `sender`; it is the same number as phoneNumber.
                sms = SmsReceivedPayload.from_dict({"sender": payload.get("phoneNumber"), **payload})
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ValueError(f"sms:received: missing or bad {exc}") from exc
            if not isinstance(sms.message, str) or not isinstance(sms.phone_number, str) or not sms.phone_number:
                raise ValueError("sms:received: message and phoneNumber must be text")
            # The payload's messageId is derived from the text (two identical texts share it);
            # the envelope id is one per event and is kept across the app's retries.
            return InboundSMS(provider=self.name, provider_id=message_id(envelope["id"]), sender=sms.phone_number,
                              recipient=sms.recipient, body=sms.message.replace("\x00", ""))
        if event in STATUS_EVENTS:
            given_id = payload.get("messageId")
            if not given_id or not isinstance(given_id, str):
                raise ValueError(f"{event}: missing messageId")
            reason = payload.get("reason") if event == "sms:failed" else None
            return StatusUpdate(provider_id=required_id(given_id, "id"), status=STATUS_EVENTS[event],
                                error_code=error_code(reason))
        if not isinstance(event, str) or not event:
            raise ValueError("missing event")
        return Ping(event)
