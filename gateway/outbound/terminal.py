"""Sending a broadcast from the terminal on the embedded default, with a progress bar; Ctrl-C stops it cleanly.

Only used when no server runs (gateway/embedded.py: this process holds instance/server.lock).
The sends are the workers' own (`jobs.send_batch`: claim, pace, send, record), run in small
batches by a thread while the terminal shows the counts, so an interruption waits at most for
one small batch. Nothing is lost or sent twice across an interruption: a row is sent only after
this process claimed it (queued -> sending); rows still queued are sent by the next run; a row
left `sending` by a hard stop (a second Ctrl-C, a kill) is settled by asking the provider
(`settle_orphans`), never by sending again blindly.
"""
from __future__ import annotations

import logging
import sys
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import click
from flask import Flask
from sqlalchemy import func, or_, select

from gateway.models import Message, utcnow
from gateway.outbound import jobs, outbox

logger = logging.getLogger(__name__)
POLL = 0.5  # seconds between two readings of the counts
RETRY_AFTER = 5.0  # seconds to wait after a batch failed (a 429, the provider away) before the next


@dataclass
class Counts:
    """Where a broadcast's messages are."""

    total: int
    sent: int  # sent, delivered (the provider took them)
    failed: int  # failed, undelivered, skipped, cancelled
    waiting: int  # queued and due, or being sent
    held: int  # queued for later: quiet hours or a send time

    @property
    def done(self) -> int:
        return self.total - self.waiting - self.held


def counts(app: Flask, broadcast_id: int) -> Counts:
    """Read the broadcast's counts now."""
    now = utcnow()
    with app.extensions["gateway"].sessions() as s:
        rows = dict(s.execute(select(Message.status, func.count()).where(Message.broadcast_id == broadcast_id)
                              .group_by(Message.status)).tuples().all())
        held = s.scalar(select(func.count()).select_from(Message).where(
            Message.broadcast_id == broadcast_id, Message.status == "queued", Message.send_after > now)) or 0
    sent = rows.get("sent", 0) + rows.get("delivered", 0)
    waiting = rows.get("queued", 0) + rows.get("sending", 0) - held
    return Counts(sum(rows.values()), sent, sum(rows.values()) - sent - waiting - held, waiting, held)


def due_ids(app: Flask, broadcast_id: int, limit: int) -> list[int]:
    """The next queued rows of the broadcast that may go now, oldest first."""
    now = utcnow()
    with app.extensions["gateway"].sessions() as s:
        return list(s.scalars(select(Message.id).where(
            Message.broadcast_id == broadcast_id, Message.status == "queued",
            or_(Message.send_after.is_(None), Message.send_after <= now)).order_by(Message.id).limit(limit)))


def settle_orphans(app: Flask) -> outbox.Reconciled:
    """Settle every row left `sending` now, by asking the provider (only safe while this process holds the lock)."""
    svc = app.extensions["gateway"]
    return outbox.reconcile(svc.outbox(), stale_after=timedelta(0))


def batch_size(rate: float) -> int:
    """About two seconds of sending at the sender's rate (1 to 100): Ctrl-C waits for no more than that."""
    return max(1, min(100, int(rate * 2)))


def send(app: Flask, broadcast_id: int) -> Counts:
    """Send the broadcast's due rows here, showing counts and time left; returns the counts at the end.

    Ctrl-C stops after the batch in flight (a second one stops at once) and raises click.Abort
    after saying how to resume.
    """
    svc = app.extensions["gateway"]
    stop = threading.Event()
    size = batch_size(svc.settings.sender_rate)

    # Events, not Thread.join: a join cut short by Ctrl-C may return at once the next time it is called.
    finished = threading.Event()

    def work() -> None:
        try:
            with app.app_context():
                while not stop.is_set():
                    ids = due_ids(app, broadcast_id, size)
                    if not ids:
                        return
                    try:
                        jobs.send_batch(ids)
                    except Exception as exc:  # a 429 or the provider away: the rows are queued again
                        logger.warning("broadcast %d: a batch could not be sent (%s); trying again in %.0f s",
                                       broadcast_id, exc, RETRY_AFTER)
                        stop.wait(RETRY_AFTER)
        finally:
            finished.set()

    thread = threading.Thread(target=work, name="gateway-terminal-send", daemon=True)
    start = counts(app, broadcast_id)
    line = [_line(start)]
    thread.start()
    try:
        bar_shown: Any = click.progressbar(length=max(start.total, 1), label=f"broadcast {broadcast_id}",
                                           show_eta=True, show_pos=True, item_show_func=lambda _: line[0],
                                           file=sys.stderr)
        with bar_shown as bar:
            bar.update(start.done)
            while not finished.wait(POLL):
                now = counts(app, broadcast_id)
                line[0] = _line(now)
                bar.update(now.done - bar.pos)
    except KeyboardInterrupt:
        stop.set()
        click.echo("\nStopping after the messages in flight (Ctrl-C again to stop at once)...", err=True)
        try:
            while not finished.wait(POLL):
                pass
        except KeyboardInterrupt:
            pass  # rows left `sending` are settled by the next run, asking the provider
        left = counts(app, broadcast_id)
        click.echo(f"Stopped: {_line(left)}. Send the rest with: flask --app app broadcast resume {broadcast_id} "
                   "(nothing is sent twice).", err=True)
        raise click.Abort() from None
    return counts(app, broadcast_id)


def _line(c: Counts) -> str:
    held = f", {c.held} held for later" if c.held else ""
    return f"sent {c.sent}, failed {c.failed}, waiting {c.waiting}{held}"


def report(c: Counts, broadcast_id: int) -> str:
    """The last line: what was done, and what waits for a server."""
    text = f"broadcast {broadcast_id}: {_line(c)}"
    if c.held:
        text += (f". {c.held} held for quiet hours or a send time: the server sends them at their time "
                 f"(make run), or run `flask --app app broadcast resume {broadcast_id}` after it")
    return text

