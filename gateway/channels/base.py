"""The small interface every SMS provider implements."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

from gateway.core.phones import mask_number


@dataclass(frozen=True)
class InboundSMS:
    """A provider-neutral inbound message, before number normalisation."""

    provider: str
    provider_id: str | None
    sender: str
    recipient: str | None
    body: str


@dataclass(frozen=True)
class SendResult:
    """What the provider said when it accepted a message."""

    provider_id: str | None
    status: str  # the provider's word, mapped to ours: queued, sending, sent, delivered, failed
    error_code: str | None = None
    body: str | None = None  # filled by look-ups, so a settled send is matched on its text too


@dataclass(frozen=True)
class StatusUpdate:
    """A delivery status reported by a provider for a message it accepted."""

    provider_id: str
    status: str  # ours: sent, delivered, undelivered, failed
    error_code: str | None = None


MAX_ID = 64  # messages.provider_id


def message_id(value: object) -> str | None:
    """A provider's message id from a webhook as the column can hold it; None when blank.

    No real id is longer than the column or holds control characters, but a signed request is
    kept whatever it carries: such an id is stored as its digest, so a repeat is still dropped.
    """
    text = str(value or "").strip()
    if not text:
        return None
    if len(text) > MAX_ID or not text.isprintable():
        return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:56]
    return text


def required_id(value: object, field: str) -> str:
    """message_id() of a field that must be there (a status callback's); ValueError (a 400) when blank."""
    found = message_id(value)
    if found is None:
        raise ValueError(f"missing {field}")
    return found


def error_code(value: object) -> str | None:
    """A provider's error code or reason, kept to what the column holds (16 printable characters)."""
    text = "".join(ch for ch in str(value or "") if ch.isprintable()).strip()[:16]
    return text or None


# Seven or more digits, maybe with a leading + and single separators: a phone number in a text.
_NUMBER_LIKE = re.compile(r"\+?\d(?:[ ().-]?\d){6,}")


def without_numbers(text: str) -> str:
    """The text with every phone-number-like run masked (mask_number), for errors that get logged."""
    return _NUMBER_LIKE.sub(lambda m: mask_number(("+" if m.group().startswith("+") else "")
                                                  + re.sub(r"\D", "", m.group())), text)


class ProviderError(Exception):
    """A send the provider refused or that may not have reached it.

    Its text never holds a full number, whatever the provider's answer echoed: it is logged,
    wrapped in RetryLater and kept by RQ in Redis (the failed job's exc_info).
    """

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None,
                 retryable: bool = False, ambiguous: bool = False) -> None:
        super().__init__(without_numbers(message))
        self.code = code
        self.http_status = http_status
        self.retryable = retryable  # safe to try again later (e.g. 429)
        self.ambiguous = ambiguous  # may have been accepted: ask the provider before retrying


class Provider(Protocol):
    """Sends one message; the webhook side of each kind lives in gateway/channels/hooks/."""

    name: str
    inline_replies: bool  # True when replies can ride on the webhook's HTTP response

    def send(self, to: str, body: str, *, status_callback: str | None = None, key: str | None = None) -> SendResult:
        """Hand one message to the provider; raise ProviderError when it is not accepted.

        `key` is unique per outbox row; a provider that keeps one message per key (an Android
        phone) makes a resend of the same row harmless. Others ignore it.
        """
        ...
