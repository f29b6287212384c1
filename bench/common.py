"""What every benchmark shares: its own PostgreSQL schema and Redis database, processes, figures.

All load goes to 127.0.0.1. Every wait is bounded in time; every loop in count.
"""
from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from gateway.settings import DEFAULT_SEND_CONCURRENCY

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv's bin/ when run as .venv/bin/python -m bench.run
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"
SCHEMA = "bench"
ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
FROM_NUMBER = "+15005550006"
NUMBERS_KEY = "bench-numbers-key-0123456789abcdef0123"  # phone numbers at rest
SECRET_KEY = "bench-secret-key-0123456789abcdef0123"  # sessions (config wants 32+ characters)
PUBLIC_BASE = "https://bench.example.org"  # what the pre-signed webhooks were signed for
# The Procfile's web settings: the gateway and the ceiling are served the same way.
GUNICORN_ARGS = ["--workers", "2", "--threads", "64", "--timeout", "15"]
# The embedded default (no Redis) as docs/operations.md serves it: one process with threads. Only one
# process may send there (instance/server.lock): with the Procfile's two workers the second refuses
# and gunicorn halts.
EMBEDDED_GUNICORN_ARGS = ["--workers", "1", "--threads", "8", "--timeout", "15"]
# Not a setting of the service: keeps our servers off the shared ~/.gunicorn control socket.
GUNICORN_EXTRA = ["--no-control-socket"]
# A hang guard on a server's start (a few seconds unloaded; the machine's two cores are shared).
START_TIMEOUT = 60.0


def with_schema(url: str, schema: str) -> str:
    """A PostgreSQL URL whose connections use `schema` first (as tests/conftest.py does)."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


NO_TWILIO = "http://127.0.0.1:9"  # the discard port: nothing listens, a connection is refused at once


@dataclass
class Stack:
    """Where a benchmark runs: its database URL (own schema), its Redis database, a scratch directory."""

    db_url: str
    redis_url: str
    workdir: Path
    fake_url: str = ""
    sender_rate: float = 100000.0  # high, so pacing does not limit fan-out
    send_concurrency: int = DEFAULT_SEND_CONCURRENCY  # the gateway's default; the ceiling uses it too

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a gateway process (gunicorn, flask worker, flask db upgrade)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SENDER_RATE"))}
        env.update({
            "DATABASE_URL": self.db_url, "REDIS_URL": self.redis_url, "SECRET_KEY": SECRET_KEY,
            "SMS_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": FROM_NUMBER, "PUBLIC_BASE_URL": PUBLIC_BASE, "QUIET_HOURS": "off",
            "DEFAULT_COUNTRY": "MW", "SENDER_RATE": str(self.sender_rate), "SENDER_RATES": "",
            "SEND_CONCURRENCY": str(self.send_concurrency), "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT),
            "NUMBERS_KEY": NUMBERS_KEY,
            # This run's own instance/ (and so its spool): never the checkout's, where a `make run`
            # may keep texts of its own database, nor another run's.
            "INSTANCE_PATH": str(self.workdir),
        })
        # Never the real Twilio: with no fake running, a send fails at once on a closed loopback port
        # (this machine reaches no internet: a send would wait on DNS until its timeout).
        env["TWILIO_API_BASE_URL"] = self.fake_url or NO_TWILIO
        env.update(extra)
        return env

    def app_config(self) -> dict[str, Any]:
        """The same settings for an app built inside this process (to launch broadcasts)."""
        return {
            "DATABASE_URL": self.db_url, "REDIS_URL": self.redis_url, "SECRET_KEY": SECRET_KEY,
            "SMS_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": FROM_NUMBER, "TWILIO_MESSAGING_SERVICE_SID": None,
            "TWILIO_API_BASE_URL": self.fake_url or NO_TWILIO, "PUBLIC_BASE_URL": PUBLIC_BASE,
            "QUIET_HOURS": "off", "DEFAULT_COUNTRY": "MW", "SENDER_RATE": self.sender_rate,
            "SENDER_RATES": "", "INSTANCE_PATH": str(self.workdir), "TESTING": True, "NUMBERS_KEY": NUMBERS_KEY,
        }


def bench_db_url() -> str:
    """BENCH_DATABASE_URL, else DATABASE_URL when it is PostgreSQL, else the local test database."""
    url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL") or ""
    return url if url.startswith("postgres") else DEFAULT_PG


def create_schema(base_url: str, schema: str = SCHEMA) -> str:
    """(Re)create the benchmark's own schema and migrate it with `flask --app app db upgrade`."""
    import sqlalchemy as sa

    from gateway.settings import database_url

    engine = sa.create_engine(database_url(base_url))
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    url = with_schema(base_url, schema)
    env = Stack(url, DEFAULT_REDIS, Path(tempfile.gettempdir())).env()
    subprocess.run([str(BIN / "flask"), "--app", "app", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, timeout=120)
    return url


def drop_schema(base_url: str, schema: str = SCHEMA) -> None:
    import sqlalchemy as sa

    from gateway.settings import database_url

    engine = sa.create_engine(database_url(base_url))
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    engine.dispose()


def engine_for(url: str):  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    from gateway.settings import database_url

    return sa.create_engine(database_url(url))


def truncate(url: str, tables: Sequence[str] | None = None) -> None:
    """Empty the benchmark schema's tables (all but alembic_version, or the ones named)."""
    import sqlalchemy as sa

    engine = engine_for(url)
    with engine.begin() as conn:
        names = list(tables) if tables else [t for t in sa.inspect(conn).get_table_names() if t != "alembic_version"]
        conn.execute(sa.text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
    engine.dispose()


def redis_client(url: str):  # type: ignore[no-untyped-def]
    import redis

    return redis.Redis.from_url(url)


def flush_redis(url: str) -> None:
    """Empty the benchmark's own Redis database (14 unless told otherwise), nothing else."""
    r = redis_client(url)
    r.flushdb()
    r.close()


def redis_db_bytes(url: str, limit: int = 200_000) -> int:
    """Bytes held by the keys of this Redis database (MEMORY USAGE summed; bounded scan)."""
    r = redis_client(url)
    total, seen = 0, 0
    keys: list[bytes] = []
    for key in r.scan_iter(count=1000):
        keys.append(key)
        seen += 1
        if len(keys) >= 1000 or seen >= limit:
            total += _usage(r, keys)
            keys = []
        if seen >= limit:
            break
    total += _usage(r, keys)
    r.close()
    return total


def _usage(r, keys: list[bytes]) -> int:  # type: ignore[no-untyped-def]
    if not keys:
        return 0
    with r.pipeline(transaction=False) as pipe:
        for k in keys:
            pipe.memory_usage(k, samples=0)
        return sum(v or 0 for v in pipe.execute())


def redis_used_memory(url: str) -> int:
    """The whole Redis server's used_memory (shared with others: noisy)."""
    r = redis_client(url)
    try:
        return int(r.info("memory")["used_memory"])
    finally:
        r.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid: int) -> int:
    """Resident set size of one process, from /proc (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Proc:
    """A child process this benchmark started, in its own session; stopped by its own id only."""

    def __init__(self, name: str, args: Sequence[str], env: dict[str, str], workdir: Path,
                 stdin: Any = None, stdout: Any = None) -> None:
        self.name = name
        self.log = workdir / f"{name}.log"
        self._log = open(self.log, "ab")
        self.popen = subprocess.Popen(list(args), cwd=ROOT, env=env, stdin=stdin,
                                      stdout=stdout if stdout is not None else self._log,
                                      stderr=self._log, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def target_pid(self) -> int:
        """The process doing the work: the child when this is py-spy recording it, else itself."""
        try:
            if "py-spy" in Path(f"/proc/{self.pid}/cmdline").read_text():
                children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
                if children:
                    return int(children[0])
        except (OSError, ValueError):
            pass
        return self.pid

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (gunicorn and RQ shut down gracefully), then SIGKILL to its own process group.

        Under py-spy the recorded child is signalled first, so py-spy writes its profile and exits."""
        target = self.target_pid()
        if target != self.pid:
            try:
                os.kill(target, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=timeout + 30)
            except subprocess.TimeoutExpired:
                pass
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        try:  # the group is this child's own session (start_new_session): its pid is the group id
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()

    def exit_code(self) -> int | None:
        """Its exit code, None while it runs."""
        return self.popen.poll()

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll until true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def http_ok(port: int, path: str = "/healthz") -> bool:
    import http.client

    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", path)
        status = conn.getresponse().status
        conn.close()
        return status < 500
    except OSError:
        return False


def gunicorn(name: str, target: str, stack: Stack, port: int, profile: Path | None = None) -> Proc:
    """gunicorn on the Procfile's settings, bound to loopback; optionally under py-spy."""
    args = [str(BIN / "gunicorn"), *GUNICORN_ARGS, *GUNICORN_EXTRA, "--bind", f"127.0.0.1:{port}", target]
    if profile is not None:
        args = [str(BIN / "py-spy"), "record", "--subprocesses", "--nonblocking", "-r", "100", "-f", "raw",
                "-o", str(profile), "--", *args]
    proc = Proc(name, args, stack.env(), stack.workdir)
    wait_serving(proc, port, "/healthz" if target == "app:app" else "/ping")
    return proc


def wait_serving(proc: Proc, port: int, path: str = "/healthz", timeout: float = START_TIMEOUT) -> None:
    """Wait until `proc` answers `path` on `port`; else stop it and raise, with its exit code and its log's end."""
    if wait_until(lambda: http_ok(port, path) or not proc.alive(), timeout, 0.2) and proc.alive():
        return
    code = proc.exit_code()
    proc.stop()
    how = f"exited with code {code}" if code is not None else f"did not answer {path} on port {port} in {timeout:.0f} s"
    raise RuntimeError(f"{proc.name} did not start: it {how}; the end of {proc.log}:\n{proc.tail()}")


class FakeProcess:
    """The fake Twilio API (tests/fakes/twilio_api.py) in its own process, driven over a pipe."""

    def __init__(self, stack: Stack) -> None:
        self.proc = Proc("fake-twilio", [sys.executable, "-m", "bench.fake_twilio", ACCOUNT_SID, AUTH_TOKEN],
                         stack.env(), stack.workdir, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.base_url = self._read()["base_url"]

    def _read(self, timeout: float = 60.0) -> dict[str, Any]:
        import select

        out = self.proc.popen.stdout
        assert out is not None
        ready, _, _ = select.select([out], [], [], timeout)
        if not ready:
            raise RuntimeError(f"fake Twilio did not answer in {timeout}s:\n{self.proc.tail()}")
        line = out.readline()
        if not line:
            raise RuntimeError(f"fake Twilio exited:\n{self.proc.tail()}")
        return json.loads(line)

    def call(self, cmd: str, timeout: float = 60.0, **kwargs: Any) -> dict[str, Any]:
        stdin = self.proc.popen.stdin
        assert stdin is not None
        stdin.write((json.dumps({"cmd": cmd, **kwargs}) + "\n").encode())
        stdin.flush()
        return self._read(timeout)

    def clear(self) -> None:
        self.call("clear")

    def set_latency(self, seconds: float) -> None:
        self.call("latency", value=seconds)

    def count(self) -> int:
        return int(self.call("count")["creates_ok"])

    def messages(self, path: Path) -> list[dict[str, Any]]:
        """[{sid, to, body, segments, at}] of every accepted message, oldest first."""
        self.call("dump", path=str(path), timeout=120)
        with open(path) as f:
            return json.load(f)

    def stop(self) -> None:
        try:
            self.call("quit", timeout=5)
        except (OSError, RuntimeError, ValueError):
            pass
        self.proc.stop(timeout=5)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (nan when empty)."""
    if not sorted_values:
        return math.nan
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    if seconds >= 10:
        return f"{seconds:.0f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.1f} ms" if seconds < 0.01 else f"{seconds * 1000:.0f} ms"


@dataclass
class Row:
    """One line of the results table."""

    bench: str
    case: str
    result: str
    target: str = ""
    met: bool | None = None


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def add(self, bench: str, case: str, result: str, target: str = "", met: bool | None = None) -> None:
        self.rows.append(Row(bench, case, result, target, met))
        print(f"  [{bench}] {case}: {result}" + (f"  (target {target}: {'met' if met else 'MISSED'})"
                                                   if target and met is not None else ""), flush=True)

    def table(self) -> str:
        lines = ["| benchmark | case | result | target | met |", "| --- | --- | --- | --- | --- |"]
        for r in self.rows:
            met = "" if r.met is None else ("yes" if r.met else "**no**")
            lines.append(f"| {r.bench} | {r.case} | {r.result} | {r.target} | {met} |")
        return "\n".join(lines)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)
