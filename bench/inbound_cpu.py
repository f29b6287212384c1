"""CPU per inbound webhook, in one process, no HTTP server: what the gateway's own path costs.

    .venv/bin/python -m bench.inbound_cpu [N]            # N signed webhooks (default 1,000), PostgreSQL
    .venv/bin/python -m bench.inbound_cpu [N] --stored   # each stored for a worker (store and acknowledge)
    .venv/bin/python -m bench.inbound_cpu [N] --drained  # stored, then handled as a drain job does

The same mix as bench/inbound.py (JOIN, a report answer, a question, STOP, a number) from 300
numbers, through Flask's test client against the app on its own schema (`bench_cpu`, dropped
afterwards). Prints wall and CPU milliseconds per webhook and the SQL statements and commits each
kind of text costs; it is a figure, never a test. With --stored every text takes the path a burst
takes (stored, acknowledged, handed to the workers; nothing handles it here): one at a time, so
each is a batch of its own and the CPU counts the writer thread's share in full. With --drained
the texts are stored that way, then handled as a worker's drain job handles them (50 contacts at
a time, replies onto the reply queue; sending them is not counted): the figures are the drain's.
"""
from __future__ import annotations

import os
import sys
import time
from collections import Counter
from typing import Any

from sqlalchemy import event
from twilio.request_validator import RequestValidator

from bench.common import (ACCOUNT_SID, AUTH_TOKEN, DEFAULT_PG, FROM_NUMBER, PUBLIC_BASE, Stack, create_schema,
                          drop_schema)

SCHEMA = "bench_cpu"
REDIS_URL = "redis://127.0.0.1:6379/13"  # not make bench's 14: a drain here must not take its texts
BODIES = ["JOIN", "REPORT", "hello there", "STOP", "1"]


def measure(n: int = 1000, stored: bool = False, drained: bool = False) -> dict[str, Any]:
    """CPU and wall ms per webhook, and statements and commits per webhook by kind of text."""
    import tempfile
    from pathlib import Path

    from gateway import create_app

    schema = f"{SCHEMA}_{os.getpid()}"  # its own: two runs at once must not share one
    url = create_schema(DEFAULT_PG, schema)
    try:
        stack = Stack(url, REDIS_URL, Path(tempfile.mkdtemp()))
        app = create_app(stack.app_config())
        if stored or drained:
            app.extensions["gateway"].inbound.pressure.forced = True
            app.extensions["gateway"].redis.flushdb()  # its own database: what an earlier run left
        statements: Counter[str] = Counter()
        kind = [""]
        cpu_by_kind: Counter[str] = Counter()
        engine = app.extensions["gateway"].engine
        event.listen(engine, "before_cursor_execute", lambda *a: statements.update([kind[0]]))
        event.listen(engine, "commit", lambda *a: statements.update([kind[0] + " commit"]))
        validator, client = RequestValidator(AUTH_TOKEN), app.test_client()
        requests = []
        for i in range(n):
            params = {"MessageSid": f"SM{i:032d}", "AccountSid": ACCOUNT_SID, "From": f"+2659910{i % 300:05d}",
                      "To": FROM_NUMBER, "Body": BODIES[i % len(BODIES)]}
            requests.append((params, validator.compute_signature(PUBLIC_BASE + "/sms/twilio", params)))
        wall, cpu = time.perf_counter(), time.process_time()
        for params, signature in requests:
            kind[0] = params["Body"]
            one = time.process_time()
            response = client.post("/sms/twilio", data=params, headers={"X-Twilio-Signature": signature})
            cpu_by_kind[kind[0]] += time.process_time() - one
            assert response.status_code == 200, response.status_code
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        kinds, per_kind = BODIES, n / len(BODIES)
        if drained:  # the figures are the drain's alone: what storing cost is left out
            statements.clear()
            kind[0] = "drained"
            wall, cpu = time.perf_counter(), time.process_time()
            with app.app_context():
                from gateway.inbound import deferred
                redis = app.extensions["gateway"].redis
                while redis.llen(deferred.LATER):
                    deferred.drain_later()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            cpu_by_kind, kinds, per_kind = Counter({"drained": cpu}), ["drained"], n
        engine.dispose()
        return {"n": n, "wall_ms": 1000 * wall / n, "cpu_ms": 1000 * cpu / n,
                "kinds": {body: {"cpu_ms": 1000 * cpu_by_kind[body] / per_kind,
                                 "statements": statements[body] / per_kind,
                                 "commits": statements[body + " commit"] / per_kind} for body in kinds}}
    finally:
        drop_schema(DEFAULT_PG, schema)


def main() -> None:
    args = [a for a in sys.argv[1:] if a not in ("--stored", "--drained")]
    n = int(args[0]) if args else 1000
    stored, drained = "--stored" in sys.argv[1:], "--drained" in sys.argv[1:]
    got = measure(n, stored, drained)
    how = "stored, then drained by a job" if drained else "stored for a worker" if stored else "handled"
    print(f"{n} webhooks {how}: {got['wall_ms']:.2f} ms wall, {got['cpu_ms']:.2f} ms CPU each (this process)")
    for body, k in got["kinds"].items():
        print(f"  {body!r}: {k['cpu_ms']:.2f} ms CPU, {k['statements']:.1f} statements, "
              f"{k['commits']:.1f} commits per webhook")


if __name__ == "__main__":
    main()
