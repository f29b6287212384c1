"""Cases: reports about one place and service become a case sent to a named official, with a deadline.

The ladder is pure (gateway/core/ladder.py); this package opens and joins cases as reports arrive
(`joining.on_report`), sends them to officials, applies officials' answers (`answers`), runs the
deadlines and escalations (`timer.tick`), and answers reporters. Organizers act on cases through
the same functions (console, API, CLI): open_by_hand, merge, split, send, escalate, close, timeline.
"""
from gateway.cases.ops import (
    CaseError,
    close,
    escalate,
    merge,
    open_by_hand,
    reopen,
    send,
    split,
    timeline,
)
from gateway.cases.timer import overdue_count, tick

__all__ = ["CaseError", "close", "escalate", "merge", "open_by_hand", "overdue_count", "reopen", "send", "split",
           "tick", "timeline"]
