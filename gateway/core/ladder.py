"""Pure: a case's ladder, which moves are allowed, and who may make them.

open -> sent -> acknowledged -> promised (with a date) -> resolved, with overdue (a deadline passed;
the case goes up a rung) and disputed (a reporter said NO after resolved: it is open again) as the
branches. An organizer may close a case from anywhere; nothing moves a closed case but reopening.
"""
from __future__ import annotations

OPEN, SENT, ACKNOWLEDGED, PROMISED, RESOLVED, OVERDUE, DISPUTED, CLOSED = (
    "open", "sent", "acknowledged", "promised", "resolved", "overdue", "disputed", "closed")
STATUSES = (OPEN, SENT, ACKNOWLEDGED, PROMISED, RESOLVED, OVERDUE, DISPUTED, CLOSED)
# Statuses whose official still owes an answer: the timer runs.
WAITING = frozenset({SENT, ACKNOWLEDGED, PROMISED, OVERDUE, DISPUTED})

MOVES: dict[str, frozenset[str]] = {
    OPEN: frozenset({SENT, CLOSED}),
    SENT: frozenset({ACKNOWLEDGED, PROMISED, RESOLVED, OVERDUE, CLOSED}),
    ACKNOWLEDGED: frozenset({PROMISED, RESOLVED, OVERDUE, CLOSED}),
    PROMISED: frozenset({PROMISED, RESOLVED, OVERDUE, CLOSED}),  # a new date replaces the old one
    OVERDUE: frozenset({SENT, ACKNOWLEDGED, PROMISED, RESOLVED, CLOSED}),  # sent to the next rung, or answered late
    RESOLVED: frozenset({DISPUTED, CLOSED}),
    DISPUTED: frozenset({SENT, ACKNOWLEDGED, PROMISED, RESOLVED, OVERDUE, CLOSED}),
    CLOSED: frozenset({OPEN}),  # reopened by an organizer
}


def can_move(current: str, to: str) -> bool:
    """Whether a case in `current` may move to `to`."""
    return to in MOVES.get(current, frozenset())
