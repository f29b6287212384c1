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
    from bench.common import BIN, FakeProcess

    port = free_port()
    proc: Proc = gunicorn(name, target, stack, port, profile=profile)
    fake = FakeProcess(stack) if workers and not stack.fake_url else None  # bench.run starts one
    fake_env = {"TWILIO_API_BASE_URL": fake.base_url} if fake else {}  # else stack.env points at the run's
    helpers = [Proc(f"{name}-worker{i}", ["nice", "-n", "10", str(BIN / "flask"), "--app", "app", "worker"],
                    stack.env(**fake_env), stack.workdir) for i in range(workers)]
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
        time.sleep(2.0)
        out["join"] = join = join_shape(port, numbers, max_seconds)
        log(f"{name} JOIN from new numbers (closed loop, 32 connections): {join.achieved:.0f} req/s, "
            f"p50 {ms(join.p(50))}, p99 {ms(join.p(99))}, {join.errors} errors")
    finally:
        proc.stop()
        for helper in helpers:
            helper.stop()
        if fake is not None:
            fake.stop()
    return out


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
        drain: float, profile_dir: Path | None = None) -> dict[str, Any]:
    numbers = Numbers()
    gw = run_target("gateway", "app:app", stack, rates, step_seconds, max_seconds, drain, numbers,
                    profile=profile_dir / "inbound-gateway.raw" if profile_dir else None, workers=2)
    drained = drain_stored(stack)
    store = check_store(stack)
    ceiling = run_target("ceiling", "bench.ceiling:app", stack, rates, step_seconds, max_seconds, drain, numbers)
    ok_total = sum(r.ok for r in gw["steps"].values()) + gw["max"].ok
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
    gjoin, cjoin = gw["join"].achieved, ceiling["join"].achieved
    ratio = gjoin / cjoin if cjoin else 0.0
    figures["ratio"] = round(ratio, 3)
    figures["join"] = {"gateway": gw["join"].summary(), "ceiling": ceiling["join"].summary()}
    sustained = [r for r in rates if _sustained(gw["steps"][r])]
    figures["sustained_max_rate"] = max(sustained) if sustained else 0
    results.add("inbound", f"JOIN from new numbers, closed loop 32 conn., {max_seconds:.0f} s",
                f"gateway {gjoin:.0f} req/s, p50 {ms(gw['join'].p(50))} / p99 {ms(gw['join'].p(99))}, "
                f"{gw['join'].errors} errors; bare-Flask ceiling {cjoin:.0f} req/s (p99 {ms(ceiling['join'].p(99))}); "
                f"ratio {ratio:.2f}", ">= 0.5 x ceiling; ~1,000 req/s (4x RapidSMS)", ratio >= 0.5)
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
                f"{store['stored']} stored for {ok_total} answered 2xx (+60 warm-up); {store['reports']} reports, "
                f"{store['stopped']} STOPs; {store['unhandled']} unhandled after the texts stored for workers "
                f"(store and acknowledge) were handled by one burst worker in {drained:.0f} s; routes {store['routes']}")
    return figures
