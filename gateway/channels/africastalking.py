"""Africa's Talking: send through its official SDK, parse its inbound and delivery-report callbacks."""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import requests
from africastalking.Service import AfricasTalkingException
from africastalking.SMS import SMSService
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

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

# Delivery-report statuses in our words (Africa's Talking "SMS delivery reports"); anything else
# is refused with a 400 so that a new status shows up in the logs rather than as a guess.
STATUS_MAP: dict[str, str] = {
    "sent": "sent", "submitted": "sent", "buffered": "sent",
    "success": "delivered", "delivered": "delivered",
    "failed": "failed", "rejected": "failed", "absentsubscriber": "undelivered", "expired": "undelivered",
}
# Per-recipient statusCode of a send: 100 Processed, 101 Sent, 102 Queued are accepted.
ACCEPTED = {100, 101, 102}
RETRY_CODES = {405, 500, 501, 502}  # InsufficientBalance and AT-side errors: nothing was sent


class _SMS(SMSService):
    """The SDK's SMS service, pointed at another base URL (the sandbox, a fake) when one is given."""

    def __init__(self, username: str, api_key: str, base_url: str | None) -> None:
        self._base_override = base_url.rstrip("/") if base_url else None
        super().__init__(username, api_key)

    def _init_service(self) -> None:
        super()._init_service()
        if self._base_override:  # the SDK's own seam: each service sets its URLs here
            self._baseUrl = self._contentUrl = self._base_override + "/version1"


def _connect_failed(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, (NewConnectionError, ConnectTimeoutError))


class AfricasTalkingProvider:
    """Africa's Talking bulk SMS; it has no inline replies, so replies go through the reply queue."""

    inline_replies = False

    def __init__(self, username: str, api_key: str, *, sender_id: str | None = None,
                 api_base_url: str | None = None, timeout: float = 10.0, name: str = "africastalking") -> None:
        self.name = name
        self.sender_id = sender_id or None
        self.timeout = timeout
        self.sms = _SMS(username, api_key, api_base_url)

    def send(self, to: str, body: str, *, status_callback: str | None = None, key: str | None = None) -> SendResult:
        """Send one message; raise ProviderError when Africa's Talking does not accept it."""
        try:
            answer: Any = self.sms.send(body, [to], sender_id=self.sender_id, timeout=(3.05, self.timeout))
        except ValueError as exc:  # the SDK checks numbers before sending
            raise ProviderError(f"Africa's Talking send: {exc}", code="at-403") from exc
        except AfricasTalkingException as exc:
            # The SDK keeps only the body of a non-2xx answer (a wrong key, an outage): nothing
            # was accepted, so the message waits and is tried again with backoff.
            raise ProviderError(f"Africa's Talking send: {str(exc)[:200]}", code="at-http", retryable=True) from exc
        except requests.RequestException as exc:
            if _connect_failed(exc):
                raise ProviderError(f"Africa's Talking send: could not connect: {exc}", retryable=True) from exc
            raise ProviderError(f"Africa's Talking send: no answer: {exc}", ambiguous=True) from exc
        if isinstance(answer, str):  # the SDK returns text unless the content type is exactly JSON
            try:
                answer = json.loads(answer)
            except ValueError as exc:
                raise ProviderError(f"Africa's Talking send: unreadable answer {answer[:100]!r}",
                                    ambiguous=True) from exc
        data = (answer or {}).get("SMSMessageData") or {}
        recipients = data.get("Recipients") or []
        if not recipients:
            # e.g. "InvalidSenderId": the request was refused as a whole
            raise ProviderError(f"Africa's Talking send: {data.get('Message') or answer!r}", code="at-refused")
        r = recipients[0]
        code, status = int(r.get("statusCode") or 0), str(r.get("status") or "")
        if code in ACCEPTED:
            return SendResult(provider_id=r.get("messageId"), status="sent")
        # at-406 UserInBlacklist is an opt-out; at-403 InvalidPhoneNumber, at-404 UnsupportedNumberType
        # mark the number unusable (gateway/outbound/outbox.py).
        raise ProviderError(f"Africa's Talking send: {code} {status}", code=f"at-{code}",
                            retryable=code in RETRY_CODES)

    def parse_inbound(self, form: Mapping[str, str]) -> InboundSMS:
        """An InboundSMS from the incoming-message callback (from, to, text, date, id, linkId)."""
        sender, given_id = form.get("from"), form.get("id")
        if not sender:
            raise ValueError("missing from")
        if not given_id:
            raise ValueError("missing id")
        if "text" not in form:
            raise ValueError("missing text")
        return InboundSMS(provider=self.name, provider_id=message_id(given_id), sender=sender,
                          recipient=form.get("to") or None, body=(form.get("text") or "").replace("\x00", ""))

    def parse_status(self, form: Mapping[str, str]) -> StatusUpdate:
        """A StatusUpdate from a delivery report (id, status, phoneNumber, failureReason)."""
        given_id = form.get("id")
        if not given_id:
            raise ValueError("missing id")
        raw = (form.get("status") or "").strip()
        status = STATUS_MAP.get(raw.lower())
        if status is None:
            raise ValueError(f"unknown status {raw!r}")
        reason = (form.get("failureReason") or "").strip() or None
        return StatusUpdate(provider_id=required_id(given_id, "id"), status=status, error_code=error_code(reason))
