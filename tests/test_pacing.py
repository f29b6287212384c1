"""Per-sender pacing through Redis: booked slots follow the rate, shared by workers, separate per sender."""
from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Iterator

import pytest
import redis as redis_lib

from gateway.outbound.pacing import Pacer, parse_rates


@pytest.fixture
def sender() -> str:
    """A sender of this test alone: other test runs may share the Redis database."""
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture
def other(sender: str) -> str:
    """Another sender (e.g. a messaging service) of this test."""
    return sender + "-other"


@pytest.fixture
def redis(stack_app) -> Any:  # type: ignore[no-untyped-def]
    """The app's Redis: in-process fakeredis alongside SQLite, the real server alongside PostgreSQL."""
    return stack_app.extensions["gateway"].redis


@pytest.fixture
def second_redis(redis: Any, redis_url: str | None) -> Iterator[Any]:
    """Another worker's connection to the same Redis (fakeredis has one client per server)."""
    if redis_url is None:
        yield redis
        return
    connection = redis_lib.Redis.from_url(redis_url)
    yield connection
    connection.close()


class Sleeps:
    """A fake sleep that records the delays it was asked to wait."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def test_slots_are_spaced_at_the_senders_rate(redis, sender) -> None:
    """100 one-segment sends at 20/s: 99 waits, 1/20 s apart, the last about 99/20 s."""
    sleeps = Sleeps()
    pacer = Pacer(redis, default_rate=20, sleep=sleeps)
    waited = [pacer.wait(sender, 1) for _ in range(100)]
    assert waited[0] == 0
    assert sleeps.delays == waited[1:]
    assert sleeps.delays[-1] == pytest.approx(99 / 20, rel=0.10)
    gaps = [b - a for a, b in zip(waited, waited[1:])]
    # Each booking is exactly 1/20 s after the previous; the delay shrinks by the time between calls.
    assert all(0 < gap <= 1 / 20 + 1e-5 for gap in gaps)


def test_a_three_segment_message_books_three_slots(redis, sender) -> None:
    """A 3-segment message holds the sender for 3/20 s, a 1-segment one for 1/20 s."""
    pacer = Pacer(redis, default_rate=20, sleep=Sleeps())
    assert pacer.reserve(sender, 3) == 0
    assert pacer.reserve(sender, 1) == pytest.approx(3 / 20, rel=0.10)
    assert pacer.reserve(sender, 1) == pytest.approx(4 / 20, rel=0.10)


def test_two_workers_share_one_rate(redis, second_redis, sender) -> None:
    """Two Pacers (two workers) booking in turn for one sender get one sequence of slots at 20/s."""
    a = Pacer(redis, default_rate=20, sleep=Sleeps())
    b = Pacer(second_redis, default_rate=20, sleep=Sleeps())
    waited = [(a if i % 2 else b).reserve(sender, 1) for i in range(100)]
    assert waited[-1] == pytest.approx(99 / 20, rel=0.10)
    assert all(0 < later - earlier <= 1 / 20 + 1e-5 for earlier, later in zip(waited, waited[1:]))


def test_separate_senders_do_not_share(redis, sender, other) -> None:
    """A sender booked 2 s ahead does not delay another sender."""
    pacer = Pacer(redis, default_rate=20, sleep=Sleeps())
    for _ in range(40):
        pacer.reserve(sender, 1)
    assert pacer.reserve(other, 1) == 0
    assert pacer.reserve(other, 1) == pytest.approx(1 / 20, rel=0.10)
    assert pacer.reserve(sender, 1) == pytest.approx(40 / 20, rel=0.10)


def test_a_senders_own_rate_overrides_the_default(redis, sender, other) -> None:
    """SENDER_RATES gives one sender 2/s while the default stays 20/s."""
    pacer = Pacer(redis, default_rate=20, rates=parse_rates(f"{sender}=2"), sleep=Sleeps())
    assert (pacer.rate(sender), pacer.rate(other)) == (2.0, 20.0)
    pacer.reserve(sender, 1)
    assert pacer.reserve(sender, 1) == pytest.approx(1 / 2, rel=0.10)
    pacer.reserve(other, 1)
    assert pacer.reserve(other, 1) == pytest.approx(1 / 20, rel=0.10)


def test_two_threads_really_sending_keep_the_shared_rate(redis, second_redis, sender) -> None:
    """Two threads, each with its own Pacer and real sleep, at 50/s for 2 s: about 100 sends in all."""
    rate, seconds = 50, 2.0
    counts = [0, 0]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker(k: int, connection: Any) -> None:
        try:
            pacer = Pacer(connection, default_rate=rate)
            barrier.wait()
            deadline = start + seconds
            while True:
                pacer.wait(sender, 1)
                if time.monotonic() >= deadline:
                    return
                counts[k] += 1  # "sent" at the booked time, inside the window
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)

    start = time.monotonic()
    threads = [threading.Thread(target=worker, args=(k, c)) for k, c in enumerate((redis, second_redis))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert sum(counts) == pytest.approx(rate * seconds, rel=0.10)
    assert min(counts) > 0.3 * sum(counts)  # both workers sent, neither starved
