"""An open-loop HTTP/1.1 load generator (what wrk2 does, which Debian does not package).

Request i is due at start + i / rate. A scheduler releases it at that time onto a queue served
by a pool of keep-alive connections; its latency is measured from the time it was DUE, not from
when a connection became free, so a slow server cannot hide its queueing (no coordinated
omission). Requests still unanswered when the run's deadline passes are counted as timeouts and
enter the percentiles with their lower bound (deadline - due time).

The closed-loop mode (`closed=True`) sends each connection's next request as soon as its last
answer arrived: it finds the maximum throughput, not latency at a rate.
"""
from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Sequence

from bench.common import percentile


@dataclass
class LoadResult:
    offered_rate: float  # req/s asked for (0 in closed loop)
    sent: int = 0
    ok: int = 0  # 2xx
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0  # non-2xx + connection errors + timeouts
    timeouts: int = 0  # unanswered (or never sent) at the deadline
    reconnects: int = 0
    elapsed: float = 0.0  # first due time -> last answer
    latencies: list[float] = field(default_factory=list)  # seconds, sorted, incl. timeout lower bounds
    censored_from: float = math.inf  # latencies >= this are lower bounds (timeouts)

    @property
    def seconds(self) -> float:
        """The run's length (as bench.wrk.WrkResult names it)."""
        return self.elapsed

    @property
    def achieved(self) -> float:
        """Answered with 2xx per second over the run."""
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)

    def summary(self) -> dict[str, object]:
        return {"offered": self.offered_rate, "achieved": round(self.achieved, 1), "sent": self.sent,
                "ok": self.ok, "errors": self.errors, "timeouts": self.timeouts, "statuses": self.statuses,
                "p50_ms": round(self.p(50) * 1000, 2), "p99_ms": round(self.p(99) * 1000, 2),
                "p999_ms": round(self.p(99.9) * 1000, 2), "max_ms": round(self.p(100) * 1000, 2),
                "reconnects": self.reconnects, "elapsed_s": round(self.elapsed, 2)}


class _Conn:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def exchange(self, request: bytes) -> int:
        """Send one request, read one response; return its status. Raises on a broken connection."""
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if length:
            await self.reader.readexactly(length)
        if close:
            self.close()
        return status


async def _run(host: str, port: int, requests: Sequence[bytes], rate: float, connections: int,
               duration: float | None, drain: float, closed: bool) -> LoadResult:
    loop = asyncio.get_running_loop()
    result = LoadResult(offered_rate=0.0 if closed else rate)
    n = len(requests)
    due = [math.nan] * n
    done_at = [math.nan] * n
    queue: asyncio.Queue[int] = asyncio.Queue()
    start = loop.time() + 0.2
    if closed:
        span = float(duration or 10.0)
        deadline = start + span + drain
    else:
        span = n / rate
        deadline = start + span + drain
    stop_sending_at = start + span

    async def schedule() -> None:
        for i in range(n):
            at = start + i / rate
            delay = at - loop.time()
            if delay > 0.0005:
                await asyncio.sleep(delay)
            due[i] = at
            queue.put_nowait(i)

    next_index = 0

    def take_closed() -> int | None:
        nonlocal next_index
        if next_index >= n or loop.time() >= stop_sending_at:
            return None
        i = next_index
        next_index += 1
        due[i] = loop.time()
        return i

    async def worker() -> None:
        conn = _Conn(host, port)
        try:
            for _ in range(n):  # bounded: at most every request once
                if closed:
                    i = take_closed()
                    if i is None:
                        return
                else:
                    i = await queue.get()
                    if i < 0:
                        return
                result.sent += 1
                status = 0
                for attempt in range(2):  # one retry: a keep-alive connection the server had closed
                    try:
                        status = await conn.exchange(requests[i])
                        break
                    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError):
                        conn.close()
                        result.reconnects += 1
                        status = 0
                done_at[i] = loop.time()
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if 200 <= status < 300:
                    result.ok += 1
                else:
                    result.errors += 1
        finally:
            conn.close()

    workers = [asyncio.ensure_future(worker()) for _ in range(connections)]
    scheduler = None if closed else asyncio.ensure_future(schedule())

    async def finish() -> None:
        if scheduler is not None:
            await scheduler
            for _ in workers:
                queue.put_nowait(-1)
        await asyncio.gather(*workers)

    try:
        await asyncio.wait_for(finish(), timeout=max(0.1, deadline - loop.time()))
    except asyncio.TimeoutError:
        pass
    for task in [*workers, *([scheduler] if scheduler else [])]:
        task.cancel()
    await asyncio.gather(*workers, *([scheduler] if scheduler else []), return_exceptions=True)
    end = loop.time()

    lat: list[float] = []
    last_done = start
    considered = 0
    for i in range(n):
        if math.isnan(due[i]) and closed:
            continue  # closed loop: never taken, never offered
        considered += 1
        if math.isnan(done_at[i]):
            result.timeouts += 1
            lower = end - (due[i] if not math.isnan(due[i]) else start + i / rate)
            lat.append(lower)
            result.censored_from = min(result.censored_from, lower)
        else:
            lat.append(done_at[i] - due[i])
            last_done = max(last_done, done_at[i])
    result.errors += result.timeouts
    lat.sort()
    result.latencies = lat
    result.elapsed = (last_done - start) if result.ok else 0.0
    if not closed:
        # the run is as long as its schedule at least: an early finish does not inflate the rate
        result.elapsed = max(result.elapsed, span)
    return result


def run_load(port: int, requests: Sequence[bytes], *, rate: float = 0.0, connections: int = 64,
             duration: float | None = None, drain: float = 10.0, closed: bool = False,
             host: str = "127.0.0.1") -> LoadResult:
    """Send `requests` to 127.0.0.1:port at `rate` per second (open loop), or as fast as
    `connections` can (closed loop, for `duration` seconds); bounded by the deadline."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("load goes to loopback only")
    if not closed and rate <= 0:
        raise ValueError("an open-loop run needs a rate")
    t = time.monotonic()
    result = asyncio.run(_run(host, port, requests, rate, connections, duration, drain, closed))
    _ = time.monotonic() - t
    return result
