"""Inbound: pre-signed Twilio webhooks at constant rates, against the gateway and a bare-Flask ceiling.

Each request is a real Twilio incoming-message form (MessageSid, AccountSid, From, To, Body,
NumSegments, ...) with a valid X-Twilio-Signature, all signed before the run. Numbers walk
through a script so contacts really progress through the flows:

    JOIN, name, place, interests   (join flow)
    REPORT, 1, Zomba, 2, details, 2 (report flow: a report is saved at the last answer)
    an unknown text                (organizers' inbox)
    STOP                           (compliance keyword)

Consecutive texts of one number are spaced (number count = requests / script length), so the
per-contact order normally holds even under load.
"""
from __future__ import annotations

import math
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from bench.common import (ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, PUBLIC_BASE, Proc, Results, Stack,
                          engine_for, free_port, gunicorn, log, ms)
from bench.loadgen import LoadResult, run_load

if TYPE_CHECKING:
    from bench.wrk import WrkResult

SCRIPT = [
    ("join", "JOIN"), ("join-answer", "Chikondi"), ("join-answer", "Zomba"), ("join-answer", "1 3"),
    ("report", "REPORT"), ("report-answer", "1"), ("report-answer", "Zomba"), ("report-answer", "2"),
    ("report-answer", "nurse absent"), ("report-answer", "2"), ("unknown", "what is this about"),
    ("stop", "STOP"),
]
PATH = "/sms/twilio"
# A JOIN turn waits at most this long for the workers to handle what was stored before it (bench.run's
# default size leaves some 20,000 texts a turn; two workers handle them in about a minute).
QUIET_TIMEOUT = 240.0
STEADY = 5.0
_validator = RequestValidator(AUTH_TOKEN)


class Numbers:
    """Hands out ranges of Malawian mobile numbers that no other run in this benchmark uses."""

    def __init__(self, first: int = 265881000000) -> None:
        self.next = first

    def take(self, n: int) -> list[str]:
        start, self.next = self.next, self.next + n
        return [f"+{start + i}" for i in range(n)]


def webhook(number: str, body: str) -> tuple[dict[str, str], str]:
    """The form Twilio posts for an incoming SMS, and its signature."""
    sid = "SM" + secrets.token_hex(16)
    params = {
        "ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "",
        "FromZip": "", "SmsSid": sid, "FromState": "", "SmsStatus": "received", "FromCity": "",
        "Body": body, "FromCountry": "MW", "To": FROM_NUMBER, "ToZip": "", "NumSegments": "1",
        "ReferralNumMedia": "0", "MessageSid": sid, "AccountSid": ACCOUNT_SID, "From": number,
        "ApiVersion": "2010-04-01",
    }
    return params, _validator.compute_signature(PUBLIC_BASE + PATH, params)


def build_requests(n: int, numbers: Numbers) -> tuple[list[bytes], dict[str, int]]:
    """n pre-signed raw HTTP/1.1 requests and the mix of steps they carry."""
    population = max(1, math.ceil(n / len(SCRIPT)))
    phones = numbers.take(population)
    out: list[bytes] = []
    mix: dict[str, int] = {}
    for i in range(n):
        step, body = SCRIPT[(i // population) % len(SCRIPT)]
        params, signature = webhook(phones[i % population], body)
        data = urlencode(params).encode()
        head = (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: TwilioProxy/1.1\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nAccept: */*\r\n"
                f"X-Twilio-Signature: {signature}\r\nContent-Length: {len(data)}\r\n\r\n").encode()
        out.append(head + data)
        mix[step] = mix.get(step, 0) + 1
    return out, mix


def join_requests(n: int, numbers: Numbers) -> list[bytes]:
    """n pre-signed JOINs, each from a new number: the side-by-side shape (a national alert's first minutes)."""
    out = []
    for number in numbers.take(n):
        params, signature = webhook(number, "JOIN")
        data = urlencode(params).encode()
        out.append((f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: TwilioProxy/1.1\r\n"
                    f"Content-Type: application/x-www-form-urlencoded\r\nAccept: */*\r\n"
                    f"X-Twilio-Signature: {signature}\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data)
    return out


def join_shape(port: int, numbers: Numbers, seconds: float) -> LoadResult | WrkResult:
    """Closed loop, 32 connections, JOIN from new numbers, for `seconds`: with wrk -t2 -c32 when it
    is installed (bench/wrk.py: the issue's measure), else with the Python generator."""
    from bench import wrk

    if wrk.available():
        return wrk.join_shape(port, numbers, seconds)
    return run_load(port, join_requests(int(seconds * 3000), numbers), closed=True, connections=32,
                    duration=seconds, drain=5)


def embedded(stack: Stack, numbers: Numbers, seconds: float) -> LoadResult | WrkResult:
    """The embedded default (SQLite, no Redis: the queue in process), served as docs/operations.md says.

    One gunicorn process with 8 threads: only one process may send without Redis, so the Procfile's
    second worker would refuse to boot and gunicorn would halt (the section then measured nothing,
    or did not start at all). Its own instance/ folder, so the lock is this run's alone, never the
    checkout's (held by a `make run` or by another run in the same checkout).
    """
    import subprocess

    from bench.common import BIN, EMBEDDED_GUNICORN_ARGS, GUNICORN_EXTRA, wait_serving

    db = stack.workdir / "embedded.db"
    env = stack.env(DATABASE_URL=f"sqlite:///{db}", REDIS_URL="", SPOOL_DIR=str(stack.workdir / "embedded-spool"),
                    INSTANCE_PATH=str(stack.workdir / "embedded-instance"))
    subprocess.run([str(BIN / "flask"), "--app", "app", "db", "upgrade"], env=env, check=True,
                   stdout=subprocess.DEVNULL, timeout=120, cwd=Path(__file__).resolve().parent.parent)
    port = free_port()
    proc = Proc("embedded", [str(BIN / "gunicorn"), *EMBEDDED_GUNICORN_ARGS, *GUNICORN_EXTRA,
                             "--bind", f"127.0.0.1:{port}", "app:app"], env, stack.workdir)
    try:
        wait_serving(proc, port)
        run_load(port, join_requests(60, numbers), rate=60, connections=16, drain=5)
        return join_shape(port, numbers, seconds)
    finally:
        proc.stop()


def _fmt(r: LoadResult) -> str:
    lat = f"p50 {ms(r.p(50))} / p99 {ms(r.p(99))} / p99.9 {ms(r.p(99.9))}"
    if r.timeouts:
        lat += " (lower bounds: timeouts)"
    return f"{r.achieved:.0f} req/s, {lat}, {r.errors} errors"


def _sustained(r: LoadResult) -> bool:
    """Kept up: >= 97% of the offered rate answered 2xx, no errors, p99 under a second."""
    return r.errors == 0 and r.achieved >= 0.97 * r.offered_rate and r.p(99) < 1.0


def run_target(name: str, target: str, stack: Stack, rates: list[int], step_seconds: float,
               max_seconds: float, drain: float, numbers: Numbers, profile: Path | None = None,
               workers: int = 0) -> dict[str, Any]:
    """One target at each rate, then closed loop; with `workers` RQ workers beside the gateway (the
    Procfile's web and worker: texts stored under load are handled while the load runs), at nice 10
    so the web processes come first on this one machine, their replies going to the fake Twilio API."""
    port = free_port()
    proc: Proc = gunicorn(name, target, stack, port, profile=profile)
    fake, helpers = workers_beside(name, stack, workers)
    out: dict[str, Any] = {"steps": {}, "mix": {}}
    try:
        warm, _ = build_requests(60, numbers)
        run_load(port, warm, rate=60, connections=16, drain=5)
        for rate in rates:
            n = max(1, int(rate * step_seconds))
            reqs, mix = build_requests(n, numbers)
            for k, v in mix.items():
                out["mix"][k] = out["mix"].get(k, 0) + v
            log(f"{name}: {n} requests at {rate} req/s")
            r = run_load(port, reqs, rate=rate, connections=64, drain=drain)
            out["steps"][rate] = r
            log(f"{name} @ {rate} req/s: {_fmt(r)}")
            time.sleep(1.0 if _sustained(r) else 4.0)  # let a backlog drain before the next step
        # sized to last about the run at ~4x the best open-loop rate, so the mix is the same script
        best = max([r.achieved for r in out["steps"].values()] or [100.0])
        reqs, _ = build_requests(int(max_seconds * max(400.0, 4 * best)), numbers)
        r = run_load(port, reqs, closed=True, connections=32, duration=max_seconds, drain=5)
        out["max"] = r
        log(f"{name} max (closed loop, 32 connections, {max_seconds:.0f} s): {r.achieved:.0f} req/s, "
            f"p50 {ms(r.p(50))}, p99 {ms(r.p(99))}, {r.errors} errors")
    finally:
        proc.stop()
        stop_beside(fake, helpers)
    return out


def workers_beside(name: str, stack: Stack, workers: int) -> tuple[Any, list[Proc]]:
    """`workers` RQ workers at nice 10 (the Procfile's worker beside its web), their replies going to the
    fake Twilio API (bench.run's, else one of their own, returned to be stopped)."""
    from bench.common import BIN, FakeProcess

    fake = FakeProcess(stack) if workers and not stack.fake_url else None
    fake_env = {"TWILIO_API_BASE_URL": fake.base_url} if fake else {}  # else stack.env points at the run's
    return fake, [Proc(f"{name}-worker{i}", ["nice", "-n", "10", str(BIN / "flask"), "--app", "app", "worker"],
                       stack.env(**fake_env), stack.workdir) for i in range(workers)]


def stop_beside(fake: Any, helpers: list[Proc]) -> None:
    """Stop what `workers_beside` started."""
    for helper in helpers:
        helper.stop()
    if fake is not None:
        fake.stop()


def quiet(stack: Stack, timeout: float = QUIET_TIMEOUT) -> tuple[float, int]:
    """Wait until the workers have handled every stored text and sent every reply: nothing listed for
    a drain job, no reply or drain job queued, and no inbound row unhandled (or, with nothing queued,
    the same number for STEADY seconds: a text the workers were never handed, which the reconciler
    takes a minute later). The seconds waited and the texts left unhandled (0: quiet)."""
    import sqlalchemy as sa

    from bench.common import redis_client
    from gateway.inbound import deferred
    from gateway.outbound import queues

    r = redis_client(stack.redis_url)
    engine = engine_for(stack.db_url)
    started = time.monotonic()
    seen: tuple[int, float] = (-1, started)  # the unhandled count and since when it has not moved
    try:
        while True:
            with engine.connect() as conn:
                left = int(conn.scalar(sa.text(
                    "SELECT count(*) FROM messages WHERE direction = 'in' AND handled_at IS NULL")) or 0)
            queued = r.llen(deferred.LATER) + r.llen(f"rq:queue:{queues.REPLIES}")
            now = time.monotonic()
            if left != seen[0] or queued:
                seen = (left, now)
            if not left and not queued or now - seen[1] >= STEADY or now - started > timeout:
                return now - started, left
            time.sleep(0.5)
    finally:
        engine.dispose()
        r.close()


def join_rounds(stack: Stack, numbers: Numbers, seconds: float, rounds: int) -> dict[str, Any]:
    """The issue's JOIN shape, the gateway (the Procfile's web and two workers beside) and the bare-Flask
    ceiling in turns, `rounds` times each: the machine's speed drifts by the minute (the ceiling alone
    ranged 1,658-3,328 req/s within minutes, 2026-11-30), so the ratio compares turns minutes apart at
    most, never two runs a quarter of an hour apart. Each turn starts quiet: what the earlier steps
    and turns stored has been handled and answered (the seconds waited are reported), so the turn
    measures the shape itself, as the RapidSMS side-by-side does, not the shape plus a backlog that
    the order of the steps left (the 20:21 run's 0.28 measured the JOIN shape while the workers drained
    some 25,000 texts)."""
    from bench.common import http_ok, wait_serving

    gw_port, ceil_port = free_port(), free_port()
    gw = gunicorn("gateway-join", "app:app", stack, gw_port)
    ceiling = gunicorn("ceiling-join", "bench.ceiling:app", stack, ceil_port)
    fake, helpers = workers_beside("gateway-join", stack, 2)
    out: dict[str, Any] = {"gateway": [], "ceiling": [], "waited_s": [], "left_unhandled": []}
    try:
        wait_serving(gw, gw_port)
        wait_serving(ceiling, ceil_port)
        for port in (gw_port, ceil_port):
            run_load(port, join_requests(60, numbers), rate=60, connections=16, drain=5)
        for n in range(rounds):
            for name, port in (("gateway", gw_port), ("ceiling", ceil_port)):
                waited, left = quiet(stack)
                out["waited_s"].append(round(waited, 1))
                out["left_unhandled"].append(left)
                if not http_ok(port):
                    raise RuntimeError(f"{name} stopped serving before JOIN round {n + 1}")
                r = join_shape(port, numbers, seconds)
                out[name].append(r)
                log(f"JOIN round {n + 1}, {name} (after {waited:.0f} s for quiet, {left} unhandled left): "
                    f"{r.achieved:.0f} req/s, p50 {ms(r.p(50))}, p99 {ms(r.p(99))}, {r.errors} errors")
    finally:
        gw.stop()
        ceiling.stop()
        stop_beside(fake, helpers)
    return out


def _rate(results: list[Any]) -> float:
    """Requests answered 2xx a second over all the turns together."""
    seconds = sum(r.seconds for r in results)
    return sum(r.ok for r in results) / seconds if seconds else 0.0


def drain_stored(stack: Stack) -> float:
    """Texts stored for workers during the run (store and acknowledge) handled by one
    `flask --app app worker --burst` after the measurement; the seconds it took."""
    import subprocess

    from bench.common import BIN

    started = time.monotonic()
    with open(stack.workdir / "drain-worker.log", "ab") as log_file:
        subprocess.run([str(BIN / "flask"), "--app", "app", "worker", "--burst"], env=stack.env(LOG_LEVEL="WARNING"),
                       cwd=Path(__file__).resolve().parent.parent, stdout=log_file, stderr=log_file, timeout=900,
                       check=False)
    return time.monotonic() - started


def check_store(stack: Stack) -> dict[str, Any]:
    """What the gateway stored: inbound rows, their routes, reports saved, contacts stopped."""
    import sqlalchemy as sa

    engine = engine_for(stack.db_url)
    with engine.connect() as conn:
        stored = conn.scalar(sa.text("SELECT count(*) FROM messages WHERE direction = 'in'"))
        routes = dict(conn.execute(sa.text(
            "SELECT coalesce(handled_by, '?'), count(*) FROM messages WHERE direction = 'in' GROUP BY 1")).all())
        reports = conn.scalar(sa.text("SELECT count(*) FROM reports"))
        stopped = conn.scalar(sa.text("SELECT count(*) FROM contacts WHERE status = 'stopped'"))
        unhandled = conn.scalar(sa.text(
            "SELECT count(*) FROM messages WHERE direction = 'in' AND handled_at IS NULL"))
    engine.dispose()
    return {"stored": stored, "routes": routes, "reports": reports, "stopped": stopped, "unhandled": unhandled}


def run(stack: Stack, results: Results, *, rates: list[int], step_seconds: float, max_seconds: float,
        drain: float, rounds: int = 1, profile_dir: Path | None = None) -> dict[str, Any]:
    numbers = Numbers()
    gw = run_target("gateway", "app:app", stack, rates, step_seconds, max_seconds, drain, numbers,
                    profile=profile_dir / "inbound-gateway.raw" if profile_dir else None, workers=2)
    ceiling = run_target("ceiling", "bench.ceiling:app", stack, rates, step_seconds, max_seconds, drain, numbers)
    joins = join_rounds(stack, numbers, max_seconds, rounds)
    drained = drain_stored(stack)
    store = check_store(stack)
    ok_total = sum(r.ok for r in gw["steps"].values()) + gw["max"].ok + sum(r.ok for r in joins["gateway"])
    figures: dict[str, Any] = {
        "gateway": {str(k): v.summary() for k, v in gw["steps"].items()} | {"max": gw["max"].summary()},
        "ceiling": {str(k): v.summary() for k, v in ceiling["steps"].items()} | {"max": ceiling["max"].summary()},
        "mix": gw["mix"], "store": store, "ok_measured": ok_total,
    }
    for rate in rates:
        g, c = gw["steps"][rate], ceiling["steps"][rate]
        target, met = "", None
        if rate == 400:
            target, met = "p99 < 100 ms", g.p(99) < 0.1 and g.errors == 0
        elif rate == 800:
            target, met = "sustained 800 req/s", _sustained(g)
        results.add("inbound", f"{rate} req/s offered",
                    f"gateway {_fmt(g)}; ceiling {c.achieved:.0f} req/s, p99 {ms(c.p(99))}", target, met)
    gmax, cmax = gw["max"].achieved, ceiling["max"].achieved
    gjoin, cjoin = _rate(joins["gateway"]), _rate(joins["ceiling"])
    ratio = gjoin / cjoin if cjoin else 0.0
    turns = list(zip(joins["gateway"], joins["ceiling"], strict=True))
    figures["ratio"] = round(ratio, 3)
    figures["join"] = {"gateway": [r.summary() for r in joins["gateway"]],
                       "ceiling": [r.summary() for r in joins["ceiling"]],
                       "ratios": [round(g.achieved / c.achieved, 3) if c.achieved else 0.0 for g, c in turns],
                       "waited_s": joins["waited_s"], "left_unhandled": joins["left_unhandled"]}
    sustained = [r for r in rates if _sustained(gw["steps"][r])]
    figures["sustained_max_rate"] = max(sustained) if sustained else 0
    worst = max(joins["gateway"], key=lambda r: r.p(99))
    results.add("inbound", f"JOIN from new numbers, closed loop 32 conn., {len(turns)} turns of {max_seconds:.0f} s "
                "each, gateway and ceiling alternating, each turn from quiet",
                f"gateway {gjoin:.0f} req/s ({', '.join(f'{g.achieved:.0f}' for g, _ in turns)}), worst p99 "
                f"{ms(worst.p(99))}, {sum(g.errors for g, _ in turns)} errors; bare-Flask ceiling {cjoin:.0f} req/s "
                f"({', '.join(f'{c.achieved:.0f}' for _, c in turns)}); ratio {ratio:.2f} (turns "
                f"{', '.join(f'{x:.2f}' for x in figures['join']['ratios'])}); quiet after "
                f"{', '.join(f'{w:.0f}' for w in joins['waited_s'])} s",
                ">= 0.5 x ceiling; ~1,000 req/s (4x RapidSMS)", ratio >= 0.5)
    results.add("inbound", f"mix (bench/inbound.py script), closed loop 32 conn., {max_seconds:.0f} s",
                f"gateway {gmax:.0f} req/s (p99 {ms(gw['max'].p(99))}); ceiling {cmax:.0f} req/s "
                f"(p99 {ms(ceiling['max'].p(99))}); ratio {gmax / cmax if cmax else 0.0:.2f}",
                ">= 3x the 182 req/s of 2026-11-29 11:26", gmax >= 3 * 182)
    emb = embedded(stack, numbers, max_seconds)
    figures["embedded"] = emb.summary()
    results.add("inbound", "embedded default (SQLite, queue in process), JOIN shape",
                f"{emb.achieved:.0f} req/s, p50 {ms(emb.p(50))} / p99 {ms(emb.p(99))}, {emb.errors} errors",
                ">= 400 req/s", emb.achieved >= 400)
    from bench.inbound_cpu import measure

    cpu = measure(500 if max_seconds >= 5 else 25)
    figures["cpu"] = cpu
    results.add("inbound", "CPU and SQL per webhook, one process (bench.inbound_cpu 500)",
                f"{cpu['cpu_ms']:.2f} ms CPU on average; " + "; ".join(
                    f"{body}: {k['cpu_ms']:.1f} ms, {k['statements']:.0f} statements"
                    for body, k in cpu["kinds"].items()))
    results.add("inbound", "correctness",
                f"{store['stored']} stored for {ok_total} answered 2xx (+120 warm-up, and each JOIN turn's last "
                f"requests, stored but not counted when wrk stopped); {store['reports']} reports, "
                f"{store['stopped']} STOPs; {store['unhandled']} unhandled after the texts stored for workers "
                f"(store and acknowledge) were handled by one burst worker in {drained:.0f} s; routes {store['routes']}")
    return figures
