"""`flask schedules add|list|stop` (promised services) and `flask checks tick|list` (the checks' timer)."""
from __future__ import annotations

from datetime import datetime

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from gateway import services
from gateway.evidence import checks, schedules
from gateway.models import Check, ServiceSchedule, utcnow

schedules_cli = AppGroup("schedules", help="Services promised to places, checked with their supporters.")
checks_cli = AppGroup("checks", help="Delivery checks and corroborations.")
AT = click.DateTime(formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"])


@schedules_cli.command("add")
@click.option("--place", required=True, help="A place the gazetteers know, e.g. Zomba.")
@click.option("--service", required=True, help="As reports spell it: clinic, water, fertilizer, school ...")
@click.option("--label", "labels", multiple=True, metavar="[LANG=]TEXT",
              help='How texts name it: "the mobile clinic" (the default language) or es="la clinica movil".')
@click.option("--starts", required=True, help="The first due date, YYYY-MM-DD (the place's calendar).")
@click.option("--every", type=int, default=None, help="Due every N days (14: every second week); none: once.")
@click.option("--ends", default=None, help="The last possible due date, YYYY-MM-DD.")
@click.option("--check-at", default="16:00", show_default=True, help="Local time after which supporters are asked.")
@click.option("--sample", type=int, default=5, show_default=True, help="At most this many asked per due date.")
@click.option("--no-threshold", type=int, default=3, show_default=True, help="This many 'no' answers open a case.")
def schedules_add(place: str, service: str, labels: tuple[str, ...], starts: str, every: int | None,
                  ends: str | None, check_at: str, sample: int, no_threshold: int) -> None:
    """Record a promised service."""
    default = services().settings.default_language
    by_lang: dict[str, str] = {}
    for label in labels:
        lang, sep, text = label.partition("=")
        if sep and 1 < len(lang.strip()) <= 3 and lang.strip().isalpha():
            by_lang[lang.strip()] = text
        else:
            by_lang[default] = label
    raw = {"place": place, "service": service, "labels": by_lang, "starts_on": starts, "every_days": every,
           "ends_on": ends, "check_at": check_at, "sample_size": sample, "no_threshold": no_threshold}
    with services().sessions() as session, session.begin():
        try:
            row = schedules.create(session, schedules.values_from(session, raw), actor="cli")
        except schedules.ScheduleError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"schedule {row.id}: {row.service} in {row.place} from {row.starts_on}"
                   + (f", every {row.every_days} days" if row.every_days else ", once")
                   + f", asked after {row.check_at:%H:%M}")


@schedules_cli.command("list")
@click.option("--all", "everything", is_flag=True, help="Stopped schedules too.")
def schedules_list(everything: bool) -> None:
    """The schedules, by place and service."""
    with services().sessions() as session:
        rows = schedules.listing(session, active_only=not everything)
        if not rows:
            click.echo("no schedules")
        for r in rows:
            when = f"every {r.every_days} days" if r.every_days else "once"
            click.echo(f"{r.id}\t{r.place}\t{r.service}\t{r.starts_on}\t{when}\t{r.check_at:%H:%M}\t"
                       f"sample {r.sample_size}, {r.no_threshold} no opens a case\t"
                       f"{'active' if r.active else 'stopped'}" + (f"\tcase {r.case_id}" if r.case_id else ""))


@schedules_cli.command("stop")
@click.argument("schedule_id", type=int)
def schedules_stop(schedule_id: int) -> None:
    """Stop a schedule: no more checks (those made stay)."""
    with services().sessions() as session, session.begin():
        row = session.get(ServiceSchedule, schedule_id)
        if row is None:
            raise click.ClickException(f"there is no schedule {schedule_id}")
        schedules.update(session, row, schedules.values_from(session, {"active": False}, before=row), actor="cli")
    click.echo(f"schedule {schedule_id} stopped")


@checks_cli.command("tick")
@click.option("--at", "at", type=AT, default=None, help="Act as if it were this UTC time; default: now.")
def checks_tick(at: datetime | None) -> None:
    """Open due checks, ask supporters whose check time has come, close finished checks."""
    with services().sessions() as session, session.begin():
        done = checks.tick(session, at or utcnow())
    click.echo(f"{done['opened']} checks opened, {done['asked']} supporters asked, {done['closed']} checks closed")


@checks_cli.command("list")
@click.option("--place", default=None)
def checks_list(place: str | None) -> None:
    """Checks, newest due date first (no supporter is named)."""
    with services().sessions() as session:
        query = select(Check).order_by(Check.due_on.desc(), Check.id.desc()).limit(200)
        if place:
            query = query.where(Check.place == place)
        for c in session.scalars(query):
            d = checks.describe(c)
            click.echo(f"{d['id']}\t{d['kind']}\t{d['place']}\t{d['service']}\t{d['due_on']}\t{d['status']}\t"
                       f"asked {d['asked']}\t{d['outcome'] or '-'}")


def init_app(app: Flask) -> None:
    """Register `flask schedules` and `flask checks`."""
    app.cli.add_command(schedules_cli)
    app.cli.add_command(checks_cli)
