"""The inbound spool: texts that arrive while the database is away are kept on disk, replayed in order.

Why files, not Redis: the spool is for when a server is away, and Redis can be away at the same
time (or be the server restarting); a directory on the web host's own disk also works on the
embedded default. One file per message, written under a temporary name, fsynced, then renamed
into place: a crash never leaves half a message, and no two processes append to one file.
Names start with the arrival time in nanoseconds, so sorted names are arrival order.

Delivery status callbacks that arrive while the database is away are kept the same way (a record
of kind "status", named "status" where a text's name has its sender's tag) and applied by the same
replay; the status ladder only moves forward, so applying one late, or twice, changes nothing twice.

Replay holds an exclusive lock on the spool (one replayer at a time, across processes), stores
each message through the normal path and deletes its file only after that. A replay cut short
between the two stores the message again later, and its provider id drops the duplicate; a
message stored but not handled when the database left is kept too, and the replay handles it.

Kept texts hold numbers and words of people at risk, so the spool is private to the gateway's
user (directories 0700, files 0600, set by the calls that create them, not by the umask), each
record is encrypted with the NUMBERS_KEY Fernet key, and a file name carries only a short keyed
digest (HMAC) of the sender. A record that cannot be replayed is set aside in `rejected/`,
counted on /healthz and deleted after REJECTED_RETENTION.
"""
from __future__ import annotations

import fcntl
import json
import logging
import mmap
import os
import stat
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

from flask import Flask
from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.channels.base import InboundSMS, StatusUpdate
from gateway.core.vault import NumberVault
from gateway.inbound.receive import Received
from gateway.models import Message, utcnow
from gateway.private import DIR_MODE, FILE_MODE, private_dir

logger = logging.getLogger(__name__)
STATUS = "status"  # the kind of a kept delivery status callback, and the tag in its file name
REJECTED_RETENTION = timedelta(days=7)  # time to notice (on /healthz) and look at a set-aside text
# Every webhook asks whether texts are kept (twice: the replay before it, and its sender's order). A
# stat each time released the GIL twice a webhook, and under load each release is a wait to get it
# back among the request threads. So every process maps GENERATION (8 bytes) and each keep() writes
# a new value there after its rename: a directory found empty stays known empty, with no system
# call, while the value is unchanged; it is looked at again after RECHECK seconds anyway, for a file
# kept by other means (an older version during a deploy, an operator's hand). With vault.seal's IV
# (no system call either): wrk's JOIN shape, 2 cores, 2026-12-01, two sets of five A B rounds, the
# web processes' voluntary context switches fell from about 14 a text to 12.6 and their CPU a text
# by 2-3% (0.945 to 0.927 ms, 0.941 to 0.914); requests a second moved inside the noise (1,390
# against 1,380, 1,416 against 1,394).
GENERATION = ".generation"
RECHECK = 1.0


def database_away(exc: BaseException) -> bool:
    """True for errors that mean the database cannot be reached, not that the data is wrong."""
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)


@dataclass
class Replayed:
    """What one replay did."""

    stored: int = 0
    duplicates: int = 0
    statuses: int = 0  # delivery status callbacks applied
    left: int = 0
    rejected: int = 0
    busy: bool = False  # another process holds the spool
    away: bool = False  # the database is still away


class Spool:
    """A directory of kept messages, oldest name first, each encrypted with the numbers key."""

    def __init__(self, directory: str | os.PathLike[str], vault: NumberVault) -> None:
        self.dir = Path(directory)
        self.vault = vault
        self._generation: mmap.mmap | None = None  # GENERATION, mapped (shared with every process)
        self._unmapped_until = 0.0  # after a failed mapping, when to try again (monotonic seconds)
        self._empty_as_of: tuple[bytes, float] = (b"", 0.0)  # the generation found empty, and until when

    def _private_dir(self, path: Path) -> None:
        """Create the directory 0700, and take an existing one (from an older version) back to 0700."""
        private_dir(path)
        if stat.S_IMODE(path.stat().st_mode) != DIR_MODE:
            os.chmod(path, DIR_MODE)

    def keep(self, sms: InboundSMS, received_at: datetime | None = None) -> Path:
        """Write the message durably; a message without a provider id gets one, so replays dedupe."""
        if not sms.provider_id:
            sms = InboundSMS(sms.provider, f"local-{uuid.uuid4().hex}", sms.sender, sms.recipient, sms.body)
        record = asdict(sms) | {"received_at": (received_at or utcnow()).isoformat()}
        path = self._write(record, self._sender_tags(sms.sender)[0])
        logger.warning("database away: %s message %s kept in the spool", sms.provider, sms.provider_id)
        return path

    def keep_status(self, channel: str, update: StatusUpdate, received_at: datetime | None = None) -> Path:
        """Write a delivery status callback durably, to be applied by the next replay."""
        record = asdict(update) | {"kind": STATUS, "channel": channel,
                                   "received_at": (received_at or utcnow()).isoformat()}
        path = self._write(record, STATUS)
        logger.warning("database away: %s status %s of %s kept in the spool", channel, update.status,
                       update.provider_id)
        return path

    def _write(self, record: dict[str, str | None], tag: str) -> Path:
        """One sealed record, written under a temporary name, fsynced, renamed into place."""
        self._private_dir(self.dir)
        sealed = self.vault.fernet.encrypt(json.dumps(record, ensure_ascii=False).encode())
        name = f"{time.time_ns():020d}-{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        tmp = self.dir / f".{name}.tmp"
        # 0600 from the start (O_EXCL: never someone else's file): no moment where others can read it.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(sealed)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, self.dir / name)
        _fsync_dir(self.dir)
        generation = self._mapped()
        if generation is not None:  # after the rename: a process that reads the new value finds the file
            generation[:] = os.urandom(8)
        return self.dir / name

    def _mapped(self) -> mmap.mmap | None:
        """GENERATION mapped into this process (created with the directory if missing); None if it cannot be."""
        if self._generation is None and time.monotonic() >= self._unmapped_until:
            try:
                self._private_dir(self.dir)
                fd = os.open(self.dir / GENERATION, os.O_RDWR | os.O_CREAT, FILE_MODE)
                try:
                    if os.fstat(fd).st_size < 8:
                        os.ftruncate(fd, 8)  # zeros: the value before any keep()
                    self._generation = mmap.mmap(fd, 8)
                finally:
                    os.close(fd)  # the mapping keeps the file
            except OSError:
                if not self._unmapped_until:  # once, not every RECHECK
                    logger.warning("the spool's generation file cannot be mapped: every webhook scans the spool",
                                   exc_info=True)
                self._unmapped_until = time.monotonic() + RECHECK
        return self._generation

    def read(self, path: Path) -> dict[str, str]:
        """A kept record, decrypted (any configured numbers key opens it)."""
        raw = path.read_bytes()
        if raw.startswith(b"{"):  # kept in clear by a version before the spool was encrypted
            return json.loads(raw.decode("utf-8"))  # type: ignore[no-any-return]
        return json.loads(self.vault.fernet.decrypt(raw).decode("utf-8"))  # type: ignore[no-any-return]

    def _sender_tags(self, sender: str) -> list[str]:
        """The sender's tag in file names under each configured key, newest first (keyed: names nobody)."""
        return [d[:16] for d in self.vault.digests(sender)]

    def pending(self) -> list[Path]:
        """Kept messages in arrival order."""
        try:
            return sorted(p for p in self.dir.iterdir() if p.suffix == ".json" and not p.name.startswith("."))
        except FileNotFoundError:
            return []

    def has_pending(self, sender: str | None = None) -> bool:
        """Whether anything (from this sender) is kept: no system call while the directory is known
        empty (GENERATION unchanged since it was found empty, within RECHECK), else one scan."""
        mapped = self._mapped()
        generation = mapped[:8] if mapped is not None else None  # read before the scan: a keep() after it changes it
        now = time.monotonic()
        if generation == self._empty_as_of[0] and now < self._empty_as_of[1]:
            return False
        try:
            with os.scandir(self.dir) as entries:
                kept = [e.name for e in entries if e.name.endswith(".json") and not e.name.startswith(".")]
        except FileNotFoundError:
            return False
        if not kept:
            if generation is not None:
                self._empty_as_of = (generation, now + RECHECK)
            return False
        tags = [""] if sender is None else [f"-{t}-" for t in self._sender_tags(sender)]
        return any(t in name for name in kept for t in tags)

    def replay(self, sessions: sessionmaker[Session], receive: Callable[[InboundSMS, datetime], Received],
               handle: Callable[[int], list[int]], send: Callable[[list[int]], None],
               budget: float | None = None, apply_status: Callable[[str, StatusUpdate], None] | None = None,
               ) -> Replayed:
        """Store and handle kept messages in order until none is left, the database fails or time is up.

        `receive(sms, received_at)` stores and handles one text, its replies queued;
        `handle(contact_id)` handles a contact's pending texts (one stored before but not handled)
        and returns the queued replies' ids; `send(ids)` hands those to the outbox;
        `apply_status(channel, update)` applies a kept delivery status callback.
        """
        out = Replayed()
        self._private_dir(self.dir)
        self.purge_rejected()
        with os.fdopen(os.open(self.dir / ".replay.lock", os.O_RDWR | os.O_CREAT, FILE_MODE), "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                out.busy, out.left = True, len(self.pending())
                return out
            deadline = None if budget is None else time.monotonic() + budget
            while batch := self.pending():
                for path in batch:
                    if deadline is not None and time.monotonic() > deadline:
                        out.left = len(self.pending())
                        return out
                    try:
                        self._replay_one(path, sessions, receive, handle, send, out, apply_status)
                    except Exception as exc:
                        if database_away(exc):
                            out.away, out.left = True, len(self.pending())
                            return out
                        # One unreadable message must not hold back the rest: set it aside. Neither its
                        # name (the sender's tag) nor the error's text (it may quote the record) is logged.
                        logger.error("a spooled message could not be replayed (%s): set aside in rejected/ "
                                     "for %d days", type(exc).__name__, REJECTED_RETENTION.days)
                        self._private_dir(self.dir / "rejected")
                        os.rename(path, self.dir / "rejected" / path.name)
                        os.chmod(self.dir / "rejected" / path.name, FILE_MODE)  # e.g. one an older version kept
                        os.utime(self.dir / "rejected" / path.name)  # the retention counts from now
                        out.rejected += 1
        return out

    def rejected(self) -> int:
        """How many set-aside messages wait in rejected/ (for /healthz: a count, never a name)."""
        try:
            with os.scandir(self.dir / "rejected") as entries:
                return sum(1 for e in entries if e.name.endswith(".json"))
        except FileNotFoundError:
            return 0

    def purge_rejected(self, now: float | None = None) -> int:
        """Delete set-aside messages older than REJECTED_RETENTION; how many went."""
        cutoff = (time.time() if now is None else now) - REJECTED_RETENTION.total_seconds()
        purged = 0
        try:
            with os.scandir(self.dir / "rejected") as entries:
                for entry in entries:
                    try:
                        if entry.stat().st_mtime < cutoff:  # set aside before the cutoff
                            os.unlink(entry.path)
                            purged += 1
                    except FileNotFoundError:  # another process purged it
                        pass
        except FileNotFoundError:
            return 0
        if purged:
            logger.warning("%d set-aside spooled messages older than %d days deleted", purged, REJECTED_RETENTION.days)
        return purged

    def _replay_one(self, path: Path, sessions: sessionmaker[Session],
                    receive: Callable[[InboundSMS, datetime], Received], handle: Callable[[int], list[int]],
                    send: Callable[[list[int]], None], out: Replayed,
                    apply_status: Callable[[str, StatusUpdate], None] | None = None) -> None:
        record = self.read(path)
        received_at = datetime.fromisoformat(record.pop("received_at"))
        if record.pop("kind", None) == STATUS:
            if apply_status is None:
                raise ValueError("a kept status callback, and nothing to apply it with")
            channel = record.pop("channel")
            apply_status(channel, StatusUpdate(**record))  # type: ignore[arg-type]
            out.statuses += 1
            path.unlink()
            return
        sms = InboundSMS(**record)
        received = receive(sms, received_at)  # stored as of when it arrived, not when it was replayed
        owed = list(received.queued)
        if received.duplicate:  # stored before: a replay cut short, or a commit whose answer was lost
            out.duplicates += 1
            with sessions() as session:
                message = session.scalars(select(Message).where(
                    Message.channel == sms.provider, Message.provider_id == sms.provider_id)).first()
            if message is not None and message.handled_at is None and message.contact_id is not None:
                owed += handle(message.contact_id)
        else:
            out.stored += 1
        if owed:
            send(owed)
        path.unlink()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a power cut
    finally:
        os.close(fd)


def spool_for(app: Flask) -> Spool:
    """The spool of this app (SPOOL_DIR), sealed with its numbers key: the one its Inbound keeps to."""
    return app.extensions["gateway"].inbound.spool  # type: ignore[no-any-return]
