"""Cases: reports about one place and service become a case sent to a named official, with a deadline.

The ladder is pure (gateway/core/ladder.py); this package opens and joins cases as reports arrive,
sends them to officials, applies officials' answers, runs the deadlines and escalations, and
answers reporters. Organizers act on cases through the same functions (console, API, CLI).
"""
