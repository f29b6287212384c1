"""The benchmarks in bench/ still run: each at a tiny size, on PostgreSQL + Redis only.

Runs `python -m bench.run --smoke` (inbound: 20 webhooks at 20 req/s against a gunicorn it
starts, and the bare-Flask ceiling; fan-out: 50 recipients through the fake Twilio API, with the
HTTP ceiling and the textbook approach; pacing: 20 segments/s for 3 s) in this test run's own
schema and Redis database, then checks the printed table and the figures are sane. Skipped
alongside SQLite; fails rather than skips in CI when PostgreSQL or Redis is away (conftest.py).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.servers]


def test_benchmarks_run_at_tiny_sizes_and_print_sane_figures(db_url: str, redis_url: str | None,
                                                              tmp_path: Path) -> None:
    assert db_url.startswith("postgres") and redis_url is not None  # the `servers` mark
    figures_path = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--db-url", db_url, "--redis-url", redis_url,
         "--json", str(figures_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=900)  # a hang guard, not a timing test
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "| benchmark | case | result | target | met |" in proc.stdout
    assert "Command: python -m bench.run --smoke" in proc.stdout
    figures = json.loads(figures_path.read_text())

    inbound = figures["inbound"]
    for target in ("gateway", "ceiling"):
        step = inbound[target]["20"]
        assert step["ok"] == 20 and step["errors"] == 0, (target, step)
        assert step["achieved"] > 0 and 0 < step["p50_ms"] <= step["p99_ms"] <= step["max_ms"], (target, step)
        assert inbound[target]["max"]["achieved"] > 0 and inbound[target]["max"]["errors"] == 0, (target, inbound[target])
    assert 0 < inbound["ratio"]
    # The JOIN shape in turns, each from quiet: the workers had handled what came before it.
    join = inbound["join"]
    assert len(join["gateway"]) == len(join["ceiling"]) == len(join["ratios"]) == 1, join
    assert join["gateway"][0]["ok"] > 0 and join["ceiling"][0]["ok"] > 0 and join["ratios"][0] > 0, join
    assert join["left_unhandled"] == [0, 0] and len(join["waited_s"]) == 2, join
    # The embedded default (SQLite, queue in process) served and answered, not just started.
    embedded = inbound["embedded"]
    assert embedded["ok"] > 0 and embedded["errors"] == 0 and embedded["achieved"] > 0, embedded
    assert inbound["store"]["stored"] >= inbound["ok_measured"] and inbound["store"]["unhandled"] == 0
    # JOIN, flow answers, STOP and unknown texts all went through (the closed-loop run reaches them)
    assert set(inbound["store"]["routes"]) >= {"flow", "conversation", "stop", "inbox"}, inbound["store"]

    (case,) = figures["fanout"].values()
    assert case["ceiling"]["rate"] > 0
    for kind in ("gateway", "textbook"):
        run = case[kind]
        assert run["accepted"] == run["recipients"] == 50, (kind, run)
        assert run["duplicates"] == 0 and run["lost"] == 0 and run["unrecorded"] == 0, (kind, run)
        assert run["rate"] > 0 and run["launch_s"] > 0 and not run["capped"], (kind, run)
        assert run["statuses"] == {"sent": 50}, (kind, run)
    assert case["ratios"]["gateway_vs_ceiling"] > 0 and case["ratios"]["gateway_vs_textbook"] > 0

    pacing = figures["pacing"]
    assert pacing["duplicates"] == 0 and pacing["segments"] > 0
    assert abs(pacing["error"]) < 0.2, pacing  # 3 s is short; `make bench` holds it to 5% over a minute
