"""Outbound messages: broadcasts, the outbox, pacing, jobs."""
