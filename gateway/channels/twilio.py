"""Twilio: send through the REST API, check webhook signatures, parse webhooks, answer with TwiML."""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import (
    TwilioException,
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator, compare
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse
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

# Twilio's message statuses in our words. Twilio documents these; anything else is refused
# by parse_status so that a new status shows up as a 400 in the logs rather than a guess.
STATUS_MAP: dict[str, str] = {
    "accepted": "queued",
    "queued": "queued",
    "scheduled": "queued",
    "sending": "sending",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}

TOO_MANY_REQUESTS = 20429

# XML 1.0 cannot carry most C0 controls (nor lone surrogates): ElementTree would write them
# anyway and Twilio would reject the whole TwiML document, losing every reply.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_EMPTY_TWIML = MessagingResponse().to_xml()


# The SDK logs every request's query string at INFO, and a settle asks for ?To=<the number>:
# its own logger is held to warnings so supporters' numbers stay out of the gateway's logs.
_SDK_LOG = logging.getLogger("gateway.channels.twilio.sdk")
_SDK_LOG.setLevel(logging.WARNING)


class _BaseURLHttpClient(TwilioHttpClient):
    """TwilioHttpClient that sends every request to another base URL (a fake or a proxy)."""

    def __init__(self, base_url: str, *, timeout: float) -> None:
        super().__init__(timeout=timeout, logger=_SDK_LOG)
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"api_base_url {base_url!r}: expected http(s)://host[:port][/path]")
        self._scheme, self._netloc, self._path = parts.scheme, parts.netloc, parts.path.rstrip("/")
        if self.session is not None and parts.scheme == "http":
            # The SDK only mounts its pooled adapter for https://; give plain http the same
            # pool (and the same zero retries, so a POST is never silently sent twice).
            self.session.mount("http://", HTTPAdapter(pool_maxsize=32))

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        """Rewrite the SDK's hardcoded https://api.twilio.com (or region host) and send."""
        parts = urlsplit(url)
        url = urlunsplit((self._scheme, self._netloc, self._path + parts.path, parts.query, parts.fragment))
        return super().request(method, url, *args, **kwargs)


def _connect_failed(exc: requests.RequestException) -> bool:
    """True when the request cannot have left this machine: no connection was ever made."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        # requests wraps urllib3's MaxRetryError, whose .reason says what failed.
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return isinstance(reason, (NewConnectionError, ConnectTimeoutError))
    return False


def _raise_provider_error(exc: Exception, action: str) -> NoReturn:
    """Translate an SDK or transport error into ProviderError, keeping retry semantics."""
    if isinstance(exc, (TwilioRestException, TwilioServiceException)):
        status, code = int(exc.status), exc.code
        detail = getattr(exc, "msg", None) or getattr(exc, "detail", None) or getattr(exc, "title", "")
    elif isinstance(exc, TwilioException) and len(exc.args) > 1 and isinstance(exc.args[1], Response):
        # Page.process_response raises a bare TwilioException carrying the response for list errors.
        response: Response = exc.args[1]
        status, code, detail = response.status_code, None, response.text[:200]
        try:
            code = json.loads(response.text).get("code")
        except (ValueError, AttributeError):
            pass
    elif isinstance(exc, requests.RequestException):
        if _connect_failed(exc):
            raise ProviderError(f"Twilio {action}: could not connect: {exc}", retryable=True) from exc
        # Read timeouts, dropped connections, truncated bodies: the request may have been received.
        raise ProviderError(f"Twilio {action}: no answer: {exc}", ambiguous=True) from exc
    else:
        # A 2xx whose body we could not read, or an SDK surprise: the request reached Twilio.
        raise ProviderError(f"Twilio {action}: {exc!r}", ambiguous=True) from exc

    code_str = str(code) if code is not None else None
    message = f"Twilio {action}: HTTP {status} code {code_str}: {detail}"
    if status == 429 or code == TOO_MANY_REQUESTS:
        raise ProviderError(message, code=code_str, http_status=status, retryable=True) from exc
    if status >= 500:
        raise ProviderError(message, code=code_str, http_status=status, ambiguous=True) from exc
    raise ProviderError(message, code=code_str, http_status=status) from exc


def _result(message: Any) -> SendResult:
    """A SendResult from the SDK's MessageInstance."""
    status = (message.status or "").lower()
    error_code = message.error_code
    return SendResult(provider_id=message.sid, status=STATUS_MAP.get(status, status or "queued"),
                      error_code=str(error_code) if error_code not in (None, "", 0) else None,
                      body=getattr(message, "body", None))


class TwilioProvider:
    """Twilio Programmable Messaging, through the official SDK."""

    name = "twilio"
    inline_replies = True

    def __init__(self, account_sid: str, auth_token: str, *, from_number: str | None = None,
                 messaging_service_sid: str | None = None, api_base_url: str | None = None,
                 timeout: float = 10.0) -> None:
        self.account_sid = account_sid
        self.from_number = from_number or None
        self.messaging_service_sid = messaging_service_sid or None
        # No check that a sender is set: the app builds this provider just to verify webhook
        # signatures even when another provider sends; send() refuses instead.
        http_client = (_BaseURLHttpClient(api_base_url, timeout=timeout) if api_base_url
                       else TwilioHttpClient(timeout=timeout, logger=_SDK_LOG))
        # One client (and so one pooled requests Session) for the provider's lifetime.
        self.client = Client(account_sid, auth_token, http_client=http_client)
        self._validator = RequestValidator(auth_token)

    def validate(self, url: str, params: Mapping[str, str], signature: str | None) -> bool:
        """True when X-Twilio-Signature matches the URL and form parameters."""
        if not signature:
            return False
        # The SDK reads repeated keys itself through MultiDict.getlist (Flask's request.form),
        # so pass the form unchanged: flattening it to a dict would drop repeated values.
        params = params if params is not None else {}
        # Twilio signs the URL it requested: check that first, in constant time. The SDK's validate
        # always computes two signatures (the URL with and without its port), about 40 of a stored
        # text's ~1,000 microseconds; it still decides every signature this one does not match.
        if compare(self._validator.compute_signature(url, params), signature):
            return True
        return bool(self._validator.validate(url, params, signature))

    def parse_inbound(self, form: Mapping[str, str]) -> InboundSMS:
        """An InboundSMS from Twilio's incoming-message webhook form."""
        sender = form.get("From")
        if not sender:
            raise ValueError("missing From")
        body = (form.get("Body") or "").replace("\x00", "")
        return InboundSMS(provider=self.name, provider_id=message_id(form.get("MessageSid") or form.get("SmsSid")),
                          sender=sender, recipient=form.get("To") or None, body=body)

    def parse_status(self, form: Mapping[str, str]) -> StatusUpdate:
        """A StatusUpdate from Twilio's status callback form."""
        sid = required_id(form.get("MessageSid") or form.get("SmsSid"), "MessageSid")
        raw = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
        status = STATUS_MAP.get(raw)
        if status is None:
            raise ValueError(f"unknown MessageStatus {raw!r}")
        return StatusUpdate(provider_id=sid, status=status, error_code=error_code(form.get("ErrorCode")))

    def twiml(self, replies: Sequence[str]) -> str:
        """TwiML with one <Message> per non-empty reply."""
        if not replies:  # a text stored for later (most texts in a burst): the same answer each time
            return _EMPTY_TWIML
        response = MessagingResponse()
        for reply in replies:
            text = _XML_INVALID.sub("", reply)
            if text:  # Twilio rejects an empty <Message>, failing the whole response
                response.message(text)
        return response.to_xml()

    def send(self, to: str, body: str, *, status_callback: str | None = None, key: str | None = None) -> SendResult:
        """Create one message; raise ProviderError when Twilio does not accept it."""
        if not (self.from_number or self.messaging_service_sid):
            raise ProviderError("Twilio send: set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID",
                                code="config")
        kwargs: dict[str, Any] = {"to": to, "body": body}
        if self.messaging_service_sid:
            kwargs["messaging_service_sid"] = self.messaging_service_sid
        if self.from_number:
            kwargs["from_"] = self.from_number
        if status_callback:
            kwargs["status_callback"] = status_callback
        try:
            message = self.client.messages.create(**kwargs)
        except (TwilioException, requests.RequestException, ValueError) as exc:
            _raise_provider_error(exc, "send")
        return _result(message)

    def find_sent(self, to: str, since: datetime) -> list[SendResult]:
        """Messages this account sent to `to` since `since` (naive means UTC), newest first."""
        since = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
        # The SDK formats the filter with strftime(...Z) and drops sub-seconds; Twilio's dates
        # are whole seconds too, so compare at that precision.
        since = since.replace(microsecond=0)
        filters: dict[str, Any] = {"to": to, "date_sent_after": since, "page_size": 1000}
        if self.from_number:
            filters["from_"] = self.from_number
        try:
            messages = self.client.messages.list(**filters)
        except (TwilioException, requests.RequestException, ValueError) as exc:
            _raise_provider_error(exc, "list")
        found = []
        for m in messages:
            if self.messaging_service_sid and m.messaging_service_sid != self.messaging_service_sid:
                continue  # sent by another service or number on the same account
            # Twilio filters by day; keep only what really is on or after `since`.
            when = m.date_sent or m.date_created
            if isinstance(when, datetime) and when < since:
                continue
            found.append(_result(m))
        return found
