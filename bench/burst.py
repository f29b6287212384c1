"""The burst: far more texts than the web processes can handle, and none lost.

    .venv/bin/python -m bench.run --only burst     # 2,000 req/s offered for 30 s (60,000 texts)

The gateway (gunicorn on the Procfile's settings) and two `flask --app app worker` processes (at
nice 10: on this one machine the web processes come first, as they would on their own dynos), the
replies going to the fake Twilio API. Signed webhooks from new numbers, each number texting JOIN,
its name and its place a round apart (bench/inbound.py's script), at a constant rate, open loop.
Then it waits until every text is handled and every reply sent (the drain), and checks: each
signed text stored exactly once, every request answered 2xx, none slower than Twilio's 15 s, each
number's texts handled in the order sent (its conversation holds its name and place), and one
reply per text. Peak RSS of the web processes is sampled during the burst.
"""
from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.common import (
    BIN,
    FakeProcess,
    Proc,
    Results,
    Stack,
    engine_for,
    free_port,
    gunicorn,
    log,
    mb,
    ms,
    rss_bytes,
    truncate,
    wait_until,
)
from bench.inbound import PATH, Numbers, webhook
from bench.loadgen import run_load

SCRIPT = ["JOIN", "Chikondi", "Zomba"]
TWILIO_GIVES_UP = 15.0  # seconds: Twilio drops a webhook not answered by then


def build(n: int, numbers: Numbers) -> tuple[list[bytes], list[str]]:
    """n signed requests: ceil(n / 3) numbers, each sending the script in rounds; the numbers."""
    population = max(1, math.ceil(n / len(SCRIPT)))
    phones = numbers.take(population)
    out = []
    for i in range(n):
        params, signature = webhook(phones[i % population], SCRIPT[(i // population) % len(SCRIPT)])
        data = urlencode(params).encode()
        out.append((f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: TwilioProxy/1.1\r\n"
                    f"Content-Type: application/x-www-form-urlencoded\r\n"
                    f"X-Twilio-Signature: {signature}\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data)
    return out, phones


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class PeakRSS:
    """Samples the RSS of a gunicorn master's worker processes every 0.2 s; keeps the largest."""

    def __init__(self, master: int) -> None:
        self.master, self.peak, self._stop = master, 0, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            for pid in _children(self.master):
                self.peak = max(self.peak, rss_bytes(pid))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(timeout=2)
        return self.peak


def _state(engine: Any) -> dict[str, int]:
    import sqlalchemy as sa

    with engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT count(*) FILTER (WHERE direction = 'in'),"
            " count(*) FILTER (WHERE direction = 'in' AND handled_at IS NULL),"
            " count(*) FILTER (WHERE direction = 'out'),"
            " count(*) FILTER (WHERE direction = 'out' AND status IN ('queued', 'sending'))"
            " FROM messages")).one()
    return {"stored": row[0], "unhandled": row[1], "replies": row[2], "replies_waiting": row[3]}


def run(stack: Stack, results: Results, *, rate: int = 2000, seconds: float = 30.0,
        drain_cap: float = 900.0) -> dict[str, Any]:
    import sqlalchemy as sa

    fake = FakeProcess(stack)  # its own: its count is this burst's replies alone
    outer_fake_url, stack.fake_url = stack.fake_url, fake.base_url
    engine = engine_for(stack.db_url)
    truncate(stack.db_url, ["messages", "conversations", "contacts"])  # a clean slate: this run alone
    port = free_port()
    web: Proc = gunicorn("burst-web", "app:app", stack, port)
    workers = [Proc(f"burst-worker{i}", ["nice", "-n", "10", str(BIN / "flask"), "--app", "app", "worker"],
                    stack.env(), stack.workdir) for i in range(2)]
    numbers = Numbers(265885000000)
    out: dict[str, Any] = {"rate": rate, "seconds": seconds}
    try:
        n = int(rate * seconds)
        requests, phones = build(n, numbers)
        log(f"burst: {n} signed texts from {len(phones)} new numbers at {rate} req/s")
        rss = PeakRSS(web.pid)
        r = run_load(port, requests, rate=rate, connections=256, drain=TWILIO_GIVES_UP + 5)
        burst_end = time.monotonic()
        peak = rss.stop()
        late = sum(1 for x in r.latencies if x >= TWILIO_GIVES_UP)
        state: dict[str, int] = {}

        def drained() -> bool:
            state.update(_state(engine))
            return state["unhandled"] == 0 and state["replies_waiting"] == 0 and state["stored"] >= r.ok

        finished = wait_until(drained, drain_cap, 1.0)
        drain = time.monotonic() - burst_end
        with engine.connect() as conn:
            dup = conn.scalar(sa.text("SELECT count(*) FROM (SELECT provider_id FROM messages WHERE direction = 'in'"
                                      " GROUP BY provider_id HAVING count(*) > 1) d"))
            # Handled in the order stored (the order the gateway received them: an open-loop client does
            # not wait for one answer before the next text, so two texts may cross on the way).
            out_of_order = conn.scalar(sa.text(
                "SELECT count(DISTINCT a.contact_id) FROM messages a JOIN messages b ON b.contact_id = a.contact_id"
                " AND b.direction = 'in' AND b.id > a.id WHERE a.direction = 'in' AND a.handled_at > b.handled_at"))
            as_sent = conn.scalar(sa.text(
                "SELECT count(*) FROM conversations WHERE answers->>'name' = 'Chikondi'"
                " AND answers->>'place' = 'Zomba'"))
            per_text = conn.scalar(sa.text(
                "SELECT count(*) FROM messages i WHERE i.direction = 'in' AND NOT EXISTS"
                " (SELECT 1 FROM messages o WHERE o.reply_to_id = i.id)"))
            deferred = conn.scalar(sa.text(
                "SELECT count(*) FROM messages WHERE direction = 'out' AND provider_id IS NOT NULL"))
        complete = n // len(SCRIPT)  # numbers whose three texts were all sent in the burst
        out.update({"load": r.summary(), "late": late, "peak_rss": peak, "drain_s": round(drain, 1),
                    "drained": finished, "duplicates": dup, "out_of_order": out_of_order, "as_sent": as_sent,
                    "numbers": complete,
                    "without_reply": per_text, "via_reply_queue": deferred, **state})
        log(f"burst: {r.ok} answered of {n}, {r.errors} errors, {late} over 15 s; drained in {drain:.0f} s; {state}")
        results.add("burst", f"{rate} req/s offered for {seconds:.0f} s ({n} texts, new numbers)",
                    f"{r.ok} answered 2xx ({r.achieved:.0f} req/s), p50 {ms(r.p(50))} / p99 {ms(r.p(99))}, "
                    f"{late} over 15 s, {r.errors} errors; {state.get('stored')} stored, {dup} duplicates; "
                    f"{out_of_order} numbers handled out of stored order ({as_sent} of {complete} arrived as sent); "
                    f"{per_text} texts without a reply, "
                    f"{deferred} replies through the reply queue; drained in {drain:.0f} s"
                    f"{'' if finished else ' (not drained at the cap)'}; web peak RSS {mb(peak)}",
                    "all stored once, answered, none timed out, in order",
                    r.ok == n and late == 0 and dup == 0 and state.get("stored") == n and out_of_order == 0
                    and per_text == 0 and finished)
    finally:
        web.stop()
        for w in workers:
            w.stop()
        fake.stop()
        stack.fake_url = outer_fake_url  # the run's fake, for the sections after this one
        engine.dispose()
    return out
