"""Filing an anonymous report, in one place: the report flow's questions may change, the tests should not."""
from __future__ import annotations

from typing import Callable

ONE_SMS_REPORT = "REPORT CLINIC ZOMBA NO nurse absent"


def asks_about_name(reply: str) -> bool:
    """True when a reply asks whether the report should carry the reporter's name."""
    return "?" in reply and "name" in reply.lower()


def file_anonymous_report(send: Callable[[str], list[str]]) -> list[str]:
    """Send the one-SMS report; answer `1` (keep my name off) only if the gateway asks. All replies seen."""
    replies = list(send(ONE_SMS_REPORT))
    if replies and asks_about_name(replies[-1]):
        replies += send("1")
    return replies
