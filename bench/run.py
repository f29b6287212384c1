"""Run every benchmark and print one table.

    .venv/bin/python -m bench.run              # make bench: fan-out to 10,000; under ten minutes
    BENCH_FULL=1 .venv/bin/python -m bench.run # also 100,000 recipients, longer steps
    .venv/bin/python -m bench.run --smoke      # tiny sizes (tests/test_bench_smoke.py)

Everything runs on this machine against 127.0.0.1: PostgreSQL in a schema of its own
(`bench`, dropped and migrated with `flask --app app db upgrade` first; BENCH_DATABASE_URL or a
PostgreSQL DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/test) and Redis database 14
(BENCH_REDIS_URL). `--db-url/--redis-url` use an existing, migrated schema and database as they are.
The machine is shared: figures move with whatever else runs; the header shows the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.common import (DEFAULT_REDIS, SCHEMA, FakeProcess, Results, Stack, bench_db_url, create_schema,
                          drop_schema, flush_redis, log)

SIZES: dict[str, dict[str, Any]] = {
    "smoke": {"rates": [20], "step_seconds": 1.0, "max_seconds": 2.0, "drain": 5.0,
              "sizes": [50], "latencies": [0.0], "caps": {0.0: 30.0}, "textbook_n": {0.0: 50},
              "ceiling_seconds": 1.0, "launch_only_n": 0, "pace_rate": 20.0, "pace_window": 3.0,
              "burst_rate": 50, "burst_seconds": 2.0, "join_rounds": 1},
    # 25 req/s is not asked for: it shows the gateway's latency below its capacity on this machine
    "default": {"rates": [25, 100, 200, 400, 800], "step_seconds": 12.0, "max_seconds": 10.0, "drain": 8.0,
                "sizes": [10_000], "latencies": [0.0, 0.15], "caps": {0.0: 90.0, 0.15: 40.0},
                "textbook_n": {0.0: 2_000, 0.15: 300}, "ceiling_seconds": 8.0, "launch_only_n": 100_000,
                "pace_rate": 50.0, "pace_window": 60.0, "burst_rate": 2000, "burst_seconds": 30.0,
                "join_rounds": 3},
    "full": {"rates": [100, 200, 400, 800], "step_seconds": 30.0, "max_seconds": 20.0, "drain": 10.0,
             "sizes": [10_000, 100_000], "latencies": [0.0, 0.15], "caps": {0.0: 600.0, 0.15: 120.0},
             "textbook_n": {0.0: 10_000, 0.15: 1_000}, "ceiling_seconds": 15.0, "launch_only_n": 0,
             "pace_rate": 50.0, "pace_window": 60.0, "burst_rate": 2000, "burst_seconds": 30.0,
             "join_rounds": 3},
}


def machine() -> str:
    cores = os.cpu_count() or 0
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // (1024 * 1024)
    except OSError:
        pass
    return f"{cores} cores, {mem} GiB, {platform.system()} {platform.machine()}, Python {platform.python_version()}"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", default=os.environ.get("BENCH_FULL") == "1",
                    help="100,000 recipients too, longer steps (BENCH_FULL=1)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds each")
    ap.add_argument("--only", default="inbound,burst,fanout,pacing", help="comma-separated subset")
    ap.add_argument("--db-url", help="an existing migrated PostgreSQL schema (URL with search_path); not dropped")
    ap.add_argument("--redis-url", help="the Redis database to use (default redis://127.0.0.1:6379/14)")
    ap.add_argument("--json", dest="json_path", help="also write the figures as JSON here")
    ap.add_argument("--profile", metavar="DIR", help="run the gateway's web and worker processes under py-spy")
    ap.add_argument("--keep", action="store_true", help="keep the bench schema afterwards")
    ap.add_argument("--send-concurrency", type=int, default=None,
                    help="SEND_CONCURRENCY of the workers and the HTTP ceiling (default: the gateway's)")
    ap.add_argument("--burst-rate", type=int, help="the burst's offered rate (default 2,000 req/s)")
    ap.add_argument("--burst-seconds", type=float, help="the burst's length (default 30 s)")
    args = ap.parse_args(argv)
    size = "smoke" if args.smoke else ("full" if args.full else "default")
    p = SIZES[size]
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    command = "python -m bench.run " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    started = datetime.now(timezone.utc)
    t_start = time.monotonic()
    load_before = loadavg()
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    profile_dir = Path(args.profile).resolve() if args.profile else None
    if profile_dir:
        profile_dir.mkdir(parents=True, exist_ok=True)
    log(f"{size} run; logs in {workdir}")

    base = bench_db_url()
    schema = os.environ.get("BENCH_SCHEMA", SCHEMA)
    if args.db_url:
        db_url = args.db_url
    else:
        log(f"schema {schema}: create and migrate (flask --app app db upgrade)")
        db_url = create_schema(base, schema)
    redis_url = args.redis_url or os.environ.get("BENCH_REDIS_URL") or DEFAULT_REDIS
    stack = Stack(db_url, redis_url, workdir)
    if args.send_concurrency:
        stack.send_concurrency = args.send_concurrency
    flush_redis(redis_url)
    results = Results()
    figures: dict[str, Any] = {"size": size, "started": started.isoformat(), "machine": machine(),
                               "command": command}
    fake = None
    try:
        if only & {"inbound", "fanout", "pacing"}:
            # Every section that sends does so to the fake, never to api.twilio.com: the inbound
            # section's workers send the replies to texts stored for them (store and acknowledge).
            fake = FakeProcess(stack)
            stack.fake_url = fake.base_url
        if "inbound" in only:
            from bench import inbound

            log("inbound")
            figures["inbound"] = inbound.run(stack, results, rates=p["rates"], step_seconds=p["step_seconds"],
                                             max_seconds=p["max_seconds"], drain=p["drain"], rounds=p["join_rounds"],
                                             profile_dir=profile_dir)
        if "burst" in only:
            from bench import burst

            log("burst")
            figures["burst"] = burst.run(stack, results, rate=args.burst_rate or p["burst_rate"],
                                         seconds=args.burst_seconds or p["burst_seconds"])
        if "fanout" in only:
            from bench import fanout

            assert fake is not None
            log("fan-out")
            figures["fanout"] = fanout.run(stack, fake, results, sizes=p["sizes"], latencies=p["latencies"],
                                           caps=p["caps"], textbook_n=p["textbook_n"],
                                           ceiling_seconds=p["ceiling_seconds"], launch_only_n=p["launch_only_n"],
                                           profile_dir=profile_dir)
        if "pacing" in only:
            from bench import pacing

            assert fake is not None
            log("pacing")
            figures["pacing"] = pacing.run(stack, fake, results, rate=p["pace_rate"], window=p["pace_window"])
    finally:
        if fake is not None:
            fake.stop()
        flush_redis(redis_url)
        if not args.db_url and not args.keep:
            drop_schema(base, schema)
    elapsed = time.monotonic() - t_start
    figures["elapsed_s"] = round(elapsed, 1)
    print()
    print(f"Gateway benchmarks, {started:%Y-%m-%d %H:%M} UTC; {machine()}")
    print(f"Command: {command.strip()} ({size} size); took {elapsed / 60:.1f} min; load average before "
          f"{load_before}, after {loadavg()}")
    print("Shared machine (other engineers' tests run on it): figures are noisy; ratios carry the result.")
    print()
    print(results.table())
    figures["table"] = results.table()
    figures["rows"] = [r.__dict__ for r in results.rows]
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(figures, f, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
