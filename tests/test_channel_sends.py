"""Sending through several channels: a broadcast split between Twilio and a phone, a phone that
goes away mid-broadcast, Africa's Talking refusals, several phones sharing one country."""
from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any, Callable, Iterator

import pytest
from sqlalchemy import select

from gateway.outbound import outbox, queues
from gateway.people.contacts import number_is
from gateway.models import Contact
from gateway.outbound.pacing import Pacer
from tests.conftest import make_stack_app
from tests.helpers import launch_to_zomba, rows, send
from tests.fakes import FakeTwilio
from tests.fakes.africastalking_api import FakeAfricasTalking
from tests.fakes.android_api import FakeAndroidPhone
from tests.wires import channel_settings

SENDER = "+15005550006"
TEXT = "Assembly at the district office on Saturday at 10."
TWILIO_NUMBERS = [f"+26599100{i:04d}" for i in range(6)]  # Airtel: through Twilio
PHONE_NUMBERS = [f"+26588100{i:04d}" for i in range(6)]  # TNM: through the phone with a TNM SIM


@pytest.fixture
def fakes(fake_twilio: FakeTwilio) -> Iterator[tuple[FakeTwilio, FakeAfricasTalking, FakeAndroidPhone]]:
    """Twilio, Africa's Talking and one phone, all fakes on loopback."""
    with FakeAfricasTalking() as at, FakeAndroidPhone() as phone:
        yield fake_twilio, at, phone


@pytest.fixture
def build(db_url: str, redis_url: str | None, tmp_path, fakes) -> Iterator[Callable[..., Any]]:
    """An app sending through Twilio by default, with a routing file and extra settings."""
    twilio, at, phone = fakes
    apps: list[Any] = []

    def make(routes: str, **overrides: Any) -> Any:
        path = tmp_path / "sms_routes.yaml"
        path.write_text(routes)
        app = make_stack_app(db_url, redis_url, tmp_path, SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID=twilio.account_sid,
                             TWILIO_AUTH_TOKEN=twilio.auth_token, TWILIO_API_BASE_URL=twilio.base_url,
                             SMS_ROUTES_FILE=str(path), **{**channel_settings(at, phone), **overrides})
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["gateway"].engine.dispose()


SPLIT = """
channels:
  android: {rate: 20}
routes:
  - {prefix: "+26588", via: android}
default: twilio
"""


def waits(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float]]:
    """Record every slot the pacer books: (sender, when the slot comes, on the monotonic clock)."""
    booked: list[tuple[str, float]] = []
    real = Pacer.reserve

    def reserve(self: Pacer, sender: str, segments: int) -> float:
        delay = real(self, sender, segments)
        booked.append((sender, time.monotonic() + delay))
        return delay

    monkeypatch.setattr(Pacer, "reserve", reserve)
    return booked


def test_one_broadcast_split_between_twilio_and_a_phone_each_at_its_own_pace(build, fakes, monkeypatch) -> None:
    twilio, _, phone = fakes
    app = build(SPLIT)
    booked = waits(monkeypatch)
    ids = launch_to_zomba(app, TWILIO_NUMBERS + PHONE_NUMBERS, TEXT, SENDER)
    assert send(app, ids)["sent"] == 12
    assert Counter(m["to"] for m in twilio.messages) == Counter(TWILIO_NUMBERS)
    assert Counter(m["to"] for m in phone.messages) == Counter(PHONE_NUMBERS)
    by_number = rows(app)
    assert {n: (by_number[n].channel, by_number[n].status) for n in TWILIO_NUMBERS} == dict.fromkeys(
        TWILIO_NUMBERS, ("twilio", "sent"))
    assert {n: (by_number[n].channel, by_number[n].status, by_number[n].provider_id) for n in PHONE_NUMBERS} == {
        m["to"]: ("android", "sent", m["id"]) for m in phone.messages}
    # Each channel books its own slots: the phone at 20/s (0.05 s apart), Twilio at SENDER_RATE (1000/s).
    # Slots are booked from several threads at once, each stamped a little after Redis booked it:
    # six slots at 20/s span five intervals (0.25 s); unpaced they would all fall together.
    phone_slots = sorted(t for s, t in booked if s == "android")
    twilio_slots = [t for s, t in booked if s == SENDER]
    assert len(phone_slots) == 6 and len(twilio_slots) == 6
    assert phone_slots[-1] - phone_slots[0] > 0.18
    pacer = app.extensions["gateway"].outbox().pacer
    assert (pacer.rate("android"), pacer.rate(SENDER)) == (20.0, 1000.0)


def test_a_phone_that_goes_away_mid_broadcast_loses_nothing_and_doubles_nothing(build, fakes, monkeypatch) -> None:
    twilio, _, phone = fakes
    app = build(SPLIT, SEND_CONCURRENCY=1)  # one send at a time: the phone leaves at a known row
    interleaved = [n for pair in zip(TWILIO_NUMBERS, PHONE_NUMBERS) for n in pair]  # Twilio rows after the outage too
    ids = launch_to_zomba(app, interleaved, TEXT, SENDER)
    provider = app.extensions["gateway"].channels.provider("android")
    real, calls = provider.send, [0]

    def send_then_vanish(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 3:
            phone.go_offline()  # the phone leaves the network before its third message
        return real(*args, **kwargs)

    monkeypatch.setattr(provider, "send", send_then_vanish)
    with pytest.raises(outbox.RetryLater, match="android"):
        send(app, ids)
    after = rows(app)
    assert Counter(m["to"] for m in twilio.messages) == Counter(TWILIO_NUMBERS)  # Twilio went on regardless
    assert [after[n].status for n in PHONE_NUMBERS] == ["sent", "sent"] + ["queued"] * 4
    assert calls[0] == 3  # the phone's other rows were not even tried while it was away
    phone.come_back()
    assert send(app, ids)["sent"] == 4  # RQ's retry of the same job
    assert Counter(m["to"] for m in phone.messages) == Counter(PHONE_NUMBERS)
    assert Counter(m["to"] for m in twilio.messages) == Counter(TWILIO_NUMBERS)
    assert {m.status for m in rows(app).values()} == {"sent"}


def test_a_send_whose_answer_was_lost_is_resent_with_the_same_id_and_not_doubled(build, fakes) -> None:
    _, _, phone = fakes
    app = build(SPLIT)
    ids = launch_to_zomba(app, PHONE_NUMBERS[:3], TEXT, SENDER)
    phone.accept_then_drop_next(1)
    with pytest.raises(outbox.RetryLater):
        send(app, ids)
    assert len(phone.messages) == 1  # the phone has it, the gateway does not know
    assert send(app, ids)["sent"] == 3
    assert Counter(m["to"] for m in phone.messages) == Counter(PHONE_NUMBERS[:3])
    assert phone.posts == 4  # one resend, answered 409: already there
    assert {m.status for m in rows(app).values()} == {"sent"}


def test_several_phones_share_the_load_each_number_once(build) -> None:
    with FakeAndroidPhone(login="a") as a, FakeAndroidPhone(login="b") as b:
        app = build(f"""
channels:
  phone-a: {{type: android, url: "{a.url}", login: a, password_env: PHONE_A_PASSWORD, signing_key_env: PHONE_A_KEY}}
  phone-b: {{type: android, url: "{b.url}", login: b, password_env: PHONE_B_PASSWORD, signing_key_env: PHONE_B_KEY}}
routes:
  - {{country: MW, via: [phone-a, phone-b]}}
""", PHONE_A_PASSWORD=a.password, PHONE_B_PASSWORD=b.password,  # each phone its own webhook key (M7)
            PHONE_A_KEY=a.signing_key, PHONE_B_KEY=b.signing_key)
        numbers = [f"+26599200{i:04d}" for i in range(20)]
        ids = launch_to_zomba(app, numbers, TEXT, SENDER)
        assert send(app, ids)["sent"] == 20
        got = [m["to"] for m in a.messages] + [m["to"] for m in b.messages]
        assert Counter(got) == Counter(numbers) and a.messages and b.messages
        by_number = rows(app)
        assert {by_number[m["to"]].channel for m in a.messages} == {"phone-a"}
        assert {by_number[m["to"]].channel for m in b.messages} == {"phone-b"}


def test_a_reply_leaves_by_the_channel_the_supporter_wrote_to_whatever_the_routes_say(build, fakes) -> None:
    """Routes send Malawi through Africa's Talking, but a supporter who texted the phone hears from the phone."""
    twilio, at, phone = fakes
    app = build("routes: [{country: MW, via: africastalking}]\n")
    body, headers = phone.received("+265991234567", "HELP")
    assert app.test_client().post("/sms/android", data=body, headers=headers).status_code == 200
    with app.app_context():
        queues.work_burst(app.extensions["gateway"].redis)
    assert [m["to"] for m in phone.messages] == ["+265991234567"] and at.messages == [] and twilio.messages == []
    ids = launch_to_zomba(app, ["+265991234500"], TEXT, SENDER)  # an alert follows the routes
    send(app, ids)
    assert [m["to"] for m in at.messages] == ["+265991234500"]


@pytest.mark.parametrize("code, row_status, contact_status", [
    (406, "failed", "stopped"),   # UserInBlacklist: an opt-out at Africa's Talking
    (403, "failed", "invalid"),   # InvalidPhoneNumber
    (407, "failed", "active"),    # CouldNotRoute: this message failed, the supporter is fine
])
def test_africastalking_refusals(build, fakes, code, row_status, contact_status) -> None:
    _, at, _ = fakes
    app = build("default: africastalking\n")
    ids = launch_to_zomba(app, ["+265991000001", "+265991000002"], TEXT, SENDER)
    at.code_for_number("+265991000001", code)
    result = send(app, ids)
    assert (result["sent"], result["failed"]) == (1, 1)
    row = rows(app)["+265991000001"]
    assert (row.status, row.error_code, row.channel) == (row_status, f"at-{code}", "africastalking")
    with app.extensions["gateway"].sessions() as s:
        assert s.scalars(select(Contact.status).where(number_is(s, "+265991000001"))).one() == contact_status
    assert [m["to"] for m in at.messages] == ["+265991000002"]


def test_africastalking_outage_and_empty_balance_wait_and_are_sent_later(build, fakes) -> None:
    _, at, _ = fakes
    app = build("default: africastalking\n", SEND_CONCURRENCY=1)  # the outage meets the first send
    ids = launch_to_zomba(app, ["+265991000001", "+265991000002"], TEXT, SENDER)
    at.fail_next(1, status=503, text="Service Unavailable")
    with pytest.raises(outbox.RetryLater, match="africastalking"):
        send(app, ids)
    assert {m.status for m in rows(app).values()} == {"queued"} and at.messages == []
    at.code_for_number("+265991000001", 405)  # InsufficientBalance: waits for a top-up
    with pytest.raises(outbox.RetryLater):
        send(app, ids)
    at.code_for_number("+265991000001", 101)
    assert send(app, ids)["sent"] >= 1
    assert Counter(m["to"] for m in at.messages) == Counter(["+265991000001", "+265991000002"])
    assert {m.status for m in rows(app).values()} == {"sent"}


def _redis_bytes(redis: Any) -> bytes:
    """Every key and value in Redis, as one blob: what a copy of Redis (or its RDB file) would show."""
    out = []
    for key in redis.scan_iter(count=1000):
        out.append(key)
        kind = redis.type(key).decode()
        if kind == "string":
            out.append(redis.get(key) or b"")
        elif kind == "hash":
            out.extend(b"%s=%s" % kv for kv in redis.hgetall(key).items())
        elif kind == "list":
            out.extend(redis.lrange(key, 0, -1))
        elif kind == "set":
            out.extend(redis.smembers(key))
        elif kind == "zset":
            out.extend(redis.zrange(key, 0, -1))
        elif kind == "stream":
            out.extend(b"%s=%s" % kv for _, fields in redis.xrange(key) for kv in fields.items())
    return b"\n".join(out)


@pytest.mark.parametrize("refusal", ["balance", "outage"])
def test_a_retryable_africastalking_error_puts_no_number_in_logs_or_redis(build, fakes, caplog, refusal) -> None:
    """M8: an empty balance (405) or an outage makes RQ log the error and keep it in Redis; no number in either."""
    _, at, _ = fakes
    number = "+265991000001"
    app = build("default: africastalking\n", SEND_CONCURRENCY=1)
    ids = launch_to_zomba(app, [number], TEXT, SENDER)
    if refusal == "balance":
        at.code_for_number(number, 405)  # InsufficientBalance: the per-recipient answer carries the number
    else:
        at.fail_next(1, status=500, text=f"Internal error for {number}")  # a body that echoes the request
    redis = app.extensions["gateway"].redis
    caplog.set_level(logging.DEBUG)
    with app.app_context():
        # The job's last try: RQ logs the traceback and keeps exc_info in the FailedJobRegistry.
        job = queues.get_queue(redis, queues.BULK).enqueue("gateway.outbound.jobs.send_batch", ids)
        queues.work_burst(redis)
    job.refresh()
    assert job.is_failed and job.id in queues.get_queue(redis, queues.BULK).failed_job_registry
    exc_text = job.latest_result().exc_string or ""
    assert "RetryLater" in exc_text and "africastalking" in exc_text  # RQ did keep the error ...
    digits = number.lstrip("+")
    for where in (exc_text, caplog.text, _redis_bytes(redis).decode("utf-8", "replace")):
        assert number not in where and digits not in where  # ... without the number
    assert {m.status for m in rows(app).values()} == {"queued"}
