"""Pacing accuracy: a sender limited to N segments per second, served by two workers sharing the
Redis limiter (gateway/pacing.py), is held to N over a window (a minute by default).

The broadcast mixes one-segment (English) and two-segment (Spanish, > 160 GSM-7 characters)
texts. Segments are counted at the fake by acceptance time (microseconds, recorded by
bench/fake_twilio.py); the window starts at the first accepted message.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter
from typing import Any

from bench.common import FakeProcess, Results, Stack, flush_redis, log, truncate, wait_until
from bench.fanout import WARM_FIRST, WARM_PLACE, _launch_gateway, load_contacts, start_workers, stop_workers

EN = "Alert: the borehole in {place} is broken again. Text REPORT to tell us if water came."
ES = ("Alerta de la red: la clinica movil no llego a {place} esta semana y las familias siguen esperando. "
      "Envie REPORTE para contarnos si llego algun servicio, o ALTO para no recibir mas mensajes.")
PLACE = "Zomba"
FIRST = 265993000000
WARM = 110  # two jobs, so both workers have sent before the window opens


def run(stack: Stack, fake: FakeProcess, results: Results, *, rate: float, window: float) -> dict[str, Any]:
    import sqlalchemy as sa

    from gateway import create_app
    from gateway.outbound import broadcasts
    from gateway.models import Broadcast
    from gateway.core.segments import count_segments

    assert count_segments(ES.format(place=PLACE)).segments == 2 and count_segments(EN.format(place=PLACE)).segments == 1
    paced = dataclasses.replace(stack, sender_rate=rate)
    languages = ("en", "en", "es")
    avg = sum(2 if lang == "es" else 1 for lang in languages) / len(languages)
    n = math.ceil(rate * (window + 10) / avg)  # more than the window can take: the limiter, not the list, ends it
    truncate(stack.db_url)
    load_contacts(stack.db_url, WARM, WARM_FIRST, WARM_PLACE)
    load_contacts(stack.db_url, n, FIRST, PLACE, languages)
    flush_redis(stack.redis_url)
    fake.clear()
    fake.set_latency(0.0)
    app = create_app(paced.app_config())
    procs = start_workers(paced, "gateway")
    try:
        _launch_gateway(app, WARM_PLACE)
        wait_until(lambda: fake.count() >= WARM, WARM / rate * 2 + 30, 0.2)
        fake.clear()
        with app.app_context():
            svc = app.extensions["gateway"]
            from gateway.channels import sender_name

            with svc.sessions() as session, session.begin():
                b = broadcasts.create(session, {"en": EN, "es": ES}, default_language="en", place=PLACE,
                                      created_by="bench-pacing")
                broadcasts.launch(session, b, svc.provider.name, sender_name())
                bid = b.id
            with svc.sessions() as session:
                broadcasts.enqueue(session, bid, svc.redis)
        log(f"pacing: {n} messages launched at {rate:g} segments/s; measuring {window:.0f} s")
        wait_until(lambda: fake.count() > 0, 30, 0.05)
        time.sleep(window + 1.5)
        with app.app_context():
            svc = app.extensions["gateway"]
            with svc.sessions() as session, session.begin():
                broadcasts.cancel(session, session.get(Broadcast, bid))
        engine = svc.engine
        wait_until(lambda: not _sending(engine, bid, sa), 30, 0.3)
    finally:
        stop_workers(procs)
        app.extensions["gateway"].engine.dispose()
    msgs = sorted(fake.messages(stack.workdir / "fake-pacing.json"), key=lambda m: m["at"])
    t0 = msgs[0]["at"] if msgs else 0.0
    in_window = [m for m in msgs if m["at"] < t0 + window]
    segments = sum(m["segments"] for m in in_window)
    measured = segments / window
    per_second = Counter(int(m["at"] - t0) for m in in_window for _ in range(m["segments"]))
    seconds = [per_second.get(s, 0) for s in range(int(window))]
    dups = sum(c - 1 for c in Counter(m["to"] for m in msgs).values() if c > 1)
    error = (measured - rate) / rate
    figures = {"rate": rate, "window_s": window, "segments": segments, "messages": len(in_window),
               "measured": round(measured, 3), "error": round(error, 4), "per_second_min": min(seconds, default=0),
               "per_second_max": max(seconds, default=0), "duplicates": dups, "accepted_total": len(msgs)}
    results.add("pacing", f"N = {rate:g} segments/s, 2 workers, {window:.0f} s",
                f"{measured:.2f} segments/s ({100 * error:+.2f}%; {segments} segments in {len(in_window)} msgs; "
                f"per second {figures['per_second_min']}-{figures['per_second_max']}); dup {dups}",
                "within 5%", abs(error) <= 0.05 and dups == 0)
    return figures


def _sending(engine: Any, bid: int, sa: Any) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.text(
            "SELECT count(*) FROM messages WHERE broadcast_id = :b AND status = 'sending'"), {"b": bid}) or 0)
