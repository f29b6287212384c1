"""The fault run (`make faults`): break things on purpose and count what was lost or sent twice.

    .venv/bin/python -m bench.faults            # every scenario; about 5 minutes on 2 cores
    .venv/bin/python -m bench.faults --small    # the big broadcasts to 1,000 instead of 10,000

Everything runs against private servers this run starts and removes (bench/servers.py): a
PostgreSQL cluster and a Redis on free loopback ports, so stopping them disturbs nobody. The
gateway runs as it does in production: gunicorn on the Procfile's settings, `flask --app app
worker` processes (restarted when they die, as a process supervisor would), and the twilio SDK
talking to the fake Twilio API (bench/fake_twilio.py) in a process of its own.

Nobody types anything: no `outbox reconcile`, no `spool replay`. Recovery is the workers' own
(their reconciler, RQ's heartbeats) and the web process's (the spool replay before requests), with
the periods shortened so a run takes minutes: SENDING_STALE_SECONDS, RECONCILE_SECONDS and
WORKER_HEARTBEAT_SECONDS below (production: 120, 60 and 10, so the bound there is 4 minutes).

Each scenario prints one row: the faults injected, inbound texts sent and stored, broadcast
recipients and messages accepted at the fake, the recovery time (from the last fault until every
recipient has the message, or every kept text is stored and answered), lost and duplicated. The run
exits 1 unless every row has 0 lost, 0 duplicated and passes its own checks (answers in time,
order, final states, every broadcast finished within 4 minutes).
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from bench.common import BIN, NUMBERS_KEY, ROOT, FakeProcess, Proc, Stack, engine_for, flush_redis, log, wait_until
from bench.fanout import _audience, _launch_gateway, load_contacts, reset_outbox
from bench.servers import PrivatePostgres, PrivateRedis

WORKERS = 2
BIG, SMALL, TINY = "Zomba", "Blantyre", "Lilongwe"  # audiences: 10,000 / 1,000 / 200 by default
# Recovery periods, shortened from production's 120 / 60 / 10 s so each scenario takes seconds.
STALE_SECONDS, RECONCILE_SECONDS, HEARTBEAT_SECONDS = 10, 5, 2
BOUND = STALE_SECONDS + 2 * RECONCILE_SECONDS  # the most a worker's death may add to a broadcast


@dataclass
class Row:
    """One scenario's line in the table."""

    scenario: str
    faults: str
    inbound_sent: int | None = None
    inbound_stored: int | None = None
    recipients: int | None = None
    accepted: int | None = None
    recovery: float | None = None  # seconds from the last fault until every recipient has the message
    lost: int = 0
    duplicated: int = 0
    notes: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)  # anything else that must hold

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and not self.failed_checks

    def cells(self) -> list[str]:
        def num(v: int | None) -> str:
            return "" if v is None else f"{v:,}"

        inbound = "" if self.inbound_sent is None else f"{self.inbound_sent:,} / {self.inbound_stored:,}"
        notes = "; ".join(self.notes + [f"**{c}**" for c in self.failed_checks])
        recovery = "" if self.recovery is None else f"{self.recovery:.1f} s"
        return [self.scenario, self.faults, inbound, num(self.recipients), num(self.accepted), recovery,
                str(self.lost), str(self.duplicated), notes]


class FaultStack(Stack):
    """The benchmark stack plus a spool directory, a 2 s Twilio client timeout (hangs show fast) and
    the shortened recovery periods."""

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(**{"SPOOL_DIR": str(self.workdir / "spool"), "TWILIO_TIMEOUT": "2",
                              "SENDING_STALE_SECONDS": str(STALE_SECONDS), "RECONCILE_SECONDS": str(RECONCILE_SECONDS),
                              "WORKER_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS), **extra})


@dataclass
class Ctx:
    """The private stack every scenario runs on."""

    stack: Stack
    redis: PrivateRedis
    pg: PrivatePostgres
    fake: FakeProcess
    app: Any
    sizes: dict[str, int]
    baseline: dict[str, float] = field(default_factory=dict)  # seconds a broadcast takes with no fault


# -- workers under a supervisor ------------------------------------------------------------------

class Workers:
    """`flask --app app worker` processes, each restarted when it dies (systemd's Restart=always)."""

    def __init__(self, stack: Stack, n: int = WORKERS) -> None:
        self.stack, self.generation, self.restarts = stack, 0, 0
        self.procs: list[Proc] = [self._start(i) for i in range(n)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, daemon=True)
        self._thread.start()
        from rq import Worker

        from bench.common import redis_client

        r = redis_client(stack.redis_url)
        try:
            if not wait_until(lambda: Worker.count(connection=r) >= n, 60, 0.2):
                raise RuntimeError("workers did not start:\n" + "\n".join(p.tail() for p in self.procs))
        finally:
            r.close()

    def _start(self, i: int) -> Proc:
        self.generation += 1
        # The reconciler every RECONCILE_SECONDS (the stack's environment), so recovery shows within a scenario.
        return Proc(f"worker{i}-{self.generation}", [str(BIN / "flask"), "--app", "app", "worker"],
                    self.stack.env(), self.stack.workdir)

    def _supervise(self) -> None:
        while not self._stop.wait(0.5):
            for i, p in enumerate(self.procs):
                if not p.alive() and not self._stop.is_set():
                    p.stop(timeout=1)  # its scheduler child too (the process group)
                    self.procs[i] = self._start(i)
                    self.restarts += 1

    def signal(self, i: int, sig: signal.Signals) -> None:
        """SIGKILL takes the worker's whole group at once (a container dying); SIGTERM asks it to stop."""
        proc = self.procs[i]
        if sig == signal.SIGKILL:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            os.kill(proc.pid, sig)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for p in self.procs:
            if p.alive():
                os.kill(p.pid, signal.SIGTERM)
        for p in self.procs:
            wait_until(lambda: not p.alive(), 30, 0.1)
            p.stop(timeout=5)


# -- helpers ---------------------------------------------------------------------------------------

def open_number(sealed: str | None) -> str | None:
    """A contact's number from its sealed column (numbers are encrypted at rest with NUMBERS_KEY)."""
    from gateway.core.vault import NumberVault

    return NumberVault.from_keys([NUMBERS_KEY]).open(sealed) if sealed else None


def sql(ctx: Ctx, query: str, **params: Any) -> list[tuple[Any, ...]]:
    import sqlalchemy as sa

    engine = engine_for(ctx.stack.db_url)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(query), params)
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def drain(ctx: Ctx, unfinished: Callable[[], int], timeout: float = 240.0) -> bool:
    """Wait, typing nothing, until nothing is left unsent (the workers' reconciler does the rest)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            left = unfinished()
        except Exception:  # the database is on its way back
            left = -1
        if left == 0:
            return True
        time.sleep(0.25)
    return False


def outbound_tally(ctx: Ctx, row: Row, where: str, **params: Any) -> dict[str, tuple[str, str | None]]:
    """Compare the outbox rows chosen by `where` with what the fake accepted: lost, duplicated, unrecorded."""
    msgs = ctx.fake.messages(ctx.stack.workdir / f"fake-{time.time_ns()}.json")
    rows = [(i, open_number(sealed), body, status, pid) for i, sealed, body, status, pid in sql(
        ctx, "SELECT m.id, c.number_sealed, m.body, m.status, m.provider_id FROM messages m "
             f"JOIN contacts c ON c.id = m.contact_id WHERE m.direction = 'out' AND {where}", **params)]
    # A reply the outbox held back because the supporter texted STOP meanwhile is owed to nobody.
    held = [r for r in rows if r[3] == "skipped"]
    rows = [r for r in rows if r[3] != "skipped"]
    if held:
        row.notes.append(f"{len(held)} replies not sent: the supporter had texted STOP since")
    at_fake = Counter((m["to"], m["body"]) for m in msgs)
    expected = Counter((number, body) for _id, number, body, _s, _p in rows)
    sids = {m["sid"] for m in msgs}
    row.accepted = sum(at_fake[k] for k in expected)
    row.lost += sum(max(0, n - at_fake[k]) for k, n in expected.items())
    row.duplicated += sum(max(0, n - expected[k]) for k, n in at_fake.items() if k in expected)
    unrecorded = sum(1 for _i, _n, _b, status, pid in rows if status in ("sent", "delivered") and pid not in sids)
    unrecorded += sum(1 for _i, _n, _b, status, _p in rows if status not in ("sent", "delivered", "undelivered", "failed"))
    if unrecorded:
        row.failed_checks.append(f"{unrecorded} rows not settled as sent with the fake's id")
    return {str(i): (s, p) for i, _n, _b, s, p in rows}


# -- broadcast scenarios ---------------------------------------------------------------------------

Step = tuple[float, str, Callable[[Ctx, "Workers"], None]]


def broadcast_case(ctx: Ctx, scenario: str, place: str, steps: list[Step]) -> Row:
    """Launch to `place`; at each fraction of recipients accepted, inject a fault; then drain and count."""
    reset_outbox(ctx.stack.db_url)
    flush_redis(ctx.stack.redis_url)  # nothing left from the scenario before
    ctx.fake.clear()
    recipients = len(_audience(ctx.stack.db_url, place))
    row = Row(scenario, "; ".join(s[1] for s in steps), recipients=recipients)
    workers = Workers(ctx.stack)
    try:
        bid, _, _ = _launch_gateway(ctx.app, place)
        launched = time.monotonic()
        log(f"{scenario}: broadcast {bid} to {recipients:,}")
        last_fault = launched
        for fraction, what, act in steps:
            if not wait_until(lambda: ctx.fake.count() >= fraction * recipients, 120, 0.02):
                row.failed_checks.append(f"never reached {fraction:.0%} before '{what}'")
                break
            log(f"  {ctx.fake.count():,} accepted: {what}")
            act(ctx, workers)
            last_fault = time.monotonic()
        done = drain(ctx, lambda: sql(ctx, "SELECT count(*) FROM messages WHERE broadcast_id = :b AND "
                                           "status IN ('queued', 'sending')", b=bid)[0][0])
        finished = time.monotonic()
        if not done:
            row.failed_checks.append("not finished within 4 minutes")
    finally:
        workers.stop()
    row.recovery = finished - last_fault
    outbound_tally(ctx, row, "m.broadcast_id = :b", b=bid)
    # What the faults cost: the whole broadcast against one with no fault (ctx.baseline). A dead
    # worker's rows wait SENDING_STALE_SECONDS and up to two reconciler periods (BOUND), then the
    # reconciler asks the provider about each one (a list request each, ~0.2 s at the fake), so a
    # few hundred rows left `sending` add their asking time: reported here, not failed on.
    baseline = ctx.baseline.get(place)
    took = finished - launched
    if baseline is not None:
        row.notes.append(f"whole broadcast {took:.1f} s (no fault: {baseline:.1f} s)")
    if workers.restarts:
        row.notes.append(f"{workers.restarts} worker restart(s) by the supervisor")
    return row


def baseline(ctx: Ctx, place: str) -> float:
    """Seconds a broadcast to `place` takes with no fault, on the same stack."""
    reset_outbox(ctx.stack.db_url)
    flush_redis(ctx.stack.redis_url)
    ctx.fake.clear()
    workers = Workers(ctx.stack)
    try:
        bid, _, _ = _launch_gateway(ctx.app, place)
        started = time.monotonic()
        drain(ctx, lambda: sql(ctx, "SELECT count(*) FROM messages WHERE broadcast_id = :b AND "
                                    "status IN ('queued', 'sending')", b=bid)[0][0])
        took = time.monotonic() - started
    finally:
        workers.stop()
    log(f"no fault: a broadcast to {place} takes {took:.1f} s")
    return took


def _kill(i: int, sig: signal.Signals) -> Callable[[Ctx, Workers], None]:
    return lambda ctx, w: w.signal(i, sig)


def _fake(cmd: str, **kwargs: Any) -> Callable[[Ctx, Workers], None]:
    return lambda ctx, w: ctx.fake.call(cmd, **kwargs) and None


BROADCASTS: list[tuple[str, str, list[Step]]] = [
    ("worker SIGKILL x3 + SIGTERM x1 mid-broadcast", BIG, [
        (0.15, "SIGKILL worker 1", _kill(0, signal.SIGKILL)),
        (0.35, "SIGKILL worker 2", _kill(1, signal.SIGKILL)),
        (0.55, "SIGKILL worker 1", _kill(0, signal.SIGKILL)),
        (0.75, "SIGTERM worker 2", _kill(1, signal.SIGTERM))]),
    ("Redis restarted mid-broadcast", BIG, [
        (0.3, "Redis stopped 2 s, restarted empty", lambda c, w: c.redis.restart(2.0))]),
    ("PostgreSQL restarted mid-broadcast", BIG, [
        (0.3, "PostgreSQL stopped 3 s (fast shutdown), restarted", lambda c, w: c.pg.restart(3.0))]),
    ("provider answers 429", SMALL, [
        (0.3, "10 x HTTP 429 (code 20429)", _fake("fail", n=10, status=429))]),
    ("provider answers 500", SMALL, [
        (0.3, "10 x HTTP 500 before accepting", _fake("fail", n=10, status=500))]),
    ("provider hangs past the client timeout", SMALL, [
        (0.3, "4 x accepted, then no answer for 5 s (timeout 2 s)", _fake("hang", n=4, seconds=5.0))]),
    ("provider resets the connection after accepting", SMALL, [
        (0.3, "10 x accepted, then connection reset", _fake("accept_then_fail", n=10, mode="drop"))]),
]


def broadcast_scenarios(ctx: Ctx) -> list[tuple[str, Callable[[], Row]]]:
    """(name, run) for every broadcast scenario."""
    return [(name, lambda name=name, place=place, steps=steps: broadcast_case(ctx, name, place, steps))
            for name, place, steps in BROADCASTS]


# -- the run ---------------------------------------------------------------------------------------

def machine() -> str:
    from bench.run import machine as describe

    return describe()


def table(rows: list[Row]) -> str:
    head = ["scenario", "faults injected", "inbound sent / stored", "recipients", "accepted at fake", "recovery",
            "lost", "duplicated", "notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)


def setup(workdir: Path, sizes: dict[str, int]) -> Ctx:
    from gateway import create_app

    redis = PrivateRedis(workdir)
    pg = PrivatePostgres()
    stack = FaultStack(pg.url, redis.url, workdir)
    fake = None
    try:
        fake = FakeProcess(stack)
        stack.fake_url = fake.base_url
        env = stack.env()
        subprocess.run([str(BIN / "flask"), "--app", "app", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL, timeout=120)
        first = 265991000000
        for place in (BIG, SMALL, TINY):
            load_contacts(pg.url, sizes[place], first, place)
            first += 1_000_000
        app = create_app(stack.app_config() | {"SPOOL_DIR": str(workdir / "spool"), "TWILIO_TIMEOUT": 2.0})
    except BaseException:
        if fake is not None:
            fake.stop()
        redis.stop()
        pg.destroy()
        raise
    return Ctx(stack, redis, pg, fake, app, sizes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="big broadcasts to 1,000 (a quicker check)")
    parser.add_argument("--only", help="run only scenarios whose name contains this")
    args = parser.parse_args(argv)
    scale = 10 if args.small else 1
    sizes = {BIG: 10_000 // scale, SMALL: 1_000, TINY: 200}  # the provider faults need 10 jobs of 100
    started = time.monotonic()
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    workdir = Path(tempfile.mkdtemp(prefix="gateway-faults-"))
    log(f"private PostgreSQL and Redis, work directory {workdir}")
    ctx = setup(workdir, sizes)
    rows: list[Row] = []
    try:
        from bench import faults_webhooks

        scenarios = broadcast_scenarios(ctx) + faults_webhooks.scenarios(ctx)
        for place in sorted({place for name, place, _ in BROADCASTS if not args.only or args.only in name}):
            ctx.baseline[place] = baseline(ctx, place)
        for name, run in scenarios:
            if args.only and args.only not in name:
                continue
            row = run()
            if row is None:  # a scenario measured together with the one before it
                continue
            rows.append(row)
            log(f"{row.scenario}: lost {row.lost}, duplicated {row.duplicated}"
                + ("" if row.ok else f"  FAILED {row.failed_checks}"))
    finally:
        ctx.fake.stop()
        ctx.app.extensions["gateway"].engine.dispose()
        ctx.redis.stop()
        ctx.pg.destroy()
    print()
    print(f"Fault run of {when}, {machine()}, `python -m bench.faults{' --small' if args.small else ''}`, "
          f"{(time.monotonic() - started) / 60:.1f} min; private PostgreSQL and Redis on loopback; "
          f"no command typed; SENDING_STALE_SECONDS={STALE_SECONDS}, RECONCILE_SECONDS={RECONCILE_SECONDS}, "
          f"WORKER_HEARTBEAT_SECONDS={HEARTBEAT_SECONDS} (bound {BOUND} s)")
    print("recovery: from the last fault until every recipient has the message (broadcasts), or every "
          "kept text is stored and answered (inbound)")
    print()
    print(table(rows))
    bad = [r.scenario for r in rows if not r.ok]
    print()
    if bad:
        print(f"FAILED: {', '.join(bad)}; logs in {workdir}")
    else:
        print("every row: 0 lost, 0 duplicated")
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    from bench import faults  # one copy of this module: bench/faults_webhooks.py imports it by name

    sys.exit(faults.main())
