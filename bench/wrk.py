"""The issue's own measure: `wrk -t2 -c32` posting signed JOINs from new numbers (Debian's wrk).

bench/loadgen.py is pure Python and shares the two cores with the server it loads; wrk is C and
takes far less of them, so the closed-loop JOIN shape is measured with wrk when it is installed
(`apt-get install wrk`), as in the RapidSMS side-by-side, and with the Python generator otherwise.
Each form is signed before the run and sent once.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from bench.inbound import PATH, Numbers, webhook

SCRIPT = Path(__file__).with_name("wrk_signed.lua")
_LINE = re.compile(r"WRK (.*)")


@dataclass
class WrkResult:
    """What wrk reports, shaped like loadgen.LoadResult where the benchmark reads it."""

    requests: int
    seconds: float
    percentiles: dict[float, float]  # 50, 90, 99, 100 -> seconds
    status_errors: int  # non-2xx/3xx answers
    socket_errors: int  # connect, read, write errors and timeouts
    offered_rate: float = 0.0  # closed loop

    @property
    def errors(self) -> int:
        return self.status_errors + self.socket_errors

    @property
    def ok(self) -> int:
        return self.requests - self.status_errors

    @property
    def achieved(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def p(self, q: float) -> float:
        return self.percentiles[q]

    def summary(self) -> dict[str, object]:
        return {"tool": "wrk -t2 -c32", "achieved": round(self.achieved, 1), "ok": self.ok, "errors": self.errors,
                "p50_ms": round(self.p(50) * 1000, 2), "p99_ms": round(self.p(99) * 1000, 2),
                "max_ms": round(self.p(100) * 1000, 2), "elapsed_s": round(self.seconds, 2)}


def available() -> bool:
    return shutil.which("wrk") is not None


def parse(output: str) -> WrkResult:
    """The WRK line that wrk_signed.lua prints at the end of a run."""
    found = _LINE.search(output)
    if not found:
        raise RuntimeError(f"wrk printed no result:\n{output[-2000:]}")
    v = {k: int(x) for k, x in (pair.split("=") for pair in found.group(1).split())}
    return WrkResult(v["requests"], v["duration_us"] / 1e6,
                     {50: v["p50_us"] / 1e6, 90: v["p90_us"] / 1e6, 99: v["p99_us"] / 1e6, 100: v["max_us"] / 1e6},
                     v["status"], v["socket"])


def join_shape(port: int, numbers: Numbers, seconds: float, *, threads: int = 2, connections: int = 32,
               forms: int = 0) -> WrkResult:
    """wrk -t2 -c32 for `seconds`, each request a JOIN from a new number, signed for the gateway;
    `forms` signed (by default more than the gateway can take in that time: each is sent once)."""
    n = forms or max(4000, int(seconds * 4000))
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        signed = Path(tmp) / "signed.txt"
        with signed.open("w") as f:
            for number in numbers.take(n):
                params, signature = webhook(number, "JOIN")
                f.write(f"{signature}\t{urlencode(params)}\n")
        proc = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(SCRIPT),
             f"http://127.0.0.1:{port}{PATH}", "--", str(signed), str(threads)],
            capture_output=True, text=True, timeout=seconds + 120, check=False)
    return parse(proc.stdout + proc.stderr)
