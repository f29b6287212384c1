"""Files only the gateway's own user may read: instance/, the generated secrets, the SQLite database.

Each is created with its final mode (no write-then-chmod window), whatever the process umask.
Pure file-system helpers: no Flask, no database.
"""
from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create the directory, and every missing parent, owner-only (an existing one is left as the operator set it).

    Not `mkdir(parents=True)`: that gives the parents it creates the default mode, so the spool
    (instance/spool) made first would leave instance/ itself readable by everyone.
    """
    missing = []
    for directory in (path, *path.parents):
        if directory.is_dir():
            break
        missing.append(directory)
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass  # another process made it meanwhile
    return path


def private_file(path: Path) -> Path:
    """Create an empty owner-only file if it is missing (SQLite takes an empty file as a new database)."""
    private_dir(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        pass
    return path


def secret_file(path: Path, make: Callable[[], str]) -> str:
    """The secret kept in `path`, created owner-only with `make()` on first use.

    Two processes starting at once (gunicorn workers on a fresh instance/) end up with the same
    secret: each writes its candidate to a private temporary file and links it into place, which
    only one can do; the other then reads the winner's complete file.
    """
    existing = _read(path)
    if existing:
        return existing
    private_dir(path.parent)
    candidate = make()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(candidate)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)  # atomic, and fails if another process got there first
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    secret = _read(path)
    if not secret:
        raise RuntimeError(f"{path} is empty: delete it and start again")
    return secret


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""
