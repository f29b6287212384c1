"""Broadcast fan-out through the fake Twilio API on loopback, with two workers.

Per case (recipients x fake latency):
  ceiling   the gateway's HTTP client (TwilioProvider.send: twilio SDK + pooled requests session)
            posting to the same fake in a tight loop, as many processes as there are workers (2),
            each with as many threads as a worker has sends in flight (SEND_CONCURRENCY)
  gateway   broadcasts.launch + enqueue exactly as `flask --app app broadcast send`, two
            `flask --app app worker` processes, SENDER_RATE high so pacing does not limit
  textbook  one RQ job per message, one commit per message, a new twilio Client per send
            (bench/textbook.py), two workers of the same class

Figures: time to launch (rows written, jobs enqueued), time until the last message is accepted at
the fake, messages per second, worker RSS growth (from warm: each worker first sends a small
warm-up broadcast, so one-time imports are not counted as growth), Redis memory growth (keys of
the benchmark's own database), duplicates and losses counted at the fake. A case that would take
longer than its cap is cut there: the broadcast is cancelled, in-flight sends settle, and every
recipient must then be either accepted exactly once or cancelled; anything else is a loss.
"""
from __future__ import annotations

import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import (ACCOUNT_SID, AUTH_TOKEN, BIN, FROM_NUMBER, NUMBERS_KEY, FakeProcess, Proc, Results,
                          Stack, engine_for, flush_redis, log, mb, ms, redis_client, redis_db_bytes,
                          redis_used_memory, rss_bytes, truncate, wait_until)

TEXT = "Alert from Our Network: the mobile clinic did not come to {place} this week. Text REPORT to tell us."
MAIN_PLACE, WARM_PLACE = "Zomba", "Blantyre"
MAIN_FIRST, WARM_FIRST = 265991000000, 265992000000
WARM_N = 200
WORKERS = 2


# -- data ------------------------------------------------------------------------------------------

def vault() -> Any:
    """The gateway's phone-number keys for the benchmark's NUMBERS_KEY."""
    from gateway.core.vault import NumberVault

    return NumberVault.from_keys([NUMBERS_KEY])


def load_contacts(url: str, n: int, first: int, place: str, languages: tuple[str, ...] = ("en",)) -> None:
    """n active, consenting contacts in `place`, by COPY (seconds for 100,000)."""
    import sqlalchemy as sa

    from gateway.models import utcnow

    engine = engine_for(url)
    now = utcnow()
    box = vault()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        with cur.copy("COPY contacts (number_digest, number_sealed, name, language, place, country, status, "
                      "consent_at, created_at) FROM STDIN") as copy:
            for i in range(n):
                number = f"+{first + i}"
                copy.write_row((box.digest(number), box.seal(number), f"Supporter {i}", languages[i % len(languages)], place, "MW",
                                "active", now, now))
        raw.commit()
    finally:
        raw.close()
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE contacts"))
    engine.dispose()


def reset_outbox(url: str) -> None:
    truncate(url, ["pledges", "messages", "broadcasts"])


# -- processes -------------------------------------------------------------------------------------

def start_workers(stack: Stack, kind: str, profile_dir: Path | None = None) -> list[Proc]:
    """Two workers: the gateway's `flask --app app worker`, or the textbook's; wait until both listen."""
    from rq import Worker

    procs = []
    for i in range(WORKERS):
        if kind == "gateway":
            args = [str(BIN / "flask"), "--app", "app", "worker"]
        else:
            args = [sys.executable, "-m", "bench.textbook"]
        if profile_dir is not None:
            args = [str(BIN / "py-spy"), "record", "--nonblocking", "-r", "100", "-f", "raw", "--idle",
                    "-o", str(profile_dir / f"fanout-{kind}-worker{i}.raw"), "--", *args]
        procs.append(Proc(f"{kind}-worker{i}", args, stack.env(), stack.workdir))
    r = redis_client(stack.redis_url)
    try:
        if not wait_until(lambda: Worker.count(connection=r) >= WORKERS, 60, 0.2):
            raise RuntimeError("workers did not start:\n" + "\n".join(p.tail() for p in procs))
    finally:
        r.close()
    return procs


def worker_pids(procs: list[Proc]) -> list[int]:
    """The Python processes doing the work (the child of py-spy when profiling)."""
    return [p.target_pid() for p in procs]


def stop_workers(procs: list[Proc]) -> None:
    """SIGTERM each worker (RQ's warm shutdown: it finishes its job first), then wait for it."""
    import os
    import signal

    for pid in worker_pids(procs):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for p in procs:
        wait_until(lambda: not p.alive(), 40, 0.1)
        p.stop(timeout=5)


# -- the HTTP ceiling --------------------------------------------------------------------------------

def _ceiling_sender(base_url: str, index: int, until: float, limit: int, warm: int) -> tuple[int, float, float]:
    """One sender process: TwilioProvider.send in a tight loop on SEND_CONCURRENCY threads, as a
    worker sends, until `until` (wall clock) or `limit` sends in all."""
    import itertools
    import os
    import threading

    from gateway.channels.twilio import TwilioProvider

    provider = TwilioProvider(ACCOUNT_SID, AUTH_TOKEN, from_number=FROM_NUMBER, api_base_url=base_url)
    body = TEXT.format(place=MAIN_PLACE)
    for i in range(warm):
        provider.send(f"+{265994000000 + index * 100000 + i}", body)
    counter, lock, sent = itertools.count(), threading.Lock(), [0]

    def loop() -> None:
        while time.time() < until:
            i = next(counter)
            if i >= limit:
                return
            provider.send(f"+{265995000000 + index * 1000000 + i}", body)
            with lock:
                sent[0] += 1

    threads = [threading.Thread(target=loop) for _ in range(int(os.environ.get("SEND_CONCURRENCY") or 1))]
    start = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sent[0], start, time.time()


def http_ceiling(stack: Stack, fake: FakeProcess, seconds: float, limit: int) -> dict[str, Any]:
    """As many sender processes as workers, each `python -m bench.fanout ceiling ...`."""
    import json
    import subprocess

    until = time.time() + seconds + 3.0  # starting and warming take a moment
    procs = [subprocess.Popen([sys.executable, "-m", "bench.fanout", "ceiling", fake.base_url, str(i), repr(until),
                               str(limit)], env=stack.env(), stdout=subprocess.PIPE, text=True)
             for i in range(WORKERS)]
    parts = []
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 60)
        parts.append(json.loads(out.strip().splitlines()[-1]))
    n = sum(p[0] for p in parts)
    elapsed = max(p[2] for p in parts) - min(p[1] for p in parts)
    fake.clear()
    return {"sent": n, "elapsed_s": round(elapsed, 2), "rate": n / elapsed if elapsed > 0 else 0.0}


# -- one gateway or textbook case -----------------------------------------------------------------

def _wait_count(fake: FakeProcess, n: int, timeout: float, on_tick: Any = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if on_tick:
            on_tick()
        if fake.count() >= n:
            return True
        time.sleep(0.5)
    return fake.count() >= n


def _audience(url: str, place: str, limit: int | None = None) -> list[tuple[int, str]]:
    import sqlalchemy as sa

    engine = engine_for(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, number_sealed FROM contacts WHERE place = :p ORDER BY id"
                                    + (" LIMIT :n" if limit else "")), {"p": place, "n": limit}).all()
    engine.dispose()
    box = vault()
    return [(r[0], box.open(r[1])) for r in rows]


def _launch_gateway(app: Any, place: str) -> tuple[int, float, float]:
    """What `flask --app app broadcast send --place P --text T` does; returns (id, rows s, enqueue s)."""
    from gateway import services
    from gateway.outbound import broadcasts
    from gateway.channels import sender_name

    with app.app_context():
        t0 = time.perf_counter()
        svc = services()
        with svc.sessions() as session, session.begin():
            b = broadcasts.create(session, {"en": TEXT}, default_language="en", place=place, created_by="bench")
            broadcasts.launch(session, b, svc.provider.name, sender_name())
            bid = b.id
        t1 = time.perf_counter()
        with svc.sessions() as session:
            broadcasts.enqueue(session, bid, svc.redis)
        t2 = time.perf_counter()
    return bid, t1 - t0, t2 - t1


def _launch_textbook(app: Any, recipients: list[tuple[int, str]]) -> tuple[int, float, float]:
    from gateway import services
    from gateway.models import Broadcast
    from bench import textbook

    with app.app_context():
        svc = services()
        t0 = time.perf_counter()
        with svc.sessions() as session, session.begin():
            b = Broadcast(texts={"en": TEXT}, default_language="en", place=MAIN_PLACE, status="sending",
                          recipients=len(recipients), created_by="bench-textbook")
            session.add(b)
            session.flush()
            bid = b.id
        textbook.launch(svc.sessions, svc.redis, bid, recipients, TEXT.format(place=MAIN_PLACE), FROM_NUMBER)
        t1 = time.perf_counter()
    return bid, t1 - t0, 0.0


def run_case(stack: Stack, fake: FakeProcess, kind: str, n: int, latency: float, cap: float,
             profile_dir: Path | None = None) -> dict[str, Any]:
    """One fan-out: warm the workers, launch to n recipients, wait for the fake (at most `cap` s)."""
    import sqlalchemy as sa

    from gateway import create_app
    from gateway.outbound import broadcasts
    from gateway.models import Broadcast

    reset_outbox(stack.db_url)
    flush_redis(stack.redis_url)
    fake.clear()
    fake.set_latency(0.0)
    app = create_app(stack.app_config())
    procs = start_workers(stack, kind, profile_dir)
    out: dict[str, Any] = {"kind": kind, "n": n, "latency_s": latency}
    try:
        pids = worker_pids(procs)
        out["rss_cold"] = [rss_bytes(p) for p in pids]
        # warm-up: the workers import what a send needs and open their connections
        if kind == "gateway":
            _launch_gateway(app, WARM_PLACE)
        else:
            _launch_textbook(app, _audience(stack.db_url, WARM_PLACE))
        if not _wait_count(fake, WARM_N, 60):
            raise RuntimeError(f"{kind} warm-up did not finish:\n" + "\n".join(p.tail() for p in procs))
        time.sleep(0.5)
        fake.clear()
        fake.set_latency(latency)
        rss0 = [rss_bytes(p) for p in pids]
        peak = list(rss0)
        redis0, used0 = redis_db_bytes(stack.redis_url), redis_used_memory(stack.redis_url)

        def tick() -> None:
            for i, p in enumerate(pids):
                peak[i] = max(peak[i], rss_bytes(p))

        recipients = _audience(stack.db_url, MAIN_PLACE, n)
        wall0 = time.time()
        if kind == "gateway":
            bid, t_rows, t_enqueue = _launch_gateway(app, MAIN_PLACE)
        else:
            bid, t_rows, t_enqueue = _launch_textbook(app, recipients)
        launch_s = time.time() - wall0
        redis1, used1 = redis_db_bytes(stack.redis_url), redis_used_memory(stack.redis_url)
        remaining = max(1.0, cap - launch_s)
        done = _wait_count(fake, len(recipients), remaining, tick)
        capped = not done
        if capped:  # cut at the cap: stop what has not been sent, let in-flight sends settle
            if kind == "gateway":
                with app.app_context():
                    svc = app.extensions["gateway"]
                    with svc.sessions() as session, session.begin():
                        broadcasts.cancel(session, session.get(Broadcast, bid))
            else:
                from rq import Queue
                from rq.serializers import JSONSerializer

                from bench.textbook import QUEUE

                r = redis_client(stack.redis_url)
                Queue(QUEUE, connection=r, serializer=JSONSerializer).empty()
                r.close()
            engine = engine_for(stack.db_url)

            def settled() -> bool:
                tick()
                with engine.connect() as conn:
                    return not conn.scalar(sa.text(
                        "SELECT count(*) FROM messages WHERE broadcast_id = :b AND status = 'sending'"), {"b": bid})

            wait_until(settled, 60, 0.5)
            time.sleep(1.0 + latency)  # a textbook job in flight commits after its send returns
            engine.dispose()
        tick()
        redis2 = redis_db_bytes(stack.redis_url)
        rss1 = [rss_bytes(p) for p in pids]
    finally:
        stop_workers(procs)
        app.extensions["gateway"].engine.dispose()

    msgs = fake.messages(stack.workdir / f"fake-{kind}-{n}-{latency}.json")
    engine = engine_for(stack.db_url)
    with engine.connect() as conn:
        statuses = dict(conn.execute(sa.text(
            "SELECT status, count(*) FROM messages WHERE broadcast_id = :b GROUP BY status"), {"b": bid}).all())
        rows = conn.execute(sa.text(
            "SELECT c.number_sealed, m.status, m.provider_id FROM messages m JOIN contacts c ON c.id = m.contact_id "
            "WHERE m.broadcast_id = :b"), {"b": bid}).all()
    engine.dispose()
    tos = Counter(m["to"] for m in msgs)
    sids = {m["sid"] for m in msgs}
    duplicates = sum(c - 1 for c in tos.values() if c > 1)
    box = vault()
    by_number = {box.open(sealed): (status, pid) for sealed, status, pid in rows}
    lost, cancelled, unrecorded = 0, 0, 0
    for _cid, number in recipients:
        status, pid = by_number.get(number, (None, None))
        if number in tos:
            if status != "sent" or pid not in sids:
                unrecorded += 1  # accepted, but the outbox does not know it: a resend risk
            continue
        if status in ("cancelled", "queued") and capped:
            cancelled += 1  # not reached before the cap
        else:
            lost += 1  # neither accepted nor cancelled: lost (includes rows marked sent the fake never saw)
    times = sorted(m["at"] for m in msgs)
    accepted = len(msgs)
    last = (times[-1] - wall0) if times else math.nan
    send_span = (times[-1] - times[0]) if len(times) > 1 else math.nan
    out.update({
        "recipients": len(recipients), "accepted": accepted, "capped": capped, "cap_s": cap,
        "launch_s": round(launch_s, 3), "launch_rows_s": round(t_rows, 3), "launch_enqueue_s": round(t_enqueue, 3),
        "last_accepted_s": round(last, 3), "rate": accepted / last if accepted and last > 0 else 0.0,
        "send_phase_rate": accepted / send_span if accepted > 1 and send_span > 0 else 0.0,
        "projected_total_s": round(len(recipients) / (accepted / last), 1) if accepted and last > 0 else None,
        "duplicates": duplicates, "lost": lost, "unrecorded": unrecorded, "not_reached_cap": cancelled,
        "statuses": statuses,
        "rss_cold_mb": [round(x / 1e6, 1) for x in out.pop("rss_cold")],
        "rss_warm_mb": [round(x / 1e6, 1) for x in rss0], "rss_peak_mb": [round(x / 1e6, 1) for x in peak],
        "rss_end_mb": [round(x / 1e6, 1) for x in rss1],
        "rss_growth_bytes": max(p - b for p, b in zip(peak, rss0)),
        "redis_db_bytes": [redis0, redis1, redis2], "redis_growth_bytes": max(redis1, redis2) - redis0,
        "redis_server_used_delta": used1 - used0,
    })
    return out


def _fmt(c: dict[str, Any]) -> str:
    cut = (f", cut at {c['cap_s']:.0f} s ({c['not_reached_cap']} not reached; all would take "
           f"~{c['projected_total_s']:.0f} s)" if c["capped"] else "")
    return (f"{c['accepted']} accepted, {c['rate']:.0f} msg/s; launch {ms(c['launch_s'])}, last accepted "
            f"{ms(c['last_accepted_s'])}{cut}; RSS +{mb(c['rss_growth_bytes'])}, Redis +{mb(c['redis_growth_bytes'])}; "
            f"dup {c['duplicates']}, lost {c['lost']}")


def launch_only(stack: Stack, n: int) -> dict[str, Any]:
    """Launch to n recipients with no worker running (rows written, jobs enqueued), then cancel."""
    from gateway import create_app
    from gateway.outbound import broadcasts
    from gateway.models import Broadcast

    truncate(stack.db_url)
    load_contacts(stack.db_url, n, MAIN_FIRST, MAIN_PLACE)
    flush_redis(stack.redis_url)
    app = create_app(stack.app_config())
    try:
        redis0 = redis_db_bytes(stack.redis_url)
        bid, t_rows, t_enqueue = _launch_gateway(app, MAIN_PLACE)
        redis1 = redis_db_bytes(stack.redis_url)
        with app.app_context():
            svc = app.extensions["gateway"]
            with svc.sessions() as session, session.begin():
                broadcasts.cancel(session, session.get(Broadcast, bid))
    finally:
        app.extensions["gateway"].engine.dispose()
    flush_redis(stack.redis_url)
    truncate(stack.db_url)
    return {"n": n, "rows_s": round(t_rows, 3), "enqueue_s": round(t_enqueue, 3),
            "launch_s": round(t_rows + t_enqueue, 3), "redis_growth_bytes": redis1 - redis0}


def run(stack: Stack, fake: FakeProcess, results: Results, *, sizes: list[int], latencies: list[float],
        caps: dict[float, float], textbook_n: dict[float, int], ceiling_seconds: float,
        launch_only_n: int = 0, profile_dir: Path | None = None) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    truncate(stack.db_url)
    load_contacts(stack.db_url, WARM_N, WARM_FIRST, WARM_PLACE)
    loaded = 0
    for n in sorted(sizes):
        if n > loaded:
            load_contacts(stack.db_url, n - loaded, MAIN_FIRST + loaded, MAIN_PLACE)
            loaded = n
        for latency in latencies:
            key = f"{n}@{int(latency * 1000)}ms"
            fake.set_latency(latency)
            log(f"fan-out {key}: HTTP ceiling, {WORKERS} senders, {ceiling_seconds:.0f} s")
            ceiling = http_ceiling(stack, fake, ceiling_seconds, 1_000_000)
            fake.set_latency(0.0)
            log(f"  ceiling {ceiling['rate']:.0f} msg/s")
            cap = caps.get(latency, 600.0)
            log(f"fan-out {key}: gateway (cap {cap:.0f} s)")
            gw = run_case(stack, fake, "gateway", n, latency, cap,
                          profile_dir if (profile_dir and latency == 0) else None)
            log(f"  gateway: {_fmt(gw)}")
            tn = min(n, textbook_n.get(latency, n))
            log(f"fan-out {key}: textbook, {tn} messages (cap {cap:.0f} s)")
            tb = run_case(stack, fake, "textbook", tn, latency, cap)
            log(f"  textbook: {_fmt(tb)}")
            figures[key] = {"ceiling": ceiling, "gateway": gw, "textbook": tb}
            rate_target = 1000 if latency == 0 else 500
            vs_ceiling = gw["rate"] / ceiling["rate"] if ceiling["rate"] else 0.0
            vs_textbook = gw["rate"] / tb["rate"] if tb["rate"] else math.inf
            figures[key]["ratios"] = {"gateway_vs_ceiling": round(vs_ceiling, 3),
                                      "gateway_vs_textbook": round(vs_textbook, 2)}
            lat = f"{int(latency * 1000)} ms fake"
            results.add("fan-out", f"{n:,} @ {lat}: gateway", _fmt(gw),
                        f">= {rate_target} msg/s" + (", launch < 5 s" if n >= 100_000 else "")
                        + ", RSS < 50 MB, 0 dup, 0 lost",
                        gw["rate"] >= rate_target and gw["rss_growth_bytes"] < 50e6 and gw["duplicates"] == 0
                        and gw["lost"] == 0 and gw["unrecorded"] == 0 and (n < 100_000 or gw["launch_s"] < 5))
            results.add("fan-out", f"{n:,} @ {lat}: vs ceiling",
                        f"ceiling {ceiling['rate']:.0f} msg/s ({WORKERS} senders); gateway/ceiling {vs_ceiling:.2f}",
                        ">= 0.5", vs_ceiling >= 0.5)
            results.add("fan-out", f"{n:,} @ {lat}: vs textbook",
                        f"textbook ({tn:,} msgs) {tb['rate']:.1f} msg/s, launch {ms(tb['launch_s'])}, dup "
                        f"{tb['duplicates']}, lost {tb['lost']}; gateway/textbook {vs_textbook:.1f}",
                        ">= 10", vs_textbook >= 10)
    if launch_only_n and launch_only_n not in sizes:
        log(f"fan-out: launch only, {launch_only_n:,} recipients, no workers")
        lo = launch_only(stack, launch_only_n)
        figures[f"launch-{launch_only_n}"] = lo
        results.add("fan-out", f"{launch_only_n:,}: launch only (no workers)",
                    f"{ms(lo['launch_s'])} (rows + commit {ms(lo['rows_s'])}, enqueue {ms(lo['enqueue_s'])}); "
                    f"Redis +{mb(lo['redis_growth_bytes'])}", "< 5 s", lo["launch_s"] < 5)
    return figures


if __name__ == "__main__":  # python -m bench.fanout ceiling BASE_URL INDEX UNTIL LIMIT
    import json

    if len(sys.argv) == 6 and sys.argv[1] == "ceiling":
        print(json.dumps(_ceiling_sender(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), 5)))
    else:
        sys.exit("usage: python -m bench.fanout ceiling BASE_URL INDEX UNTIL LIMIT")
