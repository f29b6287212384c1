"""Store and acknowledge: beyond capacity a webhook stores the text and answers at once; a worker
handles it in order per sender, replies leave through the reply queue; nothing lost or doubled."""
from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from itertools import count
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select
from sqlalchemy.exc import DataError

from gateway.core.pressure import Pressure
from gateway.models import Contact, Conversation, Message
from tests.conftest import PUBLIC_BASE
from tests.fakes.twilio_api import FakeTwilio, wait_for
from tests.helpers import launch_to_zomba, send, sign, svc, work

A, B = "+265991230001", "+265991230002"
_sids = count(1)


def post(app: Flask, sender: str, body: str, sid: str | None = None) -> list[str]:
    """A signed Twilio webhook; the texts of its TwiML answer."""
    params = {"MessageSid": sid or f"SM{next(_sids):032x}", "From": sender, "To": "+15005550006", "Body": body}
    token = svc(app).settings.twilio_auth_token or ""
    response = app.test_client().post("/sms/twilio", data=params, headers={
        "X-Twilio-Signature": sign(PUBLIC_BASE + "/sms/twilio", params, token)})
    assert response.status_code == 200
    return [m.text or "" for m in ET.fromstring(response.data).iter("Message")]


def inbound(app: Flask) -> list[tuple[str, str, str | None]]:
    """(body, status, handled_by) of every inbound row, in arrival order."""
    with svc(app).sessions() as s:
        return [(m.body, m.status, m.handled_by) for m in s.scalars(
            select(Message).where(Message.direction == "in").order_by(Message.id))]


def test_pressure_switches_on_queue_depth_and_back() -> None:
    p = Pressure(busy_at=3)
    assert [p.enter(0.0), p.enter(0.0)] == [False, False]
    assert p.enter(0.0) is True  # the third text in flight at once: every thread is taken
    p.leave(0.1, None)
    p.leave(0.1, 0.01)
    assert p.enter(0.1) is False  # two in flight again: handled inline
    assert p.in_flight == 2


def test_pressure_stores_a_lone_text_while_most_texts_lately_found_company_but_never_a_one_by_one_sender() -> None:
    p = Pressure()
    for i in range(500):  # one text after another, 500 a second: never two at once, all inline
        assert p.enter(i / 500) is False
        p.leave(i / 500 + 0.001, 0.001)
    t, firsts = 3.0, []
    for _ in range(300):  # then three at a time for 3 s: the first of each three finds the process idle
        firsts.append(p.enter(t))
        assert [p.enter(t), p.enter(t)] == [True, True]
        for seconds in (0.005, None, None):
            p.leave(t + 0.005, seconds)
        t += 0.01
    # At first it is handled inline; once two in three texts lately found company, it is stored as
    # well, not handled inline holding the GIL while the texts arriving behind it wait.
    assert firsts[0] is False and firsts[-1] is True
    switched = firsts.index(True)
    assert firsts[switched:] == [True] * (300 - switched)
    t += 5.0  # calm again (the share fades with time): one by one, inline
    for i in range(3):
        assert p.enter(t + i) is False
        p.leave(t + i + 0.005, 0.005)
    assert p.in_flight == 0


def test_pressure_switches_on_time_budget_and_back_as_it_decays() -> None:
    p = Pressure(busy_at=100, budget=0.5, half_life=1.0)
    p.enter(0.0)
    p.leave(0.0, 5.0)  # one very slow inline pass: the average jumps to 1.0 s
    assert p.enter(0.1) is True
    p.leave(0.1, None)
    assert p.enter(1.2) is False  # a second later the average has halved below the budget
    p.leave(1.2, 0.01)
    assert p.in_flight == 0


def test_a_worker_in_the_web_process_gives_way_to_webhooks_but_never_waits_for_long() -> None:
    p = Pressure()
    assert p.give_way(most=1.0) == 0.0  # nothing being received (a worker process of its own): no wait
    p.enter(0.0)
    assert 0.05 <= p.give_way(most=0.05, step=0.01) < 0.07  # a webhook in flight: it waits, but only so long
    p.leave(0.0, None)
    assert p.give_way(most=1.0) == 0.0


def test_beyond_capacity_the_text_is_stored_acknowledged_and_handled_by_a_worker(twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    gw = svc(twilio_app)
    gw.inbound.pressure.forced = True
    assert post(twilio_app, A, "JOIN") == []  # empty TwiML: stored, acknowledged
    assert inbound(twilio_app) == [("JOIN", "received", None)]
    assert fake_twilio.messages == []
    work(twilio_app)  # the handling job, then the reply it queued
    assert inbound(twilio_app) == [("JOIN", "handled", "flow")]
    assert [(m["to"], m["body"][:22]) for m in fake_twilio.messages] == [(A, "Our Network: you joine")]
    gw.inbound.pressure.forced = False  # the pressure is gone: handled inline again
    assert post(twilio_app, A, "Chikondi")[0].startswith("Where do you live")


def test_while_the_number_keys_rotate_a_text_under_load_takes_the_full_path(
        twilio_app: Flask, fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.core.vault import NumberVault
    from tests.helpers import NUMBERS_KEY

    gw = svc(twilio_app)
    gw.inbound.pressure.forced = True
    info = gw.sessions.kw["info"]
    # A contact may be found only under the older key's digest, which the one-statement upsert
    # cannot see: the full path looks under every key.
    monkeypatch.setitem(info, "numbers", NumberVault.from_keys(["a-newer-numbers-key-of-32-characters-or-more",
                                                                 NUMBERS_KEY]))
    assert post(twilio_app, A, "JOIN")[0].startswith("Our Network: you joined")  # handled inline
    monkeypatch.setitem(info, "numbers", NumberVault.from_keys([NUMBERS_KEY]))
    assert post(twilio_app, B, "JOIN") == []  # one key: stored for a worker
    assert [(body, status) for body, status, _ in inbound(twilio_app)] == [("JOIN", "handled"), ("JOIN", "received")]


def test_order_per_sender_holds_across_the_switch_both_ways(twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    gw = svc(twilio_app)
    gw.inbound.pressure.forced = True
    for sender in (A, B):
        assert post(twilio_app, sender, "JOIN") == []
    assert post(twilio_app, A, "Chikondi") == []
    gw.inbound.pressure.forced = False
    # Inline again before the worker ran: A's older texts are handled first, in order, then this one.
    replies = post(twilio_app, A, "Zomba")
    assert replies[0].startswith("Our Network: you joined") and replies[-1].startswith("What matters to you")
    gw.inbound.pressure.forced = True
    assert post(twilio_app, B, "Thoko") == []
    work(twilio_app)
    with gw.sessions() as s:
        convs = s.scalars(select(Conversation).where(Conversation.closed_at.is_(None)).order_by(Conversation.id)).all()
    # A: JOIN, name, place handled in that order; B: JOIN, then its name (handled by the worker).
    assert [(c.flow, c.answers.get("name"), c.answers.get("place")) for c in convs] == [
        ("join", "Chikondi", "Zomba"), ("join", "Thoko", None)]
    assert all(status == "handled" for _, status, _ in inbound(twilio_app))


def test_a_retried_text_is_stored_once_and_handled_once_whichever_path_took_it(twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    gw = svc(twilio_app)
    gw.inbound.pressure.forced = True
    assert post(twilio_app, A, "JOIN", sid="SM-retried") == []
    assert post(twilio_app, A, "JOIN", sid="SM-retried") == []  # Twilio's retry while deferred
    gw.inbound.pressure.forced = False
    assert post(twilio_app, A, "JOIN", sid="SM-retried") == []  # and once more, inline: a duplicate
    work(twilio_app)
    work(twilio_app)  # a second run of the job handles nothing twice
    assert inbound(twilio_app) == [("JOIN", "handled", "flow")]
    with gw.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Message).where(Message.direction == "out")) == 1
    assert len(fake_twilio.messages) == 1


def test_concurrent_deferred_texts_of_many_senders_are_all_stored_and_handled_once(twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    gw = svc(twilio_app)
    gw.inbound.pressure.forced = True
    senders = [f"+2659912{i:05d}" for i in range(6)]
    errors: list[BaseException] = []

    def burst(sender: str) -> None:
        try:
            for body in ("JOIN", "Name", "Zomba"):
                post(twilio_app, sender, body)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=burst, args=(s,)) for s in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    work(twilio_app)
    rows = inbound(twilio_app)
    assert len(rows) == 18 and all(status == "handled" for _, status, _ in rows)
    with gw.sessions() as s:
        answers = [(c.answers.get("name"), c.answers.get("place")) for c in s.scalars(select(Conversation))]
    assert answers == [("Name", "Zomba")] * 6  # each sender's three texts were handled in the order sent


def test_one_drain_job_serves_many_texts_and_a_lost_job_leaves_them_to_the_reconciler(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    from datetime import timedelta

    from gateway.inbound import deferred
    from gateway.outbound import queues

    gw = svc(twilio_app)
    gw.inbound.pressure.forced = True
    for sender in (A, B):
        assert post(twilio_app, sender, "JOIN") == []
    replies = queues.get_queue(gw.redis, queues.REPLIES)
    assert [j.func_name for j in replies.get_jobs()] == [deferred.DRAIN]  # one job for both texts
    replies.empty()  # the job is lost (a worker killed with it, Redis emptied): the texts stay stored
    gw.redis.delete(deferred.LATER, deferred.LATER_JOB)
    work(twilio_app)
    assert [status for _, status, _ in inbound(twilio_app)] == ["received", "received"]
    assert gw.inbound.handle_stranded(older_than=timedelta(0)) == 2  # what the reconciler runs each minute
    work(twilio_app)
    assert [status for _, status, _ in inbound(twilio_app)] == ["handled", "handled"]
    assert sorted(m["to"] for m in fake_twilio.messages) == [A, B]


def test_a_drain_job_works_a_few_seconds_and_leaves_the_rest_to_a_new_job(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    from gateway.inbound import deferred
    from gateway.outbound import queues

    gw = svc(twilio_app)
    gw.inbound.pressure.forced = True
    senders = [f"+2659914{i:05d}" for i in range(3)]
    for sender in senders:
        assert post(twilio_app, sender, "JOIN") == []
    replies = queues.get_queue(gw.redis, queues.REPLIES)
    replies.empty()  # the job the texts queued; this test runs the job itself
    with twilio_app.app_context():
        assert deferred.drain_later(batch=1, budget=0.0) == 1  # out of time after one contact
    # The rest is left listed, with a new job for it: a worker told to stop finishes its short job
    # instead of being killed in the middle of the list (the contacts it took would wait a minute).
    jobs = [j.func_name for j in replies.get_jobs()]  # the first contact's reply, and the new job
    assert gw.redis.llen(deferred.LATER) == 2 and jobs.count(deferred.DRAIN) == 1
    work(twilio_app)
    assert [status for _, status, _ in inbound(twilio_app)] == ["handled"] * 3
    assert sorted(m["to"] for m in fake_twilio.messages) == senders


def test_while_the_web_processes_fall_behind_a_drain_job_works_a_tenth_of_the_time(
        twilio_app: Flask, fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.inbound import Inbound, deferred
    from gateway.outbound import queues

    gw = svc(twilio_app)
    gw.inbound.pressure.forced = True
    senders = [f"+2659915{i:05d}" for i in range(5)]
    for sender in senders:
        assert post(twilio_app, sender, "JOIN") == []
    queues.get_queue(gw.redis, queues.REPLIES).empty()  # this test runs the job itself
    took: list[float] = []
    real = Inbound.handle_contacts

    def timed(self: Inbound, contact_ids: list[int]) -> int:
        began = time.monotonic()
        try:
            time.sleep(0.2)  # a batch long enough that the job's own overhead is small beside it
            return real(self, contact_ids)
        finally:
            took.append(time.monotonic() - began)

    monkeypatch.setattr(Inbound, "handle_contacts", timed)
    gw.redis.set(deferred.BEHIND, 1, ex=60)  # a web process fell behind in storing texts
    pauses: list[float] = []
    with twilio_app.app_context():
        assert deferred.drain_later(batch=2, budget=60.0, pause=pauses.append) == 5
        # each batch handled, then nine times as long waited: the job works a tenth of the time
        assert len(pauses) == len(took) == 3
        assert all(9 * t <= p <= 9 * t + 0.5 for t, p in zip(took, pauses, strict=True)), (took, pauses)
        assert post(twilio_app, A, "JOIN") == [] and post(twilio_app, B, "JOIN") == []
        pauses.clear()
        assert deferred.drain_later(batch=1, budget=0.0, pause=pauses.append) == 1
        assert pauses == [0.0]  # never waiting past the job's budget: a new job takes the rest
        gw.redis.delete(deferred.BEHIND)  # the web processes keep up: the job takes all it needs
        pauses.clear()
        assert deferred.drain_later(pause=pauses.append) == 1 and pauses == []
    assert [status for _, status, _ in inbound(twilio_app)] == ["handled"] * 7


def test_a_drain_sends_the_replies_of_its_contacts_in_one_job_unless_they_would_wait(
        twilio_app: Flask, fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> None:
    import gateway.inbound as inbound_module
    from gateway.outbound import queues

    gw = svc(twilio_app)
    gw.inbound.pressure.forced = True
    senders = [f"+2659916{i:05d}" for i in range(6)]
    for sender in senders:
        assert post(twilio_app, sender, "JOIN") == []
    with gw.sessions() as s:
        ids = sorted(s.scalars(select(Contact.id)))
    handed: list[list[int]] = []
    real = inbound_module.Inbound.send_replies

    def recorded(self: inbound_module.Inbound, reply_ids: list[int]) -> None:
        handed.append(reply_ids)
        real(self, reply_ids)

    monkeypatch.setattr(inbound_module.Inbound, "send_replies", recorded)
    queues.get_queue(gw.redis, queues.REPLIES).empty()  # the drain jobs: this test handles the texts itself
    monkeypatch.setattr(inbound_module, "REPLY_HOLD", 60.0)  # however slow the machine running this
    with twilio_app.app_context():
        assert gw.inbound.handle_contacts(ids[:3]) == 3
        assert [len(h) for h in handed] == [3]  # one job for three contacts' replies
        handed.clear()
        monkeypatch.setattr(inbound_module, "REPLY_HOLD", 0.0)  # a reply may not wait: a job each
        assert gw.inbound.handle_contacts(ids[3:]) == 3
        assert [len(h) for h in handed] == [1, 1, 1]
    work(twilio_app)
    assert sorted(m["to"] for m in fake_twilio.messages) == senders  # each answered once
    assert [status for _, status, _ in inbound(twilio_app)] == ["handled"] * 6


def by_number(app: Flask, of: Callable[[Contact], Any]) -> dict[str, Any]:
    """`of(contact)` for each contact, by number."""
    from gateway.people import contacts as people
    with svc(app).sessions() as s:
        return {people.number_of(c): of(c) for c in s.scalars(select(Contact))}


def statuses(app: Flask) -> dict[str, str]:
    """Each contact's status, by number."""
    return by_number(app, lambda c: c.status)


def stop_pending(app: Flask) -> dict[str, bool]:
    """Whether each contact has a STOP stored and not handled yet, by number."""
    return by_number(app, lambda c: c.stop_pending_at is not None)


def test_under_pressure_start_and_help_are_handled_inline_and_a_stop_is_stored_in_every_language(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    gw = svc(twilio_app)
    gw.inbound.pressure.forced = True
    assert post(twilio_app, A, "JOIN") == []  # an ordinary keyword: stored for a worker
    assert post(twilio_app, B, "leka") == []  # Chichewa STOP: stored too, and its contact stop-pending
    assert statuses(twilio_app)[B] == "active" and stop_pending(twilio_app) == {A: False, B: True}
    # Spanish START, at once: B's stored STOP is handled first, in its place, then the START.
    replies = post(twilio_app, B, "Inicio")
    assert replies[0].startswith("Simudzalandiranso") and replies[-1].startswith("Hola de nuevo")
    assert statuses(twilio_app)[B] == "active" and stop_pending(twilio_app)[B] is False
    assert len(post(twilio_app, B, "help")) == 1
    assert inbound(twilio_app) == [("JOIN", "received", None), ("leka", "handled", "stop"),
                                   ("Inicio", "handled", "start"), ("help", "handled", "help")]


def test_under_pressure_a_stop_stops_the_outbox_at_once_and_its_texts_are_handled_in_order(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    gw = svc(twilio_app)
    alert = launch_to_zomba(twilio_app, [A], "Assembly at the district office on Saturday.", "+15005550006")
    gw.inbound.pressure.forced = True
    assert post(twilio_app, B, "JOIN") == []
    for sender, body in ((A, "Chikondi"), (A, "STOP"), (B, "STOP")):
        assert post(twilio_app, sender, body) == []  # each stored and acknowledged at once
    assert [(body, status) for body, status, _ in inbound(twilio_app)] == [
        ("JOIN", "received"), ("Chikondi", "received"), ("STOP", "received"), ("STOP", "received")]
    assert statuses(twilio_app) == {A: "active", B: "active"} and stop_pending(twilio_app) == {A: True, B: True}
    # The alert's send job runs before any worker reaches A's texts: the stored STOP already wins.
    assert send(twilio_app, alert)["skipped"] == 1
    assert fake_twilio.messages == []
    work(twilio_app)  # the drain job: each sender's texts in the order sent, then the confirmations
    assert [(body, status) for body, status, _ in inbound(twilio_app)] == [
        ("JOIN", "handled"), ("Chikondi", "handled"), ("STOP", "handled"), ("STOP", "handled")]
    assert statuses(twilio_app) == {A: "stopped", B: "stopped"} and stop_pending(twilio_app) == {A: False, B: False}
    # B's welcome answered a text sent before the STOP: not sent. Only the confirmations go out.
    assert sorted((m["to"], m["body"][:20]) for m in fake_twilio.messages) == [
        (A, "You will get no more"), (B, "You will get no more")]


def test_a_retried_stop_already_handled_does_not_stop_the_outbox_again(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    assert len(post(twilio_app, A, "STOP", sid="SM-stop")) == 1  # handled inline: stopped
    assert len(post(twilio_app, A, "START")) == 1  # and back
    svc(twilio_app).inbound.pressure.forced = True
    assert post(twilio_app, A, "STOP", sid="SM-stop") == []  # Twilio retries the old STOP: a duplicate
    assert stop_pending(twilio_app) == {A: False} and statuses(twilio_app) == {A: "active"}
    assert [body for body, _, _ in inbound(twilio_app)] == ["STOP", "START"]


class HeldWriter:
    """Holds each writer thread's first batch until `release()`, so texts posted meanwhile gather."""

    def __init__(self, app: Flask, monkeypatch: pytest.MonkeyPatch, threads: int = 1) -> None:
        self.writer = svc(app).inbound.writer
        assert self.writer is not None
        monkeypatch.setattr(self.writer, "threads", threads)  # before the first text starts them
        self.gates = [threading.Event() for _ in range(threads)]
        self.holding = [threading.Event() for _ in range(threads)]
        self.seen: list[threading.Thread] = []
        write = self.writer._write
        lock = threading.Lock()

        def held(batch: list[Any], *args: Any) -> None:
            me = threading.current_thread()
            with lock:
                first = me not in self.seen
                if first:
                    self.seen.append(me)
                n = self.seen.index(me)
            if first:
                self.holding[n].set()
                assert self.gates[n].wait(30)
            write(batch, *args)

        monkeypatch.setattr(self.writer, "_write", held)

    def waiting(self) -> int:
        with self.writer._cond:
            return len(self.writer._waiting)

    def start_in_order(self, calls: list[tuple[Any, tuple[Any, ...]]]) -> list[threading.Thread]:
        """Run each (function, args) in its own thread, the next only once the last waits for the writer."""
        threads = []
        for target, args in calls:
            before = self.waiting()
            t = threading.Thread(target=target, args=args)
            t.start()
            threads.append(t)
            assert wait_for(lambda n=before: self.waiting() > n, 30)
        return threads

    def post_in_order(self, app: Flask, texts: list[tuple[str, str, str | None]]) -> list[threading.Thread]:
        """Post each text from its own thread, the next only once the last waits for the writer."""
        return self.start_in_order([(post, (app, sender, body, sid)) for sender, body, sid in texts])

    def release(self, n: int | None = None) -> None:
        """Let writer thread n (each, when None) write its first batch."""
        for gate in self.gates if n is None else [self.gates[n]]:
            gate.set()


def test_texts_arriving_together_are_written_in_one_transaction_in_arrival_order(
        twilio_app: Flask, fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> None:
    gw = svc(twilio_app)
    gw.inbound.pressure.forced = True
    commits: list[int] = []
    event.listen(gw.engine, "commit", lambda conn: commits.append(1))
    held = HeldWriter(twilio_app, monkeypatch)
    first = threading.Thread(target=post, args=(twilio_app, A, "JOIN", None))
    first.start()
    assert held.holding[0].wait(30)  # A's JOIN is being written; the next texts wait together
    threads = held.post_in_order(twilio_app, [(B, "JOIN", None), (A, "Chikondi", "SM-twice"),
                                              (A, "Chikondi", "SM-twice"), (B, "Thoko", None), (A, "Zomba", None)])
    assert len(commits) == 0
    held.release()
    for t in [first, *threads]:
        t.join(30)
    assert len(commits) == 2  # A's JOIN, then the five others in one transaction
    # stored once each (the retried SID too), in the order they arrived
    assert [body for body, _, _ in inbound(twilio_app)] == ["JOIN", "JOIN", "Chikondi", "Thoko", "Zomba"]
    work(twilio_app)
    with gw.sessions() as s:
        convs = s.scalars(select(Conversation).where(Conversation.closed_at.is_(None)).order_by(Conversation.id)).all()
    assert [(c.answers.get("name"), c.answers.get("place")) for c in convs] == [("Chikondi", "Zomba"), ("Thoko", None)]
    assert all(status == "handled" for _, status, _ in inbound(twilio_app))


def test_while_texts_keep_coming_the_writer_gathers_them_into_one_batch_and_a_lone_text_waits_only_the_gap(
        twilio_app: Flask, fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> None:
    gw = svc(twilio_app)
    gw.inbound.pressure.forced = True
    writer = gw.inbound.writer
    assert writer is not None
    commits: list[int] = []
    event.listen(gw.engine, "commit", lambda conn: commits.append(1))
    # A gap far longer than the test: the batch can only close because it holds gather_texts texts.
    monkeypatch.setattr(writer, "gap", 30.0)
    monkeypatch.setattr(writer, "gather_max", 60.0)
    monkeypatch.setattr(writer, "gather_texts", 3)
    c, d = "+265991230003", "+265991230004"
    started = time.monotonic()
    threads = [threading.Thread(target=post, args=(twilio_app, sender, "JOIN", None)) for sender in (A, B, c)]
    for n, t in enumerate(threads, 1):
        t.start()
        assert wait_for(lambda n=n: len(writer._waiting) >= n or bool(commits), 30)
    for t in threads:
        t.join(30)
    assert len(commits) == 1 and time.monotonic() - started < 20  # three texts, one transaction, no 30 s wait
    assert sorted(body for body, _, _ in inbound(twilio_app)) == ["JOIN", "JOIN", "JOIN"]
    # A lone text waits the gap for company, not gather_max.
    monkeypatch.setattr(writer, "gap", 0.2)
    started = time.monotonic()
    post(twilio_app, d, "JOIN")
    assert 0.15 <= time.monotonic() - started < 20 and len(commits) == 2


def test_texts_that_waited_long_for_their_commit_tell_the_drain_jobs_the_web_processes_fell_behind(
        twilio_app: Flask, fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.inbound import deferred

    gw = svc(twilio_app)
    gw.inbound.pressure.forced = True
    monkeypatch.setattr(deferred, "LAGGING", 0.5)
    held = HeldWriter(twilio_app, monkeypatch)
    first = threading.Thread(target=post, args=(twilio_app, A, "JOIN", None))
    first.start()
    assert held.holding[0].wait(30)
    time.sleep(0.6)  # the commit is slow: A's text waits longer than LAGGING
    assert not gw.redis.exists(deferred.BEHIND)
    held.release()
    first.join(30)
    assert gw.redis.exists(deferred.BEHIND) and 0 < gw.redis.ttl(deferred.BEHIND) <= deferred.BEHIND_HOLD
    gw.redis.delete(deferred.BEHIND)
    assert post(twilio_app, B, "JOIN") == []  # stored at once: nothing said
    assert not gw.redis.exists(deferred.BEHIND)
    assert [body for body, _, _ in inbound(twilio_app)] == ["JOIN", "JOIN"]


def test_a_crowd_of_texts_waiting_for_the_writer_tells_the_drain_jobs_the_web_process_is_saturated(
        twilio_app: Flask, fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.inbound import deferred

    gw = svc(twilio_app)
    gw.inbound.pressure.forced = True
    monkeypatch.setattr(deferred, "LAGGING", 60.0)  # only the crowd counts here
    monkeypatch.setattr(deferred, "BEHIND_AT", 3)
    for queued, behind in (([(B, "JOIN", None)], False),
                           ([(B, "Thoko", None), (A, "Zomba", None), (B, "Zomba", None)], True)):
        held = HeldWriter(twilio_app, monkeypatch)  # holds the writer's next batch
        first = threading.Thread(target=post, args=(twilio_app, A, "JOIN" if not behind else "Chikondi", None))
        first.start()
        assert held.holding[0].wait(30)
        threads = held.post_in_order(twilio_app, queued)
        held.release()
        for t in [first, *threads]:
            t.join(30)
        assert bool(gw.redis.exists(deferred.BEHIND)) is behind, queued
    assert len(inbound(twilio_app)) == 6


def test_two_writer_threads_never_write_one_senders_texts_at_once(
        twilio_app: Flask, fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> None:
    gw = svc(twilio_app)
    gw.inbound.pressure.forced = True
    held = HeldWriter(twilio_app, monkeypatch, threads=2)
    threads = [threading.Thread(target=post, args=(twilio_app, A, "JOIN", None))]
    threads[0].start()
    assert held.holding[0].wait(30)  # the first writer holds A's JOIN
    threads.append(threading.Thread(target=post, args=(twilio_app, B, "JOIN", None)))
    threads[-1].start()
    assert held.holding[1].wait(30)  # the second holds B's JOIN
    threads += held.post_in_order(twilio_app, [(A, "Chikondi", None), (B, "Thoko", None), (A, "Zomba", None)])
    held.release(0)  # A's JOIN is written; the free writer takes A's next texts, but not B's
    assert wait_for(lambda: [body for body, _, _ in inbound(twilio_app)] == ["JOIN", "Chikondi", "Zomba"], 30)
    assert held.waiting() == 1  # B's name waits for B's JOIN, still being written
    held.release(1)
    for t in threads:
        t.join(30)
    work(twilio_app)
    with gw.sessions() as s:
        convs = s.scalars(select(Conversation).where(Conversation.closed_at.is_(None)).order_by(Conversation.id)).all()
    assert sorted((c.answers.get("name"), c.answers.get("place")) for c in convs) == [
        ("Chikondi", "Zomba"), ("Thoko", None)]


def test_a_text_not_written_in_time_is_kept_in_the_spool_and_stored_once(
        twilio_app: Flask, fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> None:
    gw = svc(twilio_app)
    gw.inbound.pressure.forced = True
    held = HeldWriter(twilio_app, monkeypatch)
    monkeypatch.setattr(held.writer, "wait", 0.2)
    assert post(twilio_app, A, "JOIN", sid="SM-slow") == []  # answered: the text waits in the spool
    assert gw.inbound.spool.has_pending()
    held.release()  # the database answers after all: the writer stores it
    assert wait_for(lambda: len(inbound(twilio_app)) == 1, 30)
    done = gw.inbound.replay()
    assert (done.stored, done.duplicates) == (0, 1)  # the kept copy is recognised by its SID
    work(twilio_app)
    assert inbound(twilio_app) == [("JOIN", "handled", "flow")]
    assert [m["to"] for m in fake_twilio.messages] == [A]


@pytest.mark.postgres_only
def test_one_bad_text_in_a_batch_fails_only_its_own_webhook(
        twilio_app: Flask, fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.channels.base import InboundSMS

    gw = svc(twilio_app)
    writer = gw.inbound.writer
    assert writer is not None
    held = HeldWriter(twilio_app, monkeypatch)
    results: dict[str, Any] = {}
    senders = {"first": B, "good": A, "bad": "+265991230003"}

    def store(name: str, sid: str) -> None:
        try:
            results[name] = writer.store(InboundSMS("twilio", sid, senders[name], None, "JOIN"), "MW")
        except Exception as exc:  # noqa: BLE001 - checked below
            results[name] = exc

    blocker = threading.Thread(target=store, args=("first", "SM-first"))
    blocker.start()
    assert held.holding[0].wait(30)
    # the second: a provider id longer than its column
    threads = held.start_in_order([(store, ("good", "SM-good")), (store, ("bad", "SM" + "x" * 80))])
    held.release()
    for t in [blocker, *threads]:
        t.join(30)
    assert results["good"].deferred and results["first"].deferred
    assert isinstance(results["bad"], DataError)
    assert [body for body, _, _ in inbound(twilio_app)] == ["JOIN", "JOIN"]
    # the failed statements left nothing: the bad text's sender, upserted in them, is no contact
    with gw.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 2


@pytest.mark.postgres_only
def test_a_batch_without_a_stop_is_one_round_trip_and_a_batch_with_one_is_one_transaction(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    gw = svc(twilio_app)
    gw.inbound.pressure.forced = True
    sent: list[tuple[str, bool, str]] = []  # (statement's first word, autocommit, the server's transaction state)

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        dbapi = conn.connection.dbapi_connection
        sent.append((statement.split()[0], dbapi.autocommit, dbapi.info.transaction_status.name))

    event.listen(gw.engine, "before_cursor_execute", seen)
    assert post(twilio_app, A, "JOIN") == []
    # in autocommit and outside a transaction: psycopg sent no BEGIN before it and sends no COMMIT after
    assert sent == [("WITH", True, "IDLE")]
    sent.clear()
    assert post(twilio_app, B, "STOP") == []
    # the texts and the STOP's mark in one transaction, begun before the texts' statement
    assert sent == [("WITH", True, "INTRANS"), ("UPDATE", True, "INTRANS")]
    assert stop_pending(twilio_app) == {A: False, B: True}
    writer = gw.inbound.writer
    assert writer is not None
    (held,) = writer.connections()
    resets = held.connection._connection_record.finalize_callback  # type: ignore[union-attr]
    before = len(resets)
    for body in ("Chikondi", "Zomba", "STOP"):  # and the next batches: one statement again, or a transaction
        assert post(twilio_app, A, body) == []
    assert sent[-4:] == [("WITH", True, "IDLE"), ("WITH", True, "IDLE"), ("WITH", True, "INTRANS"),
                         ("UPDATE", True, "INTRANS")]
    assert len(resets) == before  # the connection's setting is not made again for each batch
    assert [body for body, _, _ in inbound(twilio_app)] == ["JOIN", "STOP", "Chikondi", "Zomba", "STOP"]


@pytest.mark.postgres_only
def test_a_stop_and_its_mark_are_stored_together_or_not_at_all(
        twilio_app: Flask, fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import DBAPIError

    from gateway.channels.base import InboundSMS
    from gateway.inbound import deferred

    writer = svc(twilio_app).inbound.writer
    assert writer is not None
    monkeypatch.setattr(deferred, "_MARK_STOP", "UPDATE contacts SET no_such_column = :at WHERE id = :contact_id")
    with pytest.raises(DBAPIError):
        writer.store(InboundSMS("twilio", "SM-stop", A, None, "STOP"), "MW", stop=True)
    assert inbound(twilio_app) == []  # the mark failed: the STOP was not stored without it
    assert writer.store(InboundSMS("twilio", "SM-join", B, None, "JOIN"), "MW") is not None  # and the writer goes on
    assert [body for body, _, _ in inbound(twilio_app)] == ["JOIN"]


@pytest.mark.postgres_only
def test_a_stop_batch_whose_connection_is_lost_at_commit_is_written_again_once(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    from sqlalchemy import text

    gw = svc(twilio_app)
    gw.inbound.pressure.forced = True
    killed: list[int] = []

    def kill_before_commit(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "stop_pending_at" in statement and not killed:  # as a database restart would, after the mark
            killed.append(conn.connection.dbapi_connection.info.backend_pid)
            # in autocommit: each look at pg_stat_activity is a new snapshot of it
            with gw.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as other:
                other.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": killed[0]})
                gone = text("SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = :pid)")
                assert wait_for(lambda: bool(other.scalar(gone, {"pid": killed[0]})), 30)

    event.listen(gw.engine, "after_cursor_execute", kill_before_commit)
    assert post(twilio_app, A, "STOP") == []  # answered: not a 500
    assert killed and not gw.inbound.spool.has_pending()  # written again on a new connection
    assert [body for body, _, _ in inbound(twilio_app)] == ["STOP"] and stop_pending(twilio_app) == {A: True}


@pytest.mark.postgres_only
def test_the_writer_takes_a_new_connection_when_the_database_dropped_its_own(
        twilio_app: Flask, fake_twilio: FakeTwilio) -> None:
    from sqlalchemy import text

    gw = svc(twilio_app)
    gw.inbound.pressure.forced = True
    assert post(twilio_app, A, "JOIN") == []
    writer = gw.inbound.writer
    assert writer is not None and writer.connections()
    backends = [c.connection.dbapi_connection.info.backend_pid for c in writer.connections()]  # type: ignore[union-attr]
    with gw.engine.connect() as conn:  # as a database restart would: the writers' connections are closed
        assert all(conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}) for pid in backends)
    assert post(twilio_app, B, "JOIN") == []
    assert not gw.inbound.spool.has_pending()  # stored on a new connection, not kept for later
    assert [body for body, _, _ in inbound(twilio_app)] == ["JOIN", "JOIN"]


def test_texts_handled_inline_at_once_are_a_few_at_a_time_and_a_wave_of_stops_is_stored(
        twilio_app: Flask, fake_twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway import inbound as inbound_module
    from gateway.inbound import receive as path

    gw = svc(twilio_app)
    gw.inbound.pressure.forced = True
    senders = [f"+2659913{i:05d}" for i in range(12)]
    for sender in senders:  # each with a text stored for later, which a text handled inline handles first
        assert post(twilio_app, sender, "JOIN") == []
    at_once, most, lock = [0], [0], threading.Lock()
    real = path.receive

    def counted(*args: Any, **kwargs: Any) -> Any:
        with lock:
            at_once[0] += 1
            most[0] = max(most[0], at_once[0])
        try:
            deadline = time.monotonic() + 5  # wait for the others to come in, as many as may
            while at_once[0] < inbound_module.INLINE_AT_ONCE and time.monotonic() < deadline:
                time.sleep(0.005)
            return real(*args, **kwargs)
        finally:
            with lock:
                at_once[0] -= 1

    monkeypatch.setattr(path, "receive", counted)

    def wave(body: str) -> None:
        threads = [threading.Thread(target=post, args=(twilio_app, s, body)) for s in senders]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)

    wave("STOP")  # under load every STOP is stored, none handled inline; each contact stop-pending at once
    assert most[0] == 0 and set(stop_pending(twilio_app).values()) == {True}
    # HELP is handled inline even under load, each after its sender's stored texts. Each inline text
    # may hold two pooled connections (an anonymous report's lock wash): never more than
    # INLINE_AT_ONCE at once, so a wave of them cannot empty the pool and stall every webhook.
    wave("HELP")
    assert most[0] == inbound_module.INLINE_AT_ONCE
    assert set(statuses(twilio_app).values()) == {"stopped"} and set(stop_pending(twilio_app).values()) == {False}
