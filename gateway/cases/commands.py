"""`flask cases tick`: apply case deadlines now (for cron; the workers also run it every minute)."""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from gateway import services
from gateway.cases import timer
from gateway.models import utcnow

cases_cli = AppGroup("cases", help="Cases sent to officials, with deadlines.")


@cases_cli.command("tick")
def cases_tick() -> None:
    """Apply passed deadlines: overdue cases go to the next rung and the organizers are told."""
    with services().sessions() as session, session.begin():
        done = timer.tick(session, utcnow())
    click.echo(f"{done['overdue']} overdue, {done['escalated']} sent to the next rung, "
               f"{done['top_rung']} overdue at the top rung")


def init_app(app: Flask) -> None:
    """Register `flask cases`."""
    app.cli.add_command(cases_cli)
