"""The embedded default (SQLite + an in-process queue): one process sends, held by instance/server.lock.

Without REDIS_URL the queue and the pacer live in the memory of the process that runs them. Two
such processes (two gunicorn workers, a server and a `broadcast send`) would each send at the
full SENDER_RATE, doubling the sender's rate. So whichever process sends first takes an exclusive
lock on instance/server.lock (flock: the kernel drops it when the process dies, so a crash leaves
no stale lock) and writes who it is into it; any other process that would send refuses, naming
the holder, or hands its work over (`nudge`): the rows are already `queued` in the database, the
holder's worker loop sees the nudge and enqueues them at once.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask.helpers import get_debug_flag
from werkzeug.serving import is_running_from_reloader

from gateway.private import FILE_MODE, private_dir

logger = logging.getLogger(__name__)
LOCK_FILE = "server.lock"
CLAIM_FILE = "server.lock.claim"  # held while a process takes server.lock and writes its name (_claiming)
NUDGE_FILE = "outbox.nudge"  # touched by a command that queued rows for the server to send
_held: dict[Path, tuple[int, int]] = {}  # lock path -> (fd, pid that took it)


class ServerBusy(RuntimeError):
    """Another process already sends for this instance/ (the message names it and says what to do)."""


def lock_path(instance: Path) -> Path:
    """instance/server.lock."""
    return instance / LOCK_FILE


def hold(instance: Path, what: str) -> bool:
    """Take instance/server.lock for this process (`what` says what it is), or raise ServerBusy naming the holder.

    True when taken now, False when this process held it already (then the caller must not release it).

    Taking it again in the same process does nothing; a process forked from the holder (gunicorn
    --preload) is not the holder and must take it itself, which fails while the parent lives.
    """
    path = lock_path(instance)
    taken = _held.get(path)
    if taken and taken[1] == os.getpid():
        return False
    private_dir(instance)
    with _claiming(instance, exclusive=True):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # Read here, still inside the claim: holder() would wait for the claim this process holds.
            who = _written(fd)
            os.close(fd)
            raise ServerBusy(busy_message(instance, who)) from None
        os.ftruncate(fd, 0)  # a holder that died left its own name here
        os.write(fd, json.dumps({"pid": os.getpid(), "what": what}).encode())
    _held[path] = (fd, os.getpid())
    logger.info("embedded default: this process (%s) sends; %s is held", what, path)
    return True


@contextmanager
def _claiming(instance: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold instance/server.lock.claim: exclusive while taking server.lock and writing who holds it, shared to look.

    Taking server.lock and writing the holder's name into it are two steps. Without this, a process
    that found server.lock taken could read it between them (empty, or the name of a holder that
    died) and refuse without naming the process that sends: two gunicorn workers started together
    did so. It is held for a few system calls only; the kernel drops it if its process dies.
    """
    try:
        guard = os.open(instance / CLAIM_FILE, os.O_RDWR | os.O_CREAT if exclusive else os.O_RDONLY, FILE_MODE)
    except FileNotFoundError:  # only looking, and no process of this version ever claimed here
        yield
        return
    try:
        fcntl.flock(guard, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)  # blocks for microseconds at most
        yield
    finally:
        os.close(guard)  # closing the only descriptor drops the flock


def _written(fd: int) -> dict[str, Any]:
    """Who server.lock (open as `fd`, taken by another process) says holds it."""
    try:
        return json.loads(os.read(fd, 4096) or b"{}") or {"pid": None, "what": "another process"}
    except ValueError:  # not written by this version's hold() (it writes whole under the claim)
        return {"pid": None, "what": "another process"}


def release(instance: Path) -> None:
    """Give the lock back (a command that sent what it had); no-op when not held here."""
    taken = _held.pop(lock_path(instance), None)
    if taken and taken[1] == os.getpid():
        os.close(taken[0])  # closing the only descriptor drops the flock


def holder(instance: Path) -> dict[str, Any] | None:
    """Who holds the lock ({"pid", "what"}), or None when no process does (this one included)."""
    path = lock_path(instance)
    taken = _held.get(path)
    if taken and taken[1] == os.getpid():
        return {"pid": os.getpid(), "what": "this process"}
    try:
        with _claiming(instance, exclusive=False):  # never between a holder's lock and its name
            fd = os.open(path, os.O_RDONLY)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    return _written(fd)
                return None  # free: nobody sends
            finally:
                os.close(fd)  # also drops the shared lock taken just to look
    except FileNotFoundError:  # no process ever took it here
        return None


def busy_message(instance: Path, who: dict[str, Any] | None = None) -> str:
    """What to tell someone starting a second sending process (`who` holds the lock: holder() when not given)."""
    who = (holder(instance) if who is None else who) or {}
    name = f"process {who.get('pid')} ({who.get('what')})" if who.get("pid") else "another process"
    return (f"{lock_path(instance)} is held by {name}. Without REDIS_URL the queue and the pacer live inside one "
            "process, so only one process may serve and send: run one web process (gunicorn --workers 1 "
            "--threads 8, or `make run`), or set REDIS_URL so every process shares one queue.")


def nudge(instance: Path) -> None:
    """Tell the serving process that rows were queued for it (it checks this file's time every second)."""
    path = instance / NUDGE_FILE
    path.touch(mode=FILE_MODE)
    os.utime(path)


def nudged_at(instance: Path) -> float:
    """The time of the last nudge (0 when none)."""
    try:
        return (instance / NUDGE_FILE).stat().st_mtime
    except FileNotFoundError:
        return 0.0


def serving_now() -> bool:
    """True when this process was started to serve: a WSGI server, or `flask run` (not its reloader's watcher)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return True  # gunicorn, waitress...: imported to serve
    if ctx.info_name != "run":
        return False  # a command: it sends only when it says so (broadcast send, worker)
    reload = ctx.params.get("reload")
    if reload is None:
        reload = get_debug_flag()
    return not reload or is_running_from_reloader()  # the reloader's watcher serves nothing


def claim_for_server(app: Flask) -> None:
    """At start (create_app): the serving process takes the lock, or the start stops with a clear message."""
    instance = app.extensions["gateway"].settings.instance_path
    try:
        hold(instance, f"web server: {' '.join(Path(sys.argv[0]).name.split()) or 'python'}")
    except ServerBusy as exc:
        logger.critical("%s", exc)
        raise
