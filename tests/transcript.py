"""Conversation tests that read like the conversation.

    +265991234567 > JOIN
    +265991234567 < Our Network: you joined our SMS alerts...
    ~ 25h                      (the clock moves on)
    +265991234567 <            (no reply at all)

A reply line ending in "..." matches by prefix; "*" inside a reply matches any text (a reference).
Each sent line must get exactly the replies listed after it, no more.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from gateway.models import utcnow
from gateway.channels.base import InboundSMS


def _pattern(expected: str) -> re.Pattern[str]:
    prefix = expected.endswith("...")
    text = expected[:-3] if prefix else expected
    body = ".*?".join(re.escape(part) for part in text.split("*"))
    return re.compile(body + (".*" if prefix else ""), re.DOTALL)


class Phone:
    """Drives the whole inbound path (store, then handle in order) like a supporter's phone."""

    def __init__(self, app, now: datetime | None = None) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        self.now = now or utcnow()

    def send(self, sender: str, text: str) -> list[str]:
        """Send one text; return the replies the gateway stored for it (or the channel delivered)."""
        wire = self.app.extensions.get("test_wire")  # tests/wires.py: one channel's whole way in and out
        if wire is not None:
            return wire.exchange(self.app, sender, text, self.now)
        svc = self.app.extensions["gateway"]
        received = svc.inbound.receive(InboundSMS("console", None, sender, None, text), now=self.now)
        return list(received.texts) if received else []

    def run(self, script: str) -> list[str]:
        """Play a transcript; assert every reply; return all replies seen."""
        seen: list[str] = []
        pending: list[str] | None = None
        sent_line = ""

        def settle() -> None:
            if pending:
                raise AssertionError(f"after {sent_line!r} also got {pending!r}")

        for raw in script.strip().splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("~"):
                settle()
                amount = line[1:].strip()
                unit = {"m": "minutes", "h": "hours", "d": "days"}[amount[-1]]
                self.now += timedelta(**{unit: int(amount[:-1])})
                continue
            number, arrow, text = re.split(r"\s+([<>])\s?", line, maxsplit=1)
            if arrow == ">":
                settle()
                sent_line = line
                pending = self.send(number, text)
                seen.extend(pending)
            else:
                assert pending is not None, f"{line!r}: a reply before anything was sent"
                if not text:
                    assert pending == [], f"after {sent_line!r} expected no reply, got {pending!r}"
                    continue
                assert pending, f"after {sent_line!r} expected {text!r}, got nothing more"
                got = pending.pop(0)
                assert _pattern(text).fullmatch(got), f"after {sent_line!r}\n expected {text!r}\n      got {got!r}"
        settle()
        return seen
