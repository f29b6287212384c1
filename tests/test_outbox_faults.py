"""The outbox through the real twilio SDK against the fake Twilio API: every fault ends in one message per recipient."""
from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from rq import Retry
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from gateway.models import Broadcast, Contact
from gateway.outbound import jobs, outbox, queues
from gateway.people.contacts import number_is
from tests.conftest import PUBLIC_BASE, make_stack_app
from tests.fakes import FakeTwilio
from tests.helpers import launch_to_zomba, rows, send, svc, work

SENDER = "+15005550006"  # TWILIO_FROM_NUMBER of make_stack_app: the sender the pacer books for
TEXT = "Rally at the district office on Saturday at 10."
STATUS_URL = PUBLIC_BASE + "/sms/twilio/status"


def number(i: int) -> str:
    return f"+26599100{i:04d}"


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def build(db_url: str, redis_url: str | None, tmp_path, fake_twilio: FakeTwilio) -> Iterator[Callable[..., Any]]:
    """Build the twilio app (sending to the fake) with extra settings, on both stacks.

    One send at a time unless a test asks for more, so a fault lands on a known row; the
    tests under "concurrent sends" check the same promises with sends in flight together.
    """
    apps: list[Any] = []

    def make(**overrides: Any) -> Any:
        overrides.setdefault("SEND_CONCURRENCY", 1)
        app = make_stack_app(db_url, redis_url, tmp_path, SMS_PROVIDER="twilio",
                             TWILIO_ACCOUNT_SID=fake_twilio.account_sid, TWILIO_AUTH_TOKEN=fake_twilio.auth_token,
                             TWILIO_API_BASE_URL=fake_twilio.base_url, **overrides)
        apps.append(app)
        return app

    yield make
    for app in apps:
        svc(app).engine.dispose()


@pytest.fixture
def twilio_app(build: Callable[..., Any]) -> Any:
    """The twilio app of conftest, sending one message at a time."""
    return build()


def launch(app: Any, n: int, text: str = TEXT) -> list[int]:
    """n active, consenting contacts in Zomba and a broadcast launched to them (not enqueued); its outbox ids."""
    return launch_to_zomba(app, [number(i) for i in range(n)], text, SENDER)


def contact_status(app: Any, i: int) -> str:
    with svc(app).sessions() as s:
        return s.scalars(select(Contact.status).where(number_is(s, number(i)))).one()


def at_fake(fake: FakeTwilio) -> Counter[str]:
    """Accepted messages per recipient at the fake."""
    return Counter(m["to"] for m in fake.messages)


def assert_each_sent_once(app: Any, fake: FakeTwilio, recipients: range | list[int]) -> None:
    """Each recipient has exactly one accepted message at the fake, and its row is sent with that sid."""
    assert at_fake(fake) == Counter(number(i) for i in recipients)
    sids = {m["to"]: m["sid"] for m in fake.messages}
    by_number = rows(app)
    assert {number(i): (by_number[number(i)].status, by_number[number(i)].provider_id) for i in recipients} == {
        number(i): ("sent", sids[number(i)]) for i in recipients}


def fault_on_send(monkeypatch: pytest.MonkeyPatch, app: Any, k: int, inject: Callable[[], None]) -> None:
    """Call `inject` just before the k-th send (from 1) goes to the fake."""
    provider = svc(app).provider
    real, calls = provider.send, [0]

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == k:
            inject()
        return real(*args, **kwargs)

    monkeypatch.setattr(provider, "send", wrapped)


# -- sending and provider faults -----------------------------------------------------------------


def test_batch_sends_each_recipient_once_with_the_providers_ids(twilio_app, fake_twilio) -> None:
    """20 recipients: rows sent, provider ids equal to the fake's sids, callback URL passed."""
    ids = launch(twilio_app, 20)
    result = send(twilio_app, ids)
    assert result["sent"] == 20 and result["unsettled"] == result["failed"] == 0
    assert_each_sent_once(twilio_app, fake_twilio, range(20))
    assert {m["status_callback"] for m in fake_twilio.messages} == {STATUS_URL}
    assert {m["body"] for m in fake_twilio.messages} == {TEXT}
    with svc(twilio_app).sessions() as s:
        assert s.scalars(select(Broadcast.status)).one() == "done"


def test_429_puts_unsent_rows_back_and_a_rerun_sends_them_once(twilio_app, fake_twilio, monkeypatch) -> None:
    """A 429 on the 3rd send: RetryLater, two rows stay sent, the rest queued; a rerun ends all sent."""
    ids = launch(twilio_app, 20)
    fault_on_send(monkeypatch, twilio_app, 3, lambda: fake_twilio.fail_next(1, status=429))
    with pytest.raises(outbox.RetryLater):
        send(twilio_app, ids)
    after = rows(twilio_app)
    sids = {m["to"]: m["sid"] for m in fake_twilio.messages}
    assert sids.keys() == {number(0), number(1)}
    assert {n: (m.status, m.provider_id) for n, m in after.items() if n in sids} == {
        n: ("sent", sid) for n, sid in sids.items()}
    assert {(m.status, m.claimed_at) for n, m in after.items() if n not in sids} == {("queued", None)}

    send(twilio_app, ids)
    assert_each_sent_once(twilio_app, fake_twilio, range(20))


def test_429_after_a_flush_keeps_the_flushed_rows_sent(twilio_app, fake_twilio, monkeypatch) -> None:
    """A 429 after WRITE_EVERY rows were written: the rows sent before it stay sent, none is sent twice."""
    n, k = outbox.WRITE_EVERY + 5, outbox.WRITE_EVERY + 3
    ids = launch(twilio_app, n)
    fault_on_send(monkeypatch, twilio_app, k, lambda: fake_twilio.fail_next(1, status=429))
    with pytest.raises(outbox.RetryLater):
        send(twilio_app, ids)
    after = rows(twilio_app)
    assert sorted(m.status for m in after.values()) == ["queued"] * (n - k + 1) + ["sent"] * (k - 1)

    send(twilio_app, ids)
    assert_each_sent_once(twilio_app, fake_twilio, range(n))


def test_500_not_accepted_is_left_sending_then_reconciled_and_sent_once(build, fake_twilio, monkeypatch) -> None:
    """A 500 the fake did not accept: settle finds nothing, the row waits `sending`; reconcile requeues, resent once."""
    app = build(SENDING_STALE_SECONDS=0)
    ids = launch(app, 3)
    fault_on_send(monkeypatch, app, 2, lambda: fake_twilio.fail_next(1, status=500))
    result = send(app, ids)
    assert (result["sent"], result["unsettled"]) == (2, 1)
    row = rows(app)[number(1)]
    assert (row.status, row.provider_id, row.error_code) == ("sending", None, "20500")
    assert at_fake(fake_twilio) == Counter([number(0), number(2)])
    assert send(app, ids)["sent"] == 0  # a duplicate job does not resend the row left sending
    assert at_fake(fake_twilio) == Counter([number(0), number(2)])

    with app.app_context():
        done = jobs.reconcile()
        assert (done["settled_sent"], done["requeued"], done["due"], done["jobs"]) == (0, 1, 1, 1)
        work(app)
    assert_each_sent_once(app, fake_twilio, range(3))
    assert rows(app)[number(1)].attempts == 2


def test_the_reconciler_asks_the_provider_holding_no_lock_and_leaves_a_row_claimed_again(
        build, fake_twilio, monkeypatch) -> None:
    """While the provider is asked about rows left `sending`, a worker can still write them (no row
    lock, no open transaction: its claim does not wait or time out), and a row claimed again
    meanwhile is left to that claim instead of being queued a second time."""
    from datetime import timedelta

    from sqlalchemy import update

    from gateway.channels.twilio import TwilioProvider
    from gateway.models import Message, utcnow

    app = build(SENDING_STALE_SECONDS=60)
    ids = launch(app, 2)
    gw = svc(app)
    with gw.sessions() as s, s.begin():  # both claimed by a worker that died five minutes ago
        s.execute(update(Message).where(Message.id.in_(ids))
                  .values(status="sending", claimed_at=utcnow() - timedelta(minutes=5)))
    asked = TwilioProvider.find_sent
    waited: list[float] = []

    def find_sent(self: TwilioProvider, to: str, since: Any) -> Any:
        if len(waited) == 1:  # asking about the second row: the first row was looked at already
            started = time.monotonic()
            with gw.sessions() as s, s.begin():  # a worker claims the first row again meanwhile
                s.execute(update(Message).where(Message.id == ids[0]).values(claimed_at=utcnow()))
            waited.append(time.monotonic() - started)
        else:
            waited.append(0.0)
        return asked(self, to, since)

    monkeypatch.setattr(TwilioProvider, "find_sent", find_sent)
    with app.app_context():
        done = jobs.reconcile()
    assert len(waited) == 2 and waited[1] < 1.0, waited  # the worker's write did not wait for a lock
    assert (done["settled_sent"], done["requeued"]) == (0, 1)
    after = {m.id: m for m in rows(app).values()}
    assert after[ids[0]].status == "sending"  # its new claim stands
    assert (after[ids[1]].status, after[ids[1]].claimed_at) == ("queued", None)


def test_hang_past_the_timeout_is_settled_as_sent_without_a_second_post(build, fake_twilio) -> None:
    """The fake records the message then hangs past TWILIO_TIMEOUT: settled as sent, one POST only."""
    app = build(TWILIO_TIMEOUT=0.5)
    ids = launch(app, 2)
    fake_twilio.hang_next(1, seconds=3.0)
    started = time.monotonic()
    result = send(app, ids)
    assert time.monotonic() - started < 2.5  # the client gave up at its timeout, not the fake's answer
    assert (result["sent"], result["unsettled"]) == (2, 0)
    assert fake_twilio.create_attempts == 2
    assert_each_sent_once(app, fake_twilio, range(2))


@pytest.mark.parametrize("mode", ["drop", "500"])
def test_accepted_then_failed_is_settled_as_sent_without_a_duplicate(twilio_app, fake_twilio, mode) -> None:
    """The fake accepts, then drops the connection or answers 500: settled as sent, nothing sent twice."""
    ids = launch(twilio_app, 3)
    fake_twilio.accept_then_fail_next(1, mode=mode)
    result = send(twilio_app, ids)
    assert (result["sent"], result["unsettled"]) == (3, 0)
    assert fake_twilio.create_attempts == 3
    assert_each_sent_once(twilio_app, fake_twilio, range(3))


def test_settle_failure_is_recovered_by_the_reconciler(build, fake_twilio, monkeypatch) -> None:
    """A 500 whose settle look-up also fails is settled by the reconciler; each recipient gets one."""
    app = build(SENDING_STALE_SECONDS=0)
    ids = launch(app, 3)
    fault_on_send(monkeypatch, app, 2, lambda: fake_twilio.fail_next(2, status=500))
    send(app, ids)
    with app.app_context():
        jobs.reconcile()
        work(app)
    assert_each_sent_once(app, fake_twilio, range(3))


def test_settle_failure_keeps_what_was_already_sent(twilio_app, fake_twilio, monkeypatch) -> None:
    """A settle look-up that fails leaves that row `sending` for the reconciler; the batch goes on."""
    ids = launch(twilio_app, 3)
    fault_on_send(monkeypatch, twilio_app, 2, lambda: fake_twilio.fail_next(2, status=500))
    send(twilio_app, ids)
    by_number = rows(twilio_app)
    first, second, third = (by_number[number(i)] for i in range(3))
    assert (first.status, first.provider_id) == ("sent", fake_twilio.messages[0]["sid"])
    assert (second.status, second.provider_id) == ("sending", None)
    assert third.status == "sent" and third.provider_id == fake_twilio.messages[1]["sid"]


def test_refusals_stop_or_invalidate_the_contact_or_fail_the_row(twilio_app, fake_twilio) -> None:
    """21610 stops the contact, 21211 makes it invalid, 30007 only fails the row; nothing is retried."""
    ids = launch(twilio_app, 4)
    fake_twilio.error_for_number(number(0), status=400, code=21610)
    fake_twilio.error_for_number(number(1), status=400, code=21211)
    fake_twilio.error_for_number(number(2), status=400, code=30007)
    result = send(twilio_app, ids)
    assert (result["sent"], result["failed"]) == (1, 3)
    after = rows(twilio_app)
    assert [(after[number(i)].status, after[number(i)].error_code) for i in range(3)] == [
        ("failed", "21610"), ("failed", "21211"), ("failed", "30007")]
    assert [contact_status(twilio_app, i) for i in range(4)] == ["stopped", "invalid", "active", "active"]
    with svc(twilio_app).sessions() as s:
        assert s.scalars(select(Contact.stopped_at).where(number_is(s, number(0)))).one() is not None

    with twilio_app.app_context():  # a later reconcile finds nothing to redo
        assert jobs.reconcile(force=True)["due"] == 0
    assert fake_twilio.create_attempts == 4
    assert_each_sent_once(twilio_app, fake_twilio, [3])


@pytest.mark.parametrize("code", [21211, 21614])
def test_unusable_number_codes_mark_the_contact_invalid(twilio_app, fake_twilio, code) -> None:
    """Twilio's invalid-number codes fail the row with the code and mark the contact invalid."""
    ids = launch(twilio_app, 2)
    fake_twilio.error_for_number(number(0), status=400, code=code)
    send(twilio_app, ids)
    row = rows(twilio_app)[number(0)]
    assert (row.status, row.error_code, contact_status(twilio_app, 0)) == ("failed", str(code), "invalid")
    assert_each_sent_once(twilio_app, fake_twilio, [1])


# -- status callbacks ------------------------------------------------------------------------------


def post_status(app: Any, fake: FakeTwilio, sid: str, status: str, error_code: str | None = None,
                signature: str | None = None) -> int:
    """POST a status callback for `sid` to the app's webhook, signed as Twilio would; the HTTP status."""
    params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": fake.account_sid, "From": SENDER,
              "MessageStatus": status, "SmsStatus": status}
    if error_code:
        params["ErrorCode"] = error_code
    sig = signature or RequestValidator(app.config["TWILIO_AUTH_TOKEN"]).compute_signature(STATUS_URL, params)
    return app.test_client().post("/sms/twilio/status", data=params, headers={"X-Twilio-Signature": sig}).status_code


def test_status_callbacks_only_move_forward(twilio_app, fake_twilio) -> None:
    """delivered, sent, queued -> delivered; failed after delivered is ignored; undelivered keeps its code."""
    send(twilio_app, launch(twilio_app, 2))
    sids = {m["to"]: m["sid"] for m in fake_twilio.messages}
    a, b = sids[number(0)], sids[number(1)]
    for status in ("delivered", "sent", "queued", "failed"):
        assert post_status(twilio_app, fake_twilio, a, status) == 204
    for status, code in (("undelivered", "30003"), ("sent", None), ("delivered", None)):
        assert post_status(twilio_app, fake_twilio, b, status, code) == 204
    assert post_status(twilio_app, fake_twilio, b, "failed", signature="bm90IGEgc2lnbmF0dXJl") == 403
    after = rows(twilio_app)
    assert (after[number(0)].status, after[number(0)].error_code) == ("delivered", None)
    assert (after[number(1)].status, after[number(1)].error_code) == ("undelivered", "30003")
    assert at_fake(fake_twilio) == Counter([number(0), number(1)])


def test_status_callback_arriving_during_the_batch_is_not_lost(twilio_app, fake_twilio, monkeypatch) -> None:
    """Twilio calls back `delivered` right after accepting the first message, while the batch still runs."""
    ids = launch(twilio_app, 3)
    provider = svc(twilio_app).provider
    real = provider.send

    def send_and_call_back(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if len(fake_twilio.messages) == 1:
            assert post_status(twilio_app, fake_twilio, result.provider_id, "delivered") == 204
        return result

    monkeypatch.setattr(provider, "send", send_and_call_back)
    send(twilio_app, ids)
    assert at_fake(fake_twilio) == Counter(number(i) for i in range(3))
    assert rows(twilio_app)[number(0)].status == "delivered"


# -- through RQ --------------------------------------------------------------------------------------


def test_rq_jobs_send_every_recipient_once(twilio_app, fake_twilio) -> None:
    """enqueue_ids then a burst worker: every row sent once, no job left."""
    ids = launch(twilio_app, 25)
    redis = svc(twilio_app).redis
    with twilio_app.app_context():
        assert queues.enqueue_ids(redis, ids, batch_size=10) == 3
        queues.work_burst(redis)
        assert queues.pending_jobs(redis) == 0
        assert queues.get_queue(redis).failed_job_registry.count == 0
    assert_each_sent_once(twilio_app, fake_twilio, range(25))


def test_rq_retries_a_batch_that_met_a_429(twilio_app, fake_twilio, monkeypatch) -> None:
    """A 429 fails the job into RQ's retry schedule; after the interval the retry sends everything once."""
    monkeypatch.setattr(queues, "RETRY", Retry(max=3, interval=1))
    ids = launch(twilio_app, 5)
    redis = svc(twilio_app).redis
    fake_twilio.fail_next(1, status=429)
    with twilio_app.app_context():
        queues.enqueue_ids(redis, ids)
        queues.work_burst(redis)
        q = queues.get_queue(redis)
        [job_id] = q.scheduled_job_registry.get_job_ids()
        job = q.fetch_job(job_id)
        assert (job.get_status(), job.retries_left) == ("scheduled", 2)
        assert {m.status for m in rows(twilio_app).values()} == {"queued"}
        assert fake_twilio.messages == []

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and {m.status for m in rows(twilio_app).values()} != {"sent"}:
            time.sleep(0.25)
            queues.work_burst(redis)
        assert q.fetch_job(job_id).get_status() == "finished"
    assert_each_sent_once(twilio_app, fake_twilio, range(5))


# -- concurrent sends ------------------------------------------------------------------------------


def track_in_flight(monkeypatch: pytest.MonkeyPatch, app: Any, hold: float = 0.05) -> list[int]:
    """Count sends in flight at once (each held `hold` s, like a slow provider); [now, peak]."""
    import threading

    provider = svc(app).provider
    real, lock, counts = provider.send, threading.Lock(), [0, 0]

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with lock:
            counts[0] += 1
            counts[1] = max(counts[1], counts[0])
        try:
            time.sleep(hold)
            return real(*args, **kwargs)
        finally:
            with lock:
                counts[0] -= 1

    monkeypatch.setattr(provider, "send", wrapped)
    return counts


def test_concurrent_sends_overlap_up_to_the_setting_and_reach_each_recipient_once(build, fake_twilio,
                                                                                  monkeypatch) -> None:
    app = build(SEND_CONCURRENCY=4)
    ids = launch(app, 30)
    counts = track_in_flight(monkeypatch, app)
    result = send(app, ids)
    assert result["sent"] == 30
    assert 2 <= counts[1] <= 4  # overlapped, and never more than SEND_CONCURRENCY
    assert_each_sent_once(app, fake_twilio, range(30))


def test_one_send_at_a_time_when_concurrency_is_one(build, fake_twilio, monkeypatch) -> None:
    app = build(SEND_CONCURRENCY=1)
    counts = track_in_flight(monkeypatch, app, hold=0.01)
    send(app, launch(app, 10))
    assert counts[1] == 1
    assert_each_sent_once(app, fake_twilio, range(10))


def test_a_429_amid_concurrent_sends_requeues_only_unsent_rows(build, fake_twilio, monkeypatch) -> None:
    """Sends in flight when the 429 comes finish and are kept; the rest go back; a rerun sends each once."""
    app = build(SEND_CONCURRENCY=6)
    ids = launch(app, 40)
    fault_on_send(monkeypatch, app, 5, lambda: fake_twilio.fail_next(1, status=429))
    with pytest.raises(outbox.RetryLater):
        send(app, ids)
    after = rows(app)
    sids = {m["to"]: m["sid"] for m in fake_twilio.messages}
    assert 4 <= len(sids) < 40
    assert {n: (m.status, m.provider_id) for n, m in after.items() if n in sids} == {
        n: ("sent", sid) for n, sid in sids.items()}
    assert {(m.status, m.claimed_at) for n, m in after.items() if n not in sids} == {("queued", None)}
    send(app, ids)
    assert_each_sent_once(app, fake_twilio, range(40))


def test_ambiguous_failures_amid_concurrent_sends_are_settled_without_duplicates(build, fake_twilio) -> None:
    """Accepted-then-dropped answers while other sends are in flight: settled as sent, one POST each."""
    app = build(SEND_CONCURRENCY=6)
    ids = launch(app, 24)
    fake_twilio.accept_then_fail_next(3, mode="drop")
    result = send(app, ids)
    assert (result["sent"], result["unsettled"]) == (24, 0)
    assert fake_twilio.create_attempts == 24
    assert_each_sent_once(app, fake_twilio, range(24))


def test_an_unexpected_error_in_one_send_keeps_what_was_sent(build, fake_twilio, monkeypatch) -> None:
    """A bug or an outage in the middle of a batch: the rows already sent are written sent, the rest stay
    `sending` for the reconciler (which asks the provider before anything is sent again)."""
    app = build(SEND_CONCURRENCY=1, SENDING_STALE_SECONDS=0)
    ids = launch(app, 6)

    def boom() -> None:
        raise RuntimeError("redis went away")

    fault_on_send(monkeypatch, app, 3, boom)
    with pytest.raises(RuntimeError):
        send(app, ids)
    after = rows(app)
    assert [after[number(i)].status for i in range(6)] == ["sent", "sent"] + ["sending"] * 4
    monkeypatch.undo()
    with app.app_context():
        jobs.reconcile()
        work(app)
    assert_each_sent_once(app, fake_twilio, range(6))


# -- a dead worker's job: what the reconciler enqueues ------------------------------------------------


def started_by_a_dead_worker(redis: Any, ids: list[int], beats_ago: float = 2.0) -> str:
    """A send job taken off the queue by a worker that has since died: its started-registry entry
    is past its heartbeat ttl, as RQ leaves it after a SIGKILL. Enqueued without a retry, so RQ's
    cleanup fails it (a retried one is tested through real workers in tests/test_worker_kill.py)."""
    from rq.executions import Execution

    q = queues.get_queue(redis)
    job = q.enqueue(queues.SEND_BATCH, ids, job_timeout=queues.JOB_TIMEOUT)
    q.remove(job.id)
    with redis.pipeline() as pipe:
        Execution.create(job, 1, pipeline=pipe, worker_name="gone")
        pipe.execute()
    time.sleep(beats_ago)  # the one-second ttl ran out: no heartbeat renewed it
    return job.id


def test_the_reconciler_enqueues_the_rows_of_a_dead_workers_job_while_other_jobs_wait(twilio_app, fake_twilio) -> None:
    """One job died with its worker, another still waits: only the dead one's rows are enqueued again."""
    ids = launch(twilio_app, 20)
    redis = svc(twilio_app).redis
    dead_ids, waiting_ids = ids[:10], ids[10:]
    dead = started_by_a_dead_worker(redis, dead_ids)
    assert queues.enqueue_ids(redis, waiting_ids) == 1
    assert queues.pending_jobs(redis) >= 1  # the old rule (enqueue only when nothing is pending) would wait
    with twilio_app.app_context():
        result = jobs.reconcile()
        assert (result["due"], result["stranded"], result["jobs"]) == (20, 10, 1)
        assert queues.get_queue(redis).failed_job_registry.get_job_ids() == [dead]  # RQ's own cleanup
        assert sorted(queues.live_ids(redis)) == sorted(ids)  # the new job carries the dead one's rows
        assert jobs.reconcile()["jobs"] == 0  # nothing enqueued twice
    work(twilio_app)
    assert_each_sent_once(twilio_app, fake_twilio, range(20))


def test_a_running_job_whose_worker_still_beats_is_left_alone(twilio_app, fake_twilio) -> None:
    """A job in the started registry within its heartbeat ttl carries its rows: they are not enqueued again."""
    from rq.executions import Execution

    ids = launch(twilio_app, 5)
    redis = svc(twilio_app).redis
    q = queues.get_queue(redis)
    job = q.enqueue(queues.SEND_BATCH, ids, job_timeout=queues.JOB_TIMEOUT)
    q.remove(job.id)
    with redis.pipeline() as pipe:
        Execution.create(job, 60, pipeline=pipe, worker_name="alive")
        pipe.execute()
    with twilio_app.app_context():
        result = jobs.reconcile()
    assert (result["due"], result["stranded"], result["jobs"]) == (5, 0, 0)
    assert fake_twilio.messages == []


def test_a_heartbeat_worker_keeps_its_job_alive_past_the_ttl(twilio_app, fake_twilio) -> None:
    """HeartbeatWorker renews a running job's entry (RQ's maintain_heartbeats): a slow batch is not abandoned."""
    ids = launch(twilio_app, 3)
    redis = svc(twilio_app).redis
    fake_twilio.latency = 1.5  # the batch outlives the ttl of 3 x 0.5 s (rounded up to 2 s)
    change = {"job_monitoring_interval": 0.5}
    queues.enqueue_ids(redis, ids)
    seen: list[tuple[set[int], int, int]] = []
    q = queues.get_queue(redis)
    worker = queues.HeartbeatWorker([q], connection=redis, serializer=queues.JSONSerializer, **change)

    def watch() -> None:
        time.sleep(2.5)  # past the first entry's 2 s ttl, mid-job
        seen.append((queues.live_ids(redis), q.started_job_registry.count, q.scheduled_job_registry.count))

    watcher = threading.Thread(target=watch)
    watcher.start()
    with twilio_app.app_context():
        worker.work(burst=True)
    watcher.join()
    # Still running, not abandoned (no retry scheduled), though the first entry's ttl ran out.
    assert seen == [(set(ids), 1, 0)]
    assert queues.get_queue(redis).failed_job_registry.count == 0
    assert_each_sent_once(twilio_app, fake_twilio, range(3))
