"""When a web process stores a text for a worker instead of handling it: by queue depth and time.

A process handles texts inline (the reply rides on the webhook's answer) until it cannot keep up.
Three signs say so, all measured in the process itself:
- queue depth: this text finds `busy_at` texts (itself included) being received at once: a second
  text while one is being handled means texts are arriving faster than one process handles them
  (a few ms each), and storing one costs a share of one statement (deferred.Writer), so every
  thread but one stores (gunicorn gthread, the Procfile's 64 threads; sync workers receive one at a
  time and switch on time);
- queue depth lately: most texts of the last second or so (`crowded_at`) found another being received.
  Between two such texts a process is often idle for a moment, and the first sign alone handled
  the text that came then inline: 5-10 ms holding the GIL while the texts stored meanwhile waited
  for it. At 400 texts a second that set p99 at 160 ms (`make bench`); all stored, 77 ms. A client
  sending one text after another (never two at once) is never crowded: its texts stay inline;
- time: handling a text has lately taken more than `budget` seconds (a slow or locked database),
  an average that halves every `half_life` seconds, so a process that stored texts for workers
  goes back to handling them once the slow spell is over, without a text having to probe it.
Storing costs one statement and no handling, so the process answers well inside Twilio's
15 seconds; the text is handled by a worker moments later, in order per sender.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

BUSY_AT = 2  # texts being received at once in one process: a second one is stored for a worker
BUDGET = 0.5  # seconds; a text handled inline slower than this on average means the process lags
CROWDED = 0.5  # share of the texts received lately that found company, beyond which all are stored
CROWD_HALF_LIFE = 0.5  # seconds: how fast a text's weight in that share fades (a few s after a burst: inline)
GIVE_WAY = 0.05  # seconds a worker thread in a web process waits for webhooks between contacts
HALF_LIFE = 2.0  # seconds for the slowness average to halve while nothing is handled inline


@dataclass
class Pressure:
    """The in-process gauge: texts in flight and how long full handling has taken lately."""

    busy_at: int = BUSY_AT
    budget: float = BUDGET
    half_life: float = HALF_LIFE
    crowded_at: float = CROWDED
    crowd_half_life: float = CROWD_HALF_LIFE
    in_flight: int = 0
    slow: float = 0.0  # decaying average of inline handling time, seconds
    slow_at: float = 0.0  # when `slow` was last updated (monotonic seconds)
    arrivals: float = 0.0  # texts received, each weighing less as it ages
    crowd: float = 0.0  # of those, the ones that found `busy_at` or more being received, weighed alike
    arrived_at: float = 0.0  # when both were last updated (monotonic seconds)
    forced: bool | None = None  # True/False: an operator's or a test's choice; None: measured
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def enter(self, now: float) -> bool:
        """A text arrives: count it in flight; True when it is to be stored for a worker."""
        with self._lock:
            self.in_flight += 1
            fade = 0.5 ** (max(0.0, now - self.arrived_at) / self.crowd_half_life)
            busy = self.in_flight >= self.busy_at
            self.arrivals = self.arrivals * fade + 1
            self.crowd = self.crowd * fade + busy
            self.arrived_at = now
            if self.forced is not None:
                return self.forced
            return busy or self.crowd > self.crowded_at * self.arrivals or self.lag(now) > self.budget

    def leave(self, now: float, seconds: float | None) -> None:
        """The text is answered; `seconds` is how long handling it inline took (None: it was stored)."""
        with self._lock:
            self.in_flight -= 1
            if seconds is not None:
                self.slow = 0.8 * self.lag(now) + 0.2 * seconds
                self.slow_at = now

    def give_way(self, most: float = GIVE_WAY, step: float = 0.005) -> float:
        """Wait (at most `most` seconds) while texts are being received in this process; the seconds
        waited. A worker in the web process itself (the embedded default) calls it between contacts,
        so storing and acknowledging come first; a worker process of its own never waits here."""
        waited = 0.0
        while self.in_flight > 0 and waited < most:
            time.sleep(step)
            waited += step
        return waited

    def lag(self, now: float) -> float:
        """The slowness average as of `now`, decayed since its last update."""
        if self.slow <= 0.0:
            return 0.0
        return self.slow * 0.5 ** (max(0.0, now - self.slow_at) / self.half_life)
