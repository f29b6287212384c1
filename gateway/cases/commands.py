"""`flask cases tick`: apply case deadlines now (for cron; the workers also run it every minute)."""
from __future__ import annotations

from datetime import datetime

import click
from flask import Flask
from flask.cli import AppGroup

from gateway import services
from gateway.cases import timer
from gateway.models import utcnow

cases_cli = AppGroup("cases", help="Cases sent to officials, with deadlines.")


@cases_cli.command("tick")
@click.option("--at", "at", type=click.DateTime(formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"]),
              default=None, help="Act as if it were this UTC time (to try the deadlines); default: now.")
def cases_tick(at: datetime | None) -> None:
    """Apply passed deadlines: overdue cases go to the next rung and the organizers are told."""
    with services().sessions() as session, session.begin():
        done = timer.tick(session, at or utcnow())
    click.echo(f"{done['overdue']} overdue, {done['escalated']} sent to the next rung, "
               f"{done['top_rung']} overdue at the top rung")


def init_app(app: Flask) -> None:
    """Register `flask cases`."""
    app.cli.add_command(cases_cli)
