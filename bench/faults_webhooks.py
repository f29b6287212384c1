"""Fault scenarios on the webhooks: PostgreSQL restarted under inbound traffic, the same webhook
delivered twice (at once, and an hour apart), status callbacks out of order.

Requests are real Twilio forms with valid signatures (bench/inbound.py), posted to a gunicorn
serving the gateway on the Procfile's settings.
"""
from __future__ import annotations

import http.client
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from bench.common import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, PUBLIC_BASE, Proc, free_port, gunicorn, http_ok, log
from bench.inbound import SCRIPT, Numbers, webhook
from bench.faults import TINY, Ctx, Row, Workers, _launch_gateway, drain, open_number, outbound_tally, sql

TWILIO_TIMEOUT = 15.0  # Twilio gives up on a webhook after this many seconds
_validator = RequestValidator(AUTH_TOKEN)


@dataclass
class Answer:
    sid: str
    number: str
    body: str
    status: int | None  # None: no answer (connection refused or timed out)
    seconds: float
    replies: int


def post(port: int, path: str, params: dict[str, str], timeout: float = TWILIO_TIMEOUT) -> tuple[int | None, bytes, float]:
    """POST a signed Twilio form as Twilio would; (status, body, seconds), status None on no answer."""
    data = urlencode(params).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "TwilioProxy/1.1",
               "X-Twilio-Signature": _validator.compute_signature(PUBLIC_BASE + path, params)}
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.read(), time.monotonic() - started
    except OSError:
        return None, b"", time.monotonic() - started
    finally:
        conn.close()


def send_sms(port: int, number: str, body: str, params: dict[str, str] | None = None) -> Answer:
    params = params or webhook(number, body)[0]
    status, raw, seconds = post(port, "/sms/twilio", params)
    return Answer(params["MessageSid"], number, body, status, seconds, len(re.findall(rb"<Message>", raw)))


def inbound_tally(ctx: Ctx, row: Row, answers: list[Answer]) -> set[str]:
    """Stored exactly once, in each number's order, answered in time; replies inline or queued, never both.
    The provider ids of the texts answered through the reply queue."""
    sids = [a.sid for a in answers]
    stored = [(i, pid, open_number(sealed), body, handled) for i, pid, sealed, body, handled in sql(
        ctx, "SELECT m.id, m.provider_id, c.number_sealed, m.body, m.handled_at IS NOT NULL FROM messages m "
             "LEFT JOIN contacts c ON c.id = m.contact_id WHERE m.direction = 'in' "
             "AND m.provider_id = ANY(:s) ORDER BY m.id", s=sids)]
    by_sid = Counter(pid for _i, pid, _n, _b, _h in stored)
    row.inbound_sent, row.inbound_stored = len(set(sids)), len(by_sid)
    row.lost += len(set(sids) - set(by_sid))
    row.duplicated += sum(n - 1 for n in by_sid.values())
    # The texts of an anonymous report are detached from their sender once it is saved (by design:
    # nothing ties a report to a phone), so the order is checked on the texts still tied to one.
    detached = {pid for _i, pid, number, _b, _h in stored if number is None}
    sent_order: dict[str, list[str]] = {}
    for a in answers:
        if a.sid not in detached and a.sid not in sent_order.get(a.number, []):
            sent_order.setdefault(a.number, []).append(a.sid)
    stored_order: dict[str, list[str]] = {}
    for _i, pid, number, _b, _h in stored:
        if number is not None:
            stored_order.setdefault(number, []).append(pid)
    out_of_order = sum(1 for n, order in sent_order.items() if stored_order.get(n, []) != order)
    if out_of_order:
        row.failed_checks.append(f"{out_of_order} numbers' texts stored out of order")
    if detached:
        row.notes.append(f"{len(detached)} texts of anonymous reports detached from their sender (by design)")
    unhandled = sum(1 for *_x, handled in stored if not handled)
    if unhandled:
        row.failed_checks.append(f"{unhandled} stored but never handled")
    late = [a for a in answers if a.status != 200 or a.seconds >= TWILIO_TIMEOUT]
    if late:
        row.failed_checks.append(f"{len(late)} webhooks not answered 200 within {TWILIO_TIMEOUT:.0f} s")
    row.notes.append(f"slowest answer {max(a.seconds for a in answers):.2f} s")
    # A text answered inline must not also get its replies through the outbox.
    inline = {a.sid for a in answers if a.replies}
    queued = {pid for (pid,) in sql(ctx, "SELECT i.provider_id FROM messages o JOIN messages i ON i.id = o.reply_to_id "
                                         "WHERE o.provider_id IS NOT NULL AND i.provider_id = ANY(:s)", s=sids)}
    row.duplicated += len(inline & queued)
    if queued:
        row.notes.append(f"{len(queued)} answered later through the reply queue (spooled or handled late)")
    return queued


def replies_settled(ctx: Ctx) -> int:
    return sql(ctx, "SELECT count(*) FROM messages WHERE direction = 'out' AND status IN ('queued', 'sending')")[0][0]


def spool_left(ctx: Ctx) -> int:
    spool = Path(ctx.stack.workdir / "spool")
    return len([p for p in spool.glob("*.json")]) if spool.exists() else 0


def pg_restart_inbound(ctx: Ctx, port: int) -> Row:
    """Scripted conversations at ~40 req/s; PostgreSQL stops for 3 s in the middle, then comes back."""
    row = Row("PostgreSQL restarted under inbound traffic", "PostgreSQL stopped 3 s (fast shutdown) at ~6 s, "
                                                           "restarted; ~40 req/s of signed webhooks")
    threads, per_thread = 8, 8  # 64 numbers x 12 texts: ~19 s of traffic around the outage
    numbers = Numbers(265771000000).take(threads * per_thread)
    answers: list[Answer] = []
    lock = threading.Lock()
    spacing = threads / 40.0  # each thread's pace, so all threads together send ~40 req/s

    def talk(mine: list[str]) -> None:
        for _step, body in SCRIPT:  # each number's texts in order: the next waits for the answer
            for number in mine:
                t0 = time.monotonic()
                a = send_sms(port, number, body)
                with lock:
                    answers.append(a)
                time.sleep(max(0.0, spacing - (time.monotonic() - t0)))

    back: list[float] = []

    def outage() -> None:
        time.sleep(6.0)
        log("  PostgreSQL stopping")
        ctx.pg.restart(3.0)
        back.append(time.monotonic())
        log("  PostgreSQL back")

    fault = threading.Thread(target=outage)
    fault.start()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(talk, [numbers[i::threads] for i in range(threads)]))
    fault.join()
    # A load balancer's health checks are requests too: each one lets the web process replay its spool.
    ok = ctx_wait(ctx, port, lambda: spool_left(ctx) == 0 and replies_settled(ctx) == 0)
    if back:
        row.recovery = time.monotonic() - back[0]  # PostgreSQL back -> every kept text stored and answered
    if not ok:
        row.failed_checks.append(f"spool not empty or replies unsent after 90 s ({spool_left(ctx)} kept)")
    inbound_tally(ctx, row, answers)
    # Replies that went through the outbox (not inline TwiML) to these texts: each accepted once.
    outbound_tally(ctx, row, "m.reply_to_id IN (SELECT id FROM messages WHERE provider_id = ANY(:s)) "
                             "AND NOT (m.status = 'sent' AND m.provider_id IS NULL) AND m.status <> 'inline'",
                   s=[a.sid for a in answers])
    stuck = sql(ctx, "SELECT count(*) FROM messages WHERE direction = 'out' AND status = 'inline'")[0][0]
    if stuck:
        row.failed_checks.append(f"{stuck} inline replies never handed over")
    row.notes.append("accepted at fake = replies sent through the reply queue")
    return row


def ctx_wait(ctx: Ctx, port: int, done: Callable[[], bool], timeout: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        http_ok(port)
        try:
            if done():
                return True
        except Exception:
            pass
        time.sleep(0.5)
    return False


def webhook_twice(ctx: Ctx, port: int) -> list[Row]:
    """The same signed webhook twice at the same moment, and again an hour later."""
    n = 100
    numbers = Numbers(265772000000).take(n)
    forms = [webhook(number, "JOIN")[0] for number in numbers]
    barrier = threading.Barrier(2)
    at_once = Row("same webhook twice at once", f"{n} texts each delivered twice concurrently")

    def pair(params: dict[str, str]) -> list[Answer]:
        def one() -> Answer:
            barrier_wait(barrier)
            return send_sms(port, params["From"], params["Body"], params)

        with ThreadPoolExecutor(2) as both:
            return [f.result() for f in [both.submit(one), both.submit(one)]]

    first: list[Answer] = []
    for params in forms:
        first += pair(params)
    # One delivery of a pair may have been stored for a worker (two texts in flight at once): wait
    # until the workers have handled every text and sent every reply before counting.
    sids = [f["MessageSid"] for f in forms]
    if not ctx_wait(ctx, port, lambda: replies_settled(ctx) == 0 and sql(
            ctx, "SELECT count(*) FROM messages WHERE direction = 'in' AND handled_at IS NULL "
                 "AND provider_id = ANY(:s)", s=sids)[0][0] == 0):
        at_once.failed_checks.append("texts unhandled or replies unsent after 90 s")
    queued = inbound_tally(ctx, at_once, first)
    answered = Counter(a.sid for a in first if a.replies)
    at_once.duplicated += sum(c - 1 for c in answered.values())
    # A text neither delivery answered inline, nor answered through the reply queue (one delivery
    # stored it for a worker, the other was its duplicate), lost its reply.
    at_once.lost += len({f["MessageSid"] for f in forms} - set(answered) - queued)
    at_once.notes.append(f"{sum(answered.values())} of {2 * n} deliveries answered with the join reply")

    later = Row("same webhook an hour apart", f"the {n} texts delivered again, stored an hour earlier")
    sql(ctx, "UPDATE messages SET created_at = created_at - interval '1 hour', "
             "handled_at = handled_at - interval '1 hour' WHERE provider_id = ANY(:s)", s=[f["MessageSid"] for f in forms])
    again = [send_sms(port, f["From"], f["Body"], f) for f in forms]
    inbound_tally(ctx, later, again)
    later.duplicated += sum(1 for a in again if a.replies)
    later.notes.append(f"{sum(1 for a in again if a.replies)} redeliveries answered again")
    return [at_once, later]


def barrier_wait(barrier: threading.Barrier) -> None:
    try:
        barrier.wait(timeout=5)
    except threading.BrokenBarrierError:
        barrier.reset()


# Orders Twilio may deliver callbacks in, and the status a forward-only ladder must end at.
CALLBACK_ORDERS: list[tuple[list[str], str]] = [
    (["delivered", "sent"], "delivered"),
    (["delivered", "failed"], "delivered"),
    (["undelivered", "sent", "delivered"], "undelivered"),
    (["sent", "sent", "delivered", "delivered"], "delivered"),
    (["failed", "sending", "sent"], "failed"),
]


def status_out_of_order(ctx: Ctx, port: int) -> Row:
    """A broadcast to the small audience, then its status callbacks late, repeated and reordered."""
    row = Row("status callbacks out of order", "delivered before sent, failed after delivered, "
                                               "sent after undelivered, each twice; 8 at a time")
    workers = Workers(ctx.stack)
    try:
        bid, _, _ = _launch_gateway(ctx.app, TINY)
        drain(ctx, lambda: sql(ctx, "SELECT count(*) FROM messages WHERE broadcast_id = :b AND "
                                    "status IN ('queued', 'sending')", b=bid)[0][0])
    finally:
        workers.stop()
    rows = [(sid, open_number(sealed)) for sid, sealed in sql(
        ctx, "SELECT m.provider_id, c.number_sealed FROM messages m JOIN contacts c ON c.id = m.contact_id "
             "WHERE m.broadcast_id = :b AND m.provider_id IS NOT NULL ORDER BY m.id", b=bid)]
    row.recipients = len(rows)
    expected: dict[str, str] = {}

    def deliver(i: int) -> int:
        sid, number = rows[i]
        order, final = CALLBACK_ORDERS[i % len(CALLBACK_ORDERS)]
        expected[sid] = final
        bad = 0
        for status in order:
            params = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
                      "AccountSid": ACCOUNT_SID, "From": FROM_NUMBER, "To": number, "ApiVersion": "2010-04-01"}
            if status in ("failed", "undelivered"):
                params["ErrorCode"] = "30003"
            code, _body, _s = post(port, "/sms/twilio/status", params)
            bad += code is None or code >= 300
        return bad

    with ThreadPoolExecutor(8) as pool:
        refused = sum(pool.map(deliver, range(len(rows))))
    final = dict(sql(ctx, "SELECT provider_id, status FROM messages WHERE broadcast_id = :b", b=bid))
    row.lost = sum(1 for sid, want in expected.items() if final.get(sid) != want)
    if refused:
        row.failed_checks.append(f"{refused} callbacks not answered 2xx")
    outbound_tally(ctx, row, "m.broadcast_id = :b", b=bid)
    row.notes.append("lost = messages whose final status is not the furthest one reported")
    return row


def scenarios(ctx: Ctx) -> list[tuple[str, Callable[[], Row]]]:
    """(name, run) for every webhook scenario; one gunicorn and two workers serve them all."""
    state: dict[str, Any] = {}

    def serve() -> int:
        if "web" not in state:
            state["port"] = port = free_port()
            state["web"] = gunicorn("gateway-web", "app:app", ctx.stack, port)
        return state["port"]

    def with_workers(run: Callable[[int], Any]) -> Any:
        port = serve()
        workers = Workers(ctx.stack)
        try:
            return run(port)
        finally:
            workers.stop()

    def last(rows: list[Row]) -> Row:
        state["extra"] = rows[1:]
        return rows[0]

    def stop_web(row: Row) -> Row:
        web: Proc | None = state.pop("web", None)
        if web is not None:
            web.stop()
        return row

    return [
        ("PostgreSQL restarted under inbound traffic", lambda: with_workers(lambda p: pg_restart_inbound(ctx, p))),
        ("same webhook twice at once", lambda: last(with_workers(lambda p: webhook_twice(ctx, p)))),
        ("same webhook an hour apart", lambda: state.pop("extra", [None])[0]),  # ran with the one above
        ("status callbacks out of order", lambda: stop_web(status_out_of_order(ctx, serve()))),
    ]
