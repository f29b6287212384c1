"""Per-sender pacing in segments per second, shared by every worker through Redis."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

# Moved to the pure core (settings parses SENDER_RATES with it); re-exported for the callers here.
from gateway.core.compose import parse_rates  # noqa: F401

PACING_KEY = "gateway:metrics:pacing"  # hash: waits, seconds (gateway/web/vitals.py reads it)

# A reservation limiter (GCRA): each send books the next free slot of its sender and waits for
# it. One atomic script, so any number of workers on any host share one rate; Redis's clock is
# the only clock, so host clocks that drift apart do not change the rate.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local start = math.max(tat, now)
local next_free = start + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.6f', next_free), 'EX', math.ceil(next_free - now) + 60)
return string.format('%.6f', start - now)
"""


class Pacer:
    """Books send slots so a sender never exceeds its rate, across all workers."""

    def __init__(self, redis: Any, default_rate: float, rates: dict[str, float] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.redis, self.default_rate, self.rates, self.sleep = redis, default_rate, rates or {}, sleep
        self._script = redis.register_script(_RESERVE)

    def rate(self, sender: str) -> float:
        """Segments per second allowed for a sender."""
        return self.rates.get(sender, self.default_rate)

    def reserve(self, sender: str, segments: int) -> float:
        """Book the next slot for a message; return how many seconds to wait before sending it."""
        cost = max(segments, 1) / self.rate(sender)
        return float(self._script(keys=[f"gateway:pace:{sender}"], args=[f"{cost:.6f}"]))

    def wait(self, sender: str, segments: int) -> float:
        """Book a slot and sleep until it comes; return the seconds waited (added up in Redis for /metrics)."""
        delay = self.reserve(sender, segments)
        if delay > 0:
            # In Redis, not in this process: every worker's waits add up to one figure /metrics reads.
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.hincrby(PACING_KEY, "waits", 1)
                pipe.hincrbyfloat(PACING_KEY, "seconds", delay)
                pipe.execute()
            self.sleep(delay)
        return delay
