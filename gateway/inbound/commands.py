"""`flask spool replay`: store and handle the texts kept while the database was away."""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from gateway import services
from gateway.outbound import queues

spool_cli = AppGroup("spool", help="Inbound messages kept while the database was away.")


@spool_cli.command("replay")
def spool_replay() -> None:
    """Store and handle the kept messages in arrival order (safe to run twice)."""
    svc = services()
    done = svc.inbound.replay()
    click.echo(f"{done.stored} stored, {done.duplicates} already stored, {done.rejected} set aside, "
               f"{done.left} left" + (" (database away)" if done.away else "")
               + (" (another process is replaying)" if done.busy else ""))
    if not svc.settings.redis_url and (done.stored or done.duplicates):
        queues.work_burst(svc.redis)  # the in-process queue is only ours
    if done.left:
        raise SystemExit(1)


def init_app(app: Flask) -> None:
    """Register `flask spool replay`."""
    app.cli.add_command(spool_cli)
