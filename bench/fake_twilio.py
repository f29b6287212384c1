"""The fake Twilio API of tests/fakes in a process of its own, driven by JSON lines on stdin.

    python -m bench.fake_twilio ACCOUNT_SID AUTH_TOKEN
    -> {"base_url": "http://127.0.0.1:PORT"}
    <- {"cmd": "latency", "value": 0.15} | {"cmd": "clear"} | {"cmd": "count"}
       | {"cmd": "dump", "path": "/tmp/x.json"} | {"cmd": "quit"}
       | {"cmd": "fail", "n": 5, "status": 429} | {"cmd": "hang", "n": 3, "seconds": 4}
       | {"cmd": "accept_then_fail", "n": 5, "mode": "drop"}      (faults, for bench/faults.py)

It also records when each message was accepted (wall clock, microseconds), which the pacing
and fan-out benchmarks need and the fake itself keeps only to the second.
"""
from __future__ import annotations

import json
import sys
import time
from typing import Any

from tests.fakes.twilio_api import FakeTwilio, num_segments


class TimedFake(FakeTwilio):
    """FakeTwilio that notes the acceptance time of every created message."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.accepted_at: dict[str, float] = {}

    def _create(self, account: str, form: dict[str, str]) -> dict[str, Any]:
        message = super()._create(account, form)
        at = time.time()
        with self._lock:
            self.accepted_at[message["sid"]] = at
        return message

    def clear(self) -> None:
        super().clear()
        with self._lock:
            self.accepted_at.clear()


def main() -> None:
    fake = TimedFake(sys.argv[1], sys.argv[2]).start()
    out = sys.stdout

    def reply(payload: dict[str, Any]) -> None:
        out.write(json.dumps(payload) + "\n")
        out.flush()

    reply({"base_url": fake.base_url})
    try:
        for line in sys.stdin:  # ends when the driver closes the pipe or says quit
            cmd = json.loads(line)
            name = cmd.get("cmd")
            if name == "latency":
                fake.latency = float(cmd["value"])
                reply({"ok": True})
            elif name == "clear":
                fake.clear()
                reply({"ok": True})
            elif name == "count":
                reply({"creates_ok": len(fake.accepted_at), "requests": fake.requests,
                       "creates": fake.create_attempts, "connections": fake.connections})
            elif name == "dump":
                with fake._lock:
                    rows = [{"sid": m["sid"], "to": m["to"], "body": m["body"], "from": m["from"],
                             "at": fake.accepted_at.get(m["sid"], 0.0)} for m in fake._messages]
                for r in rows:
                    r["segments"] = num_segments(r["body"])
                with open(cmd["path"], "w") as f:
                    json.dump(rows, f)
                reply({"ok": True, "n": len(rows)})
            elif name == "fail":  # the next n requests answer this HTTP status (429, 500, ...)
                fake.fail_next(int(cmd.get("n", 1)), status=int(cmd["status"]))
                reply({"ok": True})
            elif name == "hang":  # the next n requests wait this long (a create is recorded first)
                fake.hang_next(int(cmd.get("n", 1)), seconds=float(cmd["seconds"]))
                reply({"ok": True})
            elif name == "accept_then_fail":  # record the next n creates, then drop the connection or 500
                fake.accept_then_fail_next(int(cmd.get("n", 1)), mode=cmd.get("mode", "drop"))
                reply({"ok": True})
            elif name == "quit":
                reply({"ok": True})
                break
            else:
                reply({"error": f"unknown command {name!r}"})
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
