"""A provider for development: prints each message instead of sending it."""
from __future__ import annotations

import sys
import threading
import uuid
from typing import TextIO

from gateway.channels.base import SendResult
from gateway.core.phones import mask_number


class ConsoleProvider:
    """Writes `[sms to <masked number>] <text>` lines to a stream and remembers what it sent."""

    name = "console"
    inline_replies = True

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.sent: list[tuple[str, str]] = []
        self._lock = threading.Lock()  # workers may send from several threads

    def send(self, to: str, body: str, *, status_callback: str | None = None, key: str | None = None) -> SendResult:
        """Print the message and report it sent."""
        # Resolve sys.stdout at send time so pytest's capture (which swaps it) sees the output.
        stream = self.stream if self.stream is not None else sys.stdout
        with self._lock:
            # Masked: a trial install's stdout is its process log, and logs name no full number.
            print(f"[sms to {mask_number(to)}] {body}", file=stream, flush=True)
            self.sent.append((to, body))
        return SendResult(provider_id=f"console-{uuid.uuid4().hex}", status="sent")
