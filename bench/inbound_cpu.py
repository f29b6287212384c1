"""CPU per inbound webhook, in one process, no HTTP server: what the gateway's own path costs.

    .venv/bin/python -m bench.inbound_cpu [N]      # N signed webhooks (default 1,000), PostgreSQL

The same mix as bench/inbound.py (JOIN, a report answer, a question, STOP, a number) from 300
numbers, through Flask's test client against the app on its own schema (`bench_cpu`, dropped
afterwards). Prints wall and CPU milliseconds per webhook and the SQL statements and commits each
kind of text costs; it is a figure, never a test.
"""
from __future__ import annotations

import sys
import time
from collections import Counter

from sqlalchemy import event
from twilio.request_validator import RequestValidator

from bench.common import ACCOUNT_SID, AUTH_TOKEN, DEFAULT_PG, FROM_NUMBER, PUBLIC_BASE, Stack, create_schema, drop_schema

SCHEMA = "bench_cpu"
BODIES = ["JOIN", "REPORT", "hello there", "STOP", "1"]


def main() -> None:
    import tempfile
    from pathlib import Path

    from gateway import create_app

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    url = create_schema(DEFAULT_PG, SCHEMA)
    try:
        stack = Stack(url, "redis://127.0.0.1:6379/14", Path(tempfile.mkdtemp()))
        app = create_app(stack.app_config())
        statements: Counter[str] = Counter()
        kind = [""]
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
            response = client.post("/sms/twilio", data=params, headers={"X-Twilio-Signature": signature})
            assert response.status_code == 200, response.status_code
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"{n} webhooks: {1000 * wall / n:.2f} ms wall, {1000 * cpu / n:.2f} ms CPU each (this process)")
        per_kind = n / len(BODIES)
        for body in BODIES:
            print(f"  {body!r}: {statements[body] / per_kind:.1f} statements, "
                  f"{statements[body + ' commit'] / per_kind:.1f} commits per webhook")
        engine.dispose()
    finally:
        drop_schema(DEFAULT_PG, SCHEMA)


if __name__ == "__main__":
    main()
