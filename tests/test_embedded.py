"""The embedded default (SQLite, no REDIS_URL), as an operator runs it: real processes on one instance/.

One process sends (instance/server.lock): a second server refuses, naming the first; `broadcast
send` hands its broadcast to a running server, and otherwise sends it itself with a progress bar,
stops on Ctrl-C (or a kill) and `broadcast resume` sends the rest with nothing lost or doubled.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from gateway import embedded
from gateway.models import Message
from tests.conftest import NUMBERS_KEY, SECRET_KEY, make_app
from tests.fakes import FakeTwilio
from tests.fakes.twilio_api import wait_for
from tests.helpers import add, svc

pytestmark = pytest.mark.sqlite_only  # the embedded default is SQLite: no PostgreSQL half

ROOT = Path(__file__).resolve().parent.parent
SENDER = "+15005550006"
WAIT = 60.0  # seconds: the bound on every wait for a process


def number(i: int) -> str:
    return f"+26599120{i:04d}"


@pytest.fixture
def site(db_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The test's own view of an embedded install: its SQLite database and its instance/ folder."""
    assert db_url.startswith("sqlite"), "the embedded default is SQLite (the module is marked sqlite_only)"
    app = make_app(db_url, tmp_path)
    yield app
    svc(app).engine.dispose()


def env_for(app: Flask, **extra: str) -> dict[str, str]:
    """The environment of a gateway process on the same database and instance/ as `app`, without Redis."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TWILIO_", "SMS_", "SENDER_", "QUIET_", "SENDING_", "FLASK_", "REDIS_", "DATABASE_"))}
    settings = svc(app).settings
    env.update(DATABASE_URL=settings.database_url, INSTANCE_PATH=str(settings.instance_path),
               SECRET_KEY=SECRET_KEY, NUMBERS_KEY=NUMBERS_KEY, SMS_PROVIDER="console", QUIET_HOURS="off",
               SPOOL_DIR=str(settings.instance_path / "spool"),
               PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    env.update(extra)
    return env


def flask(app: Flask, *args: str, env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen[str]:
    """`flask --app app ARGS` as its own process."""
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT,
                            env=env or env_for(app), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **popen)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def statuses(app: Flask) -> dict[str, int]:
    with svc(app).sessions() as s:
        return dict(s.execute(select(Message.status, func.count()).where(Message.direction == "out")
                              .group_by(Message.status)).tuples().all())


def supporters(app: Flask, n: int) -> list[str]:
    numbers = [number(i) for i in range(n)]
    for x in numbers:
        add(app, x)
    return numbers


def test_gunicorn_with_two_workers_and_no_redis_refuses_clearly(site: Flask) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--workers", "2", "--bind",
                             f"127.0.0.1:{free_port()}", "app:app"], cwd=ROOT, env=env_for(site),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=WAIT)
    finally:
        proc.kill()
    assert proc.returncode != 0  # gunicorn halts when a worker fails to boot
    assert "server.lock is held by process" in out and "only one process may serve and send" in out
    assert "set REDIS_URL" in out


# A process that pauses inside embedded.hold() after it took server.lock, before it writes its name.
_PAUSED_HOLDER = """
import os, sys
from pathlib import Path
from gateway import embedded
write = os.write
def paused(fd, data):
    if data.startswith(b'{"pid"'):
        print("locked", flush=True)
        sys.stdin.readline()
    return write(fd, data)
os.write = paused
embedded.hold(Path(sys.argv[1]), "web server")
print("held", flush=True)
sys.stdin.readline()
"""


def test_a_process_that_finds_the_lock_taken_names_the_holder_even_mid_claim(tmp_path: Path) -> None:
    """Two gunicorn workers start together: the one that loses must name the winner, never "another process".

    The winner takes server.lock, then writes its name into it; the loser must not read the file
    between the two (it once did, under load, and refused without naming the process that sends).
    """
    first = subprocess.Popen([sys.executable, "-c", _PAUSED_HOLDER, str(tmp_path)], cwd=ROOT, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert first.stdin and first.stdout
    try:
        assert first.stdout.readline() == "locked\n"  # it holds server.lock; its name is not written yet
        with ThreadPoolExecutor(1) as pool:
            second = pool.submit(embedded.hold, tmp_path, "second web server")
            # It waits for the name (the claim is held for a few system calls, here until we say so).
            assert not wait([second], timeout=1).done
            first.stdin.write("\n")
            first.stdin.flush()
            with pytest.raises(embedded.ServerBusy, match=f"held by process {first.pid} [(]web server[)]"):
                second.result(timeout=WAIT)
        assert first.stdout.readline() == "held\n"
        assert embedded.holder(tmp_path) == {"pid": first.pid, "what": "web server"}
    finally:
        first.kill()
        first.communicate(timeout=WAIT)
    assert embedded.holder(tmp_path) is None


def test_a_second_server_refuses_while_the_first_serves_and_starts_once_it_is_gone(site: Flask) -> None:
    port = free_port()
    first = flask(site, "run", "--port", str(port))
    try:
        instance = svc(site).settings.instance_path
        assert wait_for(lambda: embedded.holder(instance) is not None, WAIT)
        assert embedded.holder(instance)["pid"] == first.pid  # type: ignore[index]
        second = flask(site, "run", "--port", str(free_port()))
        out, _ = second.communicate(timeout=WAIT)
        assert second.returncode != 0 and f"held by process {first.pid}" in out
        worker = flask(site, "worker", "--burst")
        out, _ = worker.communicate(timeout=WAIT)
        assert worker.returncode != 0 and f"held by process {first.pid}" in out
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=WAIT)
    assert embedded.holder(instance) is None  # the kernel drops the lock with its process


def test_broadcast_send_hands_the_broadcast_to_the_running_server(site: Flask) -> None:
    numbers = supporters(site, 12)
    port = free_port()
    server = flask(site, "run", "--port", str(port), env=env_for(site, SENDER_RATE="50"))
    try:
        instance = svc(site).settings.instance_path
        assert wait_for(lambda: embedded.holder(instance) is not None, WAIT)
        # Its first request starts its worker, as a browser's or a provider's would.
        assert wait_for(lambda: _get(f"http://127.0.0.1:{port}/healthz") == 200, WAIT)
        started = time.monotonic()
        cli = flask(site, "broadcast", "send", "--text", "Vigil at the boma at 6", "--place", "Zomba")
        out, _ = cli.communicate(timeout=WAIT)
        handed = time.monotonic() - started
        assert cli.returncode == 0, out
        assert f"The server (process {server.pid}) sends broadcast 1" in out
        assert wait_for(lambda: statuses(site) == {"sent": len(numbers)}, 20)
        print(f"handed over in {handed:.1f} s; all {len(numbers)} sent {time.monotonic() - started:.1f} s after")
    finally:
        server.send_signal(signal.SIGINT)
        logged, _ = server.communicate(timeout=WAIT)
    # Both processes log one line per event at INFO, and never a supporter's number.
    assert " INFO gateway.outbound.broadcasts broadcast 1 launched to 12 recipients" in out
    assert " INFO gateway.outbound.jobs reconcile: " in logged
    assert all(n not in out + logged and n[1:] not in out + logged for n in numbers)


def _get(url: str) -> int:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return int(r.status)
    except Exception:  # not up yet
        return 0


@pytest.mark.parametrize("stop", ["ctrl-c", "kill"])
def test_broadcast_send_stopped_mid_send_resumes_with_nothing_lost_or_doubled(
        site: Flask, fake_twilio: FakeTwilio, stop: str) -> None:
    numbers = supporters(site, 40)
    env = env_for(site, SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID=fake_twilio.account_sid,
                  TWILIO_AUTH_TOKEN=fake_twilio.auth_token, TWILIO_API_BASE_URL=fake_twilio.base_url,
                  TWILIO_FROM_NUMBER=SENDER, SENDER_RATE="10")
    cli = flask(site, "broadcast", "send", "--text", "Vigil at the boma at 6", "--place", "Zomba", env=env)
    try:
        assert wait_for(lambda: len(fake_twilio.messages) >= 8, WAIT)
        if stop == "ctrl-c":
            cli.send_signal(signal.SIGINT)
        else:
            cli.kill()  # no time to tidy up: rows it claimed stay `sending`
        out, _ = cli.communicate(timeout=WAIT)
    finally:
        cli.kill()
    before = len(fake_twilio.messages)
    assert 8 <= before < len(numbers), out
    assert cli.returncode != 0
    if stop == "ctrl-c":
        assert "Stopped: sent" in out and "flask --app app broadcast resume 1" in out
        assert statuses(site).get("sending", 0) == 0, out  # it waited for the batch in flight

    resume = flask(site, "broadcast", "resume", "1", env=env)
    out, _ = resume.communicate(timeout=WAIT)
    assert resume.returncode == 0, out
    assert "broadcast 1: sent 40, failed 0, waiting 0" in out
    sent_to = Counter(m["to"] for m in fake_twilio.messages)
    assert sorted(sent_to) == sorted(numbers) and set(sent_to.values()) == {1}  # none lost, none twice
    assert statuses(site) == {"sent": 40}
