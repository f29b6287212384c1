"""A worker process killed or stopped mid-broadcast: each recipient has exactly one message, after the
reconciler run by hand, and with nobody at the keyboard once a supervisor restarts the worker."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.outbound import jobs, queues
from gateway.models import Message
from tests.conftest import NUMBERS_KEY, PUBLIC_BASE, SECRET_KEY, make_stack_app
from tests.fakes import FakeTwilio
from tests.fakes.twilio_api import wait_for
from tests.helpers import launch_to_zomba, svc

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.servers  # worker processes need real Redis: no SQLite half
SENDER = "+15005550006"
N = 300
WAIT = 60.0  # seconds: the bound on every wait for a worker


def number(i: int) -> str:
    return f"+26599100{i:04d}"


@pytest.fixture
def kill_app(db_url: str, redis_url: str | None, tmp_path: Path, fake_twilio: FakeTwilio) -> Iterator[Any]:
    """The test's own view of the stack the worker processes use, reconciling at once."""
    assert redis_url is not None  # the `servers` mark keeps this test off the SQLite stack
    app = make_stack_app(db_url, redis_url, tmp_path, SMS_PROVIDER="twilio", SENDING_STALE_SECONDS=0,
                         TWILIO_ACCOUNT_SID=fake_twilio.account_sid, TWILIO_AUTH_TOKEN=fake_twilio.auth_token,
                         TWILIO_API_BASE_URL=fake_twilio.base_url, TWILIO_FROM_NUMBER=SENDER)
    yield app
    svc(app).engine.dispose()


def launch_and_enqueue(app: Any, n: int) -> None:
    """n contacts, a broadcast to them, its outbox rows enqueued as RQ jobs."""
    ids = launch_to_zomba(app, [number(i) for i in range(n)], "Vigil at the council hall tonight at 6.", SENDER)
    assert queues.enqueue_ids(svc(app).redis, ids) == 3


def start_worker(db_url: str, redis_url: str, fake: FakeTwilio, log: Path, *args: str,
                 env_extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`flask --app app worker` in its own process group, configured for the fake Twilio."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TWILIO_", "SMS_", "SENDER_", "QUIET_", "SENDING_", "FLASK_"))}
    env.update(DATABASE_URL=db_url, REDIS_URL=redis_url, SMS_PROVIDER="twilio", SECRET_KEY=SECRET_KEY,
               TWILIO_ACCOUNT_SID=fake.account_sid, TWILIO_AUTH_TOKEN=fake.auth_token,
               TWILIO_API_BASE_URL=fake.base_url, TWILIO_FROM_NUMBER=SENDER, PUBLIC_BASE_URL=PUBLIC_BASE,
               QUIET_HOURS="off", SENDER_RATE="1000", NUMBERS_KEY=NUMBERS_KEY,
               SPOOL_DIR=str(log.parent / "spool"),  # in the test's own folder, not the checkout's instance/
               PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    env.update(env_extra or {})
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "worker", *args], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker's process group (the worker and its forked RQ scheduler), if still there."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def statuses(app: Any) -> dict[str, int]:
    with svc(app).sessions() as s:
        return dict(s.execute(select(Message.status, func.count()).group_by(Message.status)).all())


def run_stop_and_recover(app: Any, db_url: str, redis_url: str, fake: FakeTwilio, tmp_path: Path,
                         stop: signal.Signals) -> dict[str, Any]:
    """Send through a worker, stop it with `stop` after ~50 messages, reconcile, finish with a burst worker."""
    launch_and_enqueue(app, N)
    fake.latency = 0.02
    log = tmp_path / "worker.log"
    worker = start_worker(db_url, redis_url, fake, log)
    try:
        assert wait_for(lambda: len(fake.messages) >= 50 or worker.poll() is not None, timeout=WAIT), \
            f"the worker sent {len(fake.messages)} in {WAIT}s:\n{log.read_text()}"
        assert worker.poll() is None, f"the worker exited early:\n{log.read_text()}"
        if stop == signal.SIGKILL:
            os.killpg(worker.pid, signal.SIGKILL)  # the container dies: worker and scheduler at once
        else:
            worker.send_signal(stop)  # warm shutdown: the worker finishes its batch, then exits
        code = worker.wait(timeout=WAIT)
    finally:
        stop_group(worker)
    mid = {"exit": code, "accepted": len(fake.messages), "statuses": statuses(app)}
    assert 50 <= mid["accepted"] < N, f"not stopped mid-broadcast: {mid}"

    fake.latency = 0.0
    with app.app_context():
        mid["reconciled"] = jobs.reconcile(force=True)
    recovery = start_worker(db_url, redis_url, fake, log, "--burst")
    try:
        assert recovery.wait(timeout=WAIT) == 0, log.read_text()
    finally:
        stop_group(recovery)

    assert Counter(m["to"] for m in fake.messages) == Counter(number(i) for i in range(N))
    assert statuses(app) == {"sent": N}
    with svc(app).sessions() as s:
        ids = set(s.scalars(select(Message.provider_id)))
    assert ids == {m["sid"] for m in fake.messages}
    return mid


def test_sigkill_mid_broadcast_loses_and_duplicates_nothing(kill_app, db_url, redis_url, fake_twilio, tmp_path) -> None:
    """SIGKILL after ~50 of 300 sends: rows left sending are settled or requeued, then each sent exactly once."""
    mid = run_stop_and_recover(kill_app, db_url, redis_url, fake_twilio, tmp_path, signal.SIGKILL)
    assert mid["exit"] == -signal.SIGKILL
    assert mid["statuses"].get("sending", 0) > 0  # the kill really left claimed rows behind
    assert mid["reconciled"]["settled_sent"] + mid["reconciled"]["requeued"] == mid["statuses"]["sending"]


def test_sigterm_mid_broadcast_finishes_the_batch_then_the_rest_is_sent_once(kill_app, db_url, redis_url,
                                                                            fake_twilio, tmp_path) -> None:
    """SIGTERM after ~50 of 300 sends: warm shutdown leaves no row sending; the rest is sent exactly once."""
    mid = run_stop_and_recover(kill_app, db_url, redis_url, fake_twilio, tmp_path, signal.SIGTERM)
    assert mid["exit"] == 0
    assert "sending" not in mid["statuses"]
    assert mid["statuses"]["sent"] == mid["accepted"] and mid["accepted"] % 100 == 0


# Shortened periods, so the bound (SENDING_STALE_SECONDS plus two reconciler periods) shows in seconds.
STALE, PERIOD, BEAT = 3, 2, 1
SHORT = {"SENDING_STALE_SECONDS": str(STALE), "RECONCILE_SECONDS": str(PERIOD), "WORKER_HEARTBEAT_SECONDS": str(BEAT)}


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_mid_broadcast_recovers_with_no_command_typed(kill_app, db_url, redis_url, fake_twilio, tmp_path,
                                                              workers: int) -> None:
    """SIGKILL one worker after ~50 of 300 sends, restarted at once as a supervisor would: every
    recipient gets exactly one message, with no `outbox reconcile`, within the bound."""
    launch_and_enqueue(kill_app, N)
    fake_twilio.latency = 0.02
    log = tmp_path / "worker.log"
    procs = [start_worker(db_url, redis_url, fake_twilio, log, env_extra=SHORT) for _ in range(workers)]
    try:
        assert wait_for(lambda: len(fake_twilio.messages) >= 50 or procs[0].poll() is not None, timeout=WAIT), \
            f"the workers sent {len(fake_twilio.messages)} in {WAIT}s:\n{log.read_text()}"
        os.killpg(procs[0].pid, signal.SIGKILL)  # the container dies: worker and scheduler at once
        killed_at = time.monotonic()
        procs[0].wait(timeout=WAIT)
        mid = statuses(kill_app)
        assert len(fake_twilio.messages) < N, f"not killed mid-broadcast: {mid}"
        fake_twilio.latency = 0.0
        procs[0] = start_worker(db_url, redis_url, fake_twilio, log, env_extra=SHORT)  # Restart=always
        done = wait_for(lambda: statuses(kill_app) == {"sent": N}, timeout=WAIT)
        recovery = time.monotonic() - killed_at
    finally:
        for proc in procs:
            stop_group(proc)
    assert done, f"not finished {WAIT}s after the kill: {statuses(kill_app)} (mid-broadcast: {mid})\n{log.read_text()}"
    assert mid.get("sending", 0) > 0  # the kill really left claimed rows behind, in a job RQ still had started
    # The bound, with room for a slow machine: the worker's start-up (a few seconds) comes on top.
    assert recovery < STALE + 2 * PERIOD + 20, recovery
    assert Counter(m["to"] for m in fake_twilio.messages) == Counter(number(i) for i in range(N))
    with svc(kill_app).sessions() as s:
        assert set(s.scalars(select(Message.provider_id))) == {m["sid"] for m in fake_twilio.messages}
