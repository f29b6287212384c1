"""How a supporter's text reaches the gateway and its replies come back, once per channel.

Each wire builds the channel's own wire payload, parses it with the channel's provider (as its
webhook does), runs the shared inbound path, and reads the replies where the channel delivers
them: TwiML for Twilio; the fake API's sent messages for Africa's Talking and an Android phone,
after the reply queue's RQ jobs ran through the outbox and the real SDK.
"""
from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any, Protocol

from flask import Flask

from gateway.outbound import queues

CHANNELS = ["twilio", "africastalking", "android"]
AT_TOKEN = "at-callback-secret-of-at-least-32-characters"  # AT_WEBHOOK_TOKEN needs 32


class Wire(Protocol):
    name: str

    def exchange(self, app: Flask, sender: str, text: str, now: datetime) -> list[str]:
        """Deliver one text; return the replies the supporter's phone gets."""
        ...


def channel_settings(at: Any, phone: Any) -> dict[str, Any]:
    """Settings that connect the app to a fake Africa's Talking and a fake phone."""
    return {"AT_USERNAME": at.username, "AT_API_KEY": at.api_key, "AT_API_BASE_URL": at.base_url,
            "AT_SENDER_ID": "NETWORK", "AT_WEBHOOK_TOKEN": AT_TOKEN,
            "ANDROID_GATEWAY_URL": phone.url, "ANDROID_GATEWAY_LOGIN": phone.login,
            "ANDROID_GATEWAY_PASSWORD": phone.password, "ANDROID_WEBHOOK_SIGNING_KEY": phone.signing_key}


class TwilioWire:
    """Replies ride inline on the webhook's TwiML answer."""

    name = "twilio"

    def exchange(self, app: Flask, sender: str, text: str, now: datetime) -> list[str]:
        svc = app.extensions["gateway"]
        sms = svc.twilio.parse_inbound({"MessageSid": "SM" + secrets.token_hex(16), "From": sender,
                                        "To": "+15005550006", "Body": text})
        received = svc.inbound.receive(sms, now=now)
        return [m.text or "" for m in ET.fromstring(svc.twilio.twiml(list(received.texts) if received else [])).iter("Message")]


class QueuedWire:
    """Replies go through the reply queue, the outbox and the SDK to the fake API."""

    def __init__(self, name: str, fake: Any) -> None:
        self.name, self.fake = name, fake

    def _parse(self, app: Flask, sender: str, text: str) -> Any:
        provider = app.extensions["gateway"].channels.provider(self.name)
        if self.name == "africastalking":
            return provider.parse_inbound({"from": sender, "to": "12345", "text": text, "id": secrets.token_hex(8),
                                           "date": "2026-11-23 10:00:00", "linkId": secrets.token_hex(4)})
        body, _ = self.fake.received(sender, text)
        return provider.parse_event(body)

    def _sent(self) -> list[tuple[str, str]]:
        if self.name == "africastalking":
            return [(m["to"], m["message"]) for m in self.fake.messages]
        return [(m["to"], m["text"]) for m in self.fake.messages]

    def exchange(self, app: Flask, sender: str, text: str, now: datetime) -> list[str]:
        before = len(self._sent())
        with app.app_context():
            app.extensions["gateway"].inbound.receive(self._parse(app, sender, text), inline=False, now=now)
            queues.work_burst(app.extensions["gateway"].redis)  # the RQ jobs, as a worker runs them
        return [body for to, body in self._sent()[before:] if to == sender]


def wire(name: str, at: Any, phone: Any) -> Wire:
    """The wire of one channel."""
    return TwilioWire() if name == "twilio" else QueuedWire(name, at if name == "africastalking" else phone)
