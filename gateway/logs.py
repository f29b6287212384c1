"""Logging for every process (web, `flask worker`, commands): LOG_LEVEL, stdout, one line per event.

Each module logs through `logging.getLogger(__name__)` and never prints a number; the filter
here masks anything shaped like one anyway, as a last defence.
"""
from __future__ import annotations

import logging
import os
import re
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# A + and 8-15 digits, spaces or dashes allowed between them: what a phone number looks like in text.
_NUMBER = re.compile(r"\+\d(?:[ -]?\d){7,14}")
_MARK = "_gateway_handler"  # set on our handler, so configuring twice adds nothing
QUIET = ("alembic.runtime.plugins",)  # chatter at INFO on every start: shown from WARNING up


def mask_numbers(text: str) -> str:
    """`+265991234567` -> `+26…67`: enough to tell two apart in a log, not enough to call."""
    return _NUMBER.sub(lambda m: m.group()[:3] + "…" + m.group()[-2:], text)


class MaskNumbers(logging.Filter):
    """Rewrites a record's message with phone-shaped strings masked (its arguments included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keeps the record; only its text changes."""
        message = record.getMessage()
        masked = mask_numbers(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def level() -> int:
    """The configured level, for loggers that set their own (RQ's worker follows it)."""
    return logging.getLogger().getEffectiveLevel()


def configure(level: str | None = None) -> None:
    """Log to stdout at LOG_LEVEL (default INFO), once per process: a second app (tests) changes nothing."""
    root = logging.getLogger()
    if any(getattr(h, _MARK, False) for h in root.handlers):
        return
    name = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    root.setLevel(getattr(logging, name, logging.INFO))
    for noisy in QUIET:
        logging.getLogger(noisy).setLevel(max(root.level, logging.WARNING))
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(MaskNumbers())
    setattr(handler, _MARK, True)
    # First in line: the filter rewrites the record itself, so handlers added later (a server's,
    # pytest's) get the masked text too.
    root.handlers.insert(0, handler)
