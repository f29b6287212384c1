"""Conversation tests that read like the conversation.

    +265991234567 > JOIN
    +265991234567 < Our Network: you joined our SMS alerts...
    ~ 25h                      (the clock moves on)
    +265991234567 <            (nothing more for this phone)
    @ alert to Zomba counting YES: Will you come on Friday? Reply YES
    +265991234567 < Will you come on Friday? Reply YES
    +265991234567 > YES
    +265991234567 < Thank you! Your pledge is counted...

`N > text` is a text the phone N sends; the `<` lines after it are what phones get back.
`@ alert [to PLACE] [counting WORD] [within Nh]: TEXT` is an organizer's broadcast (to everyone,
or one place; counting WORD replies as pledges; for a pledge window of N hours): it is launched,
the worker runs its jobs, and the `<` lines after it are what each phone received. `@ launch ...`
launches the same way but leaves its jobs queued; `@ worker` runs them later, so a phone can text
in between. Alerts leave by the app's provider, which must be the console one (it keeps what it sent).
`TEXT` is the alert's English text and may merge `{name}` and `{place}`. The launch moves the
phones' clock up to now if it was behind, so `~ 59m` after an alert is 59 minutes after its launch;
`phone.broadcasts` lists the ids of the alerts launched, for the asserts after the transcript.

Each `<` line takes the next message for its number; a line ending in "..." matches by prefix,
and "*" inside it matches any text (a reference). Before the next `>`, `@` or `~` line, every
message must have been matched: no phone gets more than the lines list.

`Phone(app)` sends through the shared inbound path with replies inline; `Phone(app, wire=...)`
sends through one channel's whole way in and out instead (tests/wires.py).
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from flask import Flask
from sqlalchemy import select

from gateway.channels.base import InboundSMS
from gateway.channels.console import ConsoleProvider
from gateway.models import Message, utcnow
from gateway.outbound import broadcasts, queues
from tests.wires import Wire

_ALERT = re.compile(r"@ (?P<verb>alert|launch)(?: to (?P<place>.+?))?(?: counting (?P<word>\S+))?"
                    r"(?: within (?P<hours>\d+)h)?: (?P<text>.+)")


def _pattern(expected: str) -> re.Pattern[str]:
    prefix = expected.endswith("...")
    text = expected[:-3] if prefix else expected
    body = ".*?".join(re.escape(part) for part in text.split("*"))
    return re.compile(body + (".*" if prefix else ""), re.DOTALL)


class Phone:
    """Drives the whole inbound path (store, then handle in order) like a supporter's phone."""

    def __init__(self, app: Flask, now: datetime | None = None, *, wire: Wire | None = None) -> None:
        self.app, self.wire = app, wire
        self.now = now or utcnow()
        self.broadcasts: list[int] = []  # ids of the alerts this transcript launched, in order

    def send(self, sender: str, text: str) -> list[str]:
        """Send one text; return the replies the gateway stored for it (or the channel delivered)."""
        if self.wire is not None:
            return self.wire.exchange(self.app, sender, text, self.now)
        svc = self.app.extensions["gateway"]
        received = svc.inbound.receive(InboundSMS("console", None, sender, None, text), now=self.now)
        return list(received.texts) if received else []

    def launch(self, text: str, place: str | None = None, keyword: str | None = None,
               window_hours: int | None = None) -> int:
        """Launch an English alert and enqueue its jobs, as the console does; its id."""
        svc = self.app.extensions["gateway"]
        with svc.sessions() as s, s.begin():
            b = broadcasts.create(s, {"en": text}, place=place, reply_keyword=keyword)
            if window_hours is not None:
                b.pledge_window_hours = window_hours
            broadcasts.launch(s, b, "console", "console")
            bid = b.id
        with svc.sessions() as s:
            ids = list(s.scalars(select(Message.id).where(Message.broadcast_id == bid).order_by(Message.id)))
        queues.enqueue_ids(svc.redis, ids)
        self.broadcasts.append(bid)
        self.now = max(self.now, utcnow())  # the phones' clock never runs behind the launch
        return bid

    def worker(self) -> list[tuple[str, str]]:
        """Run every due job, as the worker does; return what the phones received, (to, text)."""
        svc = self.app.extensions["gateway"]
        provider = svc.provider
        assert isinstance(provider, ConsoleProvider), "alerts are read from the console provider"
        before = len(provider.sent)
        with self.app.app_context():
            queues.work_burst(svc.redis)
        return list(provider.sent[before:])

    def run(self, script: str) -> list[str]:
        """Play a transcript; assert every message; return all the replies and alerts seen."""
        seen: list[str] = []
        pending: list[tuple[str, str]] = []
        step = ""

        def settle() -> None:
            if pending:
                raise AssertionError(f"after {step!r} also got {pending!r}")

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
            if line.startswith("@"):
                settle()
                step = line
                pending = self._act(line)
                seen.extend(text for _, text in pending)
                continue
            number, arrow, text = re.split(r"\s+([<>])\s?", line, maxsplit=1)
            if arrow == ">":
                settle()
                step = line
                pending = [(number, reply) for reply in self.send(number, text)]
                seen.extend(reply for _, reply in pending)
                continue
            assert step, f"{line!r}: a message before anything was sent"
            mine = [i for i, (to, _) in enumerate(pending) if to == number]
            if not text:
                assert not mine, f"after {step!r} expected nothing for {number}, got {pending!r}"
                continue
            assert mine, f"after {step!r} expected {text!r} for {number}, got nothing more"
            _, got = pending.pop(mine[0])
            assert _pattern(text).fullmatch(got), f"after {step!r}\n expected {text!r}\n      got {got!r}"
        settle()
        return seen

    def _act(self, line: str) -> list[tuple[str, str]]:
        """Carry out an `@` line; return what the phones received."""
        if line == "@ worker":
            return self.worker()
        match = _ALERT.fullmatch(line)
        assert match, f"{line!r}: not `@ alert [to PLACE] [counting WORD] [within Nh]: TEXT` nor `@ worker`"
        hours = match["hours"]
        self.launch(match["text"], match["place"], match["word"], int(hours) if hours else None)
        return self.worker() if match["verb"] == "alert" else []

